"""The platform's evaluator: scores an exported model on the test channel, which training never reads.

    python -m training evaluate --model-dir MODEL --test-channel DATA/test --out evaluation.json

It runs the model's ONNX variant with onnxruntime (every export helper writes one), so one
evaluator scores PyTorch, Keras, scikit-learn and XGBoost models alike, and writes the task's
metrics (``EVALUATOR_METRICS``; model.yaml's ``objective.metric`` is one of them) in the shape a
SageMaker Pipelines property file is read with: ``{"metrics": {"accuracy": {"value": 0.97}}}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from training.data import load_prepared
from training.errors import UserError
from training.export import common
from training.manifest import EVALUATOR_METRICS


def onnx_variant(model_dir: Path) -> tuple[dict, Path]:
    """model.json and the path of its ONNX variant (the default one if that is ONNX)."""
    spec = json.loads((model_dir / common.MODEL_JSON).read_text())
    variants = spec.get("variants", {})
    for key in ("onnx", "default"):
        if variants.get(key, {}).get("format") == "onnx":
            return spec, model_dir / variants[key]["path"]
    raise UserError(f"{model_dir / common.MODEL_JSON} lists no ONNX variant to evaluate")


def _probabilities(scores: np.ndarray) -> np.ndarray:
    """Rows that are already probabilities stay; logits go through a softmax."""
    if scores.min() >= 0 and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3):
        return scores / scores.sum(axis=1, keepdims=True)  # float32 rounding, for log_loss
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def evaluate(model_dir: Path, test_channel: Path) -> dict[str, float]:
    """The task's metrics of the exported model on the channel's test split."""
    from sklearn import metrics

    spec, path = onnx_variant(model_dir)
    test = load_prepared(test_channel)["test"]
    outputs = common.onnx_outputs(path, test.x)
    if spec["task"] == "regression":
        predicted = common.predictions("regression", outputs)
        found = {
            "rmse": float(np.sqrt(metrics.mean_squared_error(test.y, predicted))),
            "mae": float(metrics.mean_absolute_error(test.y, predicted)),
            "r2": float(metrics.r2_score(test.y, predicted)),
        }
    else:
        scores = next(o for o in outputs if o.ndim == 2 and np.issubdtype(o.dtype, np.floating))
        probabilities = _probabilities(scores.astype(np.float64))
        predicted = probabilities.argmax(axis=1)
        found = {
            "accuracy": float(metrics.accuracy_score(test.y, predicted)),
            "f1_macro": float(metrics.f1_score(test.y, predicted, average="macro")),
            "log_loss": float(
                metrics.log_loss(test.y, probabilities, labels=range(probabilities.shape[1]))
            ),
        }
    assert set(found) == set(EVALUATOR_METRICS[spec["task"]])  # one list, kept in step
    return found


def main(argv: list[str]) -> int:
    """``python -m training evaluate``: write evaluation.json; 1 with the reason if it cannot."""
    parser = argparse.ArgumentParser(prog="python -m training evaluate", description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True, help="an exported model")
    parser.add_argument("--test-channel", type=Path, required=True, help="prepared `test` channel")
    parser.add_argument("--out", type=Path, required=True, help="evaluation.json to write")
    args = parser.parse_args(argv)
    try:
        found = evaluate(args.model_dir, args.test_channel)
    except UserError as err:
        print(f"error: {err}")
        return 1
    document = {
        "metrics": {name: {"value": value} for name, value in found.items()},
        "model": json.loads((args.model_dir / common.MODEL_JSON).read_text())["name"],
        "samples": len(load_prepared(args.test_channel)["test"]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(" ".join(f"{k}={v:.4f}" for k, v in found.items()))
    return 0
