"""Shared fixtures: offline plans of the shipped stacks and of edited variants of them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.plan import Plan, plan_stack
from infra.stackfile import STACKS_DIR

SHIPPED_STACKS = ("dev", "staging", "prod")
_plans: dict[str, Plan] = {}


def shipped_plan(stack: str) -> Plan:
    """The offline plan of a shipped stack, computed once per test session."""
    if stack not in _plans:
        _plans[stack] = plan_stack(STACKS_DIR / f"Pulumi.{stack}.yaml", stack)
    return _plans[stack]


@pytest.fixture(params=SHIPPED_STACKS)
def plan(request: pytest.FixtureRequest) -> Plan:
    """Parametrised over every shipped stack."""
    return shipped_plan(request.param)


@pytest.fixture
def plan_of() -> Callable[[str], Plan]:
    return shipped_plan


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def write_variant(directory: Path, base: str, overrides: dict[str, Any], name: str = "variant") -> Path:
    """Write `stacks/Pulumi.<base>.yaml` with `overrides` deep-merged into its `config:`
    (a None value deletes a key) as `<directory>/Pulumi.<name>.yaml`."""
    document = yaml.safe_load((STACKS_DIR / f"Pulumi.{base}.yaml").read_text())
    document["config"] = _merge(document["config"], overrides)
    path = directory / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture
def plan_variant(tmp_path: Path) -> Callable[..., Plan]:
    """Plan a shipped stack with config overrides, e.g.
    `plan_variant("prod", {"mlplatform:network": {"natGateways": "single"}})`."""

    def make(base: str, overrides: dict[str, Any], name: str = "variant") -> Plan:
        return plan_stack(write_variant(tmp_path, base, overrides, name), name)

    return make
