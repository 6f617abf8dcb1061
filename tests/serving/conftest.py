"""Fixtures: small exported models written here (no trainer needed) and a real server process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
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
    """Export `module` as the trainer does: TorchScript model.pt plus model.json."""
    path.mkdir(parents=True, exist_ok=True)
    module.eval()
    torch.jit.script(module).save(str(path / "model.pt"))
    (path / "model.json").write_text(json.dumps(signature or SIGNATURE))
    return path


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return write_model_dir(tmp_path_factory.mktemp("digits"), Digits())


@pytest.fixture(scope="session")
def reference_model(digits_dir: Path) -> torch.jit.ScriptModule:
    """The served model, loaded in the test process to compute expected answers."""
    return torch.jit.load(str(digits_dir / "model.pt"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python -m serving serve` as a child process on a loopback port."""

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
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

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
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


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


@pytest.fixture(scope="session")
def server(digits_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One ready digits server shared by the protocol tests (they leave it as they found it)."""
    process = ServerProcess(digits_dir, tmp_path_factory.mktemp("log") / "server.log")
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c
