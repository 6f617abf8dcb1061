"""The platform's policy rules: plain functions over (resource type, inputs, policy config).

A `Rule` names a check, its severity, its default enforcement and the JSON schema of its
parameters. Resource rules see one resource's inputs (camelCase keys, as the engine sends them);
stack rules see every resource's outputs plus a few facts about the stack. Two adapters run the
same rules: `policies.pack` for Pulumi CrossGuard, `policies.offline` for the offline plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast


@dataclass(frozen=True)
class StackResource:
    """One resource as a stack rule sees it: its type, names and output properties."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]


@dataclass(frozen=True)
class StackFacts:
    """What a stack rule knows about the stack besides its resources."""

    stack: str
    environment: str
    region: str
    budget_monthly_usd: float | None
    models: tuple[Mapping[str, Any], ...] = ()
    """The stack's `mlplatform:models` entries as the stack file spells them (camelCase)."""


ResourceCheck = Callable[[str, Mapping[str, Any], Mapping[str, Any]], Iterable[str]]
StackCheck = Callable[
    [Sequence[StackResource], Mapping[str, Any], StackFacts], Iterable[tuple[str, str | None]]
]
Severity = Literal["low", "medium", "high", "critical"]
Enforcement = Literal["advisory", "mandatory", "disabled"]


@dataclass(frozen=True)
class Rule:
    """One policy: a check plus what CrossGuard needs to know about it."""

    name: str
    description: str
    severity: Severity
    check: ResourceCheck | StackCheck
    scope: Literal["resource", "stack"] = "resource"
    enforcement: Enforcement = "mandatory"
    config_schema: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    remediation: str = ""

    def defaults(self) -> dict[str, Any]:
        """Parameter defaults from the schema (the engine fills these in; tests must too)."""
        return {
            key: spec["default"] for key, spec in self.config_schema.items() if "default" in spec
        }

    # `check` is one of two shapes, told apart by `scope`; the adapters call it through these,
    # which say which shape they expect (every rule's check matches its scope, see the tests).
    def check_resource(
        self, resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
    ) -> Iterable[str]:
        """A resource rule's messages for one resource's properties."""
        assert self.scope == "resource", f"{self.name} is a {self.scope} rule"
        return cast(ResourceCheck, self.check)(resource_type, props, config)

    def check_stack(
        self, resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
    ) -> Iterable[tuple[str, str | None]]:
        """A stack rule's (message, URN or None) pairs for the whole stack."""
        assert self.scope == "stack", f"{self.name} is a {self.scope} rule"
        return cast(StackCheck, self.check)(resources, config, facts)


def all_rules() -> list[Rule]:
    """Every rule of the pack, security first."""
    from policies.rules import (
        budget,
        cpu,
        encryption,
        gpu,
        iam,
        images,
        kubernetes,
        network,
        restrictions,
        security,
        storage,
        trust,
    )

    return [
        *storage.RULES,
        *security.RULES,
        *iam.RULES,
        *trust.RULES,
        *network.RULES,
        *encryption.RULES,
        *kubernetes.RULES,
        *restrictions.RULES,
        *images.RULES,
        *gpu.RULES,
        *cpu.RULES,
        *budget.RULES,
    ]
