"""Where logged values go besides the log: ``metrics.jsonl`` and, when configured, MLflow.

``metrics.jsonl`` (one JSON object per ``run.log`` call, next to ``metrics.json``) is what the
training-curve plot reads. MLflow is used when ``MLFLOW_TRACKING_URI`` is set: parameters once,
metrics per step, the final metrics and the model directory as artifacts. A tracking server
that fails is reported once and then left alone: it must not cost a training run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

JSONL = "metrics.jsonl"


def plain(value: Any) -> Any:
    """A JSON-safe value: NaN and infinities become None (strict readers reject them)."""
    if hasattr(value, "item") and callable(value.item):  # numpy and torch scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


class Tracker:
    """Appends logged values to metrics.jsonl and mirrors them to MLflow."""

    def __init__(self, directory: Path, resume: bool, params: Mapping[str, Any], name: str):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / JSONL
        # A resumed job keeps the steps it logged before the interruption (when the file is
        # still there); a fresh one starts a fresh curve.
        self._file = self.path.open("a" if resume else "w")
        self._mlflow: Any = None
        self._step = 0  # the last step logged: final metrics go there, so they read as latest
        if os.environ.get("MLFLOW_TRACKING_URI"):
            self._start_mlflow(params, name)

    def _start_mlflow(self, params: Mapping[str, Any], name: str) -> None:
        try:
            import mlflow

            mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", name))
            job = os.environ.get("SAGEMAKER_JOB_NAME") or os.environ.get("TRAINING_JOB_NAME")
            mlflow.start_run(run_name=job)
            mlflow.log_params(dict(params))
            self._mlflow = mlflow
        except Exception as err:  # an unreachable server, a bad URI, a missing package
            self._give_up(err)

    def _give_up(self, err: Exception) -> None:
        log.warning("MLflow tracking is off for this run: %s: %s", type(err).__name__, err)
        self._mlflow = None

    def log(self, values: Mapping[str, Any]) -> None:
        record = {"time": round(time.time(), 3), **plain(values)}
        self._file.write(json.dumps(record, allow_nan=False) + "\n")
        self._file.flush()
        if self._mlflow is not None:
            numbers = _numbers(values)
            self._step = int(values.get("step", self._step + 1))
            try:
                self._mlflow.log_metrics(numbers, step=self._step)
            except Exception as err:
                self._give_up(err)

    def finish(self, metrics: Mapping[str, Any], artifacts: Path | None, status: str) -> None:
        """Close the file; log the final metrics and artifacts; end the MLflow run."""
        self._file.close()
        if self._mlflow is None:
            return
        try:
            self._mlflow.log_metrics(_numbers(metrics), step=self._step)
            if artifacts is not None and artifacts.is_dir():
                self._mlflow.log_artifacts(str(artifacts))
            self._mlflow.end_run(status=status)
        except Exception as err:
            self._give_up(err)


def _numbers(values: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in plain(values).items():
        if isinstance(value, int | float) and not isinstance(value, bool) and key != "step":
            out[key] = float(value)
    return out
