"""The content types of /invocations: decoding each request body, encoding each answer.

JSON for real-time clients; JSON lines, CSV and .npy for SageMaker Batch Transform (SplitType
Line, AssembleWith Line) and async inference, which send many records in one body and join the
answers line by line. Every decoder returns a batch checked against the model's input spec.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.http import CSV, JSON, JSONLINES, NPY, HttpError, Response, json_response
from serving.payloads import (
    array_from_json,
    array_from_npy,
    check_batch_shape,
    check_finite_output,
    check_int_range,
    npy_bytes,
    parse_json,
)
from serving.signature import ModelSignature

SUPPORTED = (JSON, JSONLINES, NPY, CSV)


@dataclass(slots=True)
class Decoded:
    """A request's samples as one batch, and for JSON lines how they map back to lines."""

    batch: np.ndarray
    # One (samples, was an {"inputs": ...} object) pair per non-blank line.
    lines: list[tuple[int, bool]] | None = None


def from_json(body: bytes, signature: ModelSignature) -> Decoded:
    """`{"inputs": [sample, ...]}`, `{"instances": [...]}` or a bare `[sample, ...]`."""
    doc = parse_json(body)
    where, data = _samples(doc, "the JSON body")
    array = array_from_json(data, signature.input, where)
    return Decoded(check_batch_shape(array, signature.input, where))


def from_npy(body: bytes, signature: ModelSignature) -> Decoded:
    """One .npy array `[N, *sample shape]` of the input's dtype exactly."""
    array = array_from_npy(body, signature.input)
    return Decoded(check_batch_shape(array, signature.input, "the .npy array"))


def from_jsonlines(body: bytes, signature: ModelSignature) -> Decoded:
    """One record per line: a bare sample, or an object holding a list of samples."""
    spec = signature.input
    arrays, lines = [], []
    for number, line in enumerate(body.split(b"\n"), 1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            doc = parse_json(line)
        except HttpError as exc:
            raise HttpError(400, f"{where}: {exc.message}") from None
        if isinstance(doc, dict):
            key, data = _samples(doc, where)
            array = check_batch_shape(array_from_json(data, spec, f"{where} {key}"), spec, where)
        else:
            array = array_from_json(doc, spec, where)
            if array.shape != spec.sample_shape:
                raise HttpError(
                    400,
                    f"wrong shape: {where} is a sample of shape {list(array.shape)} but input "
                    f"{spec.name!r} takes samples of shape {list(spec.sample_shape)}",
                )
            array = array[None]
        arrays.append(array)
        lines.append((len(array), isinstance(doc, dict)))
    if not arrays:
        raise HttpError(400, "empty body: the JSON lines body holds no records")
    batch = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    return Decoded(batch, lines)


def from_csv(body: bytes, signature: ModelSignature) -> Decoded:
    """One sample per row, its values flattened row-major; no header."""
    spec = signature.input
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HttpError(400, f"malformed CSV: the body is not UTF-8 ({exc.reason})") from exc
    read_as = np.float64 if spec.dtype.kind == "f" else np.int64
    try:
        # numpy's C reader: fast on Batch Transform's large bodies, and its errors name the
        # row and column.
        rows = np.loadtxt(io.StringIO(text), delimiter=",", dtype=read_as, ndmin=2)
    except ValueError as exc:
        raise HttpError(400, f"malformed CSV: {exc}") from exc
    width = math.prod(spec.sample_shape)
    if rows.shape[0] == 0:
        raise HttpError(400, "empty body: the CSV body holds no rows")
    if rows.shape[1] != width:
        raise HttpError(
            400,
            f"wrong shape: CSV rows have {rows.shape[1]} values but input {spec.name!r} takes "
            f"{width} per row (a sample of shape {list(spec.sample_shape)}, flattened)",
        )
    if spec.dtype.kind in "iu":
        check_int_range(rows, spec, "the CSV body")
    return Decoded(rows.reshape(len(rows), *spec.sample_shape).astype(spec.dtype))


DECODERS: dict[str, Callable[[bytes, ModelSignature], Decoded]] = {
    JSON: from_json,
    JSONLINES: from_jsonlines,
    NPY: from_npy,
    CSV: from_csv,
}


def response_type(accept: str, request_type: str) -> str:
    """The first type in Accept that the server produces. Without a preference, line formats
    answer in kind (Batch Transform joins answers line by line) and the rest in JSON."""
    for part in accept.split(","):
        kind = part.split(";", 1)[0].strip().lower()
        if kind in ("", "*/*", "application/*"):
            return request_type if request_type in (JSONLINES, CSV) else JSON
        if kind in SUPPORTED:
            return kind
    raise HttpError(
        406, f"cannot answer with Accept {accept!r}; accept one of {', '.join(SUPPORTED)}"
    )


def encode(kind: str, output: np.ndarray, signature: ModelSignature, decoded: Decoded) -> Response:
    """The model's output for this request as a response body of `kind`."""
    if kind == NPY:
        return Response(200, npy_bytes(output), NPY)
    check_finite_output(output)
    if kind == JSON:
        return json_response({"predictions": predictions(output, signature)})
    if kind == JSONLINES:
        return Response(200, _jsonlines(predictions(output, signature), decoded), JSONLINES)
    return Response(200, _csv(output, signature), CSV)


def predictions(output: np.ndarray, signature: ModelSignature) -> list[dict[str, Any]]:
    """One object per sample: `{output: value}` for a regression, `{output: scores, "label":
    label}` for a classification with labels, `{output: values}` otherwise."""
    name = signature.output.name
    if signature.regression:
        return [{name: value} for value in output.reshape(len(output)).tolist()]
    values = output.tolist()
    if not signature.labels:
        return [{name: row} for row in values]
    labels = signature.labels
    best = output.reshape(len(output), -1).argmax(axis=1).tolist()
    return [{name: row, "label": labels[i]} for row, i in zip(values, best, strict=True)]


def _samples(doc: Any, where: str) -> tuple[str, Any]:
    if not isinstance(doc, dict):
        return where, doc
    keys = [key for key in ("inputs", "instances") if key in doc]
    if len(keys) != 1:
        raise HttpError(
            400,
            f'{where} needs exactly one of "inputs" or "instances" (a list of samples); '
            f"got keys {sorted(doc)}",
        )
    return keys[0], doc[keys[0]]


def _jsonlines(objects: list[dict[str, Any]], decoded: Decoded) -> bytes:
    if decoded.lines is None:
        records: list[Any] = objects
    else:
        records, start = [], 0
        for count, grouped in decoded.lines:
            part = objects[start : start + count]
            records.append({"predictions": part} if grouped else part[0])
            start += count
    dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
    return "".join(dumps(record) + "\n" for record in records).encode()


def _csv(output: np.ndarray, signature: ModelSignature) -> bytes:
    """One row per sample: the label first when the model has labels, then the output values
    (the shortest text that reads back as the same number, as in the JSON answers)."""
    rows: list[list[Any]] = output.reshape(len(output), -1).tolist()
    if signature.labels:
        best = output.reshape(len(output), -1).argmax(axis=1).tolist()
        rows = [[signature.labels[i], *row] for row, i in zip(rows, best, strict=True)]
    buffer = io.StringIO()
    # The csv module quotes a label that holds a comma or a quote.
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()
