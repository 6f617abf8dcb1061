"""models/mnist-keras (TensorFlow/Keras): MNIST's IDX files or an offline fallback, SavedModel + ONNX."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort
import pytest

from training.manifest import load_manifest

if TYPE_CHECKING:
    from conftest import Harness, Run

MODEL = Path(__file__).resolve().parents[2] / "models" / "mnist-keras"
RNG = np.random.default_rng(0)


def _idx(path: Path, array: np.ndarray, compress: bool) -> None:
    """Write ``array`` (uint8) in the IDX format MNIST is published in."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    raw = header + array.astype(np.uint8).tobytes()
    path.with_name(path.name + (".gz" if compress else "")).write_bytes(
        gzip.compress(raw) if compress else raw
    )


@pytest.fixture(scope="module")
def mnist_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Small MNIST-format files: gzipped training files, plain test files (both occur)."""
    directory = tmp_path_factory.mktemp("mnist-idx")
    arrays = {
        "train-images-idx3-ubyte": RNG.integers(0, 256, (100, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(100) % 10,
        "t10k-images-idx3-ubyte": RNG.integers(0, 256, (20, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(20) % 10,
    }
    for name, array in arrays.items():
        _idx(directory / name, array, compress=name.startswith("train"))
    return directory, arrays


@pytest.fixture(scope="session")
def keras_data(harness: Harness) -> Path:
    return harness.shared("mnist-keras-data", lambda out: harness.prepare("mnist-keras", out))


@pytest.fixture(scope="session")
def keras_run(harness: Harness, keras_data: Path) -> tuple[subprocess.CompletedProcess, Run]:
    """Two epochs (not the default five), stopped by SIGTERM in the second and resumed: the
    stopped process, and the finished run whose export the tests check."""

    def build(root: Path) -> None:
        args = [*harness.launch_args("mnist-keras", keras_data, root), "--epochs", "2"]
        with subprocess.Popen(
            [sys.executable, *args], cwd=harness.repo, env=harness.env(), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        ) as proc:  # fmt: skip
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("metric: epoch=1 "):
                    proc.send_signal(signal.SIGTERM)
                    break
            rest, _ = proc.communicate(timeout=120)
        (root / "stopped.txt").write_text(f"{proc.returncode}\n{rest}")
        harness.launch("mnist-keras", keras_data, root, "--epochs", "2")

    root = harness.shared("mnist-keras-run", build)
    code, stopped = (root / "stopped.txt").read_text().split("\n", 1)
    return subprocess.CompletedProcess([], int(code), stopped), harness.run_at(root)


def test_a_sigterm_stops_the_fit_and_the_job_resumes_from_the_last_finished_epoch(
    keras_run,
) -> None:
    stopped, run = keras_run
    assert stopped.returncode == 143 and "stopped by signal 15" in stopped.stdout
    assert "metric: epoch=2" not in stopped.stdout, "the cut-short epoch is neither logged nor kept"
    assert run.stdout.split("metric: ", 1)[1].startswith("epoch=2 "), "resumed after epoch 1"
    assert not (run.output_dir / "failure").exists()


def test_prepare_reads_mnists_idx_files_gzipped_or_not(
    harness: Harness, mnist_files, tmp_path: Path
) -> None:
    directory, arrays = mnist_files
    harness.prepare("mnist-keras", tmp_path, "--input", str(directory))
    train = json.loads((tmp_path / "train" / "manifest.json").read_text())
    assert train["name"] == "mnist" and train["sample_shape"] == [28, 28, 1]
    assert train["splits"] == {"train": 90, "validation": 10}
    test_x = np.load(tmp_path / "test" / "test_x.npy")
    np.testing.assert_allclose(test_x[..., 0] * 255.0, arrays["t10k-images-idx3-ubyte"], atol=1e-3)
    np.testing.assert_array_equal(
        np.load(tmp_path / "test" / "test_y.npy"), arrays["t10k-labels-idx1-ubyte"]
    )


def test_prepare_names_the_idx_files_a_directory_lacks(harness: Harness, tmp_path: Path) -> None:
    result = harness.python(
        "-m",
        "training",
        "prepare",
        "--model",
        str(MODEL),
        "--out",
        str(tmp_path / "o"),
        "--input",
        str(tmp_path),
    )
    assert (
        result.returncode == 2
        and "lacks MNIST's IDX files: train-images-idx3-ubyte" in result.stderr
    )


def test_without_the_files_prepare_falls_back_to_offline_digits_at_28x28(keras_data: Path) -> None:
    train = json.loads((keras_data / "train" / "manifest.json").read_text())
    assert train["name"] == "digits-28x28" and train["sample_shape"] == [28, 28, 1]
    x = np.load(keras_data / "train" / "train_x.npy")
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0


def test_the_manifest_trains_five_epochs_and_serves_with_tf_serving_by_default() -> None:
    manifest, _ = load_manifest(MODEL)
    assert manifest.train.hyperparameters["epochs"].default == 5
    assert (manifest.serve.format, manifest.serve.runtime) == (
        "tensorflow-savedmodel",
        "tensorflow-serving",
    )


def test_the_export_is_a_savedmodel_for_tf_serving_with_checked_onnx_variants(keras_run) -> None:
    _, keras_run = keras_run
    spec = keras_run.model_json()
    assert spec["format"] == "tensorflow-savedmodel"
    assert spec["variants"] == {
        "default": {"format": "tensorflow-savedmodel", "path": "saved_model"},
        "onnx": {"format": "onnx", "path": "model.onnx"},
        "int8": {"format": "onnx", "path": "model-int8.onnx"},
    }
    assert spec["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 28, 28, 1]}]
    assert spec["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    # TF Serving's layout: <base path>/<version>/saved_model.pb
    assert (keras_run.model_dir / "saved_model" / "1" / "saved_model.pb").is_file()
    metrics = keras_run.metrics()
    assert (
        abs(metrics["onnx_accuracy_delta"]) <= 0.01 and abs(metrics["int8_accuracy_delta"]) <= 0.02
    )
    assert metrics["hyperparameters"]["epochs"] == 2 and metrics["framework"] == "tensorflow"


def test_the_onnx_variant_answers_the_example_and_scores_on_the_held_out_test_channel(
    keras_run, keras_data: Path, held_out
) -> None:
    _, keras_run = keras_run
    session = ort.InferenceSession(str(keras_run.model_dir / "model.onnx"))
    x, y = held_out(keras_data)
    (probabilities,) = session.run(["probabilities"], {"input": x})
    assert (probabilities.argmax(1) == y).mean() >= 0.8, "two epochs on 1,293 images"
    example = np.array(json.loads((MODEL / "example.json").read_text())["instances"], np.float32)
    (answer,) = session.run(["probabilities"], {"input": example})
    assert answer.shape == (1, 10) and abs(float(answer.sum()) - 1.0) < 1e-4


def test_the_epoch_curve_is_logged_per_epoch_across_the_restart(keras_run) -> None:
    _, keras_run = keras_run
    records = [
        json.loads(line)
        for line in (keras_run.model_dir / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all({"train_loss", "validation_accuracy"} <= set(r) for r in records)
