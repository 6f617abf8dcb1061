"""What a run prints: metric log lines, the regexes that read them, and a terminal progress bar.

Every metric line looks like ``metric: epoch=3 step=66 train_loss=0.1234 lr=0.0027``: one
prefix, then space-separated ``name=value`` pairs. SageMaker scrapes the container log with the
MetricDefinitions a model declares in model.yaml (``train.metrics``, made by ``metric_regex``).
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

PREFIX = "metric:"
_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def metric_regex(key: str) -> str:
    """The SageMaker regex that captures ``key``'s value from a metric line."""
    # "metric:" then anything then " key=": the leading space keeps "loss" from matching
    # inside "train_loss", using only regex syntax that SageMaker's metric parser accepts.
    return rf"{PREFIX}.* {key}={_NUMBER}"


# The conventional keys' definitions. Models declare their own in model.yaml; infra/ reads
# these until it takes them from the manifest (Train.metric_definitions).
METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": "train:loss", "Regex": metric_regex("train_loss")},
    {"Name": "train:learning_rate", "Regex": metric_regex("lr")},
    {"Name": "train:samples_per_second", "Regex": metric_regex("samples_per_s")},
    {"Name": "train:step_time_ms", "Regex": metric_regex("step_time_ms")},
    {"Name": "test:loss", "Regex": metric_regex("test_loss")},
    {"Name": "test:accuracy", "Regex": metric_regex("test_accuracy")},
]


def format_metrics(**values: float | int | str) -> str:
    """One metric line; floats get 4 significant digits, which the regexes above capture."""
    parts = []
    for name, value in values.items():
        if isinstance(value, float) and math.isfinite(value):
            text = f"{value:.4g}" if abs(value) < 1e4 else f"{value:.1f}"
        else:
            text = str(value)
        parts.append(f"{name}={text}")
    return f"{PREFIX} " + " ".join(parts)


class ProgressBar:
    """A one-line bar on a terminal; silent when output goes to a log (SageMaker, kubectl logs)."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, enabled: bool | None = None):
        self.total, self.stream = total, stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self._last = 0.0

    def update(self, done: int, note: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        # Redrawing more than ~10 times a second costs time and shows nothing new.
        if now - self._last < 0.1 and done < self.total:
            return
        self._last = now
        width = 30
        filled = width * done // max(self.total, 1)
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} {note}")
        self.stream.flush()

    def clear(self) -> None:
        """Erase the bar so that a log line can be printed in its place."""
        if self.enabled:
            self.stream.write("\r\033[K")
            self._last = 0.0

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
