"""The platform's evaluator (`python -m serving evaluate`) scores each reference model's export
on its held-out test channel, every variant it ships."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from conftest import Harness, Run


def _evaluate(harness: Harness, run: Run, data: Path, out: Path) -> dict:
    result = harness.python(
        "-m", "serving", "evaluate", "--model-dir", str(run.model_dir),
        "--data-dir", str(data / "test"), "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())


def test_digits_logits_are_scored_like_the_torchscript_model(
    harness: Harness, digits_reference: Run, digits_data: Path, held_out, tmp_path: Path
) -> None:
    report = _evaluate(harness, digits_reference, digits_data, tmp_path / "evaluation.json")
    assert set(report["metrics"]) == {"accuracy", "f1_macro", "log_loss"}
    assert report["model"]["name"] == "digits" and report["data"]["samples"] == 360
    # Every exported variant is scored; the ONNX ones agree with the TorchScript default.
    assert {"default", "onnx"} <= set(report["variants"])
    assert report["variants"]["onnx"]["agreement_with_default"] >= 0.99
    x, y = held_out(digits_data)
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)
        logits = torch.jit.load(str(digits_reference.model_dir / "model.pt"))(torch.from_numpy(x))
    expected_loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)).item()
    assert report["metrics"]["accuracy"]["value"] == (logits.argmax(1).numpy() == y).mean()
    assert np.isclose(report["metrics"]["log_loss"]["value"], expected_loss, rtol=1e-3)


def test_breast_cancer_probabilities_are_scored_as_they_are(
    harness: Harness, bc_run: Run, bc_data: Path, tmp_path: Path
) -> None:
    report = _evaluate(harness, bc_run, bc_data, tmp_path / "evaluation.json")
    assert report["metrics"]["f1_macro"]["value"] >= 0.9 and report["data"]["samples"] == 114
