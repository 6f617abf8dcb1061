"""models/digits (PyTorch) end to end on the CPU: accuracy, export, SIGTERM and exact resume, DDP."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort
import pytest
import torch

from training.manifest import load_manifest

if TYPE_CHECKING:
    from conftest import Harness, Run

MODEL = Path(__file__).resolve().parents[2] / "models" / "digits"
STEPS_PER_EPOCH = 1293 // 64  # the train split of the train channel, default global batch
EPOCHS = 8  # model.yaml's default


def _torchscript(model_dir: Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is the serving contract
        return torch.jit.load(str(model_dir / "model.pt"))


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _torchscript(a).state_dict(), _torchscript(b).state_dict()
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _stopped_at(stdout: str) -> int:
    return int(stdout.split("stopped by signal 15 at step ")[1].split(";")[0])


def test_default_training_reaches_95_percent_on_the_held_out_test_channel(
    digits_reference: Run, digits_data: Path, held_out
) -> None:
    x, y = held_out(digits_data)
    with torch.no_grad():
        logits = _torchscript(digits_reference.model_dir)(torch.from_numpy(x))
    assert (logits.argmax(1).numpy() == y).mean() >= 0.95
    for name in ("model.onnx", "model-int8.onnx"):
        session = ort.InferenceSession(str(digits_reference.model_dir / name))
        (out,) = session.run(["logits"], {"input": x})
        assert (out.argmax(1) == y).mean() >= 0.95, name


def test_metrics_json_records_the_run_and_the_checked_conversions(
    digits_reference: Run, digits_data: Path
) -> None:
    metrics = digits_reference.metrics()
    assert metrics["steps"] == EPOCHS * STEPS_PER_EPOCH and metrics["device"] == "cpu"
    assert metrics["validation_accuracy"] >= 0.95 and metrics["throughput_samples_per_s"] > 0
    assert (
        abs(metrics["onnx_accuracy_delta"]) <= 0.01 and abs(metrics["int8_accuracy_delta"]) <= 0.02
    )
    manifest = json.loads((digits_data / "train" / "manifest.json").read_text())
    assert metrics["data_sha256"] == manifest["sha256"]
    assert metrics["hyperparameters"]["epochs"] == EPOCHS and metrics["model"] == "digits"


def test_model_json_names_the_torchscript_default_and_its_onnx_variants(
    digits_reference: Run,
) -> None:
    assert digits_reference.model_json() == {
        "name": "digits",
        "task": "classification",
        "format": "torchscript",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}],
        "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}],
        "labels": [str(d) for d in range(10)],
        "variants": {
            "default": {"format": "torchscript", "path": "model.pt"},
            "onnx": {"format": "onnx", "path": "model.onnx"},
            "int8": {"format": "onnx", "path": "model-int8.onnx"},
        },
    }


def test_the_example_request_is_a_sample_the_model_answers(digits_reference: Run) -> None:
    (sample,) = json.loads((MODEL / "example.json").read_text())["instances"]
    with torch.no_grad():
        logits = _torchscript(digits_reference.model_dir)(torch.tensor([sample]))
    assert logits.argmax().item() == 0, "the example is scikit-learn's first digit, a 0"


def test_the_log_feeds_every_metric_definition_the_manifest_declares(digits_reference: Run) -> None:
    manifest, _ = load_manifest(MODEL)
    captured = {
        d["Name"]: [
            float(m.group(1))
            for line in digits_reference.stdout.splitlines()
            if (m := re.search(d["Regex"], line))
        ]
        for d in manifest.train.metric_definitions()
    }
    assert all(captured.values()), captured
    assert captured["validation:accuracy"][-1] == round(
        digits_reference.metrics()["validation_accuracy"], 4
    )
    records = (digits_reference.model_dir / "metrics.jsonl").read_text().splitlines()
    assert len([r for r in records if "validation_accuracy" in r]) == EPOCHS


def test_a_run_stopped_by_sigterm_saves_exits_143_and_resumes_to_identical_weights(
    harness: Harness, digits_data: Path, digits_reference: Run, tmp_path: Path
) -> None:
    args = harness.launch_args("digits", digits_data, tmp_path)
    with subprocess.Popen(
        [sys.executable, *args],
        cwd=harness.repo,
        env=harness.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if " step=50 " in line:  # in epoch 3, away from the epoch-end checkpoints
                proc.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                break
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert time.monotonic() - signalled < 30, "well inside SageMaker's 120 s grace period"
    stopped_at = _stopped_at(rest)
    assert stopped_at % STEPS_PER_EPOCH, "the stop wrote a checkpoint of its own"
    assert (tmp_path / "checkpoints" / f"ckpt-{stopped_at:08d}.pt").is_file()
    assert "stopped by signal 15" in (tmp_path / "output" / "failure").read_text()

    resumed = harness.launch("digits", digits_data, tmp_path)
    assert f"step {stopped_at}" in resumed.stdout
    assert resumed.metrics()["resumed_from_step"] == stopped_at
    assert _same_weights(resumed.model_dir, digits_reference.model_dir)


def test_a_corrupt_newest_checkpoint_resumes_from_the_previous_one_with_a_warning(
    harness: Harness, digits_data: Path, digits_reference: Run, tmp_path: Path
) -> None:
    shutil.copytree(digits_reference.checkpoint_dir, tmp_path / "checkpoints")
    newest = tmp_path / "checkpoints" / f"ckpt-{EPOCHS * STEPS_PER_EPOCH:08d}.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # an upload cut short
    run = harness.launch("digits", digits_data, tmp_path)
    assert f"WARNING training.checkpoint: checkpoint {newest} is unusable" in run.stderr
    assert run.metrics()["resumed_from_step"] == (EPOCHS - 1) * STEPS_PER_EPOCH
    assert _same_weights(run.model_dir, digits_reference.model_dir)


DDP_HYPERPARAMETERS = ("--epochs", "3", "--quantize", "false")


@pytest.fixture(scope="module")
def ddp_run(harness: Harness, digits_data: Path) -> tuple[str, Run]:
    """Two processes on gloo (the launcher fans out as for a 2-GPU host), stopped by SIGTERM at
    step 10 and resumed: the stop log and the finished run."""

    def build(root: Path) -> None:
        args = [*harness.launch_args("digits", digits_data, root), *DDP_HYPERPARAMETERS]
        env = harness.env(SM_NUM_GPUS="2")
        with subprocess.Popen(
            [sys.executable, *args], cwd=harness.repo, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        ) as proc:  # fmt: skip
            assert proc.stdout is not None
            for line in proc.stdout:
                if " step=10 " in line:
                    proc.send_signal(signal.SIGTERM)  # to torchrun only, as the kubelet does
                    break
            rest, errors = proc.communicate(timeout=120)
        assert proc.returncode != 0, errors[-3000:]
        (root / "stopped.txt").write_text(rest)
        harness.launch("digits", digits_data, root, *DDP_HYPERPARAMETERS, env=env)

    root = harness.shared("digits-ddp", build)
    return (root / "stopped.txt").read_text(), harness.run_at(root)


def test_sigterm_to_torchrun_stops_both_ranks_at_one_step_and_the_job_resumes(ddp_run) -> None:
    stopped, run = ddp_run
    stopped_at = _stopped_at(stopped)
    assert stopped_at % 10 == 0, "the ranks agree on a stop every 10 steps"
    assert "torch.distributed.run --nproc-per-node=2 --standalone train.py" in run.stdout
    metrics = run.metrics()
    assert metrics["resumed_from_step"] == stopped_at and metrics["steps"] == 3 * STEPS_PER_EPOCH


def test_two_processes_train_the_global_batches_of_one_process(
    ddp_run, harness: Harness, digits_data: Path, tmp_path: Path
) -> None:
    _, ddp = ddp_run
    single = harness.launch("digits", digits_data, tmp_path, *DDP_HYPERPARAMETERS)
    metrics = ddp.metrics()
    assert (metrics["world_size"], metrics["global_batch_size"]) == (2, 64)
    assert metrics["samples_this_run"] == (3 * STEPS_PER_EPOCH - metrics["resumed_from_step"]) * 64
    # Not bit-equal: Adam divides by sqrt(v), which magnifies the all-reduce's different
    # rounding of near-zero gradients. A wrong split of the batch differs by tens of percent.
    expected = _torchscript(single.model_dir).state_dict()
    actual = _torchscript(ddp.model_dir).state_dict()
    for name, tensor in expected.items():
        assert (actual[name] - tensor).norm() <= 0.01 * tensor.norm(), name
    assert abs(metrics["validation_accuracy"] - single.metrics()["validation_accuracy"]) <= 1 / 144


def test_a_batch_larger_than_the_data_is_refused_with_the_sizes_involved(
    harness: Harness, digits_data: Path, tmp_path: Path
) -> None:
    args = harness.launch_args("digits", digits_data, tmp_path)
    result = harness.python(*args, "--batch_size", "5000")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "'batch_size': got 5000" in result.stderr and "1293 training samples" in result.stderr
    assert "batch_size" in (tmp_path / "output" / "failure").read_text()


def test_prepare_holds_out_a_test_channel_the_training_job_never_reads(digits_data: Path) -> None:
    train = json.loads((digits_data / "train" / "manifest.json").read_text())
    test = json.loads((digits_data / "test" / "manifest.json").read_text())
    assert (train["splits"], test["splits"]) == ({"train": 1293, "validation": 144}, {"test": 360})
    x = np.load(digits_data / "train" / "train_x.npy")
    assert x.shape[1:] == (1, 8, 8) and x.min() == 0.0 and x.max() == 1.0
