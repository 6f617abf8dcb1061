"""Run one rule the way the engine does: through its CrossGuard policy, on proxied props."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from pulumi_policy import PolicyCustomTimeouts, PolicyResourceOptions, ResourceValidationArgs
from pulumi_policy.proxy import unknown_checking_proxy

from policies.pack import to_policy
from policies.rules import Rule, StackFacts, StackResource, all_rules

RULES = {rule.name: rule for rule in all_rules()}


def rule(name: str) -> Rule:
    return RULES[name]


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def violations(name: str, resource_type: str, props: Mapping[str, Any], **params: Any) -> list[str]:
    """Messages a resource rule reports, with the schema defaults under `params` (as the engine
    merges them) and props wrapped in the SDK's unknown-checking proxy."""
    policy = to_policy(RULES[name])
    args = ResourceValidationArgs(
        resource_type,
        unknown_checking_proxy(dict(props)),
        f"urn:pulumi:dev::mlplatform::{resource_type}::r",
        "r",
        _options(),
        None,
        {**RULES[name].defaults(), **params},
    )
    out: list[str] = []
    result = policy.validate(args, lambda message, urn=None: out.append(message))
    if inspect.isawaitable(result):
        asyncio.new_event_loop().run_until_complete(result)
    return out


FACTS = StackFacts(stack="dev", environment="dev", region="us-east-1", budget_monthly_usd=1000.0)


def stack_violations(
    name: str, resources: list[StackResource], facts: StackFacts = FACTS, **params: Any
) -> list[str]:
    """Messages a stack rule reports for hand-built resources."""
    found = RULES[name].check(resources, {**RULES[name].defaults(), **params}, facts)
    return [message for message, _urn in found]


def res(type_: str, logical: str, **props: Any) -> StackResource:
    return StackResource(type_, logical, f"urn:pulumi:dev::mlplatform::{type_}::{logical}", props)


@pytest.fixture
def check() -> Callable[..., list[str]]:
    return violations


@pytest.fixture
def check_stack() -> Callable[..., list[str]]:
    return stack_violations


@pytest.fixture
def resource() -> Callable[..., StackResource]:
    return res
