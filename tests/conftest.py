"""Shared fixtures: offline plans of the shipped stacks and of edited variants of them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.stackfile import STACKS_DIR
from mlplatform.plan import Plan, plan_stack
from mlplatform.variants import write_variant

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


@pytest.fixture
def plan_variant(tmp_path: Path) -> Callable[..., Plan]:
    """Plan a shipped stack with config overrides, e.g.
    `plan_variant("prod", {"mlplatform:network": {"natGateways": "single"}})`."""

    def make(base: str, overrides: dict[str, Any], name: str = "variant") -> Plan:
        return plan_stack(write_variant(tmp_path, base, overrides, name), name)

    return make
