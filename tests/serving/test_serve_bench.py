"""The serving benchmark's parts that can be checked without timing anything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.serving.conftest import REPO, ServerProcess


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
