"""benchmarks/gpu_check.py runs end to end on the CPU with --smoke (the GPU run is the same code)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.serving.conftest import REPO, SIGNATURE, with_variants


def test_gpu_check_smoke_runs_training_and_serving_and_reports_ratios(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    # Both served variants from the shared fixtures, so the run need not export ONNX itself.
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    shutil.copy(model_dirs["torchscript"] / "model.pt", model_dir)
    shutil.copy(model_dirs["onnx"] / "model.onnx", model_dir)
    doc = with_variants(SIGNATURE, default=("torchscript", "model.pt"), onnx=("onnx", "model.onnx"))
    (model_dir / "model.json").write_text(json.dumps(doc))
    out = tmp_path / "gpu_check.json"
    command = [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--smoke"]
    command += ["--model-dir", str(model_dir), "--json", str(out)]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "device: cpu" in result.stdout
    assert "training: bare" in result.stdout and "ratio" in result.stdout
    report = json.loads(out.read_text())
    assert report["training"]["bare_images_per_s"] > 0
    assert report["training"]["platform_images_per_s"] > 0
    served = {(run["server"], run["concurrency"]) for run in report["runs"] if not run["failures"]}
    assert served == {(name, c) for name in ("mlplatform", "mlplatform-onnx") for c in (1, 4)}
    assert {row["row"] for row in report["raw"]} >= {"torchscript", "onnxruntime"}
    assert "serving mlplatform-onnx on cpu" in result.stdout
