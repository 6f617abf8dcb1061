"""The serving benchmark's parts that can be checked without timing anything."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.serving.conftest import REPO, ServerProcess

ONE_FORMAT = pytest.mark.parametrize("server", ["torchscript"], indirect=True)


@ONE_FORMAT
def test_load_generator_times_the_fixed_request_count_and_reports_percentiles(
    server: ServerProcess, tmp_path: Path
) -> None:
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"inputs": [[[[0.0] * 8] * 8]]}))
    command = [sys.executable, str(REPO / "benchmarks" / "serve_loadgen.py")]
    command += ["--port", str(server.port), "--path", "/invocations", "--body-file", str(body)]
    command += ["--concurrency", "4", "--requests", "60", "--warmup", "8"]
    result = json.loads(subprocess.run(command, capture_output=True, check=True).stdout)
    assert result["requests"] == 60
    assert result["failures"] == {}
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert result["throughput_rps"] > 0


@ONE_FORMAT
def test_load_generator_counts_non_200_answers_as_failures(
    server: ServerProcess, tmp_path: Path
) -> None:
    body = tmp_path / "bad.json"
    body.write_text(json.dumps({"inputs": [[1.0]]}))
    command = [sys.executable, str(REPO / "benchmarks" / "serve_loadgen.py")]
    command += ["--port", str(server.port), "--path", "/invocations", "--body-file", str(body)]
    command += ["--concurrency", "2", "--requests", "10", "--warmup", "0"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["failures"] == {"400": 10}
    assert report["requests"] == 0
    assert report["p50_ms"] is None


def processes_with(marker: str) -> list[str]:
    """Processes whose environment holds `marker`: every descendant of a run inherits it,
    whatever process group or parent it ends up with."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            if marker.encode() in environ:
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:  # gone meanwhile, or a zombie
            continue
    return found


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not a server
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


def test_a_bench_run_leaves_no_server_process_behind_and_frees_every_port(
    tmp_path: Path,
) -> None:
    # LitServe's ZeroMQ peer forks the most (workers, a broker); KServe binds 0.0.0.0.
    marker = f"SERVE_BENCH_RUN={uuid.uuid4().hex}"
    name, _, value = marker.partition("=")
    env = {**os.environ, "PYTHONPATH": str(REPO), name: value}
    out = tmp_path / "bench.json"
    command = [sys.executable, str(REPO / "benchmarks" / "serve_bench.py"), "--no-raw"]
    command += ["--servers", "kserve", "litserve-zmq"]
    command += ["--requests", "20", "--concurrency", "2", "--rounds", "1", "--json", str(out)]
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [s["server"] for s in report["servers"]] == ["kserve", "litserve-zmq"]
    assert all(run["failures"] == {} and run["requests"] == 20 for run in report["runs"])
    assert processes_with(marker) == []
    assert [s["port"] for s in report["servers"] if not port_is_free(s["port"])] == []
