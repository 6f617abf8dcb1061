"""`mlplatform train | status | invoke` on the EKS plane, against a stand-in Kubernetes API:
TrainJobs in the namespace the stack's outputs name, and a status that fails when the job did."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jsonschema
import pytest
import yaml

from infra.components.eks_operator import TRAINER_VERSION
from mlplatform.cli import main

SCHEMAS = Path(__file__).resolve().parents[1] / "infra" / "schemas"
NAMESPACE = "team-training"  # not the conventional name: it must come from the outputs


class KubernetesStandIn(BaseHTTPRequestHandler):
    """Just enough of the Kubernetes API for TrainJobs (create, list) and the service proxy."""

    created: list[dict] = []
    # The TrainJob's conditions at each listing; the last stays.
    states: list[list[dict]] = [[]]

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
            # KEDA's interceptor (a model scaled to zero) routes by this header.
            assert self.headers["X-Mlplatform-Model"] == "digits-eks", dict(self.headers)
            samples = body.get("inputs", body.get("instances"))
            shape = (len(samples), len(samples[0]), len(samples[0][0]))
            self._send(200, {"predictions": [{"label": "0", "shape": list(shape)}]})
            return
        assert self.path == f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{NAMESPACE}/trainjobs"
        KubernetesStandIn.created.append(body)
        self._send(201, body)

    def do_GET(self) -> None:
        assert self.path.startswith(
            f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{NAMESPACE}/trainjobs"
        )
        states = KubernetesStandIn.states
        conditions = states.pop(0) if len(states) > 1 else states[0]
        items = [
            {
                **job,
                "metadata": {**job["metadata"], "creationTimestamp": "2026-01-01T00:00:00Z"},
                "status": {"conditions": conditions},
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


@pytest.fixture
def cluster(tmp_path, fake_pulumi, plan_of) -> Iterator[list[str]]:
    """A stand-in API server, a kubeconfig for it, and the staging stack's outputs with the
    training namespace renamed; yields the command-line arguments that reach it."""
    KubernetesStandIn.created, KubernetesStandIn.states = [], [[]]
    server = ThreadingHTTPServer(("127.0.0.1", 0), KubernetesStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    outputs = plan_of("staging").outputs
    namespaces = {**outputs["kubernetesNamespaces"], "training": NAMESPACE}
    fake_pulumi.set("staging", {**outputs, "kubernetesNamespaces": namespaces})
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
    yield ["--stack", "staging", "--model", "digits-eks", "--kubeconfig", str(kubeconfig)]
    server.shutdown()


def condition(kind: str, message: str = "") -> dict:
    return {"type": kind, "status": "True", "reason": kind, "message": message}


def test_train_creates_a_valid_train_job_and_invoke_goes_through_the_service_proxy(cluster, capsys):
    KubernetesStandIn.states = [[condition("Created")]]
    assert main(["train", *cluster]) == 0
    assert main(["status", *cluster]) == 0
    assert main(["invoke", *cluster]) == 0
    (job,) = KubernetesStandIn.created
    with gzip.open(SCHEMAS / f"trainer-v{TRAINER_VERSION}-trainjob.json.gz") as f:
        schema = json.loads(f.read())["schema"]
    jsonschema.validate(job["spec"], schema["properties"]["spec"])
    assert job["metadata"]["namespace"] == NAMESPACE
    assert job["spec"]["runtimeRef"] == {
        "name": "digits-eks",
        "apiGroup": "trainer.kubeflow.org",
        "kind": "TrainingRuntime",
    }
    out = capsys.readouterr().out
    assert f"started TrainJob {NAMESPACE}/{job['metadata']['name']}" in out
    assert f"{NAMESPACE}/{job['metadata']['name']}: Created=True" in out
    assert '{"predictions": [{"label": "0", "shape": [1, 1, 8]}]}' in out, (
        "the model's example request: one 1x8x8 sample"
    )


def test_status_exits_1_when_the_train_job_failed(cluster, capsys):
    assert main(["train", *cluster]) == 0
    KubernetesStandIn.states = [[condition("Created"), condition("Failed", "pod OOMKilled")]]
    assert main(["status", *cluster]) == 1
    assert "Failed=True (pod OOMKilled)" in capsys.readouterr().out


@pytest.mark.parametrize(("final", "code"), [("Complete", 0), ("Failed", 1)])
def test_status_follow_polls_until_the_train_job_ends(cluster, capsys, final, code):
    assert main(["train", *cluster]) == 0
    running = [condition("Created")]
    KubernetesStandIn.states = [running, running, [*running, condition(final, "done")]]
    assert main(["status", *cluster, "--follow", "--interval", "0"]) == code
    lines = capsys.readouterr().out.splitlines()[1:]
    why = " (done)" if final == "Failed" else ""  # a failure says why
    assert [line.split(": ", 1)[1] for line in lines] == [
        "Created=True",
        "Created=True",
        f"Created=True, {final}=True{why}",
    ]


def test_a_failed_run_names_the_step_it_failed_in(cluster, capsys):
    assert main(["train", *cluster]) == 0
    (job,) = KubernetesStandIn.created
    name = job["metadata"]["name"]
    # What JobSet writes (and Trainer copies) when the evaluate job failed: FailJobSet.
    why = f"applying FailJobSet failure policy action (first failed job: {name}-evaluate-0)"
    KubernetesStandIn.states = [[condition("Created"), condition("Failed", why)]]
    assert main(["status", *cluster]) == 1
    out = capsys.readouterr().out
    assert f"Failed=True ({why})" in out
    assert "failed step: evaluate (evaluation and registration" in out
    assert (
        f"kubectl -n {NAMESPACE} describe pods -l jobset.sigs.k8s.io/jobset-name={name},"
        "jobset.sigs.k8s.io/replicatedjob-name=evaluate"
    ) in out


class FakeTrainJobs:
    """The custom-objects API, answering one listing of TrainJobs."""

    def __init__(self, *jobs: dict) -> None:
        self.jobs = list(jobs)

    def list_namespaced_custom_object(self, *args: object, **kwargs: object) -> dict:
        return {"items": self.jobs}


def train_job_named(name: str, status: dict) -> dict:
    return {
        "metadata": {"name": name, "creationTimestamp": "2026-01-02T00:00:00Z"},
        "status": status,
    }


@pytest.mark.parametrize(
    ("status", "step"),
    [
        # JobSet's message names the first failed Job: <jobset>-<replicated job>-<index>.
        (
            {
                "conditions": [
                    condition(
                        "Failed",
                        "jobset failed due to reaching max number of restarts "
                        "(first failed job: digits-eks-1-node-0)",
                    )
                ]
            },
            "node",
        ),
        # No such message: the TrainJob's jobsStatus says which replicated job has failures.
        (
            {
                "conditions": [condition("Failed", "jobset failed")],
                "jobsStatus": [
                    {"name": "prepare", "failed": 1, "succeeded": 0},
                    {"name": "node", "failed": 0, "succeeded": 0},
                ],
            },
            "prepare",
        ),
    ],
)
def test_the_failed_step_comes_from_jobsets_message_or_the_jobs_status(capsys, status, step):
    from mlplatform.operations.training import train_job_state

    api = FakeTrainJobs(train_job_named("digits-eks-1", status))
    assert train_job_state(api, "training", "digits-eks") == "Failed=True"
    assert f"  failed step: {step} (" in capsys.readouterr().out


def test_a_running_or_complete_run_names_no_failed_step(capsys):
    from mlplatform.operations.training import train_job_state

    done = {"conditions": [condition("Complete")], "jobsStatus": [{"name": "node", "failed": 1}]}
    assert train_job_state(FakeTrainJobs(train_job_named("x", done)), "t", "x") == "Complete=True"
    assert "failed step" not in capsys.readouterr().out
