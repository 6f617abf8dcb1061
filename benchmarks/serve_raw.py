"""The serving benchmark's model and its in-process rows: forward passes with no server around.

`export_digits_model` writes the trainer's architecture as a model directory with torchscript
(default) and onnx variants; `raw_rows` times model(x) in TorchScript, session.run in
onnxruntime, and our ONNX loader's predict, at the batch sizes the server forms.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from serving.config import ServerConfig
from serving.model import load_model

# Batch size → timed iterations (fewer for the slower big batches).
TORCH_BATCHES = {1: 2000, 16: 500, 32: 300, 64: 200}
DIGITS_MODEL = Path(__file__).resolve().parents[1] / "models" / "digits" / "model.py"
ONNX_BATCHES = {1: 2000, 32: 500}
DIGITS_JSON = {
    "name": "digits",
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}],
    "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}],
    "labels": [str(i) for i in range(10)],
}


def export_digits_model(model_dir: Path, onnx: bool = True) -> Path:
    """The trainer's architecture for 1x8x8 inputs and 10 classes: model.pt, model.onnx (when
    `onnx`) and a model.json declaring them as the default and onnx variants."""
    # The reference model's own module, loaded like any model's code (models/ is no package).
    spec = importlib.util.spec_from_file_location("digits_model", DIGITS_MODEL)
    assert spec and spec.loader, DIGITS_MODEL
    digits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(digits)
    ImageClassifier = digits.ImageClassifier

    torch.manual_seed(0)
    model_dir.mkdir(parents=True, exist_ok=True)
    module = ImageClassifier(1, 10).eval()
    variants = {"default": {"format": "torchscript", "path": "model.pt"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(module).save(str(model_dir / "model.pt"))
        if onnx:
            export_onnx(module, model_dir / "model.onnx", (1, 8, 8))
            variants["onnx"] = {"format": "onnx", "path": "model.onnx"}
    (model_dir / "model.json").write_text(json.dumps({**DIGITS_JSON, "variants": variants}))
    return model_dir


def export_onnx(module: torch.nn.Module, path: Path, sample_shape: tuple[int, ...]) -> Path:
    """torch's dynamo exporter, dynamic batch, weights inside the one file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (torch.zeros(2, *sample_shape),),
            str(path),
            dynamo=True,
            verbose=False,
            external_data=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
    return path


def timed(calls: dict[str, Callable[[], object]], iterations: int) -> dict[str, dict]:
    """p50/p99 of each call, the calls alternating so load drift hits them alike."""
    for call in calls.values():
        for _ in range(min(50, iterations)):
            call()
    times: dict[str, list[int]] = {name: [] for name in calls}
    for _ in range(iterations):
        for name, call in calls.items():
            started = time.perf_counter_ns()
            call()
            times[name].append(time.perf_counter_ns() - started)
    out = {}
    for name, samples in times.items():
        samples.sort()
        out[name] = {
            "p50_ms": statistics.median(samples) / 1e6,
            "p99_ms": samples[int(len(samples) * 0.99)] / 1e6,
        }
    return out


def raw_rows(model_dir: Path, threads: int, device: str = "cpu", scale: float = 1.0) -> list[dict]:
    """Rows {row, batch, p50_ms, p99_ms}: torchscript, onnxruntime, mlplatform-onnx-loader;
    `scale` shrinks the iteration counts (smoke runs)."""
    torch.set_num_threads(threads)
    rows = []
    module = torch.jit.load(str(model_dir / "model.pt"), map_location=device)
    for batch, iterations in TORCH_BATCHES.items():
        x = torch.from_numpy(np.random.default_rng(0).random((batch, 1, 8, 8), np.float32))
        x = x.to(device)

        def forward(x: torch.Tensor = x) -> None:
            with torch.inference_mode():
                module(x).cpu()

        figures = timed({"torchscript": forward}, max(5, int(iterations * scale)))
        rows.append({"row": "torchscript", "batch": batch, **figures["torchscript"]})
        print_raw(rows[-1])
    if not (model_dir / "model.onnx").exists():
        return rows
    import onnxruntime as ort

    ours = load_model(model_dir, "onnx", ServerConfig(device=device, threads=threads))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    providers = ours.session.get_providers()  # type: ignore[attr-defined]
    session = ort.InferenceSession(str(model_dir / "model.onnx"), options, providers=providers)
    name = session.get_inputs()[0].name
    for batch, iterations in ONNX_BATCHES.items():
        x = np.random.default_rng(0).random((batch, 1, 8, 8), np.float32)
        figures = timed(
            {
                "onnxruntime": lambda x=x: session.run(None, {name: x}),
                "mlplatform-onnx-loader": lambda x=x: ours.predict(x),
            },
            max(5, int(iterations * scale)),
        )
        for row, figure in figures.items():
            rows.append({"row": row, "batch": batch, **figure})
            print_raw(rows[-1])
    return rows


def print_raw(row: dict) -> None:
    print(
        f"raw {row['row']:<22} batch {row['batch']:<3} p50 {row['p50_ms']:.3f} ms   "
        f"p99 {row['p99_ms']:.3f} ms",
        flush=True,
    )
