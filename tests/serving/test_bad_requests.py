"""Bad requests get a 4xx and a JSON error that names the problem, and hurt nobody else."""

from __future__ import annotations

import io
import json
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from serving.http import HttpError
from serving.payloads import array_from_json
from serving.signature import TensorSpec
from tests.serving.conftest import SIGNATURE, Digits, FragileDigits, ServerProcess, write_model_dir

SIX_MB = 6 * 1024 * 1024
GOOD = {"inputs": np.zeros((1, 1, 8, 8)).tolist()}


def v2_body(**tensor: object) -> dict:
    base = {"name": "input", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": [0.0] * 64}
    return {"inputs": [{**base, **tensor}]}


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def strict_json(text: str) -> object:
    """JSON as the standard has it: Python's parser would take NaN and Infinity tokens."""

    def refuse(token: str) -> None:
        raise AssertionError(f"invalid JSON token {token} in {text[:200]}")

    return json.loads(text, parse_constant=refuse)


def assert_error(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    message = strict_json(response.text)["error"]
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
    response = client.post(
        "/invocations", content=b"<x/>", headers={"content-type": "application/xml"}
    )
    supported = ["application/json", "application/jsonlines", "application/x-npy", "text/csv"]
    assert_error(response, 415, "application/xml", *supported)
    response = client.post(
        "/v2/models/digits/infer", content=b"1,2,3", headers={"content-type": "text/csv"}
    )
    assert_error(response, 415, "text/csv", "application/json")


def test_unsupported_accept_gets_406_listing_the_supported(client: httpx.Client) -> None:
    response = client.post("/invocations", json=GOOD, headers={"accept": "image/png"})
    assert_error(response, 406, "image/png", "application/x-npy", "text/csv")


NAN_SAMPLE = np.zeros((3, 1, 8, 8), np.float32)
NAN_SAMPLE[2, 0, 3, 4] = np.nan


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"inputs": %s}' % json.dumps(NAN_SAMPLE.tolist()).encode()),
        ("application/json", json.dumps({"inputs": np.full((3, 1, 8, 8), 1e39).tolist()}).encode()),
        ("application/x-npy", npy(NAN_SAMPLE)),
        (
            "text/csv",
            b"\n".join(b",".join(b"%r" % v for v in row.ravel().tolist()) for row in NAN_SAMPLE),
        ),
        (
            "application/jsonlines",
            b"\n".join(json.dumps(sample.tolist()).encode() for sample in NAN_SAMPLE),
        ),
    ],
    ids=["json-nan", "json-beyond-fp32", "npy-nan", "csv-nan", "jsonlines-nan"],
)
def test_non_finite_inputs_get_400_naming_the_sample(
    client: httpx.Client, content_type: str, body: bytes
) -> None:
    response = client.post("/invocations", content=body, headers={"content-type": content_type})
    sample = "sample 0" if b"1e+39" in body else "sample 2"
    assert_error(response, 400, sample, "non-finite", "allow_non_finite")


def test_v2_infer_with_nan_or_infinity_gets_400_naming_the_sample(client: httpx.Client) -> None:
    data = [0.0] * 64 + [0.0] * 10 + ["Infinity"] + [0.0] * 53
    body = json.dumps(v2_body(shape=[2, 1, 8, 8], data=data)).replace('"Infinity"', "Infinity")
    response = client.post(
        "/v2/models/digits/infer", content=body, headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "sample 1", "non-finite")


def test_integers_beyond_the_input_dtype_get_400_rather_than_wrapping() -> None:
    spec = TensorSpec("input", "INT8", (-1, 2))
    with pytest.raises(HttpError) as error:
        array_from_json([[1, 300]], spec, "inputs")
    assert error.value.status == 400
    assert "300" in error.value.message
    assert "INT8" in error.value.message


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


def test_a_request_with_more_samples_than_the_queue_holds_gets_413_naming_the_limit(
    digits_dir: Path, start_server
) -> None:
    server = start_server(digits_dir, "--max-queue", "4")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        fits = c.post("/invocations", json={"inputs": np.zeros((4, 1, 8, 8)).tolist()})
        assert fits.status_code == 200, fits.text
        response = c.post("/invocations", json={"inputs": np.zeros((5, 1, 8, 8)).tolist()})
        assert_error(response, 413, "5 samples", "at most 4")
        v2 = c.post("/v2/models/digits/infer", json=v2_body(shape=[5, 1, 8, 8], data=[0.0] * 320))
        assert_error(v2, 413, "at most 4")


def test_non_finite_inputs_reach_the_model_when_model_json_allows_them_and_text_answers_refuse_nan(
    tmp_path: Path, start_server
) -> None:
    model_dir = write_model_dir(
        tmp_path / "lenient", Digits(), {**SIGNATURE, "allow_non_finite": True}
    )
    server = start_server(model_dir)
    # Python's json writes NaN tokens (httpx's json= refuses to), as a careless client would.
    body = json.dumps({"inputs": NAN_SAMPLE.tolist()})
    with httpx.Client(base_url=server.url, timeout=30) as c:
        raw = c.post("/invocations", content=body, headers={"accept": "application/x-npy"})
        assert raw.status_code == 200, raw.text
        output = np.load(io.BytesIO(raw.content))
        assert np.isfinite(output[:2]).all() and np.isnan(output[2]).all()
        # JSON has no NaN: the answer is a valid JSON error naming the sample, not bare NaN tokens.
        for accept in ("application/json", "text/csv", "application/jsonlines"):
            response = c.post("/invocations", content=body, headers={"accept": accept})
            assert_error(response, 500, "non-finite", "sample 2", "application/x-npy")
        v2 = c.post(
            "/v2/models/digits/infer", content=json.dumps(v2_body(data=[float("nan")] * 64))
        )
        assert_error(v2, 500, "non-finite", "sample 0")


def test_the_environment_overrides_model_json_on_non_finite_inputs(
    digits_dir: Path, start_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVING_ALLOW_NON_FINITE", "true")
    server = start_server(digits_dir)
    response = httpx.post(
        f"{server.url}/invocations",
        content=npy(NAN_SAMPLE),
        headers={"content-type": "application/x-npy", "accept": "application/x-npy"},
    )
    assert response.status_code == 200, response.text
