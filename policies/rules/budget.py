"""The budget guardrail: the stack's estimated monthly cost stays under its budget."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mlplatform import prices
from mlplatform.cost import DEFAULT_ASSUMPTIONS, Usage, estimate, usage_of
from policies.rules import Rule, StackFacts, StackResource


def stack_usage(config: Mapping[str, Any], facts: StackFacts) -> Usage:
    """What the stack is priced with: the environment's assumptions (this rule's config) and
    the models' own numbers (the stack file)."""
    return usage_of(facts.environment, config.get("assumptions"), facts.models)


def monthly_budget(
    resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
) -> Iterable[tuple[str, str | None]]:
    if facts.budget_monthly_usd is None:
        yield "the stack has no budget (mlplatform:budget.monthlyUsd)", None
        return
    try:
        table = prices.load(facts.region)
    except FileNotFoundError as error:
        yield f"cannot prove the stack fits its budget: {error}", None
        return
    result = estimate(resources, table, stack_usage(config, facts))
    if result.unpriced:
        yield (
            (
                f"cannot prove the stack fits its budget: no {table.region} price for {sorted(result.unpriced)}; "
                f"add them to mlplatform/prices/{table.region}.json (or run `mlplatform prices refresh`)"
            ),
            None,
        )
    at, share = config.get("compareAt", "expected"), config.get("expectedScaleOut", 0.25)
    total = result.at(at, share)
    if total > facts.budget_monthly_usd:
        top = sorted(result.lines, key=lambda line: (-line.monthly_max, line.name))[:3]
        biggest = ", ".join(f"{line.name} up to ${line.monthly_max:,.0f}" for line in top)
        basis = f"{at} scale" + (f" ({share:.0%} scale-out)" if at == "expected" else "")
        yield (
            (
                f"estimated monthly cost at {basis} is ${total:,.2f}, over the budget of "
                f"${facts.budget_monthly_usd:,.2f} (mlplatform:budget.monthlyUsd); largest: {biggest}"
            ),
            None,
        )


def _count(description: str) -> dict[str, Any]:
    return {"type": "number", "minimum": 0, "description": description}


ASSUMPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Expected usage in this environment, for what a stack file does not say: "
    "the cost estimate multiplies prices by these. Keys left out keep their defaults.",
    "additionalProperties": False,
    "properties": {
        "trainingRunsPerMonth": _count(
            "Runs a month of a model's unscheduled training (stack file: training.runsPerMonth)."
        ),
        "batchRunsPerMonth": _count(
            "Runs a month of an unscheduled Batch Transform (stack file: batch.runsPerMonth)."
        ),
        "serverlessBusySecondsPerMonth": _count("Seconds a month a serverless endpoint works."),
        "natGbPerMonth": _count("GB a month each NAT gateway processes."),
        "flowLogGbPerMonth": _count("GB a month of VPC flow logs."),
        "controlPlaneLogGbPerMonth": _count("GB a month of EKS control-plane logs, when enabled."),
        "topicMessagesPerMonth": _count("Messages a month each SNS topic sends."),
        "bucketGb": {
            "type": "object",
            "description": "GB each bucket holds, by role (datasets, artifacts, checkpoints, "
            "access-logs; `other` for the rest).",
            "additionalProperties": {"type": "number", "minimum": 0},
        },
    },
    "default": DEFAULT_ASSUMPTIONS,
}

RULES = [
    Rule(
        "monthly-budget",
        "The estimated monthly cost stays under the stack's budget.",
        "high",
        monthly_budget,
        scope="stack",
        config_schema={
            "compareAt": {
                "type": "string",
                "enum": ["min", "expected", "max"],
                "default": "expected",
                "description": "Compare the budget with the cost at minimum scale, at maximum "
                "scale, or expected: minimum plus `expectedScaleOut` of the way to maximum, "
                "with the assumed usage.",
            },
            "expectedScaleOut": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "default": 0.25,
                "description": "Share of the month pools and endpoints run at their maximum.",
            },
            "assumptions": ASSUMPTIONS_SCHEMA,
        },
    ),
]
