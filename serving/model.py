"""The model object: one variant of a model directory, loaded by its format, called with numpy.

It knows nothing of HTTP, batching or protocols (kserve's split): adapters hand it a batch as one
numpy array shaped like the model's input and get the output array back. Each format has its
loader module (`torchscript`, `onnx_runtime`, `handler`), imported only when a variant needs it,
so an ONNX or Python model never pays for importing torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import numpy as np

from serving.signature import FORMATS, ModelDirectoryError, ModelSignature, Variant

# format → "module:class"; the class is built as cls(model_dir, signature, variant, options).
LOADERS = {
    "torchscript": "serving.torchscript:TorchModel",
    "onnx": "serving.onnx_runtime:OnnxModel",
    "python": "serving.handler:HandlerModel",
    "tensorflow-savedmodel": "serving.savedmodel:SavedModel",
}
assert set(LOADERS) == set(FORMATS)


class Model(Protocol):
    """What the server and the evaluator need from a loaded variant."""

    signature: ModelSignature
    variant: Variant
    device: str  # where it runs, in words, for the log

    def predict(self, batch: np.ndarray) -> np.ndarray: ...

    def warm_up(self, max_batch_size: int) -> None: ...


class LoadOptions(Protocol):
    """The runtime settings a loader honours (ServerConfig has them all).

    Read-only members: loaders only read them, and the frozen dataclasses that carry them
    (ServerConfig, the evaluator's Options) cannot be written.
    """

    @property
    def device(self) -> str: ...

    @property
    def threads(self) -> int: ...

    @property
    def dtype(self) -> str: ...


def load_model(model_dir: Path, variant: str, options: LoadOptions) -> Model:
    """Load `variant` of the model directory with the loader its format names."""
    model_dir = Path(model_dir)
    signature = ModelSignature.from_file(model_dir / "model.json")
    chosen = signature.variant(variant)
    artifact = model_dir / chosen.path
    if not artifact.exists():
        raise ModelDirectoryError(
            f"{artifact}: not found (variant {chosen.name!r}, format {chosen.format!r}, "
            f"declared in {signature.source})"
        )
    module_name, _, class_name = LOADERS[chosen.format].partition(":")
    loader = getattr(importlib.import_module(module_name), class_name)
    return loader(model_dir, signature, chosen, options)


def warm_up_sizes(max_batch_size: int) -> list[int]:
    """The batch sizes the batcher forms most: powers of two up to the maximum, and it."""
    sizes = {1, *(2**i for i in range(max_batch_size.bit_length())), max_batch_size}
    return sorted(s for s in sizes if s <= max_batch_size)


def check_output(model: Model, sample_batch: np.ndarray) -> None:
    """Run one batch and check the output against model.json, so a mismatch fails at load."""
    output = model.predict(sample_batch)
    spec = model.signature.output
    if output.shape != (len(sample_batch), *spec.sample_shape):
        raise ModelDirectoryError(
            f"variant {model.variant.name!r} ({model.variant.path}) returned shape "
            f"{list(output.shape)} for a batch of {len(sample_batch)}, but "
            f"{model.signature.source} declares outputs[0].shape {list(spec.shape)}"
        )


def zeros_batch(signature: ModelSignature, size: int) -> np.ndarray:
    spec = signature.input
    return np.zeros((size, *spec.sample_shape), spec.dtype)
