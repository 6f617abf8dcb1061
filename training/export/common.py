"""What every framework's export shares: model.json, the ONNX check, int8 quantisation.

Conversion is a platform step that is checked, not trusted: each variant runs on the validation
split and its score is compared with the native model's. A difference beyond the tolerance
fails the run (ExportError) with the figures, instead of serving a model that answers
differently from the one that was evaluated.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from training.errors import ExportError

MODEL_JSON = "model.json"
TOLERANCE = 0.01  # largest |score delta| of the fp32 ONNX variant vs the native model
INT8_TOLERANCE = 0.02  # the same for the dynamic-int8 variant, which is lossy by design
DATATYPES = {"float32": "FP32", "int64": "INT64", "int32": "INT32", "float64": "FP64"}
SCORES = {"classification": "accuracy", "regression": "r2"}


def spec(name: str, shape: Sequence[int], dtype: str = "float32") -> dict[str, Any]:
    """An Open Inference Protocol tensor spec; -1 is the batch dimension."""
    return {"name": name, "datatype": DATATYPES[dtype], "shape": [-1, *shape]}


def labels_for(task: str, labels: Sequence[str], y: np.ndarray) -> list[str]:
    """The class names given, or "0".."C-1" from the targets when a classifier got none."""
    if labels or task != "classification":
        return list(labels)
    return [str(i) for i in range(int(np.max(y)) + 1)]


def output_specs(task: str, labels: Sequence[str], names: Sequence[str]) -> list[dict[str, Any]]:
    """Classifier outputs [N, classes] (and a label [N] if named); regressors [N, 1]."""
    specs = []
    for name in names:
        if name == "label":
            specs.append({"name": name, "datatype": "INT64", "shape": [-1]})
        elif task == "classification":
            specs.append(spec(name, [len(labels)]))
        else:
            specs.append(spec(name, [1]))
    return specs


def write_model_json(
    model_dir: Path,
    *,
    name: str,
    task: str,
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    labels: Sequence[str],
    variants: Mapping[str, dict[str, str]],
    default: str,
) -> dict[str, Any]:
    """model.json, with the variant ``default`` listed first under the key "default"."""
    ordered = {"default": variants[default], **{k: v for k, v in variants.items() if k != default}}
    document = {
        "name": name,
        "task": task,
        "format": ordered["default"]["format"],
        "inputs": inputs,
        "outputs": outputs,
        "labels": list(labels),
        "variants": ordered,
    }
    (model_dir / MODEL_JSON).write_text(json.dumps(document, indent=2) + "\n")
    return document


def predictions(task: str, outputs: Sequence[np.ndarray]) -> np.ndarray:
    """Class indices (classification) or values (regression) from a model's outputs."""
    if task == "regression":
        return np.asarray(outputs[0], dtype=np.float64).reshape(len(outputs[0]), -1)[:, 0]
    for out in outputs:  # scores [N, classes] (logits or probabilities) win over a label output
        if np.ndim(out) == 2 and np.issubdtype(np.asarray(out).dtype, np.floating):
            return np.asarray(out).argmax(axis=1)
    return np.asarray(outputs[0]).reshape(-1).astype(np.int64)


def score(task: str, predicted: np.ndarray, y: np.ndarray) -> float:
    """Accuracy (classification) or R² (regression) of predictions against targets."""
    if task == "classification":
        return float((predicted == y).mean())
    residual = float(((y - predicted) ** 2).sum())
    total = float(((y - y.mean()) ** 2).sum()) or 1.0
    return 1.0 - residual / total


def onnx_outputs(path: Path, x: np.ndarray, batch: int = 4096) -> list[np.ndarray]:
    """Run an ONNX model on ``x`` with onnxruntime (what the platform's server runs)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = min(4, os.cpu_count() or 1)
    options.log_severity_level = 3  # errors only: shape-inference notes are noise in a job log
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    # run() is typed for every ONNX value (sequences, maps, sparse tensors); the exported graphs
    # have dense tensor outputs only (no ZipMap), which onnxruntime returns as ndarrays.
    chunks = [
        cast("list[np.ndarray]", session.run(None, {name: x[i : i + batch]}))
        for i in range(0, len(x), batch)
    ]
    return [np.concatenate([c[k] for c in chunks]) for k in range(len(chunks[0]))]


def check(
    variant: str,
    task: str,
    native: float,
    outputs: Sequence[np.ndarray],
    y: np.ndarray,
    tolerance: float,
) -> dict[str, float]:
    """Score a variant on the validation split; ExportError if it strays beyond the tolerance."""
    metric = SCORES[task]
    value = score(task, predictions(task, outputs), y)
    delta = value - native
    if abs(delta) > tolerance:
        raise ExportError(
            f"the {variant} export does not answer like the trained model: validation {metric} "
            f"{value:.4f} vs {native:.4f} (delta {delta:+.4f}, tolerance {tolerance}). Fix the "
            f"model or the conversion, or pass a larger tolerance to run.export"
        )
    return {f"{variant}_validation_{metric}": value, f"{variant}_{metric}_delta": delta}


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 (weights int8, activations quantised on the fly) of MatMul/Gemm only.

    Conv stays float: onnxruntime's ConvInteger made a small CNN 5-9x slower on CPU.
    """
    from onnxruntime.quantization import quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared))
        quantize_dynamic(prepared, target, op_types_to_quantize=["MatMul", "Gemm"])


def int8_variant(
    model_dir: Path,
    task: str,
    native: float,
    x: np.ndarray,
    y: np.ndarray,
    tolerance: float,
) -> dict[str, Any]:
    """model-int8.onnx from model.onnx, checked; its figures."""
    path = model_dir / "model-int8.onnx"
    quantize_int8(model_dir / "model.onnx", path)
    figures = check("int8", task, native, onnx_outputs(path, x), y, tolerance)
    return {**figures, "int8_model_bytes": path.stat().st_size}


def rename_io(path: Path, inputs: Sequence[str] = (), outputs: Sequence[str] = ()) -> None:
    """Give an ONNX graph's inputs and outputs the names model.json promises (onnx-ir)."""
    import onnx_ir as ir

    model = ir.load(path)
    for value, name in zip(model.graph.inputs, inputs, strict=False):
        value.name = name
    for value, name in zip(model.graph.outputs, outputs, strict=False):
        value.name = name
    ir.save(model, path)
