"""The platform's evaluator on what the export helpers write: a scikit-learn regressor exported
with its ONNX variant is scored by rmse, mae and r2 on the held-out test split, every variant."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import LinearRegression

from serving.evaluate import main
from training.data import write_prepared
from training.export import sklearn as sklearn_export

RNG = np.random.default_rng(0)


def test_an_exported_regressor_is_scored_by_rmse_mae_and_r2_on_the_test_split(tmp_path: Path):
    x = RNG.random((60, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.01 * RNG.standard_normal(60)
    splits = {
        "train": (x[:40], y[:40]),
        "validation": (x[40:50], y[40:50]),
        "test": (x[50:], y[50:]),
    }
    write_prepared(tmp_path / "data", "lines", "regression", [], splits)
    model = LinearRegression().fit(x[:40], y[:40])
    figures = sklearn_export.export(
        model, tmp_path / "model", name="lines", task="regression", validation=(x[40:50], y[40:50])
    )
    assert abs(figures["onnx_r2_delta"]) < 1e-4
    out = tmp_path / "evaluation.json"
    args = ["--model-dir", str(tmp_path / "model"), "--data-dir", str(tmp_path / "data" / "test")]
    assert main([*args, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    metrics = report["metrics"]
    assert set(metrics) == {"rmse", "mae", "r2"}
    assert metrics["rmse"]["value"] < 0.05 and metrics["r2"]["value"] > 0.99
    assert set(report["variants"]) >= {"default"} and len(report["variants"]) >= 1
