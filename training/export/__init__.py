"""Export helpers: the model directory the server and the evaluator read.

    model.json        name, task, format (the default variant's), inputs, outputs, labels,
                      variants {"default": {format, path}, "onnx": …, "int8": …}
    model.pt | saved_model/ | model.onnx     the default variant's artifact
    model.onnx, model-int8.onnx              ONNX and dynamic-int8 ONNX variants
    handler.py + model.joblib                a `python` variant (scikit-learn)

One module per framework (``torch``, ``keras``, ``sklearn``, which also takes XGBoost); each
converts to ONNX with the framework's maintained converter and checks the conversion on the
validation split (``common.check``). ``export_for`` picks the module from the model's class, so
``run.export(model, ...)`` works for any of them without importing the others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from training.errors import UserError

# The root package of a model's class -> the helper module that exports it.
_HELPERS = {
    "torch": "torch",
    "keras": "keras",
    "tensorflow": "keras",
    "tf_keras": "keras",
    "sklearn": "sklearn",
    "xgboost": "sklearn",
}


def export_for(model: Any) -> Callable[..., dict[str, Any]]:
    """The ``export`` function of the helper for ``model``'s framework."""
    import importlib

    for cls in type(model).__mro__:
        root = cls.__module__.split(".")[0]
        if root in _HELPERS:
            return importlib.import_module(f"training.export.{_HELPERS[root]}").export
    raise UserError(
        f"no export helper for {type(model).__module__}.{type(model).__name__}; the helpers take "
        "torch.nn.Module, keras.Model and scikit-learn/XGBoost estimators"
    )
