"""What a pull request changes in a stack: its offline plan against the base branch's.

The base is the JSON that `mlplatform plan --json` printed on the base branch. Resources are
matched by URN; a resource whose inputs differ is changed (the keys that differ are named), so a
reviewer sees "node pool maxSize changed" or "endpoint configuration replaced" before merging.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlplatform.plan import Plan


@dataclass(frozen=True)
class Change:
    """One resource added, removed or changed."""

    action: str  # "add", "remove" or "change"
    type: str
    name: str
    keys: tuple[str, ...] = ()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def diff(base: dict[str, Any], plan: Plan) -> list[Change]:
    """Custom resources added, removed or changed since the base plan, in a stable order."""
    before = {r["urn"]: r for r in base.get("resources", []) if r.get("custom")}
    after = {r.urn: r for r in plan.resources if r.custom}
    out = [Change("add", r.type, r.name) for urn, r in after.items() if urn not in before]
    out += [Change("remove", r["type"], r["name"]) for urn, r in before.items() if urn not in after]
    for urn in before.keys() & after.keys():
        old, new = before[urn].get("inputs", {}), after[urn].inputs
        keys = tuple(
            sorted(
                k
                for k in old.keys() | new.keys()
                if _canonical(old.get(k)) != _canonical(new.get(k))
            )
        )
        if keys:
            out.append(Change("change", after[urn].type, after[urn].name, keys))
    order = {"add": 0, "change": 1, "remove": 2}
    return sorted(out, key=lambda c: (order[c.action], c.type, c.name))


def cost_delta(
    base: dict[str, Any], monthly_min: float, monthly_max: float
) -> tuple[float, float] | None:
    """(min, max) monthly cost difference from the base, when the base carries an estimate."""
    cost = base.get("cost")
    if not cost:
        return None
    return round(monthly_min - cost["monthlyMinUsd"], 2), round(
        monthly_max - cost["monthlyMaxUsd"], 2
    )


def markdown(
    changes: list[Change], delta: tuple[float, float] | None, limit: int = 40
) -> list[str]:
    """The 'Changes' section of a PR comment."""
    counts = {a: sum(c.action == a for c in changes) for a in ("add", "change", "remove")}
    out = [
        "#### Changes against the base branch",
        "",
        f"{counts['add']} to add, {counts['change']} to change, {counts['remove']} to remove.",
    ]
    if delta is not None:
        out[-1] += (
            f" Monthly cost {delta[0]:+,.2f} USD at minimum scale, {delta[1]:+,.2f} USD at maximum."
        )
    if changes:
        out += ["", "| | kind | name | inputs that differ |", "| --- | --- | --- | --- |"]
        sign = {"add": "+", "change": "~", "remove": "-"}
        out += [
            f"| {sign[c.action]} | `{c.type}` | {c.name} | {', '.join(f'`{k}`' for k in c.keys)} |"
            for c in changes[:limit]
        ]
        if len(changes) > limit:
            out.append(f"| | | ... and {len(changes) - limit} more | |")
    return out
