"""Bad requests get a 4xx and a JSON error that names the problem, and hurt nobody else."""

from __future__ import annotations

import io
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.serving.conftest import FragileDigits, ServerProcess, write_model_dir

SIX_MB = 6 * 1024 * 1024
GOOD = {"inputs": np.zeros((1, 1, 8, 8)).tolist()}


def v2_body(**tensor: object) -> dict:
    base = {"name": "input", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": [0.0] * 64}
    return {"inputs": [{**base, **tensor}]}


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def assert_error(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    message = response.json()["error"]
    for word in words:
        assert word in message, message


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"inputs": [[1, 2', ["malformed JSON", "line 1"]),
        (b'{"inputs": "\xc3\x28"}', ["malformed JSON", "UTF-8"]),
        (b"[" * 100_000, ["malformed JSON"]),
    ],
)
def test_malformed_json_gets_400_naming_it(
    client: httpx.Client, body: bytes, words: list[str]
) -> None:
    for path in ("/invocations", "/v2/models/digits/infer"):
        response = client.post(path, content=body, headers={"content-type": "application/json"})
        assert_error(response, 400, *words)


def test_invocations_with_wrong_sample_shape_gets_400_with_expected_shape(
    client: httpx.Client,
) -> None:
    response = client.post("/invocations", json={"inputs": np.zeros((2, 8, 8)).tolist()})
    assert_error(response, 400, "wrong shape", "[2, 8, 8]", "[1, 8, 8]")


def test_invocations_with_ragged_lists_gets_400(client: httpx.Client) -> None:
    response = client.post("/invocations", json={"inputs": [[[[1.0] * 8] * 8], [[[1.0] * 7]]]})
    assert_error(response, 400, "not a rectangular array")


def test_invocations_with_strings_for_numbers_gets_400_wrong_dtype(client: httpx.Client) -> None:
    response = client.post("/invocations", json={"inputs": [[[["0.5"] * 8] * 8]]})
    assert_error(response, 400, "wrong dtype", "strings", "FP32")


def test_invocations_with_nulls_gets_400_wrong_dtype(client: httpx.Client) -> None:
    sample = [[[0.5] * 8] * 7 + [[None] * 8]]
    assert_error(client.post("/invocations", json={"inputs": [sample]}), 400, "wrong dtype")


def test_invocations_with_neither_inputs_nor_instances_gets_400(client: httpx.Client) -> None:
    response = client.post("/invocations", json={"data": []})
    assert_error(response, 400, '"inputs"', '"instances"')


def test_npy_of_another_dtype_gets_400_naming_both(client: httpx.Client) -> None:
    response = client.post(
        "/invocations",
        content=npy(np.zeros((1, 1, 8, 8), np.float64)),
        headers={"content-type": "application/x-npy"},
    )
    assert_error(response, 400, "wrong dtype", "float64", "float32")


def test_corrupt_npy_gets_400(client: httpx.Client) -> None:
    response = client.post(
        "/invocations", content=b"\x93NUMPY garbage", headers={"content-type": "application/x-npy"}
    )
    assert_error(response, 400, "malformed .npy")


def test_unsupported_content_type_gets_415_listing_the_supported(client: httpx.Client) -> None:
    for path in ("/invocations", "/v2/models/digits/infer"):
        response = client.post(path, content=b"1,2,3", headers={"content-type": "text/csv"})
        assert_error(response, 415, "text/csv", "application/json")


def test_unsupported_accept_gets_406(client: httpx.Client) -> None:
    response = client.post("/invocations", json=GOOD, headers={"accept": "text/csv"})
    assert_error(response, 406, "text/csv", "application/x-npy")


def test_empty_body_gets_400_on_both_protocols(client: httpx.Client) -> None:
    for path in ("/invocations", "/v2/models/digits/infer"):
        response = client.post(path, content=b"", headers={"content-type": "application/json"})
        assert_error(response, 400, "empty body")


@pytest.mark.parametrize(
    ("tensor", "status", "words"),
    [
        ({"name": "pixels"}, 400, ["unknown input", "pixels", "'input'"]),
        ({"datatype": "INT64"}, 400, ["wrong dtype", "INT64", "FP32"]),
        ({"shape": [1, 64]}, 400, ["wrong shape", "[1, 64]", "[1, 8, 8]"]),
        ({"shape": [2, 1, 8, 8]}, 400, ["wrong shape", "128 values", "64"]),
        ({"data": ["a"] * 64}, 400, ["wrong dtype", "strings"]),
        ({"shape": "1x64"}, 400, ["shape must be a list"]),
    ],
)
def test_v2_infer_mismatch_with_the_signature_gets_400(
    client: httpx.Client, tensor: dict, status: int, words: list[str]
) -> None:
    response = client.post("/v2/models/digits/infer", json=v2_body(**tensor))
    assert_error(response, status, *words)


def test_v2_infer_missing_tensor_fields_gets_400_naming_them(client: httpx.Client) -> None:
    response = client.post("/v2/models/digits/infer", json={"inputs": [{"name": "input"}]})
    assert_error(response, 400, "shape", "datatype", "data")


def test_unknown_path_gets_404_and_wrong_method_405(client: httpx.Client) -> None:
    assert_error(client.get("/predict"), 404, "/predict")
    response = client.get("/invocations")
    assert_error(response, 405, "POST")
    assert response.headers["allow"] == "POST"


def test_body_over_6mb_gets_413_from_the_header_without_the_body_being_sent(
    server: ServerProcess,
) -> None:
    # Announce 7 MB and send none of it: the answer must come from the headers alone.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: 7000000\r\n\r\n"
        )
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before an answer: {reply!r}"
            reply += chunk
    head, _, _ = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert b"connection: close" in head.lower()


def test_chunked_body_growing_past_6mb_gets_413(client: httpx.Client) -> None:
    # No Content-Length: the server counts as it reads, and the byte past 6 MB ends it. That
    # byte is the last one sent, so the client is not still writing when the server closes.
    def chunks():
        for _ in range(6):
            yield b" " * (1024 * 1024)
        yield b" "

    response = client.post(
        "/invocations", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(response, 413, "too large", str(SIX_MB))


def test_body_just_under_6mb_is_read_and_judged_on_its_content(client: httpx.Client) -> None:
    body = b'{"inputs": []}' + b" " * (SIX_MB - 20)
    response = client.post(
        "/invocations", content=body, headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "wrong shape")


def test_a_request_that_breaks_the_model_fails_alone_while_batched_with_good_ones(
    tmp_path: Path, start_server
) -> None:
    model_dir = write_model_dir(tmp_path / "fragile", FragileDigits())
    # A full batch is exactly these four requests; the long wait makes sure they meet.
    server = start_server(model_dir, "--max-batch-size", "4", "--max-batch-wait-ms", "20000")
    bad = {"inputs": np.full((1, 1, 8, 8), -5000.0).tolist()}
    bodies = [GOOD, GOOD, bad, GOOD]
    with httpx.Client(base_url=server.url, timeout=30) as c, ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda b: c.post("/invocations", json=b), bodies))
    statuses = [r.status_code for r in responses]
    assert statuses == [200, 200, 500, 200], [r.text for r in responses]
    assert "input out of range" in responses[2].json()["error"]
    # The batch of four failed, then the bad request alone; the three good ones ran alone.
    assert server.metric("serving_forward_errors_total") == 2
    assert server.metric("serving_batch_size_count") == 3
