"""The policy-checked preview of a stack as text: a terminal report and a PR comment (markdown).

Everything here is deterministic (no timestamps, stable ordering), so an unchanged pull request
renders the same comment and the README can show the current output verbatim.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from infra import prices
from infra.cost import Estimate, estimate
from infra.plan import Plan, PlannedResource
from infra.prices import PriceTable
from policies.offline import SEVERITY_ORDER, Violation, check_plan, stack_resources

MARKER = "<!-- mlplatform-preview:{stack} -->"


def marker(stack: str) -> str:
    """The hidden line a workflow searches for to update this stack's comment in place."""
    return MARKER.format(stack=stack)


def _usd(value: float) -> str:
    return f"${value:,.2f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def verdict(violations: list[Violation], estimate: Estimate, budget: float) -> str:
    blocking = [v for v in violations if v.enforcement == "mandatory"]
    advisory = len(violations) - len(blocking)
    policy = (
        f"**{len(blocking)} mandatory violation(s): this change cannot merge**"
        if blocking
        else "**all mandatory policies pass**"
    )
    if advisory:
        policy += f" ({advisory} advisory)"
    within = "within" if estimate.monthly_max <= budget else "**over**"
    cost = f"{_usd(estimate.monthly_min)} to {_usd(estimate.monthly_max)} a month, {within} the budget of {_usd(budget)}"
    return f"{policy}; estimated cost {cost}."


# --- terminal ----------------------------------------------------------------------------------


def violations_text(violations: list[Violation]) -> str:
    if not violations:
        return "Policies: no violations."
    lines = [f"Policies: {len(violations)} violation(s)"]
    for severity in SEVERITY_ORDER:
        group = [v for v in violations if v.severity == severity]
        if group:
            lines.append(f"  {severity.upper()}")
            lines += [f"    [{v.enforcement}] {v.policy}: {v.resource}: {v.message}" for v in group]
    return "\n".join(lines)


def cost_text(estimate: Estimate, prices: PriceTable, budget: float) -> str:
    rows = [("RESOURCE", "KIND", "DETAIL", "MIN/MONTH", "MAX/MONTH")]
    rows += [
        (c.name, c.kind, c.detail, _usd(c.monthly_min), _usd(c.monthly_max))
        for c in _sorted(estimate)
    ]
    rows += [
        ("TOTAL", "", "", _usd(estimate.monthly_min), _usd(estimate.monthly_max)),
        ("BUDGET", "", "", "", _usd(budget)),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [f"Cost estimate ({prices.region} prices of {prices.date}):"]
    lines += [
        f"  {r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]:>{widths[3]}}  {r[4]:>{widths[4]}}"
        for r in rows
    ]
    if estimate.unpriced:
        lines.append(f"  not priced: {', '.join(sorted(estimate.unpriced))}")
    return "\n".join(lines)


def _sorted(estimate: Estimate):
    return sorted(estimate.lines, key=lambda c: (-c.monthly_max, c.kind, c.name))


# --- markdown (PR comment) ---------------------------------------------------------------------


def _node_id(resource: PlannedResource) -> str:
    return "c_" + re.sub(
        r"[^A-Za-z0-9_]", "_", f"{resource.type.rsplit(':', 1)[-1]}_{resource.name}"
    )


def mermaid(plan: Plan) -> str:
    """The component tree: each ComponentResource, its parent, and how many resources it holds."""
    components = [r for r in plan.resources if not r.custom]
    by_urn = {r.urn: r for r in components}
    owned = Counter(r.parent for r in plan.resources if r.custom)
    lines = ["```mermaid", "graph LR", f'  stack(["stack {plan.stack}"])']
    for c in components:
        label = f"{c.type.rsplit(':', 1)[-1]}<br/>{c.name}<br/>{owned.get(c.urn, 0)} resources"
        lines.append(f'  {_node_id(c)}["{label}"]')
    for c in components:
        parent = by_urn.get(c.parent or "")
        lines.append(f"  {_node_id(parent) if parent else 'stack'} --> {_node_id(c)}")
    lines.append("```")
    return "\n".join(lines)


def markdown(
    plan: Plan, violations: list[Violation], estimate: Estimate, prices: PriceTable
) -> str:
    """The PR comment for one stack."""
    budget = plan.config.budget.monthly_usd
    kinds = Counter(r.type for r in plan.resources if r.custom)
    out = [
        marker(plan.stack),
        f"### mlplatform preview: `{plan.stack}` ({plan.config.environment}, {plan.config.region})",
        "",
        verdict(violations, estimate, budget),
        "",
        f"#### Resources ({sum(kinds.values())})",
        "",
        "| kind | count |",
        "| --- | ---: |",
        *[f"| `{kind}` | {count} |" for kind, count in sorted(kinds.items())],
        "",
        f"#### Monthly cost vs budget ({prices.region} on-demand prices of {prices.date})",
        "",
        "| resource | kind | detail | min | max |",
        "| --- | --- | --- | ---: | ---: |",
        *[
            f"| {_cell(c.name)} | {c.kind} | {_cell(c.detail)} | {_usd(c.monthly_min)} | {_usd(c.monthly_max)} |"
            for c in _sorted(estimate)
        ],
        f"| **total** | | | **{_usd(estimate.monthly_min)}** | **{_usd(estimate.monthly_max)}** |",
        f"| **budget** (`mlplatform:budget.monthlyUsd`) | | | | **{_usd(budget)}** |",
    ]
    if estimate.unpriced:
        out += [
            "",
            f"Not priced (add to `infra/prices/{prices.region}.json`): {', '.join(sorted(estimate.unpriced))}",
        ]
    out += ["", "#### Policy violations", ""]
    if violations:
        out += [
            "| severity | enforcement | policy | resource | message |",
            "| --- | --- | --- | --- | --- |",
        ]
        out += [
            f"| {v.severity} | {v.enforcement} | `{v.policy}` | {_cell(v.resource)} | {_cell(v.message)} |"
            for v in violations
        ]
    else:
        out.append("None: every policy passes.")
    out += ["", "#### Components", "", mermaid(plan), ""]
    return "\n".join(out)


# --- the whole check ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    """Policy violations and cost estimate of one planned stack."""

    plan: Plan
    violations: list[Violation]
    estimate: Estimate
    prices: PriceTable

    @property
    def blocking(self) -> list[Violation]:
        return [v for v in self.violations if v.enforcement == "mandatory"]

    def text(self) -> str:
        budget = self.plan.config.budget.monthly_usd
        return "\n\n".join(
            [
                violations_text(self.violations),
                cost_text(self.estimate, self.prices, budget),
                verdict(self.violations, self.estimate, budget).replace("**", ""),
            ]
        )

    def markdown(self) -> str:
        return markdown(self.plan, self.violations, self.estimate, self.prices)

    def to_json(self) -> dict[str, Any]:
        return {
            "violations": [v.to_json() for v in self.violations],
            "cost": {
                "region": self.prices.region,
                "pricesDate": self.prices.date,
                "budgetMonthlyUsd": self.plan.config.budget.monthly_usd,
                "monthlyMinUsd": self.estimate.monthly_min,
                "monthlyMaxUsd": self.estimate.monthly_max,
                "unpriced": sorted(self.estimate.unpriced),
                "lines": [asdict(c) for c in _sorted(self.estimate)],
            },
        }


def preview(plan: Plan) -> Preview:
    """Run every policy rule and the cost estimate over an offline plan."""
    table = prices.load(plan.config.region)
    return Preview(plan, check_plan(plan), estimate(stack_resources(plan), table), table)
