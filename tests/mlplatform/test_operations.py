"""`mlplatform train | status | approve | publish | invoke` on the SageMaker plane, against moto
running as a server process and a throttling/denying AWS stand-in; names come from the stack's
outputs (a fake `pulumi` CLI, or the offline plan when there is none)."""

from __future__ import annotations

import io
import json
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infra.stackfile import PROJECT_ROOT
from mlplatform.cli import main

ARN = "arn:aws:sagemaker:us-east-1:123456789012"
# The suite's own stacks (tests/stacks): dev has breast-cancer with a batch transform.
SUITE = ["--stacks-dir", str(PROJECT_ROOT / "tests" / "stacks")]


def test_train_and_status_use_the_pipeline_the_stack_outputs_name(
    moto, moto_url, aws, fake_pulumi, plan_of, capsys
):
    # The deployed stack's pipeline has a name no convention would derive.
    pipeline = plan_of("dev").get("aws:sagemaker/pipeline:Pipeline", "mlplatform-dev-digits")
    moto("sagemaker").create_pipeline(
        PipelineName="digits-pipeline-renamed",
        PipelineDefinition=pipeline.inputs["pipelineDefinition"],
        RoleArn="arn:aws:iam::123456789012:role/pipeline",
    )
    fake_pulumi.set("dev", {"pipelineNames": {"digits": "digits-pipeline-renamed"}})
    aws(moto_url)
    args = ["--stack", "dev", "--model", "digits"]
    assert main(["train", *args, "--param", "TrainingInstanceCount=1"]) == 0
    started = capsys.readouterr().out
    assert f"{ARN}:pipeline/digits-pipeline-renamed/execution/" in started
    assert main(["status", *args]) == 0
    status = capsys.readouterr().out
    assert f"{started.split()[-1]}: Succeeded" in status
    assert "steps unavailable" in status, "moto 5.2.5 answers ListPipelineExecutionSteps with a 500"
    assert fake_pulumi.calls() == ["stack output --json --stack dev"] * 2


def test_moto_accepts_every_stacks_pipeline_definition(moto, plan_of):
    sagemaker = moto("sagemaker")
    for stack in ("dev", "staging", "prod"):
        for pipeline in plan_of(stack).of_type("aws:sagemaker/pipeline:Pipeline"):
            sagemaker.create_pipeline(
                PipelineName=f"{stack}-{pipeline.inputs['pipelineName']}",
                PipelineDefinition=pipeline.inputs["pipelineDefinition"],
                RoleArn="arn:aws:iam::123456789012:role/pipeline",
            )


def test_approve_marks_the_newest_pending_version_of_the_outputs_group(
    moto, moto_url, aws, fake_pulumi, capsys
):
    sagemaker = moto("sagemaker")
    group = "prod-digits-registry"
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    spec = {
        "Containers": [{"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/s:ctx-0"}],
        "SupportedContentTypes": ["application/json"],
        "SupportedResponseMIMETypes": ["application/json"],
    }
    for _ in range(2):
        sagemaker.create_model_package(
            ModelPackageGroupName=group,
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification=spec,
        )
    fake_pulumi.set("prod", {"modelPackageGroups": {"digits": group}})
    aws(moto_url)
    assert main(["approve", "--stack", "prod", "--model", "digits"]) == 0
    out = capsys.readouterr().out
    assert "modelPackageVersion: 2" in out and "stacks/Pulumi.prod.yaml" in out
    statuses = {
        p["ModelPackageVersion"]: p["ModelApprovalStatus"]
        for p in sagemaker.list_model_packages(ModelPackageGroupName=group)[
            "ModelPackageSummaryList"
        ]
    }
    assert statuses == {1: "PendingManualApproval", 2: "Approved"}


