"""The policy-checked preview of a stack as text: a terminal report and a PR comment (markdown).

Everything here is deterministic (no timestamps, stable ordering), so an unchanged pull request
renders the same comment and the README can show the current output verbatim.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlplatform import changes, prices
from mlplatform import readme as readme_file
from mlplatform.cost import CostLine, Estimate, estimate
from mlplatform.cost.present import (
    idle_sentence,
    network_choices,
    network_markdown,
    pie,
    stacks_table,
    usd,
)
from mlplatform.plan import Plan, PlannedResource
from mlplatform.prices import PriceTable
from mlplatform.progress import Progress
from policies.offline import (
    Violation,
    check_plan,
    effective,
    facts,
    load_config,
    stack_resources,
)
from policies.rules.budget import RULES as BUDGET_RULES
from policies.rules.budget import stack_usage

MARKER = "<!-- mlplatform-preview:{stack} -->"


def marker(stack: str) -> str:
    """The hidden line a workflow searches for to update this stack's comment in place."""
    return MARKER.format(stack=stack)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


@dataclass(frozen=True)
class Preview:
    """Policy violations and cost estimate of one planned stack, and how the budget is compared."""

    plan: Plan
    violations: list[Violation]
    estimate: Estimate
    prices: PriceTable
    compare_at: str
    scale_out: float
    base: dict[str, Any] | None = None
    """The base branch's `plan --json` output, to show what this change changes."""

    @property
    def budget(self) -> float:
        return self.plan.config.budget.monthly_usd

    @property
    def blocking(self) -> list[Violation]:
        return [v for v in self.violations if v.enforcement == "mandatory"]

    @property
    def compared(self) -> float:
        """The estimate the budget policy compares with the budget."""
        return self.estimate.at(self.compare_at, self.scale_out)

    @property
    def basis(self) -> str:
        if self.compare_at == "expected":
            return f"expected ({self.scale_out:.0%} scale-out, assumed usage)"
        return f"at {self.compare_at} scale"

    def lines(self) -> list[CostLine]:
        return sorted(self.estimate.lines, key=lambda c: (-c.monthly_max, c.kind, c.name, c.detail))

    def verdict(self) -> str:
        advisory = len(self.violations) - len(self.blocking)
        policy = (
            f"**{len(self.blocking)} mandatory violation(s): this change cannot merge**"
            if self.blocking
            else "**all mandatory policies pass**"
        )
        if advisory:
            policy += f" ({advisory} advisory)"
        within = "within" if self.compared <= self.budget else "**over**"
        return (
            f"{policy}. Estimated cost {usd(self.estimate.monthly_min)} to "
            f"{usd(self.estimate.monthly_max)} a month; {self.basis} {usd(self.compared)}, "
            f"{within} the budget of {usd(self.budget)}."
        )

    # --- markdown (PR comment) --------------------------------------------------------------

    def markdown(self) -> str:
        """The PR comment for one stack."""
        plan, est = self.plan, self.estimate
        kinds = Counter(r.type for r in plan.resources if r.custom)
        out = [
            marker(plan.stack),
            f"### mlplatform preview: `{plan.stack}` ({plan.config.environment}, {plan.config.region})",
            "",
            self.verdict(),
            "",
        ]
        if self.base is not None:
            delta = changes.cost_delta(self.base, est.monthly_min, est.monthly_max)
            out += [*changes.markdown(changes.diff(self.base, plan), delta), ""]
        out += [*self.cost_markdown(), ""]
        out += ["#### Policy violations", ""]
        if self.violations:
            out += [
                "| severity | enforcement | policy | resource | message |",
                "| --- | --- | --- | --- | --- |",
            ]
            out += [
                f"| {v.severity} | {v.enforcement} | `{v.policy}` | {_cell(v.resource)} | {_cell(v.message)} |"
                for v in self.violations
            ]
        else:
            out.append("None: every policy passes.")
        out += [
            "",
            f"#### Resources ({sum(kinds.values())})",
            "",
            "| kind | count |",
            "| --- | ---: |",
            *[f"| `{kind}` | {count} |" for kind, count in sorted(kinds.items())],
            "",
            "#### Components",
            "",
            mermaid(plan),
            "",
        ]
        return "\n".join(out)

    def cost_markdown(self) -> list[str]:
        """The cost section: idle, expected and max, the lines, the chart, the network
        choices and the assumptions."""
        est, s = self.estimate, self.scale_out
        network = self.plan.config.network
        choices = network_choices(est, network.nat_gateways, network.private_endpoints)
        out = [
            f"#### Monthly cost vs budget ({self.prices.region} on-demand prices of {self.prices.date})",
            "",
            f"**{idle_sentence(est, s)}**",
            "",
            "| resource | kind | detail | idle (min) | expected | max |",
            "| --- | --- | --- | ---: | ---: | ---: |",
            *[
                f"| {_cell(c.name)} | {c.kind} | {_cell(c.detail)} | {usd(c.monthly_min)} "
                f"| {usd(c.expected(s))} | {usd(c.monthly_max)} |"
                for c in self.lines()
            ],
            f"| **total** | | | **{usd(est.monthly_min)}** | **{usd(est.monthly_expected(s))}** "
            f"| **{usd(est.monthly_max)}** |",
            f"| **compared with the budget**: {self.basis} | | | | | **{usd(self.compared)}** |",
            f"| **budget** (`mlplatform:budget.monthlyUsd`) | | | | | **{usd(self.budget)}** |",
        ]
        if est.unpriced:
            out += [
                "",
                f"Not priced (add to `mlplatform/prices/{self.prices.region}.json`): "
                + ", ".join(sorted(est.unpriced)),
            ]
        chart = pie(est, s)
        if chart:
            out += ["", chart]
        out += ["", "Network choices (`mlplatform:network`):", "", *network_markdown(choices)]
        if est.assumptions:
            out += ["", "Assumed usage (the figures rest on these):", ""]
            out += [f"- {_cell(a)}" for a in est.assumptions]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "violations": [v.to_json() for v in self.violations],
            "cost": {
                "region": self.prices.region,
                "pricesDate": self.prices.date,
                "budgetMonthlyUsd": self.budget,
                "monthlyMinUsd": self.estimate.monthly_min,
                "monthlyMaxUsd": self.estimate.monthly_max,
                "monthlyExpectedUsd": self.estimate.monthly_expected(self.scale_out),
                "comparedWithBudget": {
                    "basis": self.compare_at,
                    "scaleOut": self.scale_out,
                    "monthlyUsd": self.compared,
                },
                "unpriced": sorted(self.estimate.unpriced),
                "assumptions": self.estimate.assumptions,
                "lines": [asdict(c) for c in self.lines()],
            },
        }


