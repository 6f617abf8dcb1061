"""Export helpers: the model directory the server reads, with each conversion checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from training.errors import ExportError, UserError
from training.export import common, export_for
from training.export import sklearn as sklearn_export
from training.export import torch as torch_export

RNG = np.random.default_rng(0)
# Three well-separated blobs of 2x4x4 "images": any sane model and conversion agree on them.
CENTRES = RNG.normal(0, 3, (3, 2, 4, 4)).astype(np.float32)
Y = RNG.integers(0, 3, 120)
X = (CENTRES[Y] + RNG.normal(0, 0.3, (120, 2, 4, 4))).astype(np.float32)


@pytest.fixture(scope="module")
def torch_model_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        loss = nn.functional.cross_entropy(model(torch.from_numpy(X)), torch.from_numpy(Y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    directory = tmp_path_factory.mktemp("torch-model")
    figures = export_for(model)(
        model,
        directory,
        name="blobs",
        task="classification",
        validation=(X, Y),
        labels=["a", "b", "c"],
    )
    return directory, figures


def test_a_torch_model_gets_torchscript_onnx_and_int8_variants_in_model_json(
    torch_model_dir,
) -> None:
    directory, _ = torch_model_dir
    assert json.loads((directory / "model.json").read_text()) == {
        "name": "blobs",
        "task": "classification",
        "format": "torchscript",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 2, 4, 4]}],
        "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 3]}],
        "labels": ["a", "b", "c"],
        "variants": {
            "default": {"format": "torchscript", "path": "model.pt"},
            "onnx": {"format": "onnx", "path": "model.onnx"},
            "int8": {"format": "onnx", "path": "model-int8.onnx"},
        },
    }


def test_each_variant_is_scored_on_the_validation_split_against_the_native_model(
    torch_model_dir,
) -> None:
    _, figures = torch_model_dir
    assert figures["validation_accuracy"] == 1.0
    assert figures["onnx_accuracy_delta"] == 0.0 and figures["int8_accuracy_delta"] == 0.0
    assert figures["onnx_validation_accuracy"] == 1.0 and figures["int8_model_bytes"] > 0


LOAD_WITHOUT_TRAINING_CODE = """
import sys, numpy as np, onnxruntime as ort, torch
x = np.random.rand(5, 2, 4, 4).astype(np.float32)
print(list(torch.jit.load(sys.argv[1] + "/model.pt")(torch.from_numpy(x)).shape))
for name in ("model.onnx", "model-int8.onnx"):
    session = ort.InferenceSession(sys.argv[1] + "/" + name)
    print(name, session.run(["logits"], {"input": x})[0].shape)
