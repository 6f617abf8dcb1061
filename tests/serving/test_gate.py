"""`python -m serving gate`, the EKS plane's last step: the real evaluator on a tiny exported
model and a held-out test channel decides; a metrics.json the training run wrote about itself
never does. Registration goes to moto's SageMaker (the request validated against botocore's
service model), the archive and evaluation to moto's S3."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.validate import validate_parameters
from moto import mock_aws

from infra import pipeline_definition
from serving.gate import (
    EVALUATION,
    EXIT_AWS,
    EXIT_ERROR,
    EXIT_REFUSED,
    EXIT_REGISTERED,
    Objective,
    Registration,
    main,
    model_package_request,
)
from tests.serving.conftest import write_model_dir
from tests.serving.test_evaluate import THREE, Identity, X, Y, write_test_channel

# The identity model scores accuracy 0.75 on the four test samples (tests/serving/test_evaluate).
ACCURACY = 0.75
BUCKET = "mlplatform-test-artifacts"
GROUP = "mlplatform-test-three"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlplatform-test/three:ctx-0123456789abcdef"
OUTPUT = f"s3://{BUCKET}/models/three/evaluated/three-20260101-000000/"
SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    """What a run's nodes synced: the model, and a metrics.json that claims perfection."""
    model_dir = write_model_dir(tmp_path / "export", Identity(), THREE)
    (model_dir / "metrics.json").write_text(json.dumps({"accuracy": 1.0, "f1_macro": 1.0}))
    return model_dir


