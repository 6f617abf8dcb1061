"""`mlplatform train | status | approve | invoke` against moto running as a server process, a
throttling/denying AWS stand-in, and a stand-in Kubernetes API."""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import jsonschema
import pytest
import yaml

from infra.components.eks_operator import TRAINER_VERSION
from mlplatform.cli import main

SCHEMAS = Path(__file__).parent / "schemas"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's server as its own process on loopback, as boto3 would meet AWS."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Point boto3 (through AWS_ENDPOINT_URL) at a local endpoint with dummy credentials."""

    def use(url: str) -> None:
        for key, value in {**AWS_ENV, "AWS_ENDPOINT_URL": url}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("AWS_PROFILE", raising=False)

    return use


def sagemaker(url: str):
    return boto3.client(
        "sagemaker",
        region_name="us-east-1",
        endpoint_url=url,
        **{k.lower(): v for k, v in AWS_ENV.items()},
    )


def test_moto_accepts_every_stacks_pipeline_and_train_then_status_follow_it(
    moto_url, aws, plan_of, capsys
):
    client = sagemaker(moto_url)
    for stack in ("dev", "staging", "prod"):
        for pipeline in plan_of(stack).of_type("aws:sagemaker/pipeline:Pipeline"):
            client.create_pipeline(
                PipelineName=pipeline.inputs["pipelineName"],
                PipelineDefinition=pipeline.inputs["pipelineDefinition"],
                RoleArn="arn:aws:iam::123456789012:role/pipeline",
            )
    aws(moto_url)
    assert (
        main(["train", "--stack", "dev", "--model", "digits", "--param", "TrainingInstanceCount=1"])
        == 0
    )
    started = capsys.readouterr().out
    assert (
        "arn:aws:sagemaker:us-east-1:123456789012:pipeline/mlplatform-dev-digits/execution/"
        in started
    )
    assert main(["status", "--stack", "dev", "--model", "digits"]) == 0
    status = capsys.readouterr().out
    arn = started.split()[-1]
    assert f"{arn}: Succeeded" in status
    assert "steps unavailable" in status, "moto 5.2.5 answers ListPipelineExecutionSteps with a 500"


def test_approve_marks_the_newest_pending_version_approved(moto_url, aws, capsys):
    client = sagemaker(moto_url)
    group = "mlplatform-prod-digits"
    client.create_model_package_group(ModelPackageGroupName=group)
    spec = {
        "Containers": [{"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/s:ctx-0"}],
        "SupportedContentTypes": ["application/json"],
        "SupportedResponseMIMETypes": ["application/json"],
    }
    for _ in range(2):
        client.create_model_package(
            ModelPackageGroupName=group,
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification=spec,
        )
    aws(moto_url)
    assert main(["approve", "--stack", "prod", "--model", "digits"]) == 0
    out = capsys.readouterr().out
    assert "modelPackageVersion: 2" in out
    statuses = {
        p["ModelPackageVersion"]: p["ModelApprovalStatus"]
        for p in client.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    }
    assert statuses == {1: "PendingManualApproval", 2: "Approved"}


def test_publish_uploads_a_local_model_where_endpoints_look_for_it(moto_url, aws, tmp_path, capsys):
    import io
    import tarfile

    s3 = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=moto_url,
        **{k.lower(): v for k, v in AWS_ENV.items()},
    )
    s3.create_bucket(Bucket="mlplatform-dev-artifacts-1a2b3c4")
    s3.create_bucket(Bucket="mlplatform-dev-datasets-1a2b3c4")
    (tmp_path / "model.json").write_text("{}")
    (tmp_path / "model.pt").write_bytes(b"weights")
    aws(moto_url)
    assert (
        main(["publish", "--stack", "dev", "--model", "digits", "--model-dir", str(tmp_path)]) == 0
    )
    assert (
        "s3://mlplatform-dev-artifacts-1a2b3c4/models/digits/model.tar.gz"
        in capsys.readouterr().out
    )
    body = s3.get_object(
        Bucket="mlplatform-dev-artifacts-1a2b3c4", Key="models/digits/model.tar.gz"
    )["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        assert sorted(archive.getnames()) == ["model.json", "model.pt"], (
            "at the root, as SageMaker unpacks it"
        )
    assert (
        main(
            [
                "publish",
                "--stack",
                "dev",
                "--model",
                "digits",
                "--model-dir",
                str(tmp_path / "nothing"),
            ]
        )
        == 3
    )
    assert "holds no exported model" in capsys.readouterr().err


def test_invoke_sends_a_digits_sample_to_the_endpoint(moto_url, aws, capsys):
    aws(moto_url)
    assert main(["invoke", "--stack", "dev", "--model", "digits"]) == 0
    assert capsys.readouterr().out.strip() == "body", "moto's canned InvokeEndpoint answer"


