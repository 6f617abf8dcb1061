"""The Open Inference Protocol (KServe v2) over REST, JSON tensor format.

`POST /v2/models/{name}/infer`
  Request: `{"id"?: str, "inputs": [{"name": "input", "datatype": "FP32", "shape": [N, 1, 8, 8],
  "data": [...]}], "outputs"?: [{"name": "logits"}]}`; `data` is row-major, flat or nested, and
  `shape` covers the whole batch.
  Response: `{"model_name": name, "id": id, "outputs": [{"name": "logits", "datatype": "FP32",
  "shape": [N, 10], "data": [flat row-major values]}]}`.
  Errors: `{"error": "..."}` with 400 (including NaN/Infinity inputs), 404 (unknown model),
  413 (more samples than the queue holds), 500 (the model failed or returned NaN), 503 or 504,
  as for /invocations.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from serving.http import JSON, HttpError, Request, Response, json_response
from serving.payloads import array_from_json, check_batch_shape, check_finite_output, parse_json
from serving.runtime import ModelRuntime
from serving.signature import ModelSignature

SERVER_NAME = "mlplatform-serving"
SERVER_VERSION = "0.1.0"
# KServe's and Triton's platform names for each format.
PLATFORMS = {"torchscript": "pytorch_torchscript", "onnx": "onnxruntime_onnx", "python": "python"}


async def live(runtime: ModelRuntime, request: Request) -> Response:
    """The process is up and answering (Kubernetes livenessProbe)."""
    return json_response({"live": True})


async def ready(runtime: ModelRuntime, request: Request) -> Response:
    """The model is loaded and warm and the server is not draining (readinessProbe)."""
    if runtime.ready:
        return json_response({"ready": True})
    return json_response({"ready": False, "state": runtime.state.value}, 503)


async def server_metadata(runtime: ModelRuntime, request: Request) -> Response:
    return json_response({"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": []})


async def model_metadata(runtime: ModelRuntime, request: Request) -> Response:
    signature = _model(runtime, request)
    return json_response(
        {
            "name": signature.name,
            "versions": [],
            "platform": PLATFORMS[runtime.format],
            "inputs": [signature.input.as_json()],
            "outputs": [signature.output.as_json()],
        }
    )


async def model_ready(runtime: ModelRuntime, request: Request) -> Response:
    signature = _model(runtime, request)
    if runtime.ready:
        return json_response({"name": signature.name, "ready": True})
    return json_response({"name": signature.name, "ready": False}, 503)


async def infer(runtime: ModelRuntime, request: Request) -> Response:
    """Run the request's input tensor through the model (format in the module docstring)."""
    signature = _model(runtime, request)
    if request.content_type not in ("", JSON):
        raise HttpError(
            415, f"unsupported Content-Type {request.content_type!r}; the v2 protocol takes {JSON}"
        )
    doc, batch, wanted = await runtime.offload(len(request.body), _parse, request.body, signature)
    output = await runtime.infer(batch)
    outputs = []
    if wanted:
        check_finite_output(output)
        spec = signature.output
        outputs.append(
            {
                "name": spec.name,
                "datatype": spec.datatype,
                "shape": list(output.shape),
                "data": output.ravel().tolist(),
            }
        )
    response: dict[str, Any] = {"model_name": signature.name, "outputs": outputs}
    if "id" in doc:
        response["id"] = doc["id"]
    return json_response(response)


def _model(runtime: ModelRuntime, request: Request) -> ModelSignature:
    signature = runtime.signature
    name = request.path_params["name"]
    if signature is None:
        raise HttpError(503, f"not ready: the model is {runtime.state.value}")
    if name != signature.name:
        raise HttpError(
            404, f"model {name!r} is not served here; this server serves {signature.name!r}"
        )
    return signature


def _parse(body: bytes, signature: ModelSignature) -> tuple[dict[str, Any], np.ndarray, bool]:
    """Check an infer request against the signature: the document, the batch, whether the
    output is wanted."""
    spec = signature.input
    doc = parse_json(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise HttpError(400, 'the body must be a JSON object with an "inputs" list')
    if not isinstance(doc.get("id", ""), str):
        # It is echoed back: the protocol says string, and a NaN here would be invalid JSON.
        raise HttpError(400, f'"id" must be a string, got {type(doc["id"]).__name__}')
    inputs = doc["inputs"]
    if len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise HttpError(
            400, f"expected exactly one input tensor object {spec.name!r}, got {len(inputs)}"
        )
    tensor = inputs[0]
    missing = [key for key in ("name", "shape", "datatype", "data") if key not in tensor]
    if missing:
        raise HttpError(400, f"inputs[0] is missing {', '.join(missing)}")
    if tensor["name"] != spec.name:
        raise HttpError(
            400, f"unknown input {tensor['name']!r}; model {signature.name!r} takes {spec.name!r}"
        )
    if tensor["datatype"] != spec.datatype:
        raise HttpError(
            400,
            f"wrong dtype: inputs[0].datatype is {tensor['datatype']!r} but input "
            f"{spec.name!r} is {spec.datatype}",
        )
    shape = tensor["shape"]
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise HttpError(400, f"inputs[0].shape must be a list of non-negative integers: {shape}")
    array = array_from_json(tensor["data"], spec, "inputs[0].data")
    if array.size != math.prod(shape):
        raise HttpError(
            400,
            f"wrong shape: inputs[0].shape {shape} holds {math.prod(shape)} values but data has "
            f"{array.size}",
        )
    batch = check_batch_shape(array.reshape(shape), spec, "inputs[0]")
    return doc, batch, _output_wanted(doc, signature)


def _output_wanted(doc: dict[str, Any], signature: ModelSignature) -> bool:
    requested = doc.get("outputs")
    if requested is None:
        return True
    if not isinstance(requested, list) or not all(isinstance(o, dict) for o in requested):
        raise HttpError(400, '"outputs" must be a list of objects like {"name": "..."}')
    names = {o.get("name") for o in requested}
    unknown = names - {signature.output.name}
    if unknown:
        raise HttpError(
            400,
            f"unknown output(s) {sorted(map(str, unknown))}; the model has "
            f"{signature.output.name!r}",
        )
    return bool(names)
