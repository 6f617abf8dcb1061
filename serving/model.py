"""The model object: loads an exported model directory and runs forward passes on numpy arrays.

It knows nothing of HTTP, batching or protocols (kserve's split): adapters hand it a batch as one
numpy array shaped like the model's input and get the output array back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Open Inference Protocol datatype names → numpy dtypes (the ones a tensor model can take).
OIP_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
VARIANT_FILES = {"default": "model.pt", "int8": "model-int8.pt"}


class ModelDirectoryError(ValueError):
    """The model directory is missing a file or its model.json is not what the server needs."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the model as model.json declares it (-1 marks the batch dim)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype:
        return OIP_TO_NUMPY[self.datatype]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample: the declared shape without its leading batch dim."""
        return self.shape[1:]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ModelSignature:
    """What model.json says: name, one input, one output, optional class labels."""

    name: str
    input: TensorSpec
    output: TensorSpec
    labels: tuple[str, ...] = ()
    # The dtype to compute in on a GPU (model.json "preferred_dtype"); the CPU stays float32.
    preferred_dtype: str = "float32"

    @classmethod
    def from_file(cls, path: Path) -> ModelSignature:
        """Read and check model.json; errors name the file, the key and what is allowed."""
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelDirectoryError(
                f"{path}: not found; the model directory needs a model.json"
            ) from None
        except json.JSONDecodeError as exc:
            raise ModelDirectoryError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(doc, dict):
            raise ModelDirectoryError(f"{path}: expected a JSON object at the top level")
        for key in ("name", "inputs", "outputs"):
            if key not in doc:
                raise ModelDirectoryError(f"{path}: missing key {key!r}")
        if doc.get("format", "torchscript") != "torchscript":
            raise ModelDirectoryError(
                f"{path}: format {doc['format']!r} is not served; allowed: 'torchscript'"
            )
        if len(doc["inputs"]) != 1 or len(doc["outputs"]) != 1:
            raise ModelDirectoryError(f"{path}: exactly one input and one output are supported")
        inp = _tensor_spec(path, "inputs[0]", doc["inputs"][0])
        out = _tensor_spec(path, "outputs[0]", doc["outputs"][0])
        labels = tuple(str(label) for label in doc.get("labels", ()))
        if labels and len(out.shape) != 2:
            raise ModelDirectoryError(
                f"{path}: labels need outputs[0] of shape [-1, classes], got {list(out.shape)}"
            )
        if labels and out.shape[-1] != len(labels):
            raise ModelDirectoryError(
                f"{path}: {len(labels)} labels but outputs[0] has {out.shape[-1]} columns"
            )
        preferred = doc.get("preferred_dtype", "float32")
        if preferred not in TORCH_DTYPES:
            raise ModelDirectoryError(
                f"{path}: preferred_dtype {preferred!r} is unknown; "
                f"allowed: {', '.join(TORCH_DTYPES)}"
            )
        return cls(
            name=str(doc["name"]), input=inp, output=out, labels=labels, preferred_dtype=preferred
        )


def _tensor_spec(path: Path, where: str, doc: Any) -> TensorSpec:
    try:
        name, datatype, shape = doc["name"], doc["datatype"], doc["shape"]
    except (TypeError, KeyError) as exc:
        raise ModelDirectoryError(f"{path}: {where} needs name, datatype and shape") from exc
    if datatype not in OIP_TO_NUMPY:
        raise ModelDirectoryError(
            f"{path}: {where}.datatype {datatype!r} is not supported; "
            f"allowed: {', '.join(OIP_TO_NUMPY)}"
        )
    if not shape or shape[0] != -1 or any(int(d) <= 0 for d in shape[1:]):
        raise ModelDirectoryError(
            f"{path}: {where}.shape {shape!r} must start with -1 (the batch dim) "
            "followed by positive sizes"
        )
    return TensorSpec(name=str(name), datatype=datatype, shape=tuple(int(d) for d in shape))


class TorchModel:
    """A TorchScript model on one device, called with and returning numpy arrays."""

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str = "cpu",
        dtype: str = "auto",
        variant: str = "default",
    ) -> None:
        self.model_dir = Path(model_dir)
        self.signature = ModelSignature.from_file(self.model_dir / "model.json")
        if variant not in VARIANT_FILES:
            raise ModelDirectoryError(
                f"model variant {variant!r} is unknown; allowed: {', '.join(VARIANT_FILES)}"
            )
        weights = self.model_dir / VARIANT_FILES[variant]
        if not weights.is_file():
            raise ModelDirectoryError(f"{weights}: not found (model variant {variant!r})")
        self.device = torch.device(device)
        self.compute_dtype = self._pick_dtype(dtype)
        module = torch.jit.load(str(weights), map_location=self.device)
        module.eval()
        if self.compute_dtype != torch.float32 and self.signature.input.dtype.kind == "f":
            module = module.to(self.compute_dtype)
        self.module = module

    def _pick_dtype(self, dtype: str) -> torch.dtype:
        # The exported model is float32; reduced precision only pays off on an accelerator, so
        # "auto" keeps float32 on the CPU and takes model.json's preferred_dtype on a GPU.
        if dtype == "auto":
            dtype = self.signature.preferred_dtype if self.device.type == "cuda" else "float32"
        if dtype not in TORCH_DTYPES:
            allowed = ", ".join(TORCH_DTYPES)
            raise ValueError(f"dtype {dtype!r} is unknown; allowed: auto, {allowed}")
        return TORCH_DTYPES[dtype]

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run one forward pass on a batch shaped like the model's input; returns the output."""
        with torch.inference_mode():
            x = torch.from_numpy(batch)
            if self.device.type != "cpu":
                x = x.to(self.device, non_blocking=True)
            if x.is_floating_point() and x.dtype != self.compute_dtype:
                x = x.to(self.compute_dtype)
            y = self.module(x)
            return y.to(device="cpu", dtype=_torch_dtype(self.signature.output.dtype)).numpy()

    def warm_up(self, max_batch_size: int, rounds: int = 3) -> None:
        """Run the batch sizes the batcher can form so the first real request is not the slow one.

        TorchScript's profiling executor specialises on the shapes it sees in the first calls.
        """
        sizes = sorted({1, *(2**i for i in range(max_batch_size.bit_length())), max_batch_size})
        spec = self.signature.input
        for size in (s for s in sizes if s <= max_batch_size):
            sample = np.zeros((size, *spec.sample_shape), spec.dtype)
            for _ in range(rounds):
                self.predict(sample)


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype)).dtype
