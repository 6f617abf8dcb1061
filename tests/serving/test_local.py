"""Serving a model directory on this machine: `python -m serving local` and `LocalServer`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from serving.local import (
    LocalServer,
    free_port,
    group_members,
    start_process,
    stop_process_group,
    wait_ready,
)


def test_local_command_serves_a_model_directory_on_loopback(digits_dir: Path, start_server) -> None:
    server = start_server(digits_dir, local=True)
    assert "http://127.0.0.1:" in server.log()
    response = httpx.post(f"{server.url}/invocations", json={"inputs": [[[[0.0] * 8] * 8]]})
    assert response.status_code == 200


def test_local_server_predicts_reports_bad_requests_and_stops_cleanly(digits_dir: Path) -> None:
    with LocalServer(digits_dir) as server:
        [prediction] = server.predict([[[[0.0] * 8] * 8]])
        assert prediction["label"] in [str(i) for i in range(10)]
        assert len(prediction["logits"]) == 10
        with pytest.raises(RuntimeError, match=r"400.*wrong shape"):
            server.predict([[1.0, 2.0]])
    assert server.process is not None
    assert server.process.returncode == 0


def test_local_server_raises_when_the_model_directory_cannot_be_served(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="exited with status 3"), LocalServer(tmp_path):
        pass


# A parent that forks a worker which ignores SIGTERM (as server workers that outlived their
# parent did); the worker prints its pid once it ignores SIGTERM.
STUBBORN = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import os, signal, time; "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); print(os.getpid(), flush=True); time.sleep(60)"])
time.sleep(60)
"""


def test_stopping_a_process_group_ends_workers_that_ignore_sigterm() -> None:
    process = start_process([sys.executable, "-c", STUBBORN], output=subprocess.PIPE)
    assert process.stdout is not None
    worker = int(process.stdout.readline())
    assert sorted(group_members(process.pid)) == sorted([process.pid, worker])
    started = time.monotonic()
    assert stop_process_group(process, grace=1) == -signal.SIGTERM
    assert 1 <= time.monotonic() - started < 10  # the worker needed SIGKILL
    assert group_members(process.pid) == []


def test_waiting_for_a_server_that_exits_says_so_at_once(tmp_path: Path) -> None:
    process = start_process([sys.executable, "-c", "raise SystemExit(4)"])
    with pytest.raises(RuntimeError, match="exited with status 4"):
        wait_ready(process, f"http://127.0.0.1:{free_port()}/ping", timeout=60)
