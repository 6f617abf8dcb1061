"""The model server on this machine's loopback, for scripts and the platform's demo.

    with LocalServer(Path("out/model")) as server:
        print(server.predict([[[[0.0] * 8] * 8]]))

It runs `python -m serving local MODEL_DIR` as a child process (the same server the image runs),
waits until it is ready, and stops it with SIGTERM on exit. Standard library only.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any


class LocalServer:
    """A server process on 127.0.0.1 serving `model_dir`; use it as a context manager."""

    def __init__(self, model_dir: Path, port: int = 0, *flags: str, timeout: float = 120) -> None:
        self.model_dir = Path(model_dir)
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.flags = flags
        self.timeout = timeout
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalServer:
        command = [sys.executable, "-m", "serving", "local", str(self.model_dir)]
        command += ["--port", str(self.port), "--log-level", "warning", *self.flags]
        self.process = subprocess.Popen(command, cwd=Path(__file__).resolve().parent.parent)
        self._wait_ready()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the model server exited with status {self.process.returncode} "
                    f"before it was ready (model directory {self.model_dir})"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/v2/health/ready", timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError(f"the model server was not ready within {self.timeout:g} s")

    def predict(self, samples: list[Any]) -> list[dict[str, Any]]:
        """POST samples to /invocations; returns the predictions (one dict per sample)."""
        request = urllib.request.Request(
            f"{self.url}/invocations",
            data=json.dumps({"inputs": samples}).encode(),
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())["predictions"]
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise RuntimeError(f"the model server answered {exc.code}: {detail}") from exc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
