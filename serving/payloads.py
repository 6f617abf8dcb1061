"""Turning request bodies into checked numpy batches, and batches back into bytes.

Every check raises `HttpError` with a message that says what was wrong and what the model takes,
so a client can fix its request from the error alone.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from serving.http import HttpError
from serving.model import TensorSpec

# Which numpy kinds a JSON array may hold for each kind the model takes: JSON numbers arrive
# as int64 or float64, and whole numbers are fine for a float input (`1` for `1.0`).
_JSON_KINDS = {"f": "fiu", "i": "iu", "u": "iu", "b": "b"}
_KIND_NAMES = {"f": "numbers", "i": "integers", "u": "integers", "b": "booleans"}


def parse_json(body: bytes) -> Any:
    """Parse a JSON body, or 400 with the position of the syntax error."""
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:
        raise HttpError(400, f"malformed JSON: the body is not UTF-8 ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise HttpError(
            400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        raise HttpError(400, "malformed JSON: nested too deeply") from exc


def array_from_json(data: Any, spec: TensorSpec, where: str) -> np.ndarray:
    """A nested JSON list → an array of the model's dtype, checking what the values are."""
    if not isinstance(data, list):
        raise HttpError(400, f"{where} must be a JSON array, got {type(data).__name__}")
    try:
        array = np.array(data)
    except ValueError as exc:
        # numpy 2 refuses ragged nesting ("inhomogeneous shape ...").
        raise HttpError(400, f"{where} is not a rectangular array: {exc}") from exc
    kinds = _JSON_KINDS[spec.dtype.kind]
    if array.size and array.dtype.kind not in kinds:
        raise HttpError(
            400,
            f"wrong dtype: {where} holds {_describe_kind(array)} but input {spec.name!r} is "
            f"{spec.datatype} and takes {_KIND_NAMES[spec.dtype.kind]}",
        )
    return array.astype(spec.dtype, copy=False)


def array_from_npy(body: bytes, spec: TensorSpec) -> np.ndarray:
    """An `application/x-npy` body → an array; its dtype must be the model's, exactly."""
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise HttpError(400, f"malformed .npy body: {exc}") from exc
    if not isinstance(array, np.ndarray):
        raise HttpError(400, "malformed .npy body: expected one array (not an .npz archive)")
    if array.dtype != spec.dtype:
        raise HttpError(
            400,
            f"wrong dtype: the .npy array is {array.dtype} but input {spec.name!r} is "
            f"{spec.datatype} ({spec.dtype}); convert with array.astype('{spec.dtype}')",
        )
    return np.ascontiguousarray(array)


def check_batch_shape(array: np.ndarray, spec: TensorSpec, where: str) -> np.ndarray:
    """The array must be a batch (at least one sample) of the model's per-sample shape."""
    sample = spec.sample_shape
    if array.ndim != len(sample) + 1 or array.shape[1:] != sample or array.shape[0] == 0:
        raise HttpError(
            400,
            f"wrong shape: {where} has shape {list(array.shape)} but input {spec.name!r} takes "
            f"a batch of samples of shape {list(sample)}, i.e. [N, {', '.join(map(str, sample))}]"
            " with N >= 1",
        )
    return array


def npy_bytes(array: np.ndarray) -> bytes:
    """An array as the bytes of a .npy file."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _describe_kind(array: np.ndarray) -> str:
    return {
        "U": "strings",
        "S": "strings",
        "O": "mixed values or nulls",
        "b": "booleans",
        "f": "floats",
        "i": "integers",
        "u": "integers",
    }.get(array.dtype.kind, str(array.dtype))
