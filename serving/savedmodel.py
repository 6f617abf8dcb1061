"""Format `tensorflow-savedmodel`: a TensorFlow SavedModel (saved_model/ or its version folder).

The AWS TensorFlow Serving container serves these on SageMaker; this loader lets the platform's
evaluator score the native SavedModel next to its ONNX variants, and the platform server serve it
where TF Serving is not used (a laptop, a CPU pool). TensorFlow is imported only here.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from serving.model import LoadOptions, check_output, warm_up_sizes, zeros_batch
from serving.signature import ModelDirectoryError, ModelSignature, Variant


def _model_folder(path: Path) -> Path:
    """TF Serving's layout keeps the SavedModel in a numbered version folder: the newest."""
    if (path / "saved_model.pb").is_file():
        return path
    versions = sorted(
        (p for p in path.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
    )
    if not versions or not (versions[-1] / "saved_model.pb").is_file():
        raise ModelDirectoryError(f"{path}: no saved_model.pb (nor in a numbered version folder)")
    return versions[-1]


class SavedModel:
    """A SavedModel's serving signature, called with and returning numpy arrays."""

    def __init__(
        self, model_dir: Path, signature: ModelSignature, variant: Variant, options: LoadOptions
    ) -> None:
        try:
            import tensorflow as tf
        except ImportError:
            raise ModelDirectoryError(
                f"variant {variant.name!r} is format 'tensorflow-savedmodel', which needs the "
                "tensorflow package in the serving image"
            ) from None
        if options.threads > 0:
            # Settable only before TensorFlow starts its runtime; once started, it stays.
            with contextlib.suppress(RuntimeError):
                tf.config.threading.set_intra_op_parallelism_threads(options.threads)
        folder = _model_folder(model_dir / variant.path)
        loaded = tf.saved_model.load(str(folder))
        serve = loaded.signatures.get("serving_default")
        if serve is None:
            raise ModelDirectoryError(f"{folder}: the SavedModel has no serving_default signature")
        self._tf, self._serve = tf, serve
        self._input_name = next(iter(serve.structured_input_signature[1]))
        self.signature = signature
        self.variant = variant
        self.device = "cpu" if options.device == "cpu" else "auto"

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run one pass; returns the served output (by name, else the first) as model.json's
        dtype."""
        outputs = self._serve(**{self._input_name: self._tf.constant(batch)})
        served = outputs.get(self.signature.output.name)
        if served is None:
            served = next(iter(outputs.values()))
        return served.numpy().astype(self.signature.output.dtype, copy=False)

    def warm_up(self, max_batch_size: int) -> None:
        """One pass per common batch size: TensorFlow traces each new shape once."""
        check_output(self, zeros_batch(self.signature, 1))
        for size in warm_up_sizes(max_batch_size):
            self.predict(zeros_batch(self.signature, size))
