"""Shared fixtures: offline plans of the shipped stacks and of edited variants of them."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.stackfile import PROJECT_ROOT, STACKS_DIR
from mlplatform.plan import Plan, plan_stack
from mlplatform.variants import write_variant

# Every stack file shipped: each is an example the tests plan, including ones added later.
SHIPPED_STACKS = tuple(
    sorted(
        p.name.removeprefix("Pulumi.").removesuffix(".yaml")
        for p in STACKS_DIR.glob("Pulumi.*.yaml")
    )
)
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


# What a project copy holds: the Pulumi project, the tool, and what the program reads.
PROJECT_ENTRIES = (
    "Pulumi.yaml",
    "infra",
    "mlplatform",
    "policies",
    "training",
    "serving",
    "stacks",
    "docs",
    ".github",
)


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A copy of the project to change freely (its Pulumi.yaml, stack files, workflows);
    Python run inside it imports the copy's packages."""
    root = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "venv", ".venv")
    for entry in PROJECT_ENTRIES:
        source = PROJECT_ROOT / entry
        if source.is_dir():
            shutil.copytree(source, root / entry, ignore=ignore)
        else:
            root.mkdir(exist_ok=True)
            shutil.copy2(source, root / entry)
    return root
