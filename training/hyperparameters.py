"""Hyperparameter values checked against their declarations in model.yaml.

Values arrive as strings (SageMaker's hyperparameters.json, command-line flags), as strings the
SageMaker Python SDK JSON-encoded (``"\\"bf16\\""``), as typed JSON (``SM_HPS``) or as YAML values
(a stack file). Every path ends in ``convert``, so all of them accept and refuse the same things.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from training.errors import HyperparameterError

if TYPE_CHECKING:
    from training.manifest import Hyperparameter

# Added by SageMaker, not by the user: SDK settings (sagemaker_program, ...), the tuner's
# _tuning_objective_metric, and model_dir, which the SDK's TensorFlow estimator sets to an S3 URI.
RESERVED_PREFIXES = ("sagemaker_", "_")
RESERVED_NAMES = ("model_dir",)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}

Value = int | float | str | bool


def is_reserved(name: str) -> bool:
    """Keys the platform or SageMaker adds itself, which a run ignores."""
    return name.startswith(RESERVED_PREFIXES) or name in RESERVED_NAMES


def wanted(decl: Hyperparameter) -> str:
    """What a declaration accepts, in words: 'an integer >= 1', 'one of auto, fp32'."""
    if decl.choices:
        return "one of " + ", ".join(str(c) for c in decl.choices)
    kind = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "text"}
    text = kind[decl.type]
    if decl.min is not None and decl.max is not None:
        return f"{text} between {decl.min:g} and {decl.max:g}"
    if decl.min is not None:
        return f"{text} >= {decl.min:g}"
    if decl.max is not None:
        return f"{text} <= {decl.max:g}"
    return text


def _unquote(raw: object) -> object:
    if isinstance(raw, str):
        text = raw.strip()
        if len(text) >= 2 and text[0] == text[-1] == '"':
            with contextlib.suppress(json.JSONDecodeError):
                return json.loads(text)
        return text
    return raw


def convert(decl: Hyperparameter, raw: object) -> Value:
    """The typed value of ``raw`` for ``decl``; ValueError (message: what is wanted) if none."""
    value = _unquote(raw)
    problem = ValueError(wanted(decl))
    if decl.type == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise problem
    if decl.type == "str":
        if isinstance(value, bool):
            value = str(value).lower()
        elif not isinstance(value, str):
            value = str(value)  # SM_HPS decodes "5" to 5 even for a text hyperparameter
    elif isinstance(value, bool):
        raise problem  # True is an int to Python, never to a person
    elif decl.type == "int":
        try:
            value = value if isinstance(value, int) else int(str(value))
        except ValueError:
            raise problem from None
    else:
        try:
            value = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise problem from None
        if not math.isfinite(value):
            raise problem
    if decl.choices and value not in decl.choices:
        raise problem
    if isinstance(value, int | float) and not isinstance(value, bool):
        if decl.min is not None and value < decl.min:
            raise problem
        if decl.max is not None and value > decl.max:
            raise problem
    return value


def _unknown(name: str, declared: Iterable[str]) -> str:
    known = sorted(declared)
    near = difflib.get_close_matches(name.replace("-", "_"), known, n=1)
    hint = f"did you mean '{near[0]}'? " if near else ""
    return f"not declared in model.yaml; {hint}declared: {', '.join(known) or 'none'}"


def check_values(
    declared: Mapping[str, Hyperparameter], values: Mapping[str, object]
) -> dict[str, str]:
    """Per-key problems of ``values`` against the declarations ({} when all are good)."""
    problems: dict[str, str] = {}
    for name, raw in values.items():
        if is_reserved(name):
            continue
        if name not in declared:
            problems[name] = _unknown(name, declared)
            continue
        try:
            convert(declared[name], raw)
        except ValueError as err:
            problems[name] = f"got {_unquote(raw)!r}, want {err}"
    return problems


def resolve(
    declared: Mapping[str, Hyperparameter],
    sources: Iterable[tuple[str, Mapping[str, object]]],
) -> dict[str, Value]:
    """Defaults overridden by each (source name, values) in turn; every problem in one line."""
    result: dict[str, Value] = {name: decl.default for name, decl in declared.items()}
    problems: dict[str, str] = {}  # one per name: the toolkit passes the file's values as flags too
    for source, values in sources:
        for name, why in check_values(declared, values).items():
            problems.setdefault(name, f"hyperparameter '{name}' (from {source}): {why}")
        for name, raw in values.items():
            if name in declared and not is_reserved(name):
                with contextlib.suppress(ValueError):
                    result[name] = convert(declared[name], raw)
    if problems:
        raise HyperparameterError("; ".join(problems.values()))
    return result


def parse_flags(argv: list[str]) -> dict[str, str]:
    """``--name value`` / ``--name=value`` pairs, how people and the SageMaker toolkit pass them."""
    values: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-") or arg in ("-", "--"):
            raise HyperparameterError(
                f"unexpected argument {arg!r}; hyperparameters are given as --name value"
            )
        key = arg.lstrip("-")
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        elif i + 1 < len(argv):
            value = argv[i + 1]
            i += 2
        else:
            raise HyperparameterError(f"hyperparameter {arg} has no value")
        values[key] = value
    return values
