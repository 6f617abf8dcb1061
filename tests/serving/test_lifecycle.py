"""Loading, readiness, timeouts and shutdown, observed from outside the server process."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.serving.conftest import SIGNATURE, ServerProcess, SlowDigits, write_model_dir

BODY = json.dumps({"inputs": np.zeros((1, 1, 8, 8)).tolist()}).encode()


def poll(condition, timeout: float = 30.0, what: str = "condition") -> None:
    """Wait for an event the test cannot be told about directly (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_ping_and_ready_say_503_while_the_model_loads_and_200_after(
    tmp_path: Path, digits_dir: Path, start_server
) -> None:
    # model.json is a FIFO: loading blocks until the test writes it, so "loading" lasts as long
    # as the test needs.
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    shutil.copy(digits_dir / "model.pt", model_dir / "model.pt")
    os.mkfifo(model_dir / "model.json")
    server = start_server(model_dir, ready=False)
    server.wait_listening()
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/ping").status_code == 503
        assert c.get("/v2/health/ready").status_code == 503
        assert c.get("/v2/health/live").status_code == 200
        assert c.get("/v2/models/digits/ready").status_code == 503
        loading = c.post("/invocations", content=BODY)
        assert loading.status_code == 503
        assert "loading" in loading.json()["error"]
        (model_dir / "model.json").write_text(json.dumps(SIGNATURE))
        poll(lambda: c.get("/ping").status_code == 200, what="/ping to turn 200")
        assert c.get("/v2/health/ready").status_code == 200
        assert c.post("/invocations", content=BODY).status_code == 200


def test_a_model_directory_without_model_json_stops_the_server_with_status_3(
    tmp_path: Path, digits_dir: Path, start_server
) -> None:
    model_dir = tmp_path / "incomplete"
    model_dir.mkdir()
    shutil.copy(digits_dir / "model.pt", model_dir / "model.pt")
    server = start_server(model_dir, ready=False)
    assert server.wait_exit(timeout=60) == 3
    assert "model.json: not found" in server.log()


@pytest.mark.parametrize(
    ("model_json", "flags", "message"),
    [
        (
            {**SIGNATURE, "format": "pmml"},
            [],
            "format 'pmml' is not supported; allowed: torchscript, onnx, python, tensorflow-savedmodel",
        ),
        (SIGNATURE, ["--variant", "fp8"], "variant 'fp8' is not declared; allowed: default"),
    ],
    ids=["format", "variant"],
)
def test_a_model_it_cannot_serve_is_one_error_line_and_exit_status_3(
    tmp_path: Path, digits_dir: Path, start_server, model_json: dict, flags: list, message: str
) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    shutil.copy(digits_dir / "model.pt", model_dir / "model.pt")
    (model_dir / "model.json").write_text(json.dumps(model_json))
    server = start_server(model_dir, *flags, ready=False)
    assert server.wait_exit(timeout=60) == 3
    log = server.log()
    [line] = [line for line in log.splitlines() if "ERROR" in line]
    assert str(model_dir / "model.json") in line
    assert message in line
    assert "Traceback" not in log


def test_a_half_sent_header_is_cut_off_while_others_are_served(
    digits_dir: Path, start_server
) -> None:
    server = start_server(digits_dir, "--header-timeout", "1")
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as slow,
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as silent,
    ):
        slow.sendall(b"POST /invocations HTTP/1.1\r\nHost: localhost\r\nContent-Ty")
        started = time.monotonic()
        # Meanwhile the server answers everyone else.
        assert httpx.post(f"{server.url}/invocations", content=BODY).status_code == 200
        reply = b""
        while chunk := slow.recv(65536):
            reply += chunk
        assert time.monotonic() - started < 5
        assert reply.startswith(b"HTTP/1.1 408"), reply
        assert b"did not arrive within 1 s" in reply
        # A connection that never sent a byte is closed without an answer.
        assert silent.recv(65536) == b""
    # A keep-alive client that waits between requests is not cut off by the head deadline.
    with httpx.Client(base_url=server.url) as c:
        assert c.post("/invocations", content=BODY).status_code == 200
        time.sleep(0.5)
        assert c.post("/invocations", content=BODY).status_code == 200


