"""SageMaker's contract over HTTP: /ping and /invocations in each content type, every format."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import torch

from tests.serving.conftest import LABELS, TOLERANCE, expected, write_model_dir


def samples(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 1, 8, 8)).astype(np.float32)


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_ping_answers_200_with_an_empty_body_when_ready(client: httpx.Client) -> None:
    response = client.get("/ping")
    assert response.status_code == 200
    assert response.content == b""


def test_invocations_json_inputs_return_logits_and_labels_per_sample(
    client: httpx.Client, reference_model: torch.jit.ScriptModule
) -> None:
    x = samples(3)
    response = client.post("/invocations", json={"inputs": x.tolist()})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    want = expected(reference_model, x)
    assert len(predictions) == 3
    for prediction, logits in zip(predictions, want, strict=True):
        np.testing.assert_allclose(prediction["logits"], logits, **TOLERANCE)
        assert prediction["label"] == LABELS[int(logits.argmax())]


def test_invocations_accepts_instances_and_a_bare_list_alike(client: httpx.Client) -> None:
    x = samples(2, seed=1).tolist()
    as_inputs = client.post("/invocations", json={"inputs": x}).json()
    assert client.post("/invocations", json={"instances": x}).json() == as_inputs
    assert client.post("/invocations", json=x).json() == as_inputs


def test_invocations_without_content_type_is_read_as_json(client: httpx.Client) -> None:
    body = httpx.Request("POST", "/", json={"inputs": samples(1).tolist()}).content
    response = client.post("/invocations", content=body, headers={"content-type": ""})
    assert response.status_code == 200, response.text


def test_invocations_takes_npy_and_answers_npy_when_accepted(
    client: httpx.Client, reference_model: torch.jit.ScriptModule
) -> None:
    x = samples(4, seed=2)
    response = client.post(
        "/invocations",
        content=npy(x),
        headers={"content-type": "application/x-npy", "accept": "application/x-npy"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-npy"
    logits = np.load(io.BytesIO(response.content))
    assert logits.shape == (4, 10)
    assert logits.dtype == np.float32
    np.testing.assert_allclose(logits, expected(reference_model, x), **TOLERANCE)


def test_invocations_npy_request_gets_json_by_default(client: httpx.Client) -> None:
    response = client.post(
        "/invocations", content=npy(samples(2)), headers={"content-type": "application/x-npy"}
    )
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 2


def test_jsonlines_are_answered_line_per_line_in_request_order(
    client: httpx.Client, reference_model: torch.jit.ScriptModule
) -> None:
    # Batch Transform (SplitType Line) sends records like these; AssembleWith Line joins the
    # answers by line, so answer line i must belong to request line i.
    x = samples(4, seed=3)
    lines = [
        json.dumps(x[0].tolist()),
        json.dumps({"inputs": x[1:3].tolist()}),
        "",
        json.dumps(x[3].tolist()),
    ]
    response = client.post(
        "/invocations",
        content="\n".join(lines) + "\n",
        headers={"content-type": "application/jsonlines"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/jsonlines"
    first, grouped, last = [json.loads(line) for line in response.text.splitlines()]
    want = expected(reference_model, x)
    np.testing.assert_allclose(first["logits"], want[0], **TOLERANCE)
    assert [p["label"] for p in grouped["predictions"]] == [LABELS[i] for i in want[1:3].argmax(1)]
    assert last["label"] == LABELS[int(want[3].argmax())]


def test_csv_rows_are_samples_and_the_answer_is_a_row_per_sample(
    client: httpx.Client, reference_model: torch.jit.ScriptModule
) -> None:
    x = samples(3, seed=4)
    body = "\n".join(",".join(repr(float(v)) for v in row.ravel()) for row in x)
    response = client.post("/invocations", content=body, headers={"content-type": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv"
    rows = [line.split(",") for line in response.text.splitlines()]
    want = expected(reference_model, x)
    assert [row[0] for row in rows] == [LABELS[i] for i in want.argmax(1)]
    np.testing.assert_allclose(np.array([row[1:] for row in rows], float), want, **TOLERANCE)


def test_accept_picks_the_answer_type_whatever_the_request_type(client: httpx.Client) -> None:
    body = json.dumps({"inputs": samples(2, seed=5).tolist()})
    as_json = client.post("/invocations", content=body).json()["predictions"]
    for accept, parse in [
        ("application/jsonlines", lambda r: [json.loads(line) for line in r.text.splitlines()]),
        ("text/csv", lambda r: [line.split(",")[0] for line in r.text.splitlines()]),
        ("image/png;q=0.9, application/json", lambda r: r.json()["predictions"]),
    ]:
        response = client.post("/invocations", content=body, headers={"accept": accept})
        assert response.status_code == 200, (accept, response.text)
        got = parse(response)
        assert [g["label"] if isinstance(g, dict) else g for g in got] == [
            p["label"] for p in as_json
        ]


def test_invocations_ignores_sagemaker_headers_it_does_not_use(client: httpx.Client) -> None:
    response = client.post(
        "/invocations",
        json={"inputs": samples(1).tolist()},
        headers={
            "X-Amzn-SageMaker-Custom-Attributes": "trace=1",
            "X-Amzn-SageMaker-Inference-Id": "abc",
            "accept": "application/json, */*",
        },
    )
    assert response.status_code == 200


class Regressor(torch.nn.Module):
    """[N, 1, 8, 8] → [N, 1]: the sum of the pixels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).sum(dim=1, keepdim=True)


def test_a_regression_answers_one_value_per_sample(tmp_path, start_server) -> None:
    signature = {
        "name": "pixelsum",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}],
        "outputs": [{"name": "value", "datatype": "FP32", "shape": [-1, 1]}],
        "task": "regression",
    }
    server = start_server(write_model_dir(tmp_path / "pixelsum", Regressor(), signature))
    x = np.stack([np.full((1, 8, 8), 0.5, np.float32), np.full((1, 8, 8), -1.0, np.float32)])
    with httpx.Client(base_url=server.url, timeout=30) as c:
        response = c.post("/invocations", json={"inputs": x.tolist()})
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": [{"value": 32.0}, {"value": -64.0}]}
        as_csv = c.post("/invocations", json={"inputs": x.tolist()}, headers={"accept": "text/csv"})
        assert as_csv.text == "32.0\n-64.0\n"
