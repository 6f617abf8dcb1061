"""Fixtures for the reference models: prepare and train each once per session, as users do.

Everything runs through the platform's entry points (``python -m training prepare`` and
``python -m training launch``) in clean processes, so these tests see what a job sees.
pytest runs with --import-mode=importlib: helpers reach test modules as fixtures.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
_LEAKY_PREFIXES = ("SM_", "SAGEMAKER_", "PET_", "TORCHELASTIC_", "MLFLOW_")
_LEAKY = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "CHECKPOINT_DIR")


@dataclass(frozen=True)
class Run:
    """Where one training run of a reference model wrote, and what it printed."""

    root: Path
    stdout: str = ""
    stderr: str = ""

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    def metrics(self) -> dict:
        return json.loads((self.model_dir / "metrics.json").read_text())

    def model_json(self) -> dict:
        return json.loads((self.model_dir / "model.json").read_text())


class Harness:
    """Runs the platform's commands for a model in ``models/``."""

    repo = REPO

    def __init__(self, factory: pytest.TempPathFactory):
        self.factory = factory

    def shared(self, name: str, build: Callable[[Path], object]) -> Path:
        """A directory built once per session (see ``shared``)."""
        return shared(self.factory, name, build)

    @staticmethod
    def run_at(root: Path) -> Run:
        """The run that ``launch`` left in ``root``."""
        return Run(root, (root / "stdout.txt").read_text(), (root / "stderr.txt").read_text())

    @staticmethod
    def env(**extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in _LEAKY and not k.startswith(_LEAKY_PREFIXES)
        }
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        # gloo on loopback; one OpenMP thread (spin-waiting threads slow a busy machine tenfold).
        env.update(GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
        return env

    def python(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 240
    ) -> subprocess.CompletedProcess[str]:
        """``python ARGS`` to completion; on timeout, kill its process group and fail."""
        command = [sys.executable, *args]
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
                os.killpg(proc.pid, signal.SIGKILL)
                stdout, stderr = proc.communicate()
                pytest.fail(f"{' '.join(command)} ran over {timeout} s\n{stdout}\n{stderr}")
        return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)

    def prepare(self, model: str, out: Path, *extra: str) -> Path:
        result = self.python(
            "-m", "training", "prepare", "--model", str(MODELS / model), "--out", str(out), *extra
        )
        assert result.returncode == 0, result.stderr
        return out

    @staticmethod
    def launch_args(model: str, data: Path, root: Path) -> list[str]:
        return [
            "-m", "training", "launch", "--model", str(MODELS / model),
            "--channel-train", str(data / "train"), "--model-dir", str(root / "model"),
            "--checkpoint-dir", str(root / "checkpoints"), "--output-dir", str(root / "output"),
        ]  # fmt: skip

    def launch(self, model: str, data: Path, root: Path, *hyperparameters: str, **kw) -> Run:
        """Train ``model`` on ``data`` into ``root``; the run must succeed."""
        result = self.python(*self.launch_args(model, data, root), *hyperparameters, **kw)
        assert result.returncode == 0, result.stderr[-4000:]
        (root / "stdout.txt").write_text(result.stdout)
        (root / "stderr.txt").write_text(result.stderr)
        return Run(root, result.stdout, result.stderr)


def shared(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> Path:
    """A directory built once per session, by whichever xdist worker asks first.

    Session fixtures are per worker under xdist; training a reference model once per worker
    would double the suite's longest steps.
    """
    base = factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    target = root / name
    with FileLock(str(root / f"{name}.lock")):
        if not (target / ".done").exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            build(target)
            (target / ".done").touch()
    return target


def held_out_split(data: Path) -> tuple[np.ndarray, np.ndarray]:
    """The held-out test channel, as the platform's evaluator reads it."""
    from training.data import load_prepared

    test = load_prepared(data / "test")["test"]
    return test.x, test.y


@pytest.fixture(scope="session")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Harness:
    return Harness(tmp_path_factory)


@pytest.fixture(scope="session")
def held_out():
    """``held_out(data_dir)`` -> (x, y) of the test channel."""
    return held_out_split


@pytest.fixture(scope="session")
def digits_data(harness: Harness) -> Path:
    return harness.shared("digits-data", lambda out: harness.prepare("digits", out))


@pytest.fixture(scope="session")
def digits_reference(harness: Harness, digits_data: Path) -> Run:
    """The digits model with its default hyperparameters, uninterrupted."""
    root = harness.shared("digits-reference", lambda r: harness.launch("digits", digits_data, r))
    return harness.run_at(root)


@pytest.fixture(scope="session")
def blocked_frameworks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A path entry whose torch and tensorflow refuse to import: proof a run never needs them."""
    root = tmp_path_factory.mktemp("blocked")
    for name in ("torch", "tensorflow"):
        (root / name).mkdir()
        (root / name / "__init__.py").write_text(
            f"raise ImportError('{name} is not in this image')\n"
        )
    return root


@pytest.fixture(scope="session")
def bc_data(harness: Harness) -> Path:
    return harness.shared("bc-data", lambda out: harness.prepare("breast-cancer", out))


@pytest.fixture(scope="session")
def bc_run(harness: Harness, bc_data: Path, blocked_frameworks: Path) -> Run:
    env = harness.env()
    env["PYTHONPATH"] = f"{blocked_frameworks}:{env['PYTHONPATH']}"

    def defaults(root: Path) -> None:
        harness.launch("breast-cancer", bc_data, root, env=env)

    return harness.run_at(harness.shared("bc-run", defaults))
