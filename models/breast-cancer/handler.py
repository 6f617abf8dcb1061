"""Serving handler (format `python`): the fitted scikit-learn estimator, as trained.

The platform's server imports this file from the exported model directory, calls
``load(model_dir)`` once and then ``predict`` with each batch of the request's input (numpy, shaped
as model.json declares). It returns the outputs model.json declares, by name; the server answers
from the served one (the class probabilities).
"""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np


class Handler:
    """Loads model.joblib; predicts labels and class probabilities."""

    def __init__(self, model_dir: Path):
        # joblib is pickle: it runs code from the file, so load only models this platform wrote.
        self.model = joblib.load(Path(model_dir) / "model.joblib")

    def predict(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        x = np.asarray(batch, dtype=np.float32)
        probabilities = self.model.predict_proba(x).astype(np.float32)
        return {
            "label": probabilities.argmax(axis=1).astype(np.int64),
            "probabilities": probabilities,
        }


def load(model_dir: Path) -> Handler:
    return Handler(model_dir)
