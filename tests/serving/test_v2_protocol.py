"""The Open Inference Protocol (v2) REST routes, JSON tensor format."""

from __future__ import annotations

import json

import httpx
import numpy as np
import torch

from tests.serving.conftest import TOLERANCE, ServerProcess, expected


def infer_body(x: np.ndarray, **extra: object) -> dict:
    return {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": list(x.shape),
                "data": x.ravel().tolist(),
            }
        ],
        **extra,
    }


def test_health_live_and_ready_answer_200(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200


def test_server_metadata_names_the_server(client: httpx.Client) -> None:
    body = client.get("/v2").json()
    assert body["name"] and body["version"]


def test_model_metadata_is_model_json_signature_and_names_the_platform(
    client: httpx.Client, server: ServerProcess
) -> None:
    body = client.get("/v2/models/digits").json()
    assert body["name"] == "digits"
    assert (
        body["platform"]
        == {
            "torchscript": "pytorch_torchscript",
            "onnx": "onnxruntime_onnx",
            "python": "python",
        }[server.format]
    )
    assert body["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert body["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]


def test_model_ready_answers_200_for_the_served_model(client: httpx.Client) -> None:
    response = client.get("/v2/models/digits/ready")
    assert response.status_code == 200
    assert response.json()["ready"] is True


def test_unknown_model_gets_404_naming_the_served_one(client: httpx.Client) -> None:
    for path in ("/v2/models/resnet", "/v2/models/resnet/ready"):
        response = client.get(path)
        assert response.status_code == 404
        assert "digits" in response.json()["error"]
    x = np.zeros((1, 1, 8, 8), np.float32)
    assert client.post("/v2/models/resnet/infer", json=infer_body(x)).status_code == 404


def test_infer_returns_flat_row_major_logits_with_batch_shape(
    client: httpx.Client, reference_model: torch.jit.ScriptModule
) -> None:
    x = np.random.default_rng(3).standard_normal((2, 1, 8, 8)).astype(np.float32)
    response = client.post("/v2/models/digits/infer", json=infer_body(x, id="req-7"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "digits"
    assert body["id"] == "req-7"
    [output] = body["outputs"]
    assert output["name"] == "logits"
    assert output["datatype"] == "FP32"
    assert output["shape"] == [2, 10]
    want = expected(reference_model, x)
    np.testing.assert_allclose(np.reshape(output["data"], (2, 10)), want, **TOLERANCE)


def test_infer_accepts_nested_data_as_well_as_flat(client: httpx.Client) -> None:
    x = np.random.default_rng(4).standard_normal((1, 1, 8, 8)).astype(np.float32)
    flat = client.post("/v2/models/digits/infer", json=infer_body(x)).json()
    nested_body = infer_body(x)
    nested_body["inputs"][0]["data"] = x.tolist()
    assert client.post("/v2/models/digits/infer", json=nested_body).json() == flat


def test_infer_with_unknown_requested_output_gets_400(client: httpx.Client) -> None:
    x = np.zeros((1, 1, 8, 8), np.float32)
    response = client.post(
        "/v2/models/digits/infer", json=infer_body(x, outputs=[{"name": "probabilities"}])
    )
    assert response.status_code == 400
    assert "probabilities" in response.json()["error"]


def test_infer_with_an_id_that_is_not_a_string_gets_400(client: httpx.Client) -> None:
    # The id is echoed back; the protocol says string.
    x = np.zeros((1, 1, 8, 8), np.float32)
    response = client.post(
        "/v2/models/digits/infer",
        content=json.dumps(infer_body(x, id=float("nan"))),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert '"id" must be a string' in response.json()["error"]
