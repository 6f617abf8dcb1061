"""scikit-learn and XGBoost: ONNX (the default), a `python` handler variant, optional int8.

model.onnx        skl2onnx with zipmap off: outputs `label` [N] and `probabilities` [N, C]
                  (classifiers) or `variable` [N, 1] (regressors). XGBoost models, alone or
                  inside a Pipeline, convert through onnxmltools' converter registered here.
handler.py        the model's serving handler (format `python`) and what it loads:
model.joblib      the fitted estimator, saved with joblib (pickle: trust it like code)
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.errors import ExportError
from training.export import common

OPSET = 21  # onnxruntime 1.32 runs it; skl2onnx 1.20 is tested up to 22
HANDLER = "handler.py"
NATIVE = "model.joblib"


def _register_xgboost() -> None:
    """Teach skl2onnx XGBoost's estimators (its documented recipe), if xgboost is installed."""
    try:
        from xgboost import XGBClassifier, XGBRegressor
    except ImportError:
        return
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    update_registered_converter(
        XGBClassifier, "XGBoostXGBClassifier", calculate_linear_classifier_output_shapes,
        convert_xgboost, options=options,
    )  # fmt: skip
    update_registered_converter(
        XGBRegressor, "XGBoostXGBRegressor", calculate_linear_regressor_output_shapes,
        convert_xgboost,
    )  # fmt: skip


def to_onnx(model: Any, features: int, task: str, input_name: str) -> Any:
    """The ONNX model of a fitted estimator (tensors out, no ZipMap: OIP v2 needs tensors)."""
    from skl2onnx import to_onnx as convert
    from skl2onnx.common.data_types import FloatTensorType

    _register_xgboost()
    options = {"zipmap": False} if task == "classification" else None
    return convert(
        model,
        # skl2onnx annotates initial_types as (name, shape) pairs, yet documents and expects
        # (name, data type) pairs like this one.
        initial_types=[(input_name, FloatTensorType([None, features]))],  # pyright: ignore[reportArgumentType]
        options=options,
        # XGBoost's converter emits ai.onnx.ml 5, which skl2onnx refuses beyond 3.
        target_opset={"": OPSET, "ai.onnx.ml": 3},
    )


def _handler_outputs(model_dir: Path, x: np.ndarray, input_name: str) -> list[np.ndarray]:
    """Load handler.py from the exported directory as the server does (`load(model_dir)`, then
    `predict(batch)`) and return its outputs in model.json's order."""
    spec = importlib.util.spec_from_file_location("exported_handler", model_dir / HANDLER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    outputs = module.load(model_dir).predict(x)
    if not isinstance(outputs, dict):
        return [np.asarray(outputs)]
    return [np.asarray(v) for v in outputs.values()]


def export(
    model: Any,
    model_dir: Path,
    *,
    name: str,
    task: str,
    validation: tuple[np.ndarray, np.ndarray],
    labels: Sequence[str] = (),
    default_format: str = "onnx",
    handler: Path | None = None,
    quantize: bool = False,
    tolerance: float = common.TOLERANCE,
    int8_tolerance: float = common.INT8_TOLERANCE,
    input_name: str = "input",
) -> dict[str, Any]:
    """Write model.onnx (+ handler.py and model.joblib, + model-int8.onnx) and model.json.

    ``handler`` is the model's handler.py in the server's `python` format: a module-level
    ``load(model_dir)`` whose object's ``predict(batch)`` returns the outputs as a dict of arrays
    named like model.json's (or the served output alone).
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    x, y = np.ascontiguousarray(validation[0], dtype=np.float32), np.asarray(validation[1])
    labels = common.labels_for(task, labels, y)
    metric = common.SCORES[task]
    native_out = [model.predict_proba(x)] if task == "classification" else [model.predict(x)]
    native = common.score(task, common.predictions(task, native_out), y)
    figures: dict[str, Any] = {f"validation_{metric}": native}

    onnx_path = model_dir / "model.onnx"
    onnx_path.write_bytes(to_onnx(model, x.shape[1], task, input_name).SerializeToString())
    figures |= common.check("onnx", task, native, common.onnx_outputs(onnx_path, x), y, tolerance)
    figures["onnx_model_bytes"] = onnx_path.stat().st_size
    variants = {"onnx": {"format": "onnx", "path": onnx_path.name}}

    for stale in (HANDLER, NATIVE, "model-int8.onnx"):
        (model_dir / stale).unlink(missing_ok=True)
    if handler is not None:
        import joblib

        if not handler.is_file():
            raise ExportError(f"handler {handler} does not exist (the `python` variant needs it)")
        joblib.dump(model, model_dir / NATIVE)
        shutil.copyfile(handler, model_dir / HANDLER)
        outputs = _handler_outputs(model_dir, x, input_name)
        figures |= common.check("python", task, native, outputs, y, tolerance)
        figures["python_model_bytes"] = (model_dir / NATIVE).stat().st_size
        variants["python"] = {"format": "python", "path": HANDLER}
    elif default_format == "python":
        raise ExportError("serve.format is python, so run.export needs handler=<handler.py>")
    if quantize:
        figures |= common.int8_variant(model_dir, task, native, x, y, int8_tolerance)
        variants["int8"] = {"format": "onnx", "path": "model-int8.onnx"}

    names = ["label", "probabilities"] if task == "classification" else ["variable"]
    common.write_model_json(
        model_dir,
        name=name,
        task=task,
        inputs=[common.spec(input_name, x.shape[1:])],
        outputs=common.output_specs(task, labels, names),
        labels=labels,
        variants=variants,
        default="python" if default_format == "python" else "onnx",
    )
    return figures
