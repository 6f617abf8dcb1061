"""End to end on the CPU: accuracy, SIGTERM and resume, corrupt-checkpoint fallback, torchrun DDP."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from conftest import REPO, TrainedRun, run_dirs, run_training, training_env


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return torch.jit.load(str(model_dir / "model.pt")).state_dict()


def _metrics(model_dir: Path) -> dict:
    return json.loads((model_dir / "metrics.json").read_text())


def test_default_training_on_digits_reaches_95_percent_test_accuracy(
    reference_run: TrainedRun,
) -> None:
    metrics = _metrics(reference_run.model_dir)
    assert metrics["accuracy"] >= 0.95
    assert metrics["dataset"] == "digits" and metrics["device"] == "cpu"
    assert metrics["throughput_samples_per_s"] > 0 and len(metrics["data_sha256"]) == 64
    assert "metric: epoch=12 step=264 test_loss=" in reference_run.stdout


def test_a_run_stopped_by_sigterm_saves_exits_non_zero_and_resumes_to_identical_weights(
    digits_dir: Path, reference_run: TrainedRun, tmp_path: Path
) -> None:
    run = run_dirs(tmp_path)
    command = [sys.executable, "-m", "training", "train", "--data-dir", str(digits_dir),
               *run.dirs()]
    with subprocess.Popen(command, cwd=REPO, env=training_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "step=50 " in line:  # mid-epoch 3: not on a checkpoint boundary
                signalled = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                break
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert time.monotonic() - signalled < 10, "well inside SageMaker's 120 s grace period"
    stopped_at = int(rest.split("stopped by signal 15 at step ")[1].split(";")[0])
    assert stopped_at % 22, "the stop saved a checkpoint of its own, between epoch ends"
    assert (run.checkpoint_dir / f"ckpt-{stopped_at:08d}.pt").is_file()
    assert "stopped by signal" in (run.output_dir / "failure").read_text()

    resumed = run_training("train", "--data-dir", str(digits_dir), *run.dirs())
    assert resumed.returncode == 0, resumed.stderr
    assert f"at epoch 2, step {stopped_at}" in resumed.stdout
    assert _metrics(run.model_dir)["resumed_from_step"] == stopped_at
    expected = _weights(reference_run.model_dir)
    actual = _weights(run.model_dir)
    assert all(torch.equal(actual[k], expected[k]) for k in expected)


def test_a_corrupt_newest_checkpoint_resumes_from_the_previous_and_warns(
    digits_dir: Path, reference_run: TrainedRun, tmp_path: Path
) -> None:
    run = run_dirs(tmp_path)
    shutil.copytree(reference_run.checkpoint_dir, run.checkpoint_dir)
    newest = run.checkpoint_dir / "ckpt-00000264.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # a sync cut short

    result = run_training("train", "--data-dir", str(digits_dir), *run.dirs())
    assert result.returncode == 0, result.stderr
    assert "ckpt-00000264.pt is unusable" in result.stderr
    assert _metrics(run.model_dir)["resumed_from_step"] == 242
    expected = _weights(reference_run.model_dir)
    assert all(torch.equal(_weights(run.model_dir)[k], expected[k]) for k in expected)


def test_two_process_torchrun_with_gloo_trains_the_same_global_batches_as_one_process(
    digits_dir: Path, tmp_path: Path
) -> None:
    hyper = ["--epochs", "2", "--quantize", "false"]
    single = run_dirs(tmp_path / "single")
    result = run_training("train", "--data-dir", str(digits_dir), *single.dirs(), *hyper)
    assert result.returncode == 0, result.stderr

    ddp = run_dirs(tmp_path / "ddp")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node=2", "-m", "training", "train", "--data-dir", str(digits_dir),
               *ddp.dirs(), *hyper]
    result = subprocess.run(command, cwd=REPO, env=training_env(OMP_NUM_THREADS="1"),
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]

    metrics = _metrics(ddp.model_dir)
    assert (metrics["world_size"], metrics["global_batch_size"], metrics["steps"]) == (2, 64, 44)
    assert metrics["samples_this_run"] == 44 * 64, "each rank trained on half of each batch"
    expected, actual = _weights(single.model_dir), _weights(ddp.model_dir)
    assert all(torch.allclose(actual[k], expected[k], atol=1e-4) for k in expected)
    assert abs(metrics["accuracy"] - _metrics(single.model_dir)["accuracy"]) <= 1 / 360
