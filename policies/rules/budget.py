"""The budget guardrail: the stack's estimated monthly cost stays under its budget."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mlplatform import prices
from mlplatform.cost import estimate
from policies.rules import Rule, StackFacts, StackResource


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
    result = estimate(resources, table)
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
        top = sorted(result.lines, key=lambda line: -line.monthly_max)[:3]
        biggest = ", ".join(f"{line.name} up to ${line.monthly_max:,.0f}" for line in top)
        basis = f"{at} scale" + (f" ({share:.0%} scale-out)" if at == "expected" else "")
        yield (
            (
                f"estimated monthly cost at {basis} is ${total:,.2f}, over the budget of "
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
                "enum": ["min", "expected", "max"],
                "default": "expected",
                "description": "Compare the budget with the cost at minimum scale, at maximum "
                "scale, or expected: minimum plus `expectedScaleOut` of the way to maximum.",
            },
            "expectedScaleOut": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "default": 0.25,
                "description": "Share of the month pools and endpoints run at their maximum.",
            },
        },
    ),
]
