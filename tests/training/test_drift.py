"""Drift: a baseline from the training split, checked against SageMaker data-capture JSON lines."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from training import drift
from training.data import write_prepared


def capture_line(body: object, content_type: str = "application/json", b64: bool = False) -> str:
    """One record as SageMaker data capture writes it."""
    text = body if isinstance(body, str) else json.dumps(body)
    data = base64.b64encode(text.encode()).decode() if b64 else text
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {
                    "observedContentType": content_type,
                    "mode": "INPUT",
                    "data": data,
                    "encoding": "BASE64" if b64 else "JSON",
                },
                "endpointOutput": {
                    "observedContentType": "application/json",
                    "mode": "OUTPUT",
                    "data": "{}",
                    "encoding": "JSON",
                },
            },
            "eventMetadata": {"eventId": "e", "inferenceTime": "2026-11-30T10:00:00Z"},
            "eventVersion": "0",
        }
    )


@pytest.fixture
def tabular() -> np.ndarray:
    return np.random.default_rng(0).normal(0.0, 1.0, size=(3000, 4)).astype(np.float32)


def test_the_same_distribution_does_not_drift(tabular: np.ndarray):
    reference = drift.baseline(tabular)
    fresh = np.random.default_rng(1).normal(0.0, 1.0, size=(500, 4))
    report = drift.check(reference, fresh)
    assert report.drifted == [] and report.score == 0.0


def test_a_shifted_feature_drifts_and_only_that_one(tabular: np.ndarray):
    reference = drift.baseline(tabular)
    shifted = np.random.default_rng(1).normal(0.0, 1.0, size=(500, 4))
    shifted[:, 2] += 1.5
    report = drift.check(reference, shifted)
    assert report.drifted == ["x2"] and report.score == pytest.approx(0.25)
    assert report.threshold == pytest.approx(drift.ALPHA / 4), "Bonferroni over the features"


def test_images_are_compared_by_summary_statistics():
    images = np.random.default_rng(0).random((1000, 1, 8, 8))
    reference = drift.baseline(images)
    assert list(reference["features"]) == ["mean", "std", "q10", "q50", "q90"]
    darker = np.random.default_rng(1).random((300, 1, 8, 8)) * 0.5
    assert "mean" in drift.check(reference, darker).drifted


def test_captured_json_csv_jsonlines_and_base64_bodies_are_read():
    lines = [
        capture_line({"instances": [[1, 2], [3, 4]]}),
        capture_line({"inputs": [[5, 6]]}, b64=True),
        capture_line("7,8\n9,10", content_type="text/csv"),
        capture_line('{"instances": [[11, 12]]}\n[13, 14]', content_type="application/jsonlines"),
        capture_line(
            {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 2], "data": [15, 16]}]}
        ),
    ]
    x = drift.captured_inputs(lines)
    assert x.tolist() == [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]


def test_a_shape_mismatch_and_an_empty_window_are_clear_errors(tabular: np.ndarray):
    reference = drift.baseline(tabular)
    with pytest.raises(drift.DriftError, match=r"shape \[3\].*baseline \[4\]"):
        drift.check(reference, np.zeros((10, 3)))
    with pytest.raises(drift.DriftError, match="no captured requests"):
        drift.captured_inputs([])


def test_the_command_line_builds_a_baseline_and_checks_a_capture_folder(tmp_path: Path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    write_prepared(
        tmp_path / "data",
        name="toy",
        task="classification",
        labels=["no", "yes"],
        splits={
            "train": (x[:300], y[:300]),
            "validation": (x[300:350], y[300:350]),
            "test": (x[350:], y[350:]),
        },
    )
    run = [sys.executable, "-m", "training.drift"]
    base = subprocess.run(
        [
            *run,
            "baseline",
            "--data-dir",
            str(tmp_path / "data" / "train"),
            "--out",
            str(tmp_path / "b.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert base.returncode == 0, base.stderr
    capture = tmp_path / "capture" / "2026" / "11" / "30"
    capture.mkdir(parents=True)
    drifted = rng.normal(size=(200, 3)) + np.array([0.0, 0.0, 2.0])
    (capture / "a.jsonl").write_text(
        "\n".join(
            capture_line({"instances": drifted[i : i + 10].tolist()}) for i in range(0, 200, 10)
        )
    )
    result = subprocess.run(
        [
            *run,
            "check",
            "--baseline",
            str(tmp_path / "b.json"),
            "--capture",
            str(tmp_path / "capture"),
            "--out",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["drifted"] == ["x2"] and report["samples"] == 200
    assert "drift score 0.333" in result.stdout
    missing = subprocess.run(
        [*run, "check", "--baseline", str(tmp_path / "nope.json"), "--capture", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == drift.EXIT_ERROR and "Traceback" not in missing.stderr
