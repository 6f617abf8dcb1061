"""End to end on the CPU: accuracy, SIGTERM and resume, corrupt-checkpoint fallback, torchrun DDP."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from training.config import TrainConfig

if TYPE_CHECKING:
    from conftest import RunDirs, TrainingCli

STEPS_PER_EPOCH = 1437 // 64  # digits train split, default global batch
EPOCHS = TrainConfig().epochs


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is the serving contract
        return torch.jit.load(str(model_dir / "model.pt")).state_dict()


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _metrics(model_dir: Path) -> dict:
    return json.loads((model_dir / "metrics.json").read_text())


def test_default_training_on_digits_reaches_95_percent_test_accuracy(
    reference_run: RunDirs,
) -> None:
    metrics = _metrics(reference_run.model_dir)
    assert metrics["accuracy"] >= 0.95
    assert metrics["dataset"] == "digits" and metrics["device"] == "cpu"
    assert metrics["throughput_samples_per_s"] > 0 and len(metrics["data_sha256"]) == 64
    assert metrics["steps"] == EPOCHS * STEPS_PER_EPOCH


def test_a_run_stopped_by_sigterm_saves_exits_non_zero_and_resumes_to_identical_weights(
    cli: TrainingCli, digits_dir: Path, reference_run: RunDirs, tmp_path: Path
) -> None:
    run = cli.dirs(tmp_path)
    command = [
        sys.executable,
        "-m",
        "training",
        "train",
        "--data-dir",
        str(digits_dir),
        *run.args(),
    ]
    with subprocess.Popen(
        command,
        cwd=cli.repo,
        env=cli.env(),
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
    assert time.monotonic() - signalled < 10, "well inside SageMaker's 120 s grace period"
    stopped_at = int(rest.split("stopped by signal 15 at step ")[1].split(";")[0])
    assert stopped_at % STEPS_PER_EPOCH, "the stop wrote a checkpoint of its own"
    assert (run.checkpoint_dir / f"ckpt-{stopped_at:08d}.pt").is_file()
    assert "stopped by signal 15" in (run.output_dir / "failure").read_text()

    resumed = cli.run("train", "--data-dir", str(digits_dir), *run.args())
    assert resumed.returncode == 0, resumed.stderr
    assert f"step {stopped_at}" in resumed.stdout.splitlines()[0]
    assert _metrics(run.model_dir)["resumed_from_step"] == stopped_at
    assert _same_weights(run.model_dir, reference_run.model_dir)


def test_a_corrupt_newest_checkpoint_resumes_from_the_previous_one_with_a_warning(
    cli: TrainingCli, digits_dir: Path, reference_run: RunDirs, tmp_path: Path
) -> None:
    run = cli.dirs(tmp_path)
    shutil.copytree(reference_run.checkpoint_dir, run.checkpoint_dir)
    newest = run.checkpoint_dir / f"ckpt-{EPOCHS * STEPS_PER_EPOCH:08d}.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # an upload cut short

    result = cli.run("train", "--data-dir", str(digits_dir), *run.args())
    assert result.returncode == 0, result.stderr
    assert f"WARNING training.checkpoint: checkpoint {newest} is unusable" in result.stderr
    assert _metrics(run.model_dir)["resumed_from_step"] == (EPOCHS - 1) * STEPS_PER_EPOCH
    assert _same_weights(run.model_dir, reference_run.model_dir)


def test_two_process_torchrun_on_gloo_trains_the_global_batches_of_one_process(
    cli: TrainingCli, digits_dir: Path, tmp_path: Path
) -> None:
    hyper = ["--epochs", "1", "--quantize", "false"]
    single, ddp = cli.dirs(tmp_path / "single"), cli.dirs(tmp_path / "ddp")
    result = cli.run("train", "--data-dir", str(digits_dir), *single.args(), *hyper)
    assert result.returncode == 0, result.stderr
    result = cli.run(
        "train",
        "--data-dir",
        str(digits_dir),
        *ddp.args(),
        *hyper,
        launcher=("-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"),
    )
    assert result.returncode == 0, result.stderr[-3000:]

    metrics = _metrics(ddp.model_dir)
    assert (metrics["world_size"], metrics["global_batch_size"]) == (2, 64)
    assert metrics["steps"] == STEPS_PER_EPOCH
    assert metrics["samples_this_run"] == STEPS_PER_EPOCH * 64, "each rank did half a batch"
    # Not bit-equal: Adam divides by sqrt(v), which magnifies the all-reduce's different
    # rounding of near-zero gradients. A wrong split of the batch differs by tens of percent.
    expected, actual = _weights(single.model_dir), _weights(ddp.model_dir)
    for name, tensor in expected.items():
        assert (actual[name] - tensor).norm() <= 0.01 * tensor.norm(), name
    assert abs(metrics["accuracy"] - _metrics(single.model_dir)["accuracy"]) <= 1 / 360


def test_a_job_restarted_after_its_last_checkpoint_only_exports(
    cli: TrainingCli, digits_dir: Path, reference_run: RunDirs, tmp_path: Path
) -> None:
    run = cli.dirs(tmp_path)
    shutil.copytree(reference_run.checkpoint_dir, run.checkpoint_dir)
    result = cli.run("train", "--data-dir", str(digits_dir), *run.args())
    assert result.returncode == 0, result.stderr
    metrics = _metrics(run.model_dir)
    assert (metrics["steps_this_run"], metrics["last_epoch_test_accuracy"]) == (0, None)
    assert _same_weights(run.model_dir, reference_run.model_dir)


def test_sigterm_to_torchrun_stops_both_ranks_at_one_step_and_the_job_resumes(
    cli: TrainingCli, digits_dir: Path, tmp_path: Path
) -> None:
    run = cli.dirs(tmp_path)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    args = [
        "-m",
        "training",
        "train",
        "--data-dir",
        str(digits_dir),
        "--epochs",
        "3",
        "--quantize",
        "false",
        *run.args(),
    ]
    with subprocess.Popen(
        [*launcher, *args],
        cwd=cli.repo,
        env=cli.env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if " step=10 " in line:
                proc.send_signal(signal.SIGTERM)  # to torchrun only, as the kubelet does
                break
        rest, errors = proc.communicate(timeout=90)
    assert proc.returncode != 0 and "stopped by signal 15 at step " in rest, errors[-3000:]
    stopped_at = int(rest.split("stopped by signal 15 at step ")[1].split(";")[0])
    assert stopped_at % 10 == 0, "the ranks agree on a stop every 10 steps"
    assert (run.checkpoint_dir / f"ckpt-{stopped_at:08d}.pt").is_file()

    resumed = cli.run(*args[2:], launcher=tuple(launcher[1:]))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = _metrics(run.model_dir)
    assert metrics["resumed_from_step"] == stopped_at and metrics["steps"] == 3 * STEPS_PER_EPOCH
