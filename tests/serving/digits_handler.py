"""A `python`-format handler for the tests: the Digits network in numpy, kserve.Model-shaped.

Copied into a model directory as handler.py with its weights.npz beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class DigitsHandler:
    """Flatten → Linear(64, 32) → ReLU → Linear(32, 10), with the weights of a torch Digits."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.w1, self.b1 = weights["w1"], weights["b1"]
        self.w2, self.b2 = weights["w2"], weights["b2"]

    def preprocess(self, batch: np.ndarray) -> np.ndarray:
        return batch.reshape(len(batch), -1)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x @ self.w1.T + self.b1, 0.0) @ self.w2.T + self.b2

    def postprocess(self, y: np.ndarray) -> np.ndarray:
        return y.astype(np.float32)


def load(model_dir: Path) -> DigitsHandler:
    with np.load(Path(model_dir) / "weights.npz", allow_pickle=False) as weights:
        return DigitsHandler({name: weights[name] for name in weights.files})
