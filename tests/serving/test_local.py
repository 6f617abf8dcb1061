"""Serving a model directory on this machine: `python -m serving local` and `LocalServer`."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from serving.local import LocalServer


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
