"""The model directory is what the server loads: TorchScript, model.json, metrics.json."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from training.data import load_dataset, prepare_synthetic
from training.export import export_model
from training.metrics import METRIC_DEFINITIONS
from training.model import ImageClassifier

if TYPE_CHECKING:
    from conftest import RunDirs

LOAD_WITHOUT_TRAINING_CODE = """
import sys, torch
for path in sys.argv[1:]:
    logits = torch.jit.load(path, map_location="cpu")(torch.rand(5, 1, 8, 8))
    print(list(logits.shape), logits.dtype)
print("training" in sys.modules)
"""


def test_model_pt_and_int8_run_in_a_process_that_never_imports_the_training_code(
    reference_run: RunDirs, tmp_path: Path
) -> None:
    models = [str(reference_run.model_dir / name) for name in ("model.pt", "model-int8.pt")]
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", LOAD_WITHOUT_TRAINING_CODE, *models],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["[5, 10] torch.float32"] * 2 + ["False"]


def test_model_json_follows_the_serving_contract(reference_run: RunDirs) -> None:
    spec = json.loads((reference_run.model_dir / "model.json").read_text())
    assert spec == {
        "name": "digits",
        "format": "torchscript",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}],
        "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}],
        "labels": [str(d) for d in range(10)],
    }


def test_metrics_json_has_what_a_pipeline_condition_reads(reference_run: RunDirs) -> None:
    metrics = json.loads((reference_run.model_dir / "metrics.json").read_text())
    for key in (
        "accuracy",
        "loss",
        "throughput_samples_per_s",
        "data_sha256",
        "model_bytes",
        "int8_accuracy",
        "int8_accuracy_delta",
        "int8_model_bytes",
    ):
        assert key in metrics, key
    assert metrics["int8_model_bytes"] < metrics["model_bytes"] / 2
    assert abs(metrics["int8_accuracy_delta"]) <= 0.02
    assert metrics["int8_accuracy_delta"] == metrics["int8_accuracy"] - metrics["accuracy"]


def test_the_run_log_feeds_every_sagemaker_metric_definition(reference_run: RunDirs) -> None:
    metrics = json.loads((reference_run.model_dir / "metrics.json").read_text())
    captured = {
        d["Name"]: [
            float(m.group(1))
            for line in reference_run.stdout.splitlines()
            if (m := re.search(d["Regex"], line))
        ]
        for d in METRIC_DEFINITIONS
    }
    assert all(captured.values()), captured
    assert captured["test:accuracy"][-1] == round(metrics["accuracy"], 4)


def test_shapes_and_labels_come_from_the_dataset_not_from_digits(tmp_path: Path) -> None:
    prepare_synthetic(tmp_path / "data", samples=200, image_size=12, channels=3, classes=5)
    data = load_dataset(tmp_path / "data")
    figures = export_model(ImageClassifier(3, 5), data, tmp_path / "model", quantize=False)
    spec = json.loads((tmp_path / "model" / "model.json").read_text())
    assert spec["inputs"][0]["shape"] == [-1, 3, 12, 12]
    assert spec["outputs"][0]["shape"] == [-1, 5] and spec["labels"][4] == "class_4"
    assert not (tmp_path / "model" / "model-int8.pt").exists() and "int8_accuracy" not in figures
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        served = torch.jit.load(str(tmp_path / "model" / "model.pt"))
    assert served(torch.rand(2, 3, 12, 12)).shape == (2, 5)
