"""Shared fixtures: a clean process environment and a toy model that uses the library.

The toy model is numpy only, so the runtime contract (hyperparameters, SIGTERM, metrics, the
failure file, the launcher) is tested in processes that start in well under a second; the
reference models in models/ have their own tests in tests/models.
pytest runs with --import-mode=importlib, so test modules cannot import this file: helpers
reach them as fixtures.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Variables a CI runner, a shell or an outer job may leak into a test's processes.
_LEAKY_PREFIXES = ("SM_", "SAGEMAKER_", "PET_", "TORCHELASTIC_", "MLFLOW_")
_LEAKY = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "CHECKPOINT_DIR")

TOY_MANIFEST = """\
name: toy
framework: sklearn
task: classification
train:
  entryPoint: train.py
  hyperparameters:
    epochs: {type: int, default: 3, min: 1}
    lr: {type: float, default: 0.1, min: 0.0, max: 1.0}
    mode: {type: str, default: fast, choices: [fast, slow, crash]}
    shuffle: {type: bool, default: true}
  channels:
    train: {description: anything}
  metrics:
    - {name: "train:loss", key: train_loss}
  objective: {metric: accuracy}
serve: {format: onnx}
"""

# Logs a loss per step; sleeps per step with mode=slow (for SIGTERM tests), raises with
# mode=crash; prints what it saw, so tests can check the contract from the outside.
TOY_TRAIN = """\
import json, time
from training import runtime

with runtime.start() as run:
    print("hp " + json.dumps(run.hp, sort_keys=True), flush=True)
    print("channel " + str(run.channel("train")), flush=True)
    for step in range(1, run.hp["epochs"] + 1):
        run.log(epoch=step, step=step, train_loss=1.0 / step, validation_accuracy=0.5 + step / 10)
        if run.hp["mode"] == "slow":
            time.sleep(0.2)
        if run.stop_requested and not run.stopped:
            run.checkpoints.save({"step": step, "epoch": step}, wait=True)
            run.stop()
            break
        if step == 2 and run.hp["mode"] == "crash":
            raise RuntimeError("the model broke")
    run.finish(validation_accuracy=0.9, loss=float("nan"))  # nothing, once stopped
"""


def clean_env(**extra: str) -> dict[str, str]:
    """The process environment without job variables; the repository importable."""
    env = {
        k: v for k, v in os.environ.items() if k not in _LEAKY and not k.startswith(_LEAKY_PREFIXES)
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    # gloo binds to the interface of the host name; tests stay on loopback. One thread:
    # OpenMP threads that spin-wait on a busy shared machine slow a run tenfold.
    env.update(GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
    return env


def run_python(
    *args: str, env: dict[str, str] | None = None, cwd: Path = REPO, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``python *args`` to completion; on timeout, kill its process group and fail."""
    command = [sys.executable, *args]
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=env or clean_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # torchrun's workers would outlive torchrun
            stdout, stderr = proc.communicate()
            pytest.fail(f"{' '.join(command)} ran over {timeout} s\n{stdout}\n{stderr}")
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


@pytest.fixture(scope="session")
def python():
    """Run ``python ARGS`` in a clean environment: ``python("-m", "training", "launch")``."""
    return run_python


@pytest.fixture(scope="session")
def env():
    """Build a clean environment with extra variables: ``env(SAGEMAKER_BASE_DIR=...)``."""
    return clean_env


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    """A model directory: model.yaml, train.py (numpy only), example.json; data under data/."""
    model = tmp_path / "toy"
    model.mkdir()
    (model / "model.yaml").write_text(TOY_MANIFEST)
    (model / "train.py").write_text(TOY_TRAIN)
    (model / "example.json").write_text('{"instances": [[0.0, 1.0]]}')
    (tmp_path / "data" / "train").mkdir(parents=True)
    return model


def write_model(directory: Path, manifest: str, files: tuple[str, ...] = ()) -> Path:
    """A model directory with ``manifest`` and empty ``files`` (example.json, train.py...)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.yaml").write_text(textwrap.dedent(manifest))
    for name in ("example.json", "train.py", *files):
        (directory / name).touch()
    return directory


@pytest.fixture
def model_dir(tmp_path: Path):
    """Write a model directory named ``name`` with a manifest: ``model_dir("x", yaml)``."""
    return lambda name, manifest, files=(): write_model(tmp_path / name, manifest, files)
