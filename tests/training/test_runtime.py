"""runtime.start() and Run, seen from outside a model's script (the toy model in conftest.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from training.metrics import metric_regex


def _args(root: Path) -> list[str]:
    return [
        "--channel-train", str(root / "data" / "train"),
        "--model-dir", str(root / "model"),
        "--output-dir", str(root / "output"),
        "--checkpoint-dir", str(root / "ckpt"),
    ]  # fmt: skip


def test_a_run_logs_metric_lines_jsonl_and_writes_strict_metrics_json(
    toy, python, tmp_path
) -> None:
    result = python(str(toy / "train.py"), *_args(tmp_path), "--epochs", "2", "--lr=0.5")
    assert result.returncode == 0, result.stderr
    assert 'hp {"epochs": 2, "lr": 0.5, "mode": "fast", "shuffle": true}' in result.stdout
    losses = [float(m.group(1)) for m in re.finditer(metric_regex("train_loss"), result.stdout)]
    assert losses == [1.0, 0.5]
    records = [
        json.loads(line) for line in (tmp_path / "model" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [(r["step"], r["train_loss"]) for r in records] == [(1, 1.0), (2, 0.5)]
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert metrics["validation_accuracy"] == 0.9 and metrics["loss"] is None, "NaN is not JSON"
    assert metrics["hyperparameters"]["lr"] == 0.5 and metrics["model"] == "toy"
    assert not (tmp_path / "output" / "failure").exists()


def test_a_sagemaker_job_reads_hyperparameters_json_and_its_channel(
    toy, python, env, tmp_path
) -> None:
    base = tmp_path / "opt-ml"
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "data" / "train").mkdir(parents=True)
    hyperparameters = {"epochs": '"1"', "mode": '"fast"', "sagemaker_program": '"train.py"'}
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    result = python(str(toy / "train.py"), env=env(SAGEMAKER_BASE_DIR=str(base)))
    assert result.returncode == 0, result.stderr
    assert f"channel {base / 'input' / 'data' / 'train'}" in result.stdout
    assert (
        json.loads((base / "model" / "metrics.json").read_text())["hyperparameters"]["epochs"] == 1
    )


def test_bad_hyperparameters_fail_in_one_line_with_the_reason_in_the_failure_file(
    toy, python, tmp_path
) -> None:
    result = python(str(toy / "train.py"), *_args(tmp_path), "--epochs", "ten", "--mdoe", "x")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, "a person's mistake gets a message, not a trace"
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: hyperparameter 'epochs' (from the command line): got 'ten'")
    assert (
        "'mdoe' (from the command line): not declared in model.yaml; did you mean 'mode'?" in line
    )
    reason = (tmp_path / "output" / "failure").read_text()
    assert reason.startswith("HyperparameterError: hyperparameter 'epochs'")


def test_a_missing_channel_says_which_variable_or_flag_gives_it(toy, python, tmp_path) -> None:
    args = _args(tmp_path)
    args[1] = str(tmp_path / "nowhere")
    result = python(str(toy / "train.py"), *args)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    reason = (tmp_path / "output" / "failure").read_text()
    assert reason.startswith("DatasetError: channel 'train' has no data")
    assert "SM_CHANNEL_TRAIN or --channel-train DIR" in reason


def test_a_crash_keeps_its_traceback_and_records_the_reason(toy, python, tmp_path) -> None:
    result = python(str(toy / "train.py"), *_args(tmp_path), "--mode", "crash")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "RuntimeError: the model broke" in result.stderr
    assert (tmp_path / "output" / "failure").read_text() == "RuntimeError: the model broke\n"


def test_sigterm_saves_a_checkpoint_records_why_and_exits_143(toy, env, tmp_path) -> None:
    command = [
        sys.executable,
        str(toy / "train.py"),
        *_args(tmp_path),
        "--mode",
        "slow",
        "--epochs",
        "100",
    ]
    with subprocess.Popen(
        command, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if " step=2 " in line:
                proc.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                break
        rest, errors = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, errors
    assert time.monotonic() - signalled < 60, "well inside SageMaker's 120 s grace period"
    stopped_at = int(rest.split("stopped by signal 15 at step ")[1].split(";")[0])
    assert (tmp_path / "ckpt" / f"ckpt-{stopped_at:08d}.pt").is_file()
    assert "a restarted job resumes from it" in (tmp_path / "output" / "failure").read_text()
    assert not (tmp_path / "model" / "metrics.json").exists()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """MLflow's own tracking server (sqlite backend, proxied artifacts) on a loopback port.

    The HTTP path is the one a SageMaker job takes to a tracking server, artifacts included
    (`mlflow-artifacts:` uploads through the server); a file store would skip both.
    """
    root = tmp_path_factory.mktemp("mlflow")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", (root / "artifacts").as_uri(),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    log = (root / "server.log").open("w")
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                              start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (root / "server.log").read_text()[-2000:]
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "mlflow server did not start in 120 s"
            time.sleep(0.25)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # uvicorn and its worker
        server.wait(timeout=30)
        log.close()


def test_mlflow_server_gets_params_once_metrics_per_step_and_the_model_directory(
    toy, python, env, tmp_path, mlflow_server
) -> None:
    tracking = env(MLFLOW_TRACKING_URI=mlflow_server, MLFLOW_EXPERIMENT_NAME="toys")
    result = python(str(toy / "train.py"), *_args(tmp_path), env=tracking)
    assert result.returncode == 0, result.stderr
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    (run,) = client.search_runs([client.get_experiment_by_name("toys").experiment_id])
    assert run.data.params["epochs"] == "3" and run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.5), (3, 1 / 3)]
    assert run.data.metrics["validation_accuracy"] == 0.9
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {
        "metrics.json",
        "metrics.jsonl",
    }
    # The artifacts went through the server into its store, where a reader downloads them.
    downloaded = Path(client.download_artifacts(run.info.run_id, "metrics.json", str(tmp_path)))
    assert json.loads(downloaded.read_text())["validation_accuracy"] == 0.9


def test_a_failed_run_is_marked_failed_on_the_tracking_server(
    toy, python, env, tmp_path, mlflow_server
) -> None:
    tracking = env(MLFLOW_TRACKING_URI=mlflow_server, MLFLOW_EXPERIMENT_NAME="toys-failing")
    result = python(str(toy / "train.py"), *_args(tmp_path), "--mode", "crash", env=tracking)
    assert result.returncode != 0
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    (run,) = client.search_runs([client.get_experiment_by_name("toys-failing").experiment_id])
    assert run.info.status == "FAILED"
    # The steps before the crash are there to read.
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in history] == [1, 2]


def test_an_unreachable_tracking_server_does_not_cost_the_run(toy, python, env, tmp_path) -> None:
    tracking = env(MLFLOW_TRACKING_URI="http://127.0.0.1:9", MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    result = python(str(toy / "train.py"), *_args(tmp_path), env=tracking)
    assert result.returncode == 0, result.stderr
    assert "WARNING training.tracking: MLflow tracking is off for this run" in result.stderr
    assert (tmp_path / "model" / "metrics.json").is_file()


def test_a_script_without_model_yaml_nearby_says_where_it_looked(python, tmp_path) -> None:
    script = tmp_path / "train.py"
    script.write_text("from training import runtime\nruntime.start()\n")
    result = python(str(script), "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 1 and "no model.yaml found (looked in" in result.stderr
