"""Format `onnx`: an onnxruntime session (model.onnx, model-int8.onnx).

The CUDA execution provider is used when the device asks for a GPU (or `auto` finds one through
onnxruntime-gpu), the CPU provider otherwise; `threads` sets the intra-op pool like torch's.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import cast

import numpy as np

from serving.model import LoadOptions, check_output, warm_up_sizes, zeros_batch
from serving.signature import ModelDirectoryError, ModelSignature, Variant

log = logging.getLogger("serving")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


class OnnxModel:
    """An ONNX model in onnxruntime, called with and returning numpy arrays."""

    def __init__(
        self, model_dir: Path, signature: ModelSignature, variant: Variant, options: LoadOptions
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelDirectoryError(
                f"variant {variant.name!r} is format 'onnx', which needs the onnxruntime "
                "package (onnxruntime-gpu in GPU images) in the serving image"
            ) from None
        self.signature = signature
        self.variant = variant
        if options.dtype not in ("auto", "float32"):
            raise ModelDirectoryError(
                f"--dtype {options.dtype} applies to torchscript variants; variant "
                f"{variant.name!r} is onnx, whose precision is fixed when it is exported"
            )
        session_options = ort.SessionOptions()
        if options.threads > 0:
            session_options.intra_op_num_threads = options.threads
        # One pass at a time (the batcher's single worker): parallelism lives inside each op.
        session_options.inter_op_num_threads = 1
        providers = _providers(options.device, ort.get_available_providers(), variant)
        if providers[0] != CPU:
            # The CUDA and cuDNN libraries of a torch image live in its nvidia-* wheels, off the
            # loader's path; onnxruntime finds them there only when asked to (or after torch).
            ort.preload_dlls()
        path = model_dir / variant.path
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=session_options, providers=providers
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelDirectoryError(f"{path}: onnxruntime cannot load it: {exc}") from exc
        used = self.session.get_providers()
        if options.device.startswith("cuda") and CUDA not in used:
            raise ModelDirectoryError(
                f"--device {options.device}: onnxruntime could not start its CUDA provider "
                f"(providers in use: {', '.join(used)})"
            )
        self.device = "cuda" if CUDA in used else "cpu"
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise ModelDirectoryError(
                f"{path}: the graph takes {len(inputs)} inputs; the server feeds exactly one"
            )
        # The graph's own names, whatever the exporter called them; model.json's names are
        # the ones clients see. A graph with several outputs returns them in model.json's
        # order: the served one is taken by position.
        declared = len(signature.outputs) or 1
        if len(outputs) != declared:
            raise ModelDirectoryError(
                f"{path}: the graph has {len(outputs)} outputs but {signature.source} declares "
                f"{declared}"
            )
        self._input_name = inputs[0].name
        self._output_names = [outputs[signature.output_index].name]
        self._output_dtype = signature.output.dtype

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run one pass on a batch shaped like the model's input; returns the served output."""
        (output,) = self.session.run(self._output_names, {self._input_name: batch})
        # run() is typed for every ONNX value (sequences, maps, sparse tensors); a served graph's
        # output is a dense tensor, which onnxruntime returns as an ndarray.
        output = cast(np.ndarray, output)
        if output.dtype != self._output_dtype:
            output = output.astype(self._output_dtype)
        return output

    def warm_up(self, max_batch_size: int) -> None:
        """One pass per common batch size: onnxruntime sizes its memory arena on first sight."""
        check_output(self, zeros_batch(self.signature, 1))
        for size in warm_up_sizes(max_batch_size):
            self.predict(zeros_batch(self.signature, size))


def _providers(
    device: str, available: list[str], variant: Variant
) -> list[str | tuple[str, dict[str, int]]]:
    if device == "cpu":
        return [CPU]
    if device.startswith("cuda") and CUDA not in available:
        raise ModelDirectoryError(
            f"--device {device}: variant {variant.name!r} is onnx and this onnxruntime has no "
            f"CUDA provider (available: {', '.join(available)}); install onnxruntime-gpu"
        )
    if CUDA in available:
        # onnxruntime falls back to the CPU provider by itself when no GPU answers.
        index = int(device.partition(":")[2] or 0) if device.startswith("cuda") else 0
        return [(CUDA, {"device_id": index}), CPU]
    return [CPU]
