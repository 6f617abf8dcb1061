"""Shared fixtures: the training CLI, a prepared digits dataset, and one reference run.

pytest runs with --import-mode=importlib, so test modules cannot import this file: helpers
reach them as fixtures, and the classes are imported only for type checking.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from training.data import prepare_digits

REPO = Path(__file__).resolve().parents[2]
_LEAKY = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "DATA_DIR",
    "MODEL_DIR",
    "CHECKPOINT_DIR",
    "OUTPUT_DIR",
)


@dataclass(frozen=True)
class RunDirs:
    """Where one training run writes."""

    model_dir: Path
    checkpoint_dir: Path
    output_dir: Path
    stdout: str = ""

    def args(self) -> list[str]:
        return [
            "--model-dir",
            str(self.model_dir),
            "--checkpoint-dir",
            str(self.checkpoint_dir),
            "--output-dir",
            str(self.output_dir),
        ]


class TrainingCli:
    """Runs ``python -m training`` (or torchrun) from the repository root."""

    repo = REPO

    @staticmethod
    def env(**extra: str) -> dict[str, str]:
        """The process environment without variables a CI runner or a shell may leak in."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in _LEAKY and not k.startswith(("SM_", "SAGEMAKER_", "PET_", "TORCHELASTIC_"))
        }
        # gloo binds to the interface of the host name; tests stay on loopback. One thread:
        # OpenMP threads that spin-wait on a busy shared machine slow a run tenfold, and
        # the tiny model gains little from a second core.
        env.update(GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
        return env

    @staticmethod
    def dirs(root: Path) -> RunDirs:
        return RunDirs(root / "model", root / "checkpoints", root / "output")

    def run(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        launcher: tuple[str, ...] = (),
        timeout: float = 180,
    ) -> subprocess.CompletedProcess[str]:
        """Run to completion; on timeout, kill the whole process group and fail with its output."""
        # A launcher such as ("-m", "torch.distributed.run", "--nproc-per-node=2") goes
        # between the interpreter and "-m training".
        command = [sys.executable, *launcher, "-m", "training", *args]
        with subprocess.Popen(
            command,
            cwd=REPO,
            env=env or self.env(),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        ) as proc:
            try:
                stdout, stderr = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                # torchrun's workers would outlive torchrun itself: end the group.
                os.killpg(proc.pid, signal.SIGKILL)
                stdout, stderr = proc.communicate()
                pytest.fail(f"{' '.join(command)} ran over {timeout} s\n{stdout}\n{stderr}")
        return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


@pytest.fixture(scope="session")
def cli() -> TrainingCli:
    return TrainingCli()


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("digits")
    prepare_digits(out)
    return out


@pytest.fixture(scope="session")
def reference_run(
    cli: TrainingCli, digits_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> RunDirs:
    """The default hyperparameters, uninterrupted: what the README's main job does."""
    dirs = cli.dirs(tmp_path_factory.mktemp("reference"))
    result = cli.run("train", "--data-dir", str(digits_dir), *dirs.args())
    assert result.returncode == 0, result.stderr
    return RunDirs(dirs.model_dir, dirs.checkpoint_dir, dirs.output_dir, result.stdout)
