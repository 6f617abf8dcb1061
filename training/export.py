"""Evaluation on the held-out split, and the model directory that the server loads.

    model.pt         TorchScript, CPU, float32: [N, C, H, W] in 0..1 -> logits [N, classes]
    model-int8.pt    the same with int8 dynamic-quantised Linear layers (optional)
    model.json       name, format, Open Inference Protocol input/output specs, labels
    metrics.json     written by the loop: accuracy, loss, throughput, data hash, int8 delta

The server needs only torch to load these; nothing here is imported by it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from training.data import Dataset, Split


@torch.no_grad()
def evaluate(
    model: nn.Module | torch.jit.ScriptModule,
    split: Split,
    device: torch.device | None = None,
    rank: int = 0,
    world_size: int = 1,
    autocast: contextlib.AbstractContextManager | None = None,
    memory_format: torch.memory_format = torch.contiguous_format,
    batch_size: int = 1024,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over the split; with world_size > 1 each rank scores
    every world_size-th sample and the totals are summed across ranks."""
    device = device or torch.device("cpu")
    was_training = model.training
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
    for chunk in torch.arange(rank, len(split), world_size).split(batch_size):
        images, labels = split[chunk]
        images = images.to(device, memory_format=memory_format, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        with autocast or contextlib.nullcontext():
            logits = model(images)
        totals[0] += F.cross_entropy(logits.float(), labels, reduction="sum")
        totals[1] += (logits.argmax(dim=1) == labels).sum()
        totals[2] += len(labels)
    if world_size > 1:
        torch.distributed.all_reduce(totals)
    model.train(was_training)
    loss_sum, correct, count = totals.tolist()
    return loss_sum / count, correct / count


def model_spec(dataset: Dataset, fmt: str = "torchscript") -> dict:
    """model.json: shapes and labels come from the dataset the model was trained on."""
    return {
        "name": dataset.name,
        "format": fmt,
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, *dataset.image_shape]}],
        "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, dataset.num_classes]}],
        "labels": dataset.labels,
    }


def _save_torchscript(model: nn.Module, path: Path) -> torch.jit.ScriptModule:
    """Script and save the model, then load it back: what is measured is what is served."""
    # The serving contract is TorchScript, which torch 2.13 marks deprecated; the warnings
    # are known and say nothing about this model, so they stay out of the training log.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(model), str(path))
        return torch.jit.load(str(path), map_location="cpu")


def _quantize(model: nn.Module) -> nn.Module:
    # torch.ao's dynamic quantisation is deprecated in favour of torchao, whose tensor
    # subclasses TorchScript cannot save; the serving contract needs TorchScript.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def export_model(model: nn.Module, dataset: Dataset, model_dir: Path, quantize: bool) -> dict:
    """Write model.pt (+ model-int8.pt) and model.json; return accuracy/loss/size figures.

    The figures are measured on the files reloaded from disk: exactly what the server runs.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    cpu_model = copy.deepcopy(model).to("cpu", torch.float32)
    cpu_model = cpu_model.to(memory_format=torch.contiguous_format).eval()

    path = model_dir / "model.pt"
    loss, accuracy = evaluate(_save_torchscript(cpu_model, path), dataset.test)
    figures: dict[str, float | int] = {
        "accuracy": accuracy,
        "loss": loss,
        "model_bytes": path.stat().st_size,
    }
    int8_path = model_dir / "model-int8.pt"
    int8_path.unlink(missing_ok=True)  # a stale one from an earlier run must not be served
    if quantize:
        int8 = _save_torchscript(_quantize(cpu_model), int8_path)
        int8_loss, int8_accuracy = evaluate(int8, dataset.test)
        figures.update(
            int8_accuracy=int8_accuracy,
            int8_loss=int8_loss,
            int8_accuracy_delta=int8_accuracy - accuracy,
            int8_model_bytes=int8_path.stat().st_size,
        )
    (model_dir / "model.json").write_text(json.dumps(model_spec(dataset), indent=2) + "\n")
    return figures
