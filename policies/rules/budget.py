"""The budget guardrail: the stack's estimated monthly cost stays under its budget."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from infra import prices
from infra.cost import estimate
from policies.rules import Rule, StackFacts, StackResource


def monthly_budget(
    resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
) -> Iterable[tuple[str, str | None]]:
    if facts.budget_monthly_usd is None:
        yield "the stack has no budget (mlplatform:budget.monthlyUsd)", None
        return
    table = prices.load(facts.region)
    result = estimate(resources, table)
    if result.unpriced:
        yield (
            (
                f"cannot prove the stack fits its budget: no {table.region} price for {sorted(result.unpriced)}; "
                f"add them to infra/prices/{table.region}.json (or run `mlplatform prices refresh`)"
            ),
            None,
        )
    at = config.get("compareAt", "max")
    total = result.monthly_max if at == "max" else result.monthly_min
    if total > facts.budget_monthly_usd:
        top = sorted(
            result.lines, key=lambda line: -(line.monthly_max if at == "max" else line.monthly_min)
        )[:3]
        biggest = ", ".join(
            f"{line.name} ${line.monthly_max if at == 'max' else line.monthly_min:,.0f}"
            for line in top
        )
        yield (
            (
                f"estimated monthly cost at {at} scale is ${total:,.2f}, over the budget of "
                f"${facts.budget_monthly_usd:,.2f} (mlplatform:budget.monthlyUsd); largest: {biggest}"
            ),
            None,
        )


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
                "enum": ["min", "max"],
                "default": "max",
                "description": "Compare the budget with the cost at minimum or at maximum scale.",
            }
        },
    ),
]
