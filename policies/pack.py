"""The rules as CrossGuard policies: what `policies/__main__.py` hands to `PolicyPack`."""

from __future__ import annotations

import os
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.rules import Rule, StackFacts, StackResource, all_rules

PACK_NAME = "mlplatform-guardrails"


def stack_facts() -> StackFacts:
    """Stack name, environment, region, budget and models from the stack config the engine
    passes to the policy process (PULUMI_STACK / PULUMI_CONFIG)."""
    import pulumi

    config = pulumi.Config("mlplatform")
    budget = config.get_object("budget") or {}
    stack = os.environ.get("PULUMI_STACK", "")
    return StackFacts(
        stack=stack,
        environment=config.get("environment") or stack,
        region=pulumi.Config("aws").get("region") or "us-east-1",
        budget_monthly_usd=budget.get("monthlyUsd", 1000.0),
        models=tuple(config.get_object("models") or ()),
    )


def _config(rule: Rule, given: Any) -> dict[str, Any]:
    # The engine fills in schema defaults before Configure; a bare analyzer (no Configure call)
    # would hand over nothing, so the defaults are applied here too.
    return {**rule.defaults(), **dict(given or {})}


def _resource_validate(rule: Rule):
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        config = _config(rule, args.get_config())
        for message in rule.check_resource(args.resource_type, args.props, config):
            report(message, None)

    return validate


def _stack_validate(rule: Rule):
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = [StackResource(r.resource_type, r.name, r.urn, r.props) for r in args.resources]
        config = _config(rule, args.get_config())
        for message, urn in rule.check_stack(resources, config, stack_facts()):
            report(message, urn)

    return validate


def _schema(rule: Rule) -> PolicyConfigSchema | None:
    if not rule.config_schema:
        return None
    # PolicyConfigSchema insists on dicts (isinstance), all the way down to each property.
    return PolicyConfigSchema(properties={k: dict(v) for k, v in rule.config_schema.items()})


def to_policy(rule: Rule) -> Policy:
    """One CrossGuard policy for a rule, carrying its severity, level and config schema."""
    common: dict[str, Any] = {
        "name": rule.name,
        "description": rule.description,
        "enforcement_level": EnforcementLevel(rule.enforcement),
        "config_schema": _schema(rule),
        "severity": Severity(rule.severity),
    }
    if rule.scope == "stack":
        return StackValidationPolicy(validate=_stack_validate(rule), **common)
    return ResourceValidationPolicy(validate=_resource_validate(rule), **common)


def policies() -> list[Policy]:
    return [to_policy(rule) for rule in all_rules()]