print("training" in sys.modules)
"""


def test_the_exported_files_run_in_a_process_that_never_imports_the_training_code(
    torch_model_dir, tmp_path: Path
) -> None:
    directory, _ = torch_model_dir
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", LOAD_WITHOUT_TRAINING_CODE, str(directory)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:4] == [
        "[5, 3]",
        "model.onnx (5, 3)",
        "model-int8.onnx (5, 3)",
        "False",
    ]


def test_onnx_as_the_torch_default_and_no_int8_when_not_asked(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(32, 3))
    torch_export.export(
        model,
        tmp_path,
        name="m",
        task="classification",
        validation=(X, Y),
        default_format="onnx",
        quantize=False,
    )
    spec = json.loads((tmp_path / "model.json").read_text())
    assert spec["format"] == "onnx" and list(spec["variants"]) == ["default", "torchscript"]
    assert (
        spec["variants"]["default"]["path"] == "model.onnx"
        and not (tmp_path / "model-int8.onnx").exists()
    )


def test_a_scikit_learn_model_gets_tensor_outputs_and_a_checked_python_variant(
    tmp_path: Path,
) -> None:
    x, y = X.reshape(120, -1), Y
    model = LogisticRegression(max_iter=500).fit(x, y)
    handler = tmp_path / "handler.py"
    handler.write_text(
        "import joblib, numpy as np\n"
        "class Handler:\n"
        "    def __init__(self, model_dir):\n"
        "        self.model = joblib.load(model_dir / 'model.joblib')\n"
        "    def predict(self, batch):\n"
        "        p = self.model.predict_proba(batch).astype(np.float32)\n"
        "        return {'label': p.argmax(1), 'probabilities': p}\n"
        "def load(model_dir):\n"
        "    return Handler(model_dir)\n"
    )
    out = tmp_path / "model"
    figures = export_for(model)(
        model,
        out,
        name="m",
        task="classification",
        validation=(x, y),
        labels=["a", "b", "c"],
        handler=handler,
    )
    spec = json.loads((out / "model.json").read_text())
    assert spec["format"] == "onnx" and spec["variants"]["python"] == {
        "format": "python",
        "path": "handler.py",
    }
    assert spec["outputs"] == [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
    ]
    assert figures["onnx_accuracy_delta"] == 0.0 and figures["python_accuracy_delta"] == 0.0
    assert {p.name for p in out.iterdir()} == {
        "model.json",
        "model.onnx",
        "handler.py",
        "model.joblib",
    }
    # What the export checked is what the platform's server loads: both variants, one answer.
    from serving.model import load_model

    options = SimpleNamespace(device="cpu", threads=1, dtype="auto")
    served = [
        load_model(out, v, options).predict(x.astype(np.float32)) for v in ("default", "python")
    ]
    np.testing.assert_allclose(served[0], served[1], atol=1e-5)
    assert served[0].shape == (120, 3)


def test_python_as_the_default_format_needs_a_handler(tmp_path: Path) -> None:
    model = LogisticRegression().fit(X.reshape(120, -1), Y)
    with pytest.raises(ExportError, match=r"needs handler=<handler\.py>"):
        sklearn_export.export(
            model,
            tmp_path,
            name="m",
            task="classification",
            validation=(X.reshape(120, -1), Y),
            default_format="python",
        )


def test_a_conversion_that_changes_answers_beyond_the_tolerance_fails_the_run() -> None:
    y = np.array([0, 1, 1, 0])
    wrong = [np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])]  # one of four differs
    with pytest.raises(ExportError) as err:
        common.check("onnx", "classification", native=1.0, outputs=wrong, y=y, tolerance=0.01)
    assert str(err.value) == (
        "the onnx export does not answer like the trained model: validation accuracy 0.7500 vs "
        "1.0000 (delta -0.2500, tolerance 0.01). Fix the model or the conversion, or pass a "
        "larger tolerance to run.export"
    )
    assert (
        common.check("onnx", "classification", 1.0, wrong, y, tolerance=0.3)["onnx_accuracy_delta"]
        == -0.25
    )


def test_regression_variants_are_compared_by_r2() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    figures = common.check(
        "onnx", "regression", native=1.0, outputs=[y[:, None]], y=y, tolerance=0.01
    )
    assert figures == {"onnx_validation_r2": 1.0, "onnx_r2_delta": 0.0}


def test_a_model_of_no_known_framework_is_refused_by_name() -> None:
    with pytest.raises(UserError, match=r"no export helper for builtins\.dict"):
        export_for({})


def test_an_xgboost_classifier_converts_through_onnxmltools_with_tensor_outputs(
    tmp_path: Path,
) -> None:
    from xgboost import XGBClassifier

    x = X.reshape(120, -1)
    model = XGBClassifier(n_estimators=10, max_depth=2).fit(x, Y)
    figures = export_for(model)(
        model, tmp_path, name="m", task="classification", validation=(x, Y), labels=["a", "b", "c"]
    )
    assert figures["onnx_accuracy_delta"] == 0.0
    session = ort.InferenceSession(str(tmp_path / "model.onnx"))
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]


class NotScriptable(nn.Module):
    """Valid PyTorch that TorchScript's compiler refuses (a numpy call in forward)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(32, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) * float(np.sqrt(4.0))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_a_model_torchscript_cannot_compile_is_traced_instead(tmp_path: Path, caplog) -> None:
    torch_export.export(
        NotScriptable(),
        tmp_path,
        name="m",
        task="classification",
        validation=(X, Y),
        quantize=False,
    )
    assert "torch.jit.script failed" in caplog.text and "tracing the model instead" in caplog.text
    loaded = torch.jit.load(str(tmp_path / "model.pt"))
    assert loaded(torch.from_numpy(X[:4])).shape == (4, 3)
    assert json.loads((tmp_path / "model.json").read_text())["labels"] == ["0", "1", "2"]
