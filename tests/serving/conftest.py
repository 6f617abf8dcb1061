"""Fixtures: small exported models written here (no trainer needed) and a real server process.

The digits network is exported in each format the server loads (TorchScript, ONNX through
torch's dynamo exporter, a numpy handler module) with the same weights, so protocol tests can be
run against every format and compared with one reference.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from filelock import FileLock

from serving.local import start_process, stop_process_group

REPO = Path(__file__).resolve().parents[2]
FORMATS = ("torchscript", "onnx", "python")
LABELS = [str(i) for i in range(10)]
SIGNATURE = {
    "name": "digits",
    "format": "torchscript",
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}],
    "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}],
    "labels": LABELS,
}


class Digits(torch.nn.Module):
    """The trainer's model contract: [N, 1, 8, 8] float32 → [N, 10] logits."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SlowDigits(Digits):
    """Digits that spends a while in each forward pass: for timeouts and load-time readiness."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.ones(512, 512) / 512
        h = torch.ones(256, 512)
        for _ in range(100):
            h = torch.tanh(h @ w)
        return self.body(x) + h.sum() * 0


class FragileDigits(Digits):
    """Digits that raises when any input value is below -1000: a request that breaks the model."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x < -1000.0).any()):
            raise RuntimeError("input out of range")
        return self.body(x)


def write_model_dir(path: Path, module: torch.nn.Module, signature: dict | None = None) -> Path:
    """Export `module` as the trainer does today: TorchScript model.pt plus a model.json with a
    top-level format and no variants."""
    path.mkdir(parents=True, exist_ok=True)
    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(module).save(str(path / "model.pt"))
    (path / "model.json").write_text(json.dumps(signature or SIGNATURE))
    return path


def export_onnx(module: torch.nn.Module, path: Path, sample_shape: tuple[int, ...]) -> Path:
    """`module` as ONNX through torch's dynamo exporter, with a dynamic batch dimension."""
    example = torch.zeros(2, *sample_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (example,),
            str(path),
            dynamo=True,
            external_data=False,  # one self-contained file, as a model directory ships it
            input_names=["input"],
            output_names=["output"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
    return path


def with_variants(signature: dict, **variants: tuple[str, str]) -> dict:
    """A model.json with `variants` (name → (format, path)) instead of a top-level format."""
    doc = {k: v for k, v in signature.items() if k != "format"}
    doc["variants"] = {name: {"format": f, "path": p} for name, (f, p) in variants.items()}
    return doc


def write_onnx_dir(path: Path, module: torch.nn.Module, signature: dict | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    export_onnx(module, path / "model.onnx", (1, 8, 8))
    doc = with_variants(signature or SIGNATURE, default=("onnx", "model.onnx"))
    (path / "model.json").write_text(json.dumps(doc))
    return path


def write_handler_dir(path: Path, module: Digits, signature: dict | None = None) -> Path:
    """The Digits weights in weights.npz and tests/serving/digits_handler.py as handler.py."""
    path.mkdir(parents=True, exist_ok=True)
    first, last = module.body[1], module.body[3]
    weights = {"w1": first.weight, "b1": first.bias, "w2": last.weight, "b2": last.bias}
    np.savez(path / "weights.npz", **{k: v.detach().numpy() for k, v in weights.items()})
    shutil.copy(Path(__file__).with_name("digits_handler.py"), path / "handler.py")
    doc = with_variants(signature or SIGNATURE, default=("python", "handler.py"))
    (path / "model.json").write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> dict[str, Path]:
    """The digits model in each format, same weights; built once for all test workers of this
    run (the ONNX export takes seconds)."""
    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker's base is a folder of the run's own; without it, the run's.
    shared = (base if worker_id == "master" else base.parent) / "digits-models"
    with FileLock(str(shared) + ".lock"):
        if not (shared / "done").exists():
            torch.manual_seed(0)
            module = Digits().eval()
            write_model_dir(shared / "torchscript", module)
            write_onnx_dir(shared / "onnx", module)
            write_handler_dir(shared / "python", module)
            (shared / "done").touch()
    return {fmt: shared / fmt for fmt in FORMATS}


@pytest.fixture(scope="session")
def digits_dir(model_dirs: dict[str, Path]) -> Path:
    return model_dirs["torchscript"]


@pytest.fixture(scope="session")
def reference_model(digits_dir: Path) -> torch.jit.ScriptModule:
    """The served model, loaded in the test process to compute expected answers."""
    return torch.jit.load(str(digits_dir / "model.pt"))


def expected(model: torch.jit.ScriptModule, x: np.ndarray) -> np.ndarray:
    """The reference outputs for `x`."""
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


# Every format computes the same network; float32 sums in another order differ in the last bits.
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python -m serving serve` as a child process on a loopback port."""

    format = "torchscript"  # of the model it serves, for tests that say which

    def __init__(self, model_dir: Path, log_path: Path, *flags: str, local: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {**os.environ, "PYTHONPATH": str(REPO), "SERVING_THREADS": "1"}
        if local:
            command = [sys.executable, "-m", "serving", "local", str(model_dir)]
        else:
            command = [sys.executable, "-m", "serving", "serve", "--model-dir", str(model_dir)]
            command += ["--host", "127.0.0.1"]
        command += ["--port", str(self.port), *flags]
        with open(log_path, "wb") as log:
            self.process = start_process(command, env=env, output=log)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_listening(self, timeout: float = 60.0) -> None:
        """Until the port accepts connections (the model may still be loading)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"server did not listen within {timeout} s:\n{self.log()}")

    def wait_ready(self, timeout: float = 60.0) -> None:
        self.wait_listening(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if httpx.get(f"{self.url}/v2/health/ready").status_code == 200:
                return
            time.sleep(0.05)
        raise AssertionError(f"server not ready within {timeout} s:\n{self.log()}")

    def metric(self, name: str) -> float:
        """The value of one unlabelled sample on /metrics."""
        for line in httpx.get(f"{self.url}/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not on /metrics")

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        stop_process_group(self.process, grace=0)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator:
    """Start servers with flags; each is killed at teardown if the test left it running."""
    started: list[ServerProcess] = []

    def start(
        model_dir: Path, *flags: str, ready: bool = True, local: bool = False
    ) -> ServerProcess:
        log = tmp_path / f"server{len(started)}.log"
        server = ServerProcess(model_dir, log, *flags, local=local)
        started.append(server)
        if ready:
            server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session", params=FORMATS)
def server(
    request: pytest.FixtureRequest,
    model_dirs: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    """One ready digits server per format, shared by the protocol tests (they leave it as they
    found it). A test that concerns no format picks one: parametrize("server", ["torchscript"],
    indirect=True)."""
    log = tmp_path_factory.mktemp("log") / f"server-{request.param}.log"
    process = ServerProcess(model_dirs[request.param], log)
    process.format = request.param
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c