class AwsStandIn(BaseHTTPRequestHandler):
    """Answers AWS JSON-protocol calls from a script of (status, body) replies."""

    replies: list[tuple[int, dict]] = []
    seen: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        AwsStandIn.seen.append(self.headers.get("X-Amz-Target", ""))
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
def stand_in() -> Iterator[tuple[str, type[AwsStandIn]]]:
    AwsStandIn.replies, AwsStandIn.seen = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), AwsStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", AwsStandIn
    server.shutdown()


THROTTLED = (400, {"__type": "ThrottlingException", "message": "Rate exceeded"})
STARTED = (
    200,
    {
        "PipelineExecutionArn": "arn:aws:sagemaker:us-east-1:123456789012:pipeline/mlplatform-dev-digits/execution/abc"
    },
)


def test_throttling_is_retried_until_the_call_succeeds(stand_in, aws, capsys):
    url, server = stand_in
    server.replies = [THROTTLED, THROTTLED, STARTED]
    aws(url)
    assert main(["train", "--stack", "dev", "--model", "digits"]) == 0
    assert server.seen == ["SageMaker.StartPipelineExecution"] * 3
    assert "execution/abc" in capsys.readouterr().out


def test_endless_throttling_is_reported_in_one_line(stand_in, aws, capsys, monkeypatch):
    url, server = stand_in
    server.replies = [THROTTLED] * 2
    aws(url)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    assert main(["train", "--stack", "dev", "--model", "digits"]) == 3
    err = capsys.readouterr().err
    assert (
        err.strip()
        == "error: starting pipeline mlplatform-dev-digits: AWS kept throttling StartPipelineExecution after retries; try again later"
    )


def test_access_denied_is_reported_in_one_line_without_a_traceback(stand_in, aws, capsys):
    url, server = stand_in
    denial = "User: arn:aws:iam::123456789012:user/dev is not authorized to perform: sagemaker:UpdateModelPackage"
    server.replies = [
        (
            200,
            {
                "ModelPackageSummaryList": [
                    {
                        "ModelPackageArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlplatform-dev-digits/1",
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
    aws(url)
    assert main(["approve", "--stack", "dev", "--model", "digits"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err == (
        "error: approving arn:aws:sagemaker:us-east-1:123456789012:model-package/mlplatform-dev-digits/1: "
        f"AWS denied UpdateModelPackage (AccessDeniedException): {denial}\n"
    )


def test_an_unknown_model_names_the_ones_the_stack_has(capsys):
    assert main(["invoke", "--stack", "staging", "--model", "mnist"]) == 3
    assert (
        capsys.readouterr().err
        == "error: stack staging has no model 'mnist' (models: digits, digits-eks)\n"
    )


class KubernetesStandIn(BaseHTTPRequestHandler):
    """Just enough of the Kubernetes API for TrainJobs: create and list."""

    created: list[dict] = []

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/api/v1/namespaces/serving/services/digits-eks:http/proxy/invocations":
            shape = (len(body["inputs"]), len(body["inputs"][0]), len(body["inputs"][0][0]))
            self._send(200, {"predictions": [{"label": "0", "shape": list(shape)}]})
            return
        assert self.path == "/apis/trainer.kubeflow.org/v1alpha1/namespaces/training/trainjobs"
        KubernetesStandIn.created.append(body)
        self._send(201, body)

    def do_GET(self) -> None:
        assert self.path.startswith(
            "/apis/trainer.kubeflow.org/v1alpha1/namespaces/training/trainjobs"
        )
        items = [
            {
                **job,
                "metadata": {**job["metadata"], "creationTimestamp": "2026-01-01T00:00:00Z"},
                "status": {"conditions": [{"type": "Created", "status": "True"}]},
            }
            for job in KubernetesStandIn.created
        ]
        self._send(
            200,
            {
                "apiVersion": "trainer.kubeflow.org/v1alpha1",
                "kind": "TrainJobList",
                "metadata": {},
                "items": items,
            },
        )

    def log_message(self, *args: object) -> None:
        pass


def test_on_eks_train_creates_a_train_job_and_invoke_goes_through_the_service_proxy(
    tmp_path, capsys
):
    KubernetesStandIn.created = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), KubernetesStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    try:
        args = ["--stack", "staging", "--model", "digits-eks", "--kubeconfig", str(kubeconfig)]
        assert main(["train", *args]) == 0
        assert main(["status", *args]) == 0
        assert main(["invoke", *args]) == 0
    finally:
        server.shutdown()
    (job,) = KubernetesStandIn.created
    with gzip.open(SCHEMAS / f"trainer-v{TRAINER_VERSION}-trainjob.json.gz") as f:
        schema = json.loads(f.read())["schema"]
    jsonschema.validate(job["spec"], schema["properties"]["spec"])
    assert (
        job["spec"]["runtimeRef"]["name"] == "digits-eks"
        and job["spec"]["runtimeRef"]["kind"] == "TrainingRuntime"
    )
    out = capsys.readouterr().out
    assert f"started TrainJob training/{job['metadata']['name']}" in out
    assert f"training/{job['metadata']['name']}: Created=True" in out
    assert '{"predictions": [{"label": "0", "shape": [1, 1, 8]}]}' in out, "one 1x8x8 digits sample"
