"""SageMaker's inference contract: `GET /ping` and `POST /invocations`.

`POST /invocations`, by `Content-Type` (absent means JSON):
  `application/json`: `{"inputs": [sample, ...]}`, `{"instances": [sample, ...]}` or a bare
    `[sample, ...]`, where each sample is a nested list of numbers of the model's per-sample
    input shape (model.json's input shape without the leading -1; digits: `[1, 8, 8]`).
  `application/jsonlines`: one record per line, either one bare sample or an object
    `{"inputs": [sample, ...]}` (Batch Transform with SplitType Line).
  `application/x-npy`: one array `[N, *sample shape]` of the input's dtype exactly.
  `text/csv`: one sample per row, its values flattened row-major, no header.
Answer, by `Accept` (the first listed type the server produces):
  `application/json`: `{"predictions": [prediction, ...]}`, one per sample in request order;
    a prediction is `{"<output>": [scores], "label": "<label>"}` for a classification with
    labels (digits: `{"logits": [10 floats], "label": "3"}`), `{"<output>": value}` for a
    regression, `{"<output>": [values]}` otherwise.
  `application/jsonlines`: one line per request line (a prediction for a bare sample,
    `{"predictions": [...]}` for an object line), or one prediction per line.
  `text/csv`: one row per sample: the label first when there are labels, then the values.
  `application/x-npy`: the output array `[N, *output shape]`.
  `*/*` or absent: JSON lines and CSV requests are answered in kind, the rest in JSON.
Errors: `{"error": "..."}` with 400 (bad body, non-finite input), 406 (Accept), 408 (body too
slow), 413 (body or sample count over the limit), 415 (Content-Type), 500 (the model failed or
returned NaN for a text answer), 503 (loading, overloaded, stopping), 504 (request timeout).
"""

from __future__ import annotations

from serving import content
from serving.http import JSON, HttpError, Request, Response, error_response
from serving.runtime import ModelRuntime


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
    request_type = request.content_type or JSON
    decoder = content.DECODERS.get(request_type)
    if decoder is None:
        raise HttpError(
            415,
            f"unsupported Content-Type {request.content_type!r}; send one of "
            f"{', '.join(content.SUPPORTED)}",
        )
    answer_type = content.response_type(request.accept, request_type)
    decoded = await runtime.offload(len(request.body), decoder, request.body, signature)
    output = await runtime.infer(decoded.batch)
    return await runtime.offload(
        output.nbytes, content.encode, answer_type, output, signature, decoded
    )
