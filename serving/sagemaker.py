"""SageMaker's inference contract: `GET /ping` and `POST /invocations`.

`POST /invocations`
  Request, `Content-Type: application/json` (also assumed when the header is absent):
    `{"inputs": [sample, ...]}`, `{"instances": [sample, ...]}` or a bare `[sample, ...]`,
    where each sample is a nested list of numbers of the model's per-sample input shape
    (model.json's input shape without the leading -1; for the digits model `[1, 8, 8]`).
  Request, `Content-Type: application/x-npy`: one .npy array shaped `[N, *sample shape]` whose
    dtype is the model's input dtype exactly (float32 for FP32).
  Response, `Accept: application/json`, `*/*` or absent:
    `{"predictions": [{"<output name>": [...], "label": "<label>"}, ...]}`, one object per sample
    in request order; for the digits model `{"predictions": [{"logits": [10 floats],
    "label": "3"}]}`. "label" is the label of the largest output, present when model.json has
    labels.
  Response, `Accept: application/x-npy`: the output array `[N, *output shape]` as .npy.
  Errors: `{"error": "..."}` with 400 (bad body), 406 (Accept), 408 (body too slow), 413 (too big),
  415 (Content-Type), 503 (loading, overloaded, stopping), 504 (over the request timeout).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from serving.http import JSON, NPY, HttpError, Request, Response, error_response, json_response
from serving.model import ModelSignature
from serving.payloads import (
    array_from_json,
    array_from_npy,
    check_batch_shape,
    npy_bytes,
    parse_json,
)
from serving.runtime import ModelRuntime

_ANY = ("", "*/*", JSON, "application/*")


async def ping(runtime: ModelRuntime, request: Request) -> Response:
    """200 with an empty body once the model is loaded and warm; 503 while loading or draining."""
    if runtime.ready:
        return Response(200, b"", "text/plain")
    return error_response(503, f"not ready: the model is {runtime.state.value}")


async def invocations(runtime: ModelRuntime, request: Request) -> Response:
    """Run a batch of samples through the model (formats in the module docstring)."""
    signature = runtime.signature
    if signature is None:
        raise HttpError(503, f"not ready: the model is {runtime.state.value}")
    accept = _response_type(request.accept)
    if request.content_type in ("", JSON):
        batch = await runtime.decode(request.body, lambda body: _from_json(body, signature))
    elif request.content_type == NPY:
        batch = await runtime.decode(request.body, lambda body: _from_npy(body, signature))
    else:
        raise HttpError(
            415,
            f"unsupported Content-Type {request.content_type!r}; send {JSON} or {NPY}",
        )
    output = await runtime.infer(batch)
    if accept == NPY:
        return Response(200, npy_bytes(output), NPY)
    return json_response({"predictions": _predictions(output, signature)})


def _response_type(accept: str) -> str:
    # Clients list several types ("application/json, */*"); take the first one we can produce.
    for part in accept.split(","):
        kind = part.split(";", 1)[0].strip().lower()
        if kind in _ANY:
            return JSON
        if kind == NPY:
            return NPY
    raise HttpError(406, f"cannot answer with Accept {accept!r}; accept {JSON} or {NPY}")


def _from_json(body: bytes, signature: ModelSignature) -> np.ndarray:
    doc = parse_json(body)
    if isinstance(doc, dict):
        keys = [key for key in ("inputs", "instances") if key in doc]
        if len(keys) != 1:
            raise HttpError(
                400,
                'the JSON body needs exactly one of "inputs" or "instances" '
                f"(a list of samples); got keys {sorted(doc)}",
            )
        where, data = keys[0], doc[keys[0]]
    else:
        where, data = "the JSON body", doc
    array = array_from_json(data, signature.input, where)
    return check_batch_shape(array, signature.input, where)


def _from_npy(body: bytes, signature: ModelSignature) -> np.ndarray:
    array = array_from_npy(body, signature.input)
    return check_batch_shape(array, signature.input, "the .npy array")


def _predictions(output: np.ndarray, signature: ModelSignature) -> list[dict[str, Any]]:
    name = signature.output.name
    values = output.tolist()
    if not signature.labels:
        return [{name: row} for row in values]
    labels = signature.labels
    best = output.reshape(len(output), -1).argmax(axis=1).tolist()
    return [{name: row, "label": labels[i]} for row, i in zip(values, best, strict=True)]