def _node_id(resource: PlannedResource) -> str:
    return "c_" + re.sub(
        r"[^A-Za-z0-9_]", "_", f"{resource.type.rsplit(':', 1)[-1]}_{resource.name}"
    )


def mermaid(plan: Plan) -> str:
    """The component tree: each ComponentResource, its parent, and how many resources it holds."""
    # Registration order varies from run to run (the SDK registers asynchronously): sort.
    components = sorted((r for r in plan.resources if not r.custom), key=lambda r: r.urn)
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


def preview(
    plan: Plan, base: dict[str, Any] | None = None, progress: Progress | None = None
) -> Preview:
    """Run every policy rule and the cost estimate over an offline plan."""
    config = load_config(plan.config.environment)
    _level, budget_params = effective(BUDGET_RULES[0], config)
    if progress:
        progress("estimating cost")
    try:
        table = prices.load(plan.config.region)
        cost = estimate(stack_resources(plan), table, stack_usage(budget_params, facts(plan)))
    except FileNotFoundError:
        # The budget policy reports the missing table; the comment still renders.
        table, cost = (
            prices.empty(plan.config.region),
            Estimate(unpriced=[prices.missing(plan.config.region)]),
        )
    if progress:
        progress("checking policies")
    return Preview(
        plan=plan,
        violations=check_plan(plan, config),
        estimate=cost,
        prices=table,
        compare_at=budget_params["compareAt"],
        scale_out=budget_params["expectedScaleOut"],
        base=base,
    )


# --- README blocks kept current by `python -m mlplatform.report`: the dev stack's PR comment and
# what every shipped stack costs ------------------------------------------------------------------

README_START = "<!-- preview-example:start (generated by `python -m mlplatform.report`) -->"
README_END = "<!-- preview-example:end -->"
COSTS_START = "<!-- shipped-costs:start (generated by `python -m mlplatform.report`) -->"
COSTS_END = "<!-- shipped-costs:end -->"
SUMMARY_START = "<!-- plan-summary:start (generated by `python -m mlplatform.report`) -->"
SUMMARY_END = "<!-- plan-summary:end -->"


def update_readme(readme: Path, text: str) -> bool:
    """Replace the example between the README markers; True when the file changed."""
    return readme_file.update(readme, README_START, README_END, text)


def shipped_stacks() -> list[str]:
    """The stack files in stacks/, by name."""
    from infra.stackfile import STACKS_DIR

    return sorted(p.name.split(".")[1] for p in STACKS_DIR.glob("Pulumi.*.yaml"))


def shipped_preview(stack: str) -> Preview:
    from infra.stackfile import STACKS_DIR
    from mlplatform.plan import plan_stack

    return preview(plan_stack(STACKS_DIR / f"Pulumi.{stack}.yaml", stack))


def readme_example() -> str:
    """The shipped dev stack's PR comment, as the README shows it."""
    return shipped_preview("dev").markdown()


def plan_summary(plan: Plan) -> str:
    """The count sentence `mlplatform plan` ends with, as a code block (the README's example)."""
    from mlplatform.terminal import counts

    return f"```\nSummary for stack '{plan.stack}' ({plan.source}): {counts(plan)}\n```"


def shipped_costs(previews: list[Preview]) -> str:
    """The README's table of what each shipped stack costs idle, expected and at most."""
    return stacks_table(
        [
            (c.plan.stack, c.plan.config.environment, c.estimate, c.scale_out, c.budget)
            for c in previews
        ]
    )


if __name__ == "__main__":
    readme = Path(__file__).resolve().parent.parent / "README.md"
    previews = {s: shipped_preview(s) for s in shipped_stacks()}
    changed = update_readme(readme, previews["dev"].markdown())
    table = shipped_costs(list(previews.values()))
    changed = readme_file.update(readme, COSTS_START, COSTS_END, table) or changed
    summary = plan_summary(previews["dev"].plan)
    changed = readme_file.update(readme, SUMMARY_START, SUMMARY_END, summary) or changed
    print("README.md updated" if changed else "README.md already current")