@pytest.fixture
def test_channel(tmp_path: Path) -> Path:
    return write_test_channel(tmp_path / "test", X, Y, labels=["a", "b", "c"])


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """moto's S3 and SageMaker with the artifacts bucket and the model's package group, and a
    termination-log file as Kubernetes mounts one."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "TERMINATION_LOG": str(tmp_path / "termination-log"),
    }.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "termination-log").write_text("")
    with mock_aws():
        s3, sagemaker = boto3.client("s3"), boto3.client("sagemaker")
        s3.create_bucket(Bucket=BUCKET)
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        yield s3, sagemaker


def gate(exported: Path, test_channel: Path, work: Path, *more: str) -> int:
    return main(
        [
            "--export-dir", str(exported),
            "--test-dir", str(test_channel),
            "--work-dir", str(work),
            "--metric", "accuracy",
            "--goal", "maximize",
            "--output-uri", OUTPUT,
            "--model-package-group", GROUP,
            "--image", IMAGE,
            "--content-type", "application/json",
            "--content-type", "application/x-npy",
            "--description", "three, trained by TrainJob three-20260101-000000",
            "--token", "three-20260101-000000",
            *more,
        ]
    )  # fmt: skip


def keys(s3: Any) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def test_an_inflated_metrics_json_does_not_pass_a_threshold_the_model_misses(
    exported: Path, test_channel: Path, tmp_path: Path, aws, capsys
) -> None:
    s3, sagemaker = aws
    assert json.loads((exported / "metrics.json").read_text())["accuracy"] == 1.0
    assert gate(exported, test_channel, tmp_path / "work", "--threshold", "0.9") == EXIT_REFUSED
    line = (
        "not registered: accuracy 0.7500 on the held-out test channel misses the threshold (>= 0.9)"
    )
    assert capsys.readouterr().err.strip().splitlines()[-1] == line
    assert (tmp_path / "termination-log").read_text() == line + "\n", "kubectl describe shows it"
    assert (
        sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"] == []
    )
    # The evaluation is kept for the post-mortem; the model that failed is not published.
    prefix = OUTPUT.removeprefix(f"s3://{BUCKET}/")
    assert keys(s3) == {f"{prefix}evaluation.json"}
    body = s3.get_object(Bucket=BUCKET, Key=f"{prefix}evaluation.json")["Body"].read()
    assert json.loads(body)["metrics"]["accuracy"]["value"] == ACCURACY


def test_a_model_at_the_threshold_is_registered_pending_approval_with_what_was_evaluated(
    exported: Path, test_channel: Path, tmp_path: Path, aws, capsys
) -> None:
    s3, sagemaker = aws
    assert gate(exported, test_channel, tmp_path / "work", "--threshold", "0.75") == (
        EXIT_REGISTERED
    )
    (package,) = sagemaker.list_model_packages(ModelPackageGroupName=GROUP)[
        "ModelPackageSummaryList"
    ]
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    described = sagemaker.describe_model_package(ModelPackageName=package["ModelPackageArn"])
    (container,) = described["InferenceSpecification"]["Containers"]
    assert container["Image"] == IMAGE
    assert container["ModelDataUrl"] == OUTPUT + "model.tar.gz"
    statistics = described["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["S3Uri"] == OUTPUT + "evaluation.json"
    # The archive holds exactly the exported directory, at its root (SageMaker's layout).
    prefix = OUTPUT.removeprefix(f"s3://{BUCKET}/")
    archive = s3.get_object(Bucket=BUCKET, Key=f"{prefix}model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == sorted(p.name for p in exported.iterdir())
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith(f"registered {package['ModelPackageArn']} (PendingManualApproval)")
    assert out[-1].endswith("accuracy 0.7500 on the held-out test channel >= 0.75")


def test_nothing_to_evaluate_or_an_evaluator_refusal_is_final_and_says_why(
    exported: Path, test_channel: Path, tmp_path: Path, aws, capsys
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert gate(empty, test_channel, tmp_path / "w1", "--threshold", "0.5") == EXIT_ERROR
    assert "no model.json; the training run exported no model" in capsys.readouterr().err
    (test_channel / "manifest.json").unlink()
    assert gate(exported, test_channel, tmp_path / "w2", "--threshold", "0.5") == EXIT_ERROR
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("not registered: the evaluator refused the model: ")
    assert "manifest.json: not found" in last
    assert keys(aws[0]) == set(), "nothing uploaded, nothing registered"


def test_a_group_aws_refuses_is_an_aws_error_worth_a_retry(
    exported: Path, test_channel: Path, tmp_path: Path, aws, capsys
) -> None:
    # A later flag wins: a group that does not exist (SageMaker answers ValidationException).
    more = ["--threshold", "0.5", "--model-package-group", "mlplatform-test-gone"]
    assert gate(exported, test_channel, tmp_path / "work", *more) == EXIT_AWS
    assert "ValidationException" in capsys.readouterr().err


def registration() -> Registration:
    return Registration(
        group=GROUP,
        image=IMAGE,
        content_types=["application/json"],
        instance_types=["ml.g5.xlarge"],
        description="three, trained by TrainJob three-20260101-000000",
        token="three-20260101-000000",
    )


def test_the_registration_request_fits_botocores_model_of_create_model_package() -> None:
    request = model_package_request(registration(), OUTPUT + "model.tar.gz", OUTPUT + "e.json")
    validate_parameters(request, SAGEMAKER.operation_model("CreateModelPackage").input_shape)
    assert request["ModelApprovalStatus"] == "PendingManualApproval"
    again = model_package_request(registration(), OUTPUT + "model.tar.gz", OUTPUT + "e.json")
    assert request["ClientToken"] == again["ClientToken"], "a retried step registers once"


def pipeline_condition(metric: str, goal: str) -> str:
    """The comparison the SageMaker pipeline's MeetsThreshold step makes for an objective."""
    objective = SimpleNamespace(metric=metric, goal=goal)
    inputs = SimpleNamespace(manifest=SimpleNamespace(train=SimpleNamespace(objective=objective)))
    (condition,) = pipeline_definition._gate(inputs, [])["Arguments"]["Conditions"]  # type: ignore[arg-type]
    return condition["Type"]


@pytest.mark.parametrize(
    ("metric", "goal", "value", "threshold"),
    [
        ("accuracy", "maximize", 0.95, 0.95),
        ("accuracy", "maximize", 0.9499, 0.95),
        ("accuracy", "maximize", 0.9501, 0.95),
        ("log_loss", "minimize", 0.2, 0.2),
        ("log_loss", "minimize", 0.2001, 0.2),
        ("log_loss", "minimize", 0.1999, 0.2),
    ],
)
def test_the_gate_compares_as_the_pipelines_condition_does(
    metric: str, goal: str, value: float, threshold: float
) -> None:
    compare = {"GreaterThanOrEqualTo": float.__ge__, "LessThanOrEqualTo": float.__le__}
    expected = compare[pipeline_condition(metric, goal)](value, threshold)
    assert Objective(metric, goal, threshold).passes(value) is expected
    # Without a threshold the pipeline registers every evaluated model, and so does the gate.
    assert Objective(metric, goal, None).passes(value) is True
    assert EVALUATION == pipeline_definition.EVALUATION_FILE
