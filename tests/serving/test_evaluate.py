"""`python -m serving evaluate`: every variant scored on the test channel, independently."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from serving.evaluate import main
from tests.serving.conftest import REPO, with_variants, write_model_dir

# Four samples whose logits are 5 x one-hot: the model predicts 0, 1, 2, 1; the truth is
# 0, 1, 2, 0, so accuracy is 3/4 and the f1 of the classes is 2/3, 2/3 and 1.
X = 5 * np.eye(3, dtype=np.float32)[[0, 1, 2, 1]]
Y = np.array([0, 1, 2, 0])
THREE = {
    "name": "three",
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 3]}],
    "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 3]}],
    "labels": ["a", "b", "c"],
}


class Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.0


def identity_onnx(path: Path) -> None:
    """The same model as a one-node ONNX graph (written directly: exporting takes seconds)."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["logits"])], "id", [x], [y])
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def write_test_channel(path: Path, x: np.ndarray, y: np.ndarray, **extra: object) -> Path:
    """A prepared test channel as `python -m training prepare` writes one."""
    path.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, array in (("test_x.npy", x), ("test_y.npy", y)):
        np.save(path / name, array)
        files[name] = hashlib.sha256((path / name).read_bytes()).hexdigest()
    combined = "".join(f"{n}:{files[n]}\n" for n in sorted(files))
    manifest = {
        "name": "three",
        "files": files,
        "sha256": hashlib.sha256(combined.encode()).hexdigest(),
    }
    (path / "manifest.json").write_text(json.dumps({**manifest, **extra}))
    return path


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The identity model as torchscript (default) and onnx, with a metrics.json that lies."""
    model_dir = write_model_dir(tmp_path_factory.mktemp("three"), Identity(), THREE)
    identity_onnx(model_dir / "model.onnx")
    doc = with_variants(THREE, default=("torchscript", "model.pt"), onnx=("onnx", "model.onnx"))
    (model_dir / "model.json").write_text(json.dumps(doc))
    (model_dir / "metrics.json").write_text(json.dumps({"accuracy": 1.0, "loss": 0.0}))
    return model_dir


def evaluate(model_dir: Path, data_dir: Path, out: Path, *more: str) -> int:
    return main(
        ["--model-dir", str(model_dir), "--data-dir", str(data_dir), "--out", str(out), *more]
    )


def test_every_variant_is_scored_on_the_test_split_and_metrics_json_is_ignored(
    three: Path, tmp_path: Path
) -> None:
    data = write_test_channel(tmp_path / "test", X, Y, labels=["a", "b", "c"])
    out = tmp_path / "out" / "evaluation.json"
    assert evaluate(three, data, out) == 0
    report = json.loads(out.read_text())
    softmax = np.exp(X) / np.exp(X).sum(1, keepdims=True)
    want = {
        "accuracy": 0.75,
        "f1_macro": (2 / 3 + 2 / 3 + 1) / 3,
        "log_loss": -np.log(softmax[np.arange(4), Y]).mean(),
    }
    assert report["metrics"].keys() == want.keys()
    for name, value in want.items():
        assert report["metrics"][name]["value"] == pytest.approx(value, rel=1e-6)
    assert list(report["variants"]) == ["default", "onnx"]
    assert report["variants"]["onnx"]["format"] == "onnx"
    assert report["variants"]["onnx"]["metrics"]["accuracy"]["value"] == 0.75
    assert report["variants"]["onnx"]["agreement_with_default"] == 1.0
    assert report["data"]["samples"] == 4
    assert report["data"]["sha256"] == json.loads((data / "manifest.json").read_text())["sha256"]
    assert report["model"] == {"name": "three", "task": "classification"}


def test_probabilities_are_scored_as_they_are(tmp_path: Path) -> None:
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]], np.float32)
    model_dir = write_model_dir(tmp_path / "model", Identity(), THREE)
    data = write_test_channel(tmp_path / "test", probabilities, np.array([0, 2]))
    assert evaluate(model_dir, data, tmp_path / "e.json") == 0
    log_loss = json.loads((tmp_path / "e.json").read_text())["metrics"]["log_loss"]["value"]
    assert log_loss == pytest.approx(-(np.log(0.7) + np.log(0.1)) / 2, rel=1e-5)


class PixelSum(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=1, keepdim=True)


def test_a_regression_gets_rmse_mae_and_r2(tmp_path: Path) -> None:
    signature = {
        "name": "sum",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 2]}],
        "outputs": [{"name": "value", "datatype": "FP32", "shape": [-1, 1]}],
    }
    model_dir = write_model_dir(tmp_path / "model", PixelSum(), signature)
    x = np.array([[1, 1], [2, 2], [3, 3], [4, 4]], np.float32)  # predicts 2, 4, 6, 8
    y = np.array([2.0, 4.0, 6.0, 10.0])
    data = write_test_channel(tmp_path / "test", x, y)
    assert evaluate(model_dir, data, tmp_path / "e.json") == 0
    report = json.loads((tmp_path / "e.json").read_text())
    metrics = {name: m["value"] for name, m in report["metrics"].items()}
    assert metrics == pytest.approx({"rmse": 1.0, "mae": 0.5, "r2": 1 - 4 / 35})
    assert report["model"]["task"] == "regression"


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda d: (d / "manifest.json").unlink(), "manifest.json: not found"),
        (lambda d: np.save(d / "test_y.npy", np.array([0, 0, 0, 0])), "test_y.npy: sha256"),
        (lambda d: (d / "test_x.npy").unlink(), "test_x.npy: listed in"),
    ],
    ids=["no-manifest", "changed-file", "missing-file"],
)
def test_bad_test_data_is_one_line_and_exit_status_2(
    three: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], spoil, message: str
) -> None:
    data = write_test_channel(tmp_path / "test", X, Y)
    spoil(data)
    out = tmp_path / "evaluation.json"
    assert evaluate(three, data, out) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ")
    assert message in line
    assert not out.exists()


def test_labels_that_differ_from_the_test_datas_are_refused(
    three: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_test_channel(tmp_path / "test", X, Y, labels=["x", "y", "z"])
    assert evaluate(three, data, tmp_path / "e.json") == 2
    assert "differ from the test data's" in capsys.readouterr().err


def test_the_command_line_names_an_unknown_variant_and_exits_2(three: Path, tmp_path: Path) -> None:
    data = write_test_channel(tmp_path / "test", X, Y)
    command = [sys.executable, "-m", "serving", "evaluate", "--model-dir", str(three)]
    command += ["--data-dir", str(data), "--out", str(tmp_path / "e.json"), "--variants", "int8"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("variant 'int8' is not declared; allowed: default, onnx")
    assert "Traceback" not in result.stderr
