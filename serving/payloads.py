"""Turning request bodies into checked numpy batches, and batches back into bytes.

Every check raises `HttpError` with a message that says what was wrong and what the model takes,
so a client can fix its request from the error alone.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import numpy as np

from serving.http import HttpError
from serving.signature import TensorSpec

log = logging.getLogger("serving")

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
    if array.size and spec.dtype.kind in "iu":
        check_int_range(array, spec, where)
    return array.astype(spec.dtype, copy=False)


def check_int_range(array: np.ndarray, spec: TensorSpec, where: str) -> None:
    """400 when an integer does not fit the input's dtype (astype would wrap 300 to INT8's 44)."""
    info = np.iinfo(spec.dtype)
    low, high = array.min(), array.max()
    if low < info.min or high > info.max:
        raise HttpError(
            400,
            f"out of range: {where} holds {low if low < info.min else high}, but input "
            f"{spec.name!r} is {spec.datatype} ({info.min} to {info.max})",
        )


def check_finite(batch: np.ndarray) -> None:
    """400 naming the first sample that holds NaN or Infinity (a float beyond the input dtype's
    range became Infinity when it was converted)."""
    if batch.dtype.kind not in "fc" or np.isfinite(batch).all():
        return
    index = tuple(int(i) for i in np.argwhere(~np.isfinite(batch))[0])
    raise HttpError(
        400,
        f"sample {index[0]} holds a non-finite value ({batch[index]}) at position "
        f"{list(index[1:])}: NaN, Infinity or a number beyond {batch.dtype}'s range. The model "
        "takes finite numbers (model.json allow_non_finite, or --allow-non-finite, admits them)",
    )


def check_finite_output(output: np.ndarray) -> None:
    """500 naming the first sample whose output is NaN or Infinity: JSON cannot carry them."""
    if output.dtype.kind not in "fc" or np.isfinite(output).all():
        return
    sample = int(np.argwhere(~np.isfinite(output))[0][0])
    log.warning("the model returned a non-finite value for sample %d of a request", sample)
    raise HttpError(
        500,
        f"the model returned a non-finite value (NaN or Infinity) for sample {sample}, which "
        "JSON and CSV cannot carry; ask for Accept: application/x-npy to get the raw output",
    )


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
