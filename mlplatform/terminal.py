"""The plan as a person reads it in a terminal: the resources as a tree under their components
(as `pulumi preview` shows them), counts, policies and cost. Progress while it works is
`mlplatform.progress`."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from mlplatform.cost.present import idle_sentence
from mlplatform.plan import Plan, PlannedResource
from mlplatform.report import Preview, usd
from policies.offline import SEVERITY_ORDER

# Inputs that identify a resource at a glance, in the order they are shown.
KEY_INPUTS = (
    "name",
    "instanceTypes",
    "instanceType",
    "cidrBlock",
    "availabilityZone",
    "serviceName",
    "bucket",
    "chart",
    "kind",
)
# Wide enough that a piped plan keeps one resource per line.
PIPED_WIDTH = 200


def console(stderr: bool = False) -> Console:
    """A console that wraps at the terminal's width, or not at all when output is piped."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else PIPED_WIDTH
    return Console(file=stream, width=width, highlight=False, markup=False)


def key_inputs(inputs: dict[str, Any], limit: int = 70) -> str:
    """The few inputs that identify a resource, on one short line."""
    shown = [f"{k}={inputs[k]}" for k in KEY_INPUTS if inputs.get(k) not in (None, "", [])]
    text = ", ".join(shown)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _label(resource: PlannedResource) -> Text:
    if not resource.custom:
        return Text.assemble((resource.type, "bold cyan"), "  ", (resource.name, "bold"))
    label = Text.assemble((resource.type, "cyan"), "  ", resource.name)
    inputs = key_inputs(resource.inputs)
    if inputs:
        label.append(f"  {inputs}", style="dim")
    label.no_wrap, label.overflow = True, "ellipsis"
    return label


def tree(plan: Plan) -> Tree:
    """Stack → components → their resources: each with its type, name and key inputs."""
    root = Tree(Text.assemble(("Stack ", "bold"), (f"{plan.stack}", "bold"), f"  ({plan.source})"))
    urns = {r.urn for r in plan.resources}
    children: dict[str | None, list[PlannedResource]] = {}
    for r in plan.resources:
        children.setdefault(r.parent if r.parent in urns else None, []).append(r)

    def add(node: Tree, parent: str | None) -> None:
        # Registration order varies from run to run: components first, then by type and name.
        for r in sorted(children.get(parent, []), key=lambda r: (r.custom, r.type, r.name)):
            add(node.add(_label(r)), r.urn)

    add(root, None)
    return root


def counts(plan: Plan) -> str:
    """How the resources are counted: components are resources too, as Pulumi counts them."""
    custom = [r for r in plan.resources if r.custom]
    providers = sum(r.type.startswith("pulumi:providers:") for r in custom)
    cloud = Counter(
        r.type.split(":", 1)[0] for r in custom if not r.type.startswith("pulumi:providers:")
    )
    by_package = ", ".join(f"{n} {package}" for package, n in cloud.most_common())
    parts = [f"{cloud.total()} cloud resources ({by_package})"]
    if providers:
        parts.append(f"{providers} provider{'s' * (providers > 1)}")
    parts.append(f"{len(plan.resources) - len(custom)} components")
    return f"{len(plan.resources)} resources: " + " + ".join(parts)


def type_table(plan: Plan) -> Table:
    """How many resources of each type."""
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(justify="right")
    table.add_column()
    for kind, n in sorted(Counter(r.type for r in plan.resources).items()):
        table.add_row(str(n), kind)
    return table


def summary(plan: Plan) -> RenderableType:
    """The count sentence and a count per type."""
    lines: list[RenderableType] = [
        Text(f"Summary for stack '{plan.stack}' ({plan.source}): {counts(plan)}", style="bold"),
        type_table(plan),
    ]
    if plan.environments:
        lines.append(
            Text(
                f"Imports Pulumi ESC environments {', '.join(plan.environments)}: values they "
                "add are not known offline (like secrets); the plan uses the file's own config."
            )
        )
    return Group(*lines)


def violations(checked: Preview) -> RenderableType:
    """Violations grouped by severity, most severe first."""
    if not checked.violations:
        return Text("Policies: no violations.")
    lines = [Text(f"Policies: {len(checked.violations)} violation(s)")]
    for severity in SEVERITY_ORDER:
        group = [v for v in checked.violations if v.severity == severity]
        if group:
            loud = severity in ("critical", "high")
            lines.append(Text(f"  {severity.upper()}", style="bold red" if loud else "bold"))
            lines += [
                Text(f"    [{v.enforcement}] {v.policy}: {v.resource}: {v.message}") for v in group
            ]
    return Group(*lines)


def cost(checked: Preview) -> RenderableType:
    """Each priced resource idle, expected and at maximum scale, the totals, the budget and the
    usage the figures assume."""
    est, prices, scale_out = checked.estimate, checked.prices, checked.scale_out
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("RESOURCE", "KIND", "DETAIL"):
        table.add_column(column)
    for column in ("IDLE/MONTH", "EXPECTED", "MAX/MONTH"):
        table.add_column(column, justify="right")
    for c in checked.lines():
        table.add_row(
            c.name,
            c.kind,
            c.detail,
            usd(c.monthly_min),
            usd(c.expected(scale_out)),
            usd(c.monthly_max),
        )
    table.add_row(
        "TOTAL",
        "",
        "",
        usd(est.monthly_min),
        usd(est.monthly_expected(scale_out)),
        usd(est.monthly_max),
        style="bold",
    )
    table.add_row("BUDGET", "", "", "", "", usd(checked.budget), style="bold")
    parts: list[RenderableType] = [
        Text(f"Cost estimate ({prices.region} prices of {prices.date}):"),
        table,
        Text(idle_sentence(est, scale_out), style="bold"),
    ]
    if est.unpriced:
        parts.append(Text(f"not priced: {', '.join(sorted(est.unpriced))}"))
    if est.assumptions:
        parts.append(Text("Assumed usage (the figures rest on these):"))
        parts += [Text(f"  - {a}") for a in est.assumptions]
    return Group(*parts)


def verdict(checked: Preview) -> Text:
    """Whether the change can merge, and the cost against the budget, in one sentence."""
    return Text(
        checked.verdict().replace("**", ""), style="bold red" if checked.blocking else "bold"
    )


def plain(out: Console, part: RenderableType) -> str:
    """A part as plain text, without the padding tables end lines with."""
    with out.capture() as captured:
        out.print(part)
    return "".join(line.rstrip() + "\n" for line in captured.get().splitlines())


def show(out: Console, *parts: RenderableType) -> None:
    """Print each part and a blank line (plain text when output is piped)."""
    for part in parts:
        if out.is_terminal:
            out.print(part)
        else:
            out.file.write(plain(out, part))
        out.print()


def plan_text(plan: Plan) -> str:
    """The tree and the summary as plain text."""
    out = Console(width=PIPED_WIDTH, color_system=None, highlight=False, markup=False)
    return "\n".join(plain(out, part) for part in (tree(plan), summary(plan)))


def print_checks(checked: Preview, out: Console) -> None:
    """Policies, the cost table and the verdict."""
    show(out, violations(checked), cost(checked), verdict(checked))


def print_plan(checked: Preview, out: Console) -> None:
    """Everything `mlplatform plan` shows in a terminal."""
    show(out, tree(checked.plan), summary(checked.plan))
    print_checks(checked, out)
