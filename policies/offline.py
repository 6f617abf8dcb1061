"""Run the policy rules over an offline plan, with the same per-environment config files the
engine reads (`policies/config.<environment>.json`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplatform.plan import Plan
from policies.rules import Rule, StackFacts, StackResource, all_rules

POLICIES_DIR = Path(__file__).parent
SEVERITY_ORDER = ("critical", "high", "medium", "low")


@dataclass(frozen=True)
class Violation:
    """A rule broken by one resource (or by the stack as a whole)."""

    policy: str
    severity: str
    enforcement: str
    resource: str
    resource_type: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {
            "policy": self.policy,
            "severity": self.severity,
            "enforcement": self.enforcement,
            "resource": self.resource,
            "resourceType": self.resource_type,
            "message": self.message,
        }


def config_path(environment: str) -> Path:
    return POLICIES_DIR / f"config.{environment}.json"


def load_config(environment: str) -> dict[str, Any]:
    """The CrossGuard policy config of an environment (`{}` when it has no file)."""
    path = config_path(environment)
    return json.loads(path.read_text()) if path.exists() else {}


def effective(rule: Rule, config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(enforcement level, parameters) as the engine resolves them: the policy's own entry, else
    `all`, else the rule's default level; schema defaults under the given parameters."""
    entry = config.get(rule.name)
    level = config.get("all", rule.enforcement)
    params = rule.defaults()
    if isinstance(entry, str):
        level = entry
    elif isinstance(entry, dict):
        level = entry.get("enforcementLevel", level)
        params.update({k: v for k, v in entry.items() if k != "enforcementLevel"})
    return level, params


def stack_resources(plan: Plan) -> list[StackResource]:
    """The plan's custom resources with their outputs, as the engine gives a stack policy."""
    return [StackResource(r.type, r.name, r.urn, r.outputs) for r in plan.resources if r.custom]


def facts(plan: Plan) -> StackFacts:
    return StackFacts(
        plan.stack,
        plan.config.environment,
        plan.config.region,
        plan.config.budget.monthly_usd,
        tuple(m.model_dump(mode="json", by_alias=True) for m in plan.config.models),
    )


def check_plan(
    plan: Plan, config: dict[str, Any] | None = None, rules: list[Rule] | None = None
) -> list[Violation]:
    """Every violation of the stack, most severe first."""
    config = load_config(plan.config.environment) if config is None else config
    found: list[Violation] = []
    resources = stack_resources(plan)
    stack_facts = facts(plan)
    for rule in rules or all_rules():
        level, params = effective(rule, config)
        if level == "disabled":
            continue

        def report(
            message: str, name: str, type_: str, rule: Rule = rule, level: str = level
        ) -> None:
            found.append(Violation(rule.name, rule.severity, level, name, type_, message))

        if rule.scope == "stack":
            by_urn = {r.urn: r for r in resources}
            for message, urn in rule.check_stack(resources, params, stack_facts):
                target = by_urn.get(urn or "")
                report(
                    message,
                    target.name if target else plan.stack,
                    target.type if target else "stack",
                )
        else:
            for r in plan.resources:
                if r.custom:
                    for message in rule.check_resource(r.type, r.inputs, params):
                        report(message, r.name, r.type)
    found.sort(
        key=lambda v: (
            v.enforcement != "mandatory",
            SEVERITY_ORDER.index(v.severity),
            v.policy,
            v.resource,
            v.message,
        )
    )
    return found


def mandatory(violations: list[Violation]) -> list[Violation]:
    return [v for v in violations if v.enforcement == "mandatory"]
