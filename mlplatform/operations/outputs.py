"""Resource names for the operating commands, read from the stack's outputs.

With the Pulumi CLI on PATH the outputs come from the deployed stack (`pulumi stack output
--json`); without it, from the offline plan, which knows every name the program sets itself
(pipelines, endpoints, Kubernetes objects) but not the ones Pulumi picks at deploy time (bucket
autonames): asking for one of those says so instead of guessing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.config import Model, StackConfig
from infra.stackfile import load_stack_file, pulumi_project, stack_file
from mlplatform.operations.aws import OperationError


@dataclass(frozen=True)
class StackOutputs:
    """A stack's outputs and where they were read."""

    values: dict[str, Any]
    source: str
    unknown: frozenset[str] = frozenset()
    """Values that are offline stand-ins for names Pulumi picks at deploy time."""

    def name(self, output: str, key: str | None = None, *, what: str, hint: str = "") -> str:
        """One resource name: `output` (a string) or `output[key]` (a map by model)."""
        value = self.values.get(output)
        if key is not None:
            value = value.get(key) if isinstance(value, dict) else None
        where = f"{output}.{key}" if key is not None else output
        if not isinstance(value, str) or not value:
            raise OperationError(f"{what}: the stack has no output {where} ({self.source})")
        if value in self.unknown:
            raise OperationError(
                f"{what}: Pulumi names it when it deploys the stack, so only the deployed "
                f"stack's outputs know it; put the pulumi CLI on PATH (logged in to the stack's "
                f"backend){hint}"
            )
        return value


def pulumi_outputs(pulumi: str, stack: str) -> StackOutputs:
    """`pulumi stack output --json --stack <stack>` in the project folder."""
    command = [pulumi, "stack", "output", "--json", "--stack", stack]
    try:
        done = subprocess.run(
            command,
            cwd=pulumi_project().root,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise OperationError(f"`{' '.join(command[1:])}` did not run: {error}") from None
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise OperationError(f"`pulumi {' '.join(command[1:])}` failed: {why}")
    try:
        values = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise OperationError(f"`pulumi {' '.join(command[1:])}` printed no JSON") from None
    return StackOutputs(values, f"pulumi stack output --stack {stack}")


def offline_outputs(path: Path, stack: str) -> StackOutputs:
    """The offline plan's outputs, with deploy-time autonames marked unknown."""
    from mlplatform.plan import plan_stack

    plan = plan_stack(path, stack)
    return StackOutputs(plan.outputs, "the offline plan: no pulumi CLI on PATH", plan.autonamed)


def read_outputs(path: Path, stack: str) -> StackOutputs:
    """The deployed stack's outputs when the Pulumi CLI is at hand, else the offline plan's."""
    pulumi = shutil.which("pulumi")
    return pulumi_outputs(pulumi, stack) if pulumi else offline_outputs(path, stack)


@dataclass(frozen=True)
class Target:
    """What an operating command works on: the stack's config, one model, the outputs."""

    stack: str
    config: StackConfig
    model: Model
    path: Path

    def outputs(self) -> StackOutputs:
        return read_outputs(self.path, self.stack)


def target(args: argparse.Namespace) -> Target:
    """The stack and model named on the command line."""
    path = stack_file(args.stack, Path(args.stacks_dir))
    config, _ = load_stack_file(path)
    for model in config.models:
        if model.name == args.model:
            return Target(args.stack, config, model, path)
    known = ", ".join(m.name for m in config.models) or "none"
    raise OperationError(f"stack {args.stack} has no model {args.model!r} (models: {known})")