def test_approve_works_for_a_model_the_eks_plane_trains_and_serves(
    moto, moto_url, aws, fake_pulumi, capsys
):
    # The EKS run's evaluate job registers in the model's group, as the pipeline would.
    sagemaker = moto("sagemaker")
    group = "mlplatform-staging-digits-eks"
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    sagemaker.create_model_package(
        ModelPackageGroupName=group,
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [{"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/s:ctx-0"}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )
    fake_pulumi.set("staging", {"modelPackageGroups": {"digits-eks": group}})
    aws(moto_url)
    assert main(["approve", "--stack", "staging", "--model", "digits-eks"]) == 0
    out = capsys.readouterr().out
    assert f"approved {ARN}:model-package/{group}/1" in out
    assert "serves on EKS from models/digits-eks/model.tar.gz" in out
    (package,) = sagemaker.list_model_packages(ModelPackageGroupName=group)[
        "ModelPackageSummaryList"
    ]
    assert package["ModelApprovalStatus"] == "Approved"


def _exported_model(directory) -> None:
    (directory / "model.json").write_text("{}")
    (directory / "model.pt").write_bytes(b"weights")


def test_publish_uploads_to_the_artifacts_bucket_the_outputs_name(
    moto, moto_url, aws, fake_pulumi, tmp_path, capsys
):
    s3 = moto("s3")
    # Two buckets that look alike: only the outputs say which one the stack owns.
    for bucket in ("mlplatform-dev-artifacts-1a2b3c4", "mlplatform-dev-artifacts-9z8y7x6"):
        s3.create_bucket(Bucket=bucket)
    fake_pulumi.set("dev", {"bucketNames": {"artifacts": "mlplatform-dev-artifacts-9z8y7x6"}})
    model = tmp_path / "model"
    model.mkdir()
    _exported_model(model)
    aws(moto_url)
    args = ["publish", "--stack", "dev", "--model", "digits", "--model-dir", str(model)]
    assert main(args) == 0
    key = "models/digits/model.tar.gz"
    assert f"s3://mlplatform-dev-artifacts-9z8y7x6/{key}" in capsys.readouterr().out
    body = s3.get_object(Bucket="mlplatform-dev-artifacts-9z8y7x6", Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        assert sorted(archive.getnames()) == ["model.json", "model.pt"], (
            "at the root, as SageMaker unpacks it"
        )
    assert main([*args[:-1], str(tmp_path / "nothing")]) == 3
    assert "holds no exported model" in capsys.readouterr().err


def test_without_the_pulumi_cli_publish_asks_for_it_rather_than_guess_a_bucket(
    no_pulumi, tmp_path, capsys
):
    _exported_model(tmp_path)
    args = ["publish", "--stack", "dev", "--model", "digits", "--model-dir", str(tmp_path)]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: the artifacts bucket: Pulumi names it when it deploys the stack")
    assert "put the pulumi CLI on PATH" in err and "--bucket" in err


def test_without_the_pulumi_cli_invoke_uses_the_endpoint_the_program_names(
    moto_url, aws, no_pulumi, capsys
):
    aws(moto_url)
    assert main(["invoke", "--stack", "dev", "--model", "digits"]) == 0
    assert capsys.readouterr().out.strip() == "body", "moto's canned InvokeEndpoint answer"


def test_a_failing_pulumi_cli_is_reported_in_one_line(fake_pulumi, capsys):
    assert main(["invoke", "--stack", "qa", "--model", "digits"]) == 3
    assert capsys.readouterr().err == (
        "error: `pulumi stack output --json --stack qa` failed: error: no stack named 'qa' found\n"
    )


def test_an_output_the_stack_lacks_is_named(fake_pulumi, capsys):
    fake_pulumi.set("dev", {"pipelineNames": {}})
    assert main(["train", "--stack", "dev", "--model", "digits"]) == 3
    assert capsys.readouterr().err == (
        "error: the training pipeline: the stack has no output pipelineNames.digits "
        "(pulumi stack output --stack dev)\n"
    )


class AwsStandIn(BaseHTTPRequestHandler):
    """Answers AWS JSON-protocol calls from a script of (status, body) replies."""

    replies: list[tuple[int, dict]] = []
    seen: list[str] = []
    bodies: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        AwsStandIn.seen.append(self.headers.get("X-Amz-Target", ""))
        AwsStandIn.bodies.append((self.headers.get("Content-Type", ""), body))
        status, body = AwsStandIn.replies.pop(0)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stand_in(aws, fake_pulumi, plan_of) -> Iterator[type[AwsStandIn]]:
    """The scripted AWS stand-in, with the dev stack's outputs as the deployed stack's."""
    AwsStandIn.replies, AwsStandIn.seen, AwsStandIn.bodies = [], [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), AwsStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fake_pulumi.set("dev", plan_of("dev").outputs)
    aws(f"http://127.0.0.1:{server.server_port}")
    yield AwsStandIn
    server.shutdown()


THROTTLED = (400, {"__type": "ThrottlingException", "message": "Rate exceeded"})
EXECUTION = f"{ARN}:pipeline/mlplatform-dev-digits/execution/abc"
STARTED = (200, {"PipelineExecutionArn": EXECUTION})


def test_throttling_is_retried_until_the_call_succeeds(stand_in, capsys):
    stand_in.replies = [THROTTLED, THROTTLED, STARTED]
    assert main(["train", "--stack", "dev", "--model", "digits"]) == 0
    assert stand_in.seen == ["SageMaker.StartPipelineExecution"] * 3
    assert "execution/abc" in capsys.readouterr().out


def test_endless_throttling_is_reported_in_one_line(stand_in, capsys, monkeypatch):
    stand_in.replies = [THROTTLED] * 2
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    assert main(["train", "--stack", "dev", "--model", "digits"]) == 3
    err = capsys.readouterr().err
    assert (
        err.strip()
        == "error: starting pipeline mlplatform-dev-digits: AWS kept throttling StartPipelineExecution after retries; try again later"
    )


def test_status_exits_1_when_the_latest_execution_failed(stand_in, capsys):
    stand_in.replies = [
        (200, {"PipelineExecutionSummaries": [{"PipelineExecutionArn": EXECUTION}]}),
        (
            200,
            {
                "PipelineExecutionArn": EXECUTION,
                "PipelineExecutionStatus": "Failed",
                "FailureReason": "Step train failed",
            },
        ),
        (
            200,
            {
                "PipelineExecutionSteps": [
                    {"StepName": "train", "StepStatus": "Failed", "FailureReason": "OOM"}
                ]
            },
        ),
    ]
    assert main(["status", "--stack", "dev", "--model", "digits"]) == 1
    assert capsys.readouterr().out == (
        f"{EXECUTION}: Failed (Step train failed)\n  train: Failed (OOM)\n"
    )


def test_access_denied_is_reported_in_one_line_without_a_traceback(stand_in, capsys):
    denial = "User: arn:aws:iam::123456789012:user/dev is not authorized to perform: sagemaker:UpdateModelPackage"
    package = f"{ARN}:model-package/mlplatform-dev-digits/1"
    stand_in.replies = [
        (
            200,
            {
                "ModelPackageSummaryList": [
                    {
                        "ModelPackageArn": package,
                        "ModelPackageVersion": 1,
                        "ModelApprovalStatus": "PendingManualApproval",
                        "ModelPackageGroupName": "mlplatform-dev-digits",
                        "CreationTime": 0,
                        "ModelPackageStatus": "Completed",
                    }
                ]
            },
        ),
        (400, {"__type": "AccessDeniedException", "message": denial}),
    ]
    assert main(["approve", "--stack", "dev", "--model", "digits"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err == (
        f"error: approving {package}: AWS denied UpdateModelPackage (AccessDeniedException): {denial}\n"
    )


def test_an_unknown_model_names_the_ones_the_stack_has(capsys):
    assert main(["invoke", "--stack", "staging", "--model", "mnist"]) == 3
    assert (
        capsys.readouterr().err
        == "error: stack staging has no model 'mnist' (models: digits, digits-eks)\n"
    )


def test_invoke_sends_the_models_example_request_as_its_first_content_type(stand_in, capsys):
    stand_in.replies = [(200, {"predictions": [{"label": "benign"}]})]
    assert main(["invoke", "--stack", "dev", *SUITE, "--model", "breast-cancer"]) == 0
    example = (PROJECT_ROOT / "models" / "breast-cancer" / "example.json").read_bytes()
    assert stand_in.bodies == [("application/json", example)]
    assert '"label": "benign"' in capsys.readouterr().out


def test_invoke_input_file_wins_over_the_example(stand_in, tmp_path, capsys):
    stand_in.replies = [(200, {"predictions": [{"label": "benign"}]})]
    rows = tmp_path / "rows.csv"
    rows.write_text(",".join(["1.0"] * 30) + "\n")
    args = ["invoke", "--stack", "dev", *SUITE, "--model", "breast-cancer", "--input", str(rows)]
    assert main([*args, "--content-type", "text/csv"]) == 0
    assert stand_in.bodies == [("text/csv", rows.read_bytes())]
    assert main([*args[:-1], str(tmp_path / "missing.json")]) == 3
    assert "no such file" in capsys.readouterr().err


def _batch_pipeline(moto, plan_of, model: str, renamed: str) -> None:
    name = plan_of("dev").outputs["batchPipelines"][model]
    (pipeline,) = [
        p
        for p in plan_of("dev").of_type("aws:sagemaker/pipeline:Pipeline")
        if p.inputs["pipelineName"] == name
    ]
    moto("sagemaker").create_pipeline(
        PipelineName=renamed,
        PipelineDefinition=pipeline.inputs["pipelineDefinition"],
        RoleArn="arn:aws:iam::123456789012:role/batch",
    )


def test_batch_starts_the_outputs_pipeline_on_the_input_and_follows_it(
    moto, moto_url, aws, fake_pulumi, plan_of, capsys
):
    _batch_pipeline(moto, plan_of, "breast-cancer", "bc-batch-renamed")
    fake_pulumi.set("dev", {"batchPipelines": {"breast-cancer": "bc-batch-renamed"}})
    aws(moto_url)
    args = ["batch", "--stack", "dev", *SUITE, "--model", "breast-cancer"]
    uri = "s3://scoring-inbox/2026-11-30/"
    assert main([*args, "--input", uri, "--wait", "--interval", "0"]) == 0
    out = capsys.readouterr().out
    arn = out.split()[1]
    assert arn.startswith(f"{ARN}:pipeline/bc-batch-renamed/execution/")
    assert f"scoring {uri}, text/csv" in out and f"{arn}: Succeeded" in out, out
    parameters = moto("sagemaker").list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)[
        "PipelineParameters"
    ]
    assert parameters == [{"Name": "InputUri", "Value": uri}]


def test_batch_without_an_input_keeps_the_pipelines_default(
    moto, moto_url, aws, fake_pulumi, plan_of, capsys
):
    _batch_pipeline(moto, plan_of, "breast-cancer", "bc-batch-default")
    fake_pulumi.set("dev", {"batchPipelines": {"breast-cancer": "bc-batch-default"}})
    aws(moto_url)
    assert main(["batch", "--stack", "dev", *SUITE, "--model", "breast-cancer"]) == 0
    arn = capsys.readouterr().out.split()[1]
    listed = moto("sagemaker").list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)
    assert listed["PipelineParameters"] == []


def test_batch_for_a_model_without_batch_config_names_the_stack_key(capsys):
    assert main(["batch", "--stack", "dev", *SUITE, "--model", "digits"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: digits has no batch transform in stack dev: add ")
    assert "mlplatform:models[0].batch" in err and "Pulumi.dev.yaml" in err


def test_batch_input_must_be_an_s3_prefix(capsys):
    args = ["batch", "--stack", "dev", *SUITE, "--model", "breast-cancer", "--input", "/data"]
    assert main(args) == 3
    assert "want an S3 prefix" in capsys.readouterr().err


def test_publish_refuses_another_models_export(tmp_path, capsys):
    (tmp_path / "model.json").write_text('{"name": "breast-cancer"}')
    args = ["publish", "--stack", "dev", "--model", "digits", "--model-dir", str(tmp_path)]
    assert main(args) == 3
    assert "an export of model 'breast-cancer', not of 'digits'" in capsys.readouterr().err


def test_invoke_queues_on_an_asynchronous_endpoint_and_prints_its_result(
    moto, moto_url, aws, fake_pulumi, capsys
):
    # An async endpoint refuses InvokeEndpoint: the request goes to the model's async prefix,
    # InvokeEndpointAsync queues it, and the command waits for the result the endpoint writes.
    s3 = moto("s3")
    s3.create_bucket(Bucket="artifacts-b")
    fake_pulumi.set(
        "staging",
        {
            "endpointNames": {"mnist-keras": "keras-async"},
            "bucketNames": {"artifacts": "artifacts-b"},
        },
    )
    import urllib.request

    results = {"results": [{"data": json.dumps({"predictions": [{"label": "7"}]})}]}
    urllib.request.urlopen(
        urllib.request.Request(
            f"{moto_url}/moto-api/static/sagemaker/async-endpoint-results",
            data=json.dumps(results).encode(),
            headers={"Content-Type": "application/json"},
        )
    ).read()
    aws(moto_url)
    args = ["invoke", "--stack", "staging", *SUITE, "--model", "mnist-keras", "--interval", "0.1"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"predictions": [{"label": "7"}]}
    assert "queued " in captured.err
    (uploaded,) = s3.list_objects_v2(Bucket="artifacts-b")["Contents"]
    assert uploaded["Key"].startswith("async/mnist-keras/requests/")
    example = (PROJECT_ROOT / "models" / "mnist-keras" / "example.json").read_bytes()
    assert s3.get_object(Bucket="artifacts-b", Key=uploaded["Key"])["Body"].read() == example
