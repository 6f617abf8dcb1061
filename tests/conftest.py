"""Shared fixtures: offline plans of the test suite's own stacks (tests/stacks/) and of edited
variants of them. The shipped stacks in stacks/ are examples users edit; tests never depend on
their contents (tests that check every shipped stack plans and passes the policies name them)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.stackfile import PROJECT_ROOT, STACKS_DIR
from mlplatform.plan import Plan, plan_stack
from mlplatform.variants import write_variant

FIXTURE_STACKS_DIR = Path(__file__).resolve().parent / "stacks"
FIXTURE_STACKS = ("dev", "staging", "prod")

# Every stack file shipped: each is an example some tests plan, including ones added later.
SHIPPED_STACKS = tuple(
    sorted(
        p.name.removeprefix("Pulumi.").removesuffix(".yaml")
        for p in STACKS_DIR.glob("Pulumi.*.yaml")
    )
)
_plans: dict[str, Plan] = {}


def fixture_plan(stack: str) -> Plan:
    """The offline plan of one of the suite's stacks, computed once per test session."""
    if stack not in _plans:
        _plans[stack] = plan_stack(FIXTURE_STACKS_DIR / f"Pulumi.{stack}.yaml", stack)
    return _plans[stack]


@pytest.fixture(params=FIXTURE_STACKS)
def plan(request: pytest.FixtureRequest) -> Plan:
    """Parametrised over the suite's dev-, staging- and prod-like stacks."""
    return fixture_plan(request.param)


@pytest.fixture
def plan_of() -> Callable[[str], Plan]:
    return fixture_plan


_shipped: dict[str, Plan] = {}


@pytest.fixture(params=SHIPPED_STACKS)
def shipped(request: pytest.FixtureRequest) -> Plan:
    """Parametrised over every shipped stack file (stacks/): examples users copy must plan."""
    stack = request.param
    if stack not in _shipped:
        _shipped[stack] = plan_stack(STACKS_DIR / f"Pulumi.{stack}.yaml", stack)
    return _shipped[stack]


@pytest.fixture
def plan_variant(tmp_path: Path) -> Callable[..., Plan]:
    """Plan one of the suite's stacks with config overrides, e.g.
    `plan_variant("prod", {"mlplatform:network": {"natGateways": "single"}})`."""

    def make(base: str, overrides: dict[str, Any], name: str = "variant") -> Plan:
        path = write_variant(tmp_path, base, overrides, name, stacks_dir=FIXTURE_STACKS_DIR)
        return plan_stack(path, name)

    return make


@pytest.fixture
def stack_variant(tmp_path: Path) -> Callable[..., Path]:
    """Write one of the suite's stacks with config overrides; returns the file's path."""

    def make(base: str, overrides: dict[str, Any], name: str = "variant") -> Path:
        return write_variant(tmp_path, base, overrides, name, stacks_dir=FIXTURE_STACKS_DIR)

    return make


# What a project copy holds: the Pulumi project, the tool, and what the program reads.
PROJECT_ENTRIES = (
    "Pulumi.yaml",
    "pyproject.toml",
    "infra",
    "mlplatform",
    "policies",
    "training",
    "serving",
    "models",
    "images",
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