@pytest.fixture(scope="module")
def impatient_server(
    digits_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """Batches wait 30 s to fill, far past the 0.5 s request timeout."""
    flags = ["--max-batch-size", "8", "--max-batch-wait-ms", "30000", "--request-timeout", "0.5"]
    server = ServerProcess(digits_dir, tmp_path_factory.mktemp("log") / "server.log", *flags)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_a_request_queued_past_the_timeout_gets_504_while_the_server_keeps_answering(
    impatient_server: ServerProcess,
) -> None:
    server = impatient_server
    result: list[httpx.Response] = []
    worker = threading.Thread(
        target=lambda: result.append(httpx.post(f"{server.url}/invocations", content=BODY))
    )
    worker.start()
    poll(lambda: server.metric("serving_queue_depth") == 1, what="the request to queue")
    assert httpx.get(f"{server.url}/v2/health/live").status_code == 200
    worker.join(timeout=30)
    [response] = result
    assert response.status_code == 504
    assert "0.5 s" in response.json()["error"]
    assert server.metric("serving_requests_in_flight") == 0


def test_a_body_that_stops_arriving_gets_408_and_the_connection_closed(
    impatient_server: ServerProcess,
) -> None:
    with socket.create_connection(("127.0.0.1", impatient_server.port), timeout=30) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: localhost\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"inputs"'
        )
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), head
    assert b"did not arrive within 0.5 s" in body


def test_a_forward_pass_slower_than_the_timeout_gets_504_not_a_hang(
    tmp_path: Path, start_server
) -> None:
    model_dir = write_model_dir(tmp_path / "slow", SlowDigits())
    server = start_server(model_dir, "--max-batch-size", "1", "--request-timeout", "0.02")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for _ in range(2):
            response = c.post("/invocations", content=BODY)
            assert response.status_code == 504, response.text
        assert c.get("/v2/health/live").status_code == 200


def send_one(port: int, outcomes: list[str], results: list[dict]) -> None:
    """One POST on a fresh connection; records how it ended."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/invocations", BODY, {"content-type": "application/json"})
    except OSError:
        outcomes.append("not accepted")
        return
    try:
        response = conn.getresponse()
    except (http.client.RemoteDisconnected, ConnectionResetError):
        # The kernel had queued the connection, but the server closed before reading it.
        outcomes.append("closed before answering")
        return
    try:
        body = response.read()
    except (http.client.IncompleteRead, OSError):
        outcomes.append("truncated")
        return
    finally:
        conn.close()
    outcomes.append(str(response.status))
    if response.status == 200:
        results.append(json.loads(body))


def test_sigterm_under_load_answers_every_accepted_request_then_exits_0(
    digits_dir: Path, start_server
) -> None:
    # Batches wait 30 s to fill: the accepted requests are still queued when SIGTERM arrives.
    server: ServerProcess = start_server(
        digits_dir, "--max-batch-size", "64", "--max-batch-wait-ms", "30000", "--grace", "20"
    )
    accepted: list[str] = []
    results: list[dict] = []
    clients = [
        threading.Thread(target=send_one, args=(server.port, accepted, results)) for _ in range(12)
    ]
    for t in clients:
        t.start()
    poll(lambda: server.metric("serving_queue_depth") == 12, what="12 requests to queue")
    server.terminate()
    # Keep the load coming after SIGTERM: these may be refused, never half-answered.
    late: list[str] = []
    stop = time.monotonic() + 30
    while server.process.poll() is None and time.monotonic() < stop:
        send_one(server.port, late, [])
    for t in clients:
        t.join(timeout=30)
    assert server.wait_exit(timeout=20) == 0, server.log()
    assert accepted == ["200"] * 12
    assert all(len(r["predictions"]) == 1 for r in results)
    assert set(late) <= {"200", "not accepted", "closed before answering"}, late
    assert late and late[-1] == "not accepted"


def test_drain_reports_not_ready_but_still_serves_until_the_port_closes(
    digits_dir: Path, start_server
) -> None:
    server = start_server(digits_dir, "--drain", "2", "--grace", "10")
    with httpx.Client(base_url=server.url) as c:
        server.terminate()
        poll(lambda: c.get("/ping").status_code == 503, what="/ping to turn 503")
        assert c.get("/v2/health/ready").status_code == 503
        assert c.post("/invocations", content=BODY).status_code == 200
    assert server.wait_exit(timeout=20) == 0, server.log()
