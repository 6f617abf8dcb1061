"""SageMaker's contract over HTTP: /ping and /invocations in JSON and .npy."""

from __future__ import annotations

import io

import httpx
import numpy as np
import torch

from tests.serving.conftest import LABELS


def samples(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 1, 8, 8)).astype(np.float32)


def expected(model: torch.jit.ScriptModule, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


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
        np.testing.assert_allclose(prediction["logits"], logits, rtol=1e-5, atol=1e-6)
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
    buffer = io.BytesIO()
    np.save(buffer, x)
    response = client.post(
        "/invocations",
        content=buffer.getvalue(),
        headers={"content-type": "application/x-npy", "accept": "application/x-npy"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-npy"
    logits = np.load(io.BytesIO(response.content))
    assert logits.shape == (4, 10)
    assert logits.dtype == np.float32
    np.testing.assert_allclose(logits, expected(reference_model, x), rtol=1e-5, atol=1e-6)


def test_invocations_npy_request_gets_json_by_default(client: httpx.Client) -> None:
    buffer = io.BytesIO()
    np.save(buffer, samples(2))
    response = client.post(
        "/invocations", content=buffer.getvalue(), headers={"content-type": "application/x-npy"}
    )
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 2


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
