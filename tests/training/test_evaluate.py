"""The evaluator's regression metrics, on a model exported by the scikit-learn helper."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from training.data import write_prepared
from training.errors import UserError
from training.evaluate import evaluate, main
from training.export import sklearn as sklearn_export

RNG = np.random.default_rng(0)


def test_a_regressor_is_scored_by_rmse_mae_and_r2_on_the_test_split(tmp_path: Path) -> None:
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
    args = [
        "--model-dir",
        str(tmp_path / "model"),
        "--test-channel",
        str(tmp_path / "data" / "test"),
    ]
    assert main([*args, "--out", str(out)]) == 0
    metrics = json.loads(out.read_text())["metrics"]
    assert set(metrics) == {"rmse", "mae", "r2"}
    assert metrics["rmse"]["value"] < 0.05 and metrics["r2"]["value"] > 0.99


def test_a_model_directory_without_an_onnx_variant_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text(
        json.dumps({"variants": {"default": {"format": "python"}}})
    )
    with pytest.raises(UserError, match="lists no ONNX variant to evaluate"):
        evaluate(tmp_path, tmp_path)
