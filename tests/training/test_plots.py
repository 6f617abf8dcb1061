"""The training curve drawn from metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.errors import UserError
from training.plots import curves, training_curve

RECORDS = [
    {"epoch": 1, "step": 10, "train_loss": 2.0},
    {"epoch": 1, "step": 20, "train_loss": 1.0},
    {"epoch": 1, "step": 20, "validation_loss": 1.2, "validation_accuracy": 0.6},
    {"epoch": 2, "step": 30, "train_loss": 0.5, "lr": 0.001},
    {"epoch": 2, "step": 40, "validation_loss": 0.7, "validation_accuracy": 0.8},
    {"step": 41, "samples_per_s": 100.0},
]


def _jsonl(tmp_path: Path, records: list[dict]) -> Path:
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_values_are_averaged_per_epoch_and_only_losses_and_accuracies_are_drawn(
    tmp_path: Path,
) -> None:
    assert curves(_jsonl(tmp_path, RECORDS)) == {
        "train_loss": {1: 1.5, 2: 0.5},
        "validation_loss": {1: 1.2, 2: 0.7},
        "validation_accuracy": {1: 0.6, 2: 0.8},
    }


def test_the_curve_is_a_png_file(tmp_path: Path) -> None:
    png = training_curve(_jsonl(tmp_path, RECORDS), tmp_path / "plots" / "curve.png", "digits")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_a_log_without_epochs_says_there_is_nothing_to_draw(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no per-epoch loss or accuracy"):
        training_curve(_jsonl(tmp_path, [{"step": 1, "train_loss": 1.0}]), tmp_path / "c.png")
