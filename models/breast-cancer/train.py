"""Train a scikit-learn classifier on the breast cancer data; export ONNX and a python handler.

python train.py --channel-train DATA/train --estimator gradient_boosting
"""

from __future__ import annotations

from pathlib import Path

from sklearn.base import ClassifierMixin
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, log_loss
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from training import runtime
from training.data import load_prepared

HANDLER = Path(__file__).resolve().with_name("handler.py")


def build(hp: dict) -> ClassifierMixin:
    """The estimator the hyperparameters name."""
    if hp["estimator"] == "gradient_boosting":
        return GradientBoostingClassifier(
            n_estimators=hp["n_estimators"],
            learning_rate=hp["learning_rate"],
            max_depth=hp["max_depth"],
            random_state=hp["seed"],
        )
    # Scaling matters to a linear model: the features range from 1e-3 to 1e3.
    return make_pipeline(StandardScaler(), LogisticRegression(C=hp["c"], max_iter=hp["max_iter"]))


def main() -> None:
    with runtime.start() as run:
        data = load_prepared(run.channel("train"))
        train, validation = data["train"], data["validation"]
        model = build(run.hp).fit(train.x, train.y)

        probabilities = model.predict_proba(validation.x)
        predicted = probabilities.argmax(axis=1)
        metrics = {
            "validation_accuracy": accuracy_score(validation.y, predicted),
            "validation_f1_macro": f1_score(validation.y, predicted, average="macro"),
            "validation_log_loss": log_loss(validation.y, probabilities),
        }
        run.log(**metrics)
        run.export(
            model,
            validation=(validation.x, validation.y),
            labels=data.labels,
            handler=HANDLER,
        )
        run.finish(**metrics, train_samples=len(train), data_sha256=data.sha256)


if __name__ == "__main__":
    main()
