"""PyTorch: TorchScript (the server's default), ONNX through torch.export, int8 ONNX.

model.pt          TorchScript, CPU, float32 (scripted, reloaded, then measured)
model.onnx        torch.onnx.export(dynamo=True) with a dynamic batch dimension
model-int8.onnx   onnxruntime dynamic int8 of MatMul/Gemm (replaces torch.ao's deprecated
                  quantize_dynamic, which TorchScript needed and torchao cannot save)
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.export import common

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _quiet() -> Any:
    # TorchScript is the serving contract and torch 2.13 marks it deprecated; the exporter
    # warns about torchvision ops this model never uses. Known, and nothing a user can act on.
    exporter_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        exporter_log.setLevel(level)


def _plain_module(model: nn.Module) -> nn.Module:
    """A CPU float32 copy without DDP or torch.compile wrappers, in eval mode."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            break
        model = inner
    model = copy.deepcopy(model).to("cpu", torch.float32)
    # Module.to's overloads leave out memory_format, which it takes (documented, and parsed).
    return model.to(memory_format=torch.contiguous_format).eval()  # pyright: ignore[reportCallIssue]


def _torchscript(model: nn.Module, example: np.ndarray) -> torch.jit.ScriptModule:
    """Scripted (keeps control flow); traced on an example when the model does not script."""
    try:
        return torch.jit.script(model)
    except Exception as err:  # TorchScript's compiler refuses much valid Python
        log.warning(
            "torch.jit.script failed (%s); tracing the model instead", str(err).splitlines()[0]
        )
        traced = torch.jit.trace(model, torch.from_numpy(example))
        # Tracing a module gives a TopLevelTracedModule (a ScriptModule); trace() is unannotated.
        assert isinstance(traced, torch.jit.ScriptModule)
        return traced


@torch.no_grad()
def _outputs(model: Any, x: np.ndarray, batch: int = 1024) -> list[np.ndarray]:
    chunks = [model(torch.from_numpy(x[i : i + batch])) for i in range(0, len(x), batch)]
    return [torch.cat(chunks).float().numpy()]


def export(
    model: nn.Module,
    model_dir: Path,
    *,
    name: str,
    task: str,
    validation: tuple[np.ndarray, np.ndarray],
    labels: Sequence[str] = (),
    default_format: str = "torchscript",
    quantize: bool = True,
    tolerance: float = common.TOLERANCE,
    int8_tolerance: float = common.INT8_TOLERANCE,
    input_name: str = "input",
    output_name: str = "logits",
) -> dict[str, Any]:
    """Write model.pt, model.onnx (+ model-int8.onnx) and model.json; return checked figures.

    ``validation`` is (inputs, targets) as numpy arrays; the figures hold the TorchScript
    model's validation score and each variant's delta from it.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    x, y = np.ascontiguousarray(validation[0], dtype=np.float32), np.asarray(validation[1])
    labels = common.labels_for(task, labels, y)
    cpu_model = _plain_module(model)
    metric = common.SCORES[task]

    script_path = model_dir / "model.pt"
    with _quiet():
        torch.jit.save(_torchscript(cpu_model, x[:2]), str(script_path))
        served = torch.jit.load(str(script_path), map_location="cpu")
    native = common.score(task, common.predictions(task, _outputs(served, x)), y)
    figures: dict[str, Any] = {
        f"validation_{metric}": native,
        "model_bytes": script_path.stat().st_size,
    }

    onnx_path = model_dir / "model.onnx"
    batch = torch.export.Dim("batch")
    with _quiet():
        torch.onnx.export(
            cpu_model,
            (torch.from_numpy(x[:2]),),
            str(onnx_path),
            dynamo=True,
            dynamic_shapes=({0: batch},),
            input_names=[input_name],
            output_names=[output_name],
            external_data=False,  # one file: the server and the quantiser take a path
            verbose=False,
        )
    figures |= common.check("onnx", task, native, common.onnx_outputs(onnx_path, x), y, tolerance)
    figures["onnx_model_bytes"] = onnx_path.stat().st_size
    variants = {
        "torchscript": {"format": "torchscript", "path": script_path.name},
        "onnx": {"format": "onnx", "path": onnx_path.name},
    }
    int8_path = model_dir / "model-int8.onnx"
    int8_path.unlink(missing_ok=True)  # a stale one from an earlier run must not be served
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
        default="onnx" if default_format == "onnx" else "torchscript",
    )
    return figures
