"""Cost lines, the estimate they add up to, and what every pricer shares while filling it."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from mlplatform.cost.usage import Usage, runs_per_month
from mlplatform.prices import PriceTable
from policies.rules import StackResource
from policies.rules import props as p

# Kinds of cost as the chart groups them, in the order a reader meets them.
GROUPS = ("compute", "runs", "cluster", "network", "storage", "tracking", "keys and alerts")


@dataclass(frozen=True)
class CostLine:
    """One resource's monthly cost (USD): billed while idle (min) and at max scale with the
    assumed usage (max)."""

    name: str
    kind: str
    detail: str
    monthly_min: float
    monthly_max: float
    urn: str = ""
    scales: bool = True
    """True: runs between min and max by scale-out (pools, endpoints); False: a usage cost
    (runs, traffic), expected at its assumed usage."""
    group: str = "keys and alerts"

    def expected(self, scale_out: float) -> float:
        if not self.scales:
            return self.monthly_max
        return self.monthly_min + scale_out * (self.monthly_max - self.monthly_min)


@dataclass
class Estimate:
    """The monthly cost of a stack, line by line, what could not be priced, and the usage
    assumptions the figures rest on."""

    lines: list[CostLine] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)

    @property
    def monthly_min(self) -> float:
        """What the stack bills while nothing runs."""
        return round(math.fsum(line.monthly_min for line in self.lines), 2)

    @property
    def monthly_max(self) -> float:
        return round(math.fsum(line.monthly_max for line in self.lines), 2)

    def monthly_expected(self, scale_out: float) -> float:
        """Cost if everything that scales spends `scale_out` (0..1) of the month between its
        minimum and its maximum, plus the assumed usage: the number a budget is compared with."""
        return round(math.fsum(line.expected(scale_out) for line in self.lines), 2)

    def at(self, basis: str, scale_out: float) -> float:
        """The total at `min`, `expected` or `max` scale."""
        if basis == "min":
            return self.monthly_min
        return self.monthly_max if basis == "max" else self.monthly_expected(scale_out)

    def by_group(self, scale_out: float) -> dict[str, float]:
        """Expected cost per group, in `GROUPS` order, groups that cost nothing left out."""
        totals = {g: 0.0 for g in GROUPS}
        for line in self.lines:
            totals[line.group] = totals.get(line.group, 0.0) + line.expected(scale_out)
        return {g: round(v, 2) for g, v in totals.items() if round(v, 2) > 0}


@dataclass
class Pricing:
    """The table, the usage and the stack's resources (indexed), and the estimate being filled."""

    prices: PriceTable
    usage: Usage
    resources: Sequence[StackResource]
    out: Estimate = field(default_factory=Estimate)
    memo: dict[str, Any] = field(default_factory=dict)

    def add(
        self,
        r: StackResource,
        kind: str,
        group: str,
        detail: str,
        low: float,
        high: float | None = None,
        *,
        scales: bool = True,
    ) -> None:
        high = low if high is None else high
        self.out.lines.append(
            CostLine(r.name, kind, detail, round(low, 2), round(high, 2), r.urn, scales, group)
        )

    def assume(self, text: str) -> None:
        if text not in self.out.assumptions:
            self.out.assumptions.append(text)

    def hourly(self, instance_type: Any) -> float | None:
        """An instance type's on-demand price; one the table lacks is listed, never guessed."""
        found = self.prices.hourly(instance_type) if isinstance(instance_type, str) else None
        if found is None and str(instance_type) not in self.out.unpriced:
            self.out.unpriced.append(str(instance_type))
        return found

    def service(self, key: str) -> float:
        return self.prices.services[key]

    @property
    def hours(self) -> float:
        return self.prices.hours

    def of_type(self, type_: str) -> list[StackResource]:
        return [r for r in self.resources if r.type == type_]

    def once(self, key: str, make: Callable[[], Any]) -> Any:
        """An index a pricer builds over the whole stack, built once per estimate."""
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]

    @cached_property
    def scaling(self) -> dict[str, Mapping[str, Any]]:
        """Autoscaling bounds (minCapacity, maxCapacity) by endpoint name."""
        return {
            str(r.props.get("resourceId", "")).split("/")[1]: r.props
            for r in self.of_type(p.SCALING_TARGET)
            if str(r.props.get("resourceId", "")).startswith("endpoint/")
        }

    @cached_property
    def endpoints(self) -> dict[str, str]:
        """The endpoint that serves each endpoint configuration, by configuration name."""
        return {
            str(r.props.get("endpointConfigName")): str(r.props.get("name"))
            for r in self.of_type("aws:sagemaker/endpoint:Endpoint")
        }

    @cached_property
    def template_gb(self) -> dict[str, int]:
        """EBS GB per node by launch template id (a node group without one has diskSize)."""
        return {
            str(r.props.get("id")): sum(
                int(p.as_dict(m.get("ebs")).get("volumeSize") or 0)
                for m in map(p.as_dict, p.as_list(r.props.get("blockDeviceMappings")))
            )
            for r in self.of_type(p.LAUNCH_TEMPLATE)
        }

    @cached_property
    def runs_by_target(self) -> dict[str, tuple[float, str]]:
        """Runs a month each schedule starts, and its expression, by the ARN it targets."""
        out: dict[str, tuple[float, str]] = {}
        for s in self.of_type(p.SCHEDULE):
            target = p.as_dict(s.props.get("target")).get("arn")
            expression = str(s.props.get("scheduleExpression"))
            if p.known(target):
                runs, _ = out.get(str(target), (0.0, ""))
                out[str(target)] = (runs + runs_per_month(expression), expression)
        return out

    @cached_property
    def always_on(self) -> bool:
        """Whether anything in the VPC runs while the stack is idle (a NAT gateway, nodes):
        without it an idle VPC records no flows."""
        nodes = any(
            int(p.as_dict(r.props.get("scalingConfig")).get("minSize") or 0) > 0
            for r in self.of_type(p.NODE_GROUP)
        )
        return nodes or bool(self.of_type("aws:ec2/natGateway:NatGateway"))


def per_month(value: float) -> str:
    """A count a month, without a trailing .0 (20, 4.3)."""
    return f"{value:,.1f}".removesuffix(".0")


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
