"""Keras 3 (TensorFlow backend): SavedModel for TF Serving, ONNX and int8 ONNX.

saved_model/1/    model.export(format="tf_saved_model"), TF Serving's <base>/<version>
model.onnx        model.export(format="onnx") (tf2onnx under the hood; its from_keras
                  entry point fails on Keras 3 models, tensorflow-onnx #2448)
model-int8.onnx   onnxruntime dynamic int8 of MatMul/Gemm
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.export import common

SAVED_MODEL = "saved_model"
VERSION = "1"  # TF Serving serves the highest numbered subdirectory of the model's base path


def export(
    model: Any,
    model_dir: Path,
    *,
    name: str,
    task: str,
    validation: tuple[np.ndarray, np.ndarray],
    labels: Sequence[str] = (),
    default_format: str = "tensorflow-savedmodel",
    quantize: bool = True,
    tolerance: float = common.TOLERANCE,
    int8_tolerance: float = common.INT8_TOLERANCE,
    input_name: str = "input",
    output_name: str = "probabilities",
) -> dict[str, Any]:
    """Write saved_model/, model.onnx (+ model-int8.onnx) and model.json; return figures.

    The native score is the reloaded SavedModel's: what TF Serving will run.
    """
    import tensorflow as tf

    model_dir.mkdir(parents=True, exist_ok=True)
    x, y = np.ascontiguousarray(validation[0], dtype=np.float32), np.asarray(validation[1])
    labels = common.labels_for(task, labels, y)
    metric = common.SCORES[task]
    signature = [tf.TensorSpec([None, *x.shape[1:]], tf.float32, name=input_name)]

    saved = model_dir / SAVED_MODEL
    shutil.rmtree(saved, ignore_errors=True)
    model.export(str(saved / VERSION), format="tf_saved_model", verbose=False)
    served = tf.saved_model.load(str(saved / VERSION))
    outputs = [
        np.concatenate([served.serve(x[i : i + 1024]).numpy() for i in range(0, len(x), 1024)])
    ]
    native = common.score(task, common.predictions(task, outputs), y)
    figures: dict[str, Any] = {
        f"validation_{metric}": native,
        "model_bytes": sum(p.stat().st_size for p in saved.rglob("*") if p.is_file()),
    }

    onnx_path = model_dir / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # tf2onnx touches np.object
        model.export(str(onnx_path), format="onnx", input_signature=signature, verbose=False)
    common.rename_io(onnx_path, [input_name], [output_name])
    figures |= common.check("onnx", task, native, common.onnx_outputs(onnx_path, x), y, tolerance)
    figures["onnx_model_bytes"] = onnx_path.stat().st_size
    variants = {
        "tensorflow-savedmodel": {"format": "tensorflow-savedmodel", "path": SAVED_MODEL},
        "onnx": {"format": "onnx", "path": onnx_path.name},
    }
    int8_path = model_dir / "model-int8.onnx"
    int8_path.unlink(missing_ok=True)
    if quantize:
        figures |= common.int8_variant(model_dir, task, native, x, y, int8_tolerance)
        variants["int8"] = {"format": "onnx", "path": int8_path.name}

    common.write_model_json(
        model_dir,
        name=name,
        task=task,
        inputs=[common.spec(input_name, x.shape[1:])],
        outputs=common.output_specs(task, labels, [output_name]),
        labels=labels,
        variants=variants,
        default="onnx" if default_format == "onnx" else "tensorflow-savedmodel",
    )
    return figures
