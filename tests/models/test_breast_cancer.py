"""models/breast-cancer (scikit-learn): ONNX by default, the joblib model behind a python handler."""

from __future__ import annotations

import ast
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


def test_the_platform_server_loads_both_variants_and_answers_from_the_probabilities(
    bc_run: Run,
) -> None:
    # The export declares two outputs (label, probabilities); the server, SageMaker's endpoint
    # included, answers from the served one: the class probabilities the labels name.
    from types import SimpleNamespace

    from serving.model import load_model

    options = SimpleNamespace(device="cpu", threads=1, dtype="auto")
    example = np.array(json.loads((MODEL / "example.json").read_text())["instances"], np.float32)
    answers = {}
    for variant in ("default", "python"):
        model = load_model(bc_run.model_dir, variant, options)
        assert model.signature.output.name == "probabilities"
        answers[variant] = model.predict(example)
        assert answers[variant].shape == (1, 2)
        assert answers[variant].argmax(1).tolist() == [0], "the data set's first row: malignant"
    np.testing.assert_allclose(answers["default"], answers["python"], atol=1e-5)


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
