"""models/breast-cancer (scikit-learn): ONNX by default, the joblib model behind a python handler."""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

if TYPE_CHECKING:
    from conftest import Harness, Run

MODEL = Path(__file__).resolve().parents[2] / "models" / "breast-cancer"


def test_the_default_pipeline_scores_on_the_held_out_test_channel_through_onnx(
    bc_run: Run, bc_data: Path, held_out
) -> None:
    x, y = held_out(bc_data)
    session = ort.InferenceSession(str(bc_run.model_dir / "model.onnx"))
    label, probabilities = session.run(["label", "probabilities"], {"input": x})
    assert (label == y).mean() >= 0.95
    np.testing.assert_array_equal(label, probabilities.argmax(1))


def test_model_json_serves_onnx_with_a_python_variant_and_tensor_outputs(bc_run: Run) -> None:
    spec = bc_run.model_json()
    assert spec["format"] == "onnx" and spec["labels"] == ["malignant", "benign"]
    assert spec["variants"] == {
        "default": {"format": "onnx", "path": "model.onnx"},
        "python": {"format": "python", "path": "handler.py"},
    }
    assert spec["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 30]}]
    assert [o["name"] for o in spec["outputs"]] == ["label", "probabilities"]
    metrics = bc_run.metrics()
    assert metrics["onnx_accuracy_delta"] == 0.0 and metrics["python_accuracy_delta"] == 0.0
    assert metrics["validation_f1_macro"] >= 0.9


def test_the_python_handler_loads_from_the_exported_directory_and_answers_the_example(
    bc_run: Run,
) -> None:
    spec = importlib.util.spec_from_file_location("bc_handler", bc_run.model_dir / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    example = np.array(json.loads((MODEL / "example.json").read_text())["instances"], np.float32)
    answer = module.Handler(bc_run.model_dir).predict({"input": example})
    assert answer["label"].tolist() == [0], "the example is the data set's first row, malignant"
    assert answer["probabilities"].shape == (1, 2)


def test_a_gradient_boosting_run_exports_the_same_way(
    harness: Harness, bc_data: Path, tmp_path: Path
) -> None:
    run = harness.launch(
        "breast-cancer",
        bc_data,
        tmp_path,
        "--estimator",
        "gradient_boosting",
        "--n_estimators",
        "20",
    )
    assert run.metrics()["onnx_accuracy_delta"] == 0.0
    assert run.metrics()["hyperparameters"]["estimator"] == "gradient_boosting"


def test_the_model_code_imports_no_deep_learning_framework() -> None:
    for path in MODEL.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            assert not [n for n in names if n.split(".")[0] in ("torch", "tensorflow", "keras")], (
                path
            )
