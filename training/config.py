"""Hyperparameters: one typed dataclass, parsed from strings (SageMaker sends only strings)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import NoReturn

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Added by SageMaker, not by the user: SDK settings, and the tuner's objective metric name.
RESERVED_PREFIXES = ("sagemaker_", "_")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class UserError(ValueError):
    """A mistake in a job's inputs that its message alone explains: no traceback needed."""


class HyperparameterError(UserError):
    """A hyperparameter that is unknown or has a value of the wrong kind."""


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run; the defaults train digits to >= 95% in seconds on a CPU."""

    epochs: int = 8
    batch_size: int = 64  # global: split evenly across ranks
    lr: float = 3e-3  # peak AdamW learning rate, cosine-decayed to lr / 10
    warmup_steps: int = 20
    weight_decay: float = 1e-2
    width: int = 32  # channels of the first conv layer
    seed: int = 0
    precision: str = "auto"  # auto: bf16 on GPUs that have it, else fp16 on GPU, fp32 on CPU
    channels_last: bool = True
    compile: bool = False  # torch.compile: pays off on GPUs for long runs, costs minutes to start
    num_workers: int = 0  # loader processes; the prepared data is in memory already
    log_interval: int = 10  # steps between metric lines
    checkpoint_interval: int = 200  # steps between checkpoints (0: only at epoch end)
    keep_checkpoints: int = 3
    quantize: bool = True  # also export an int8 dynamic-quantised model

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "width", "log_interval", "keep_checkpoints")
        non_negative = ("warmup_steps", "num_workers", "checkpoint_interval", "seed")
        for name in positive:
            if getattr(self, name) < 1:
                _fail(name, getattr(self, name), "an integer >= 1")
        for name in non_negative:
            if getattr(self, name) < 0:
                _fail(name, getattr(self, name), "an integer >= 0")
        if not 0 < self.lr < 1:
            _fail("lr", self.lr, "a number between 0 and 1, e.g. 0.003")
        if not 0 <= self.weight_decay < 1:
            _fail("weight_decay", self.weight_decay, "a number in [0, 1)")
        if self.precision not in PRECISIONS:
            _fail("precision", self.precision, f"one of {', '.join(PRECISIONS)}")
        if self.keep_checkpoints < 2:
            # One spare is what lets a corrupt newest checkpoint fall back to the previous one.
            _fail("keep_checkpoints", self.keep_checkpoints, "an integer >= 2")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _fail(name: str, value: object, allowed: str, source: str = "") -> NoReturn:
    where = f" (from {source})" if source else ""
    raise HyperparameterError(f"hyperparameter '{name}'{where}: got {value!r}, want {allowed}")


def _convert(name: str, kind: type, raw: object, source: str) -> object:
    text = str(raw).strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        # The SageMaker Python SDK JSON-encodes framework estimators' values: "\"bf16\"".
        with contextlib.suppress(json.JSONDecodeError):
            text = str(json.loads(text))
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        _fail(name, raw, "true or false", source)
    try:
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        _fail(name, raw, f"{'an integer' if kind is int else 'a number'}", source)
    return text


def parse_config(values: Mapping[str, object], source: str = "") -> TrainConfig:
    """Build a TrainConfig from string values; names may use '-' or '_'.

    Keys SageMaker adds itself (``sagemaker_*``, ``_tuning_objective_metric``) are ignored; any other unknown key is an error
    that lists the known ones, because a misspelt hyperparameter silently ignored costs a run.
    """
    known = {f.name: f for f in fields(TrainConfig)}
    kinds = {"int": int, "float": float, "bool": bool, "str": str}
    kwargs: dict[str, object] = {}
    for key, raw in values.items():
        name = key.replace("-", "_")
        if name.startswith(RESERVED_PREFIXES):
            continue
        if name not in known:
            where = f" in {source}" if source else ""
            raise HyperparameterError(
                f"unknown hyperparameter '{key}'{where}; known: {', '.join(sorted(known))}"
            )
        kwargs[name] = _convert(name, kinds[str(known[name].type)], raw, source)
    try:
        return TrainConfig(**kwargs)
    except HyperparameterError as err:
        if source:
            raise HyperparameterError(f"{err} (from {source})") from None
        raise


def read_hyperparameters(path: str) -> dict[str, object]:
    """The SageMaker hyperparameters file as a flat dict (values are strings there)."""
    with open(path) as f:
        try:
            values = json.load(f)
        except json.JSONDecodeError as err:
            raise HyperparameterError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(values, dict):
        raise HyperparameterError(f"{path} must hold a JSON object, got {type(values).__name__}")
    return values
