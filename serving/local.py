"""Servers as child processes on this machine: for scripts, the demo, tests and benchmarks.

    with LocalServer(Path("out/model")) as server:
        print(server.predict([[[[0.0] * 8] * 8]]))

`LocalServer` runs `python -m serving local MODEL_DIR` (the same server the image runs), waits
until it is ready, and stops it on exit. Underneath, for any server command (a benchmark's
peers too): `start_process` starts it in a process group of its own, `wait_ready` polls a URL
until it answers 200, and `stop_process_group` sends SIGTERM to the whole group, then SIGKILL
to whatever is left, so no worker a server forked outlives it. Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_process(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    output: IO[bytes] | int | None = None,
) -> subprocess.Popen[bytes]:
    """Start `command` as the leader of a new process group (its pid is the group id), with
    stdout and stderr to `output` (None: this process's own)."""
    return subprocess.Popen(
        list(command),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdout=output,
        stderr=subprocess.STDOUT if output is not None else None,
        start_new_session=True,
    )


def wait_ready(process: subprocess.Popen[bytes], url: str, timeout: float = 120.0) -> None:
    """Poll `url` until it answers 200; RuntimeError if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with status {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:g} s")


def stop_process_group(process: subprocess.Popen[bytes], grace: float = 30.0) -> int:
    """SIGTERM every process of the group `process` leads; after `grace` seconds SIGKILL those
    left. Returns the leader's exit status once the whole group is gone."""
    group = process.pid
    _signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(max(0.0, deadline - time.monotonic()))
    while group_members(group) and time.monotonic() < deadline:
        time.sleep(0.05)
    if group_members(group):
        _signal_group(group, signal.SIGKILL)
        end = time.monotonic() + 10
        while group_members(group) and time.monotonic() < end:
            time.sleep(0.05)
    return process.wait()


def group_members(group: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc; where /proc is missing, the
    group's id itself while a signal can reach it."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(group, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [group]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat.rpartition(")")[2].split()
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, sig)


class LocalServer:
    """A server process on 127.0.0.1 serving `model_dir`; use it as a context manager."""

    def __init__(
        self,
        model_dir: Path,
        port: int = 0,
        *flags: str,
        timeout: float = 120,
        env: Mapping[str, str] | None = None,
        output: IO[bytes] | int | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.flags = flags
        self.timeout = timeout
        self.env = env
        self.output = output
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalServer:
        command = [sys.executable, "-m", "serving", "local", str(self.model_dir)]
        command += ["--port", str(self.port), "--log-level", "warning", *self.flags]
        self.process = start_process(command, env=self.env, cwd=REPO, output=self.output)
        try:
            wait_ready(self.process, f"{self.url}/v2/health/ready", self.timeout)
        except RuntimeError as exc:
            stop_process_group(self.process)
            raise RuntimeError(
                f"the model server for {self.model_dir} was not ready: {exc}"
            ) from None
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.process is not None:
            stop_process_group(self.process)

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
