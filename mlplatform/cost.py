"""Monthly cost estimate of a stack, from its resources and a price table in the repository.

Each priced resource gets a line with its monthly cost at minimum scale (node pools at minSize,
endpoints at their minimum instances) and at maximum scale (pools at maxSize, endpoints at their
autoscaling maximum). Scheduled training adds the runs its schedule starts in a month, each
running to its maximum runtime. Usage-based costs (NAT data, storage) use the assumptions the
price table states. The same function prices the offline plan and, inside the policy pack, the
resources the engine hands a stack policy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlplatform.prices import PriceTable
from policies.rules import StackResource
from policies.rules import props as p


@dataclass(frozen=True)
class CostLine:
    """One resource's monthly cost (USD) at minimum and maximum scale."""

    name: str
    kind: str
    detail: str
    monthly_min: float
    monthly_max: float
    urn: str = ""


@dataclass
class Estimate:
    """The monthly cost of a stack, line by line, plus what could not be priced."""

    lines: list[CostLine] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)

    @property
    def monthly_min(self) -> float:
        return round(sum(line.monthly_min for line in self.lines), 2)

    @property
    def monthly_max(self) -> float:
        return round(sum(line.monthly_max for line in self.lines), 2)

    def monthly_expected(self, scale_out: float) -> float:
        """Cost if everything that scales spends `scale_out` (0..1) of the month between its
        minimum and its maximum: the number a budget is usually compared with."""
        return round(self.monthly_min + scale_out * (self.monthly_max - self.monthly_min), 2)

    def at(self, basis: str, scale_out: float) -> float:
        """The total at `min`, `expected` or `max` scale."""
        if basis == "min":
            return self.monthly_min
        return self.monthly_max if basis == "max" else self.monthly_expected(scale_out)


def runs_per_month(expression: str) -> float:
    """How many times an EventBridge Scheduler `rate(...)`/`cron(...)` expression fires a month."""
    rate = re.fullmatch(r"rate\((\d+)\s+(minute|hour|day)s?\)", expression.strip())
    if rate:
        minutes = int(rate[1]) * {"minute": 1, "hour": 60, "day": 1440}[rate[2]]
        return 730 * 60 / minutes
    cron = re.fullmatch(r"cron\((.+)\)", expression.strip())
    if not cron:
        raise ValueError(f"not a schedule expression: {expression!r}")
    minutes, hours, day_of_month, _month, day_of_week, *_ = cron[1].split()
    per_day = _count(minutes, 60) * _count(hours, 24)
    if day_of_week not in ("*", "?"):
        days = _count(day_of_week, 7) * 30.42 / 7
    elif day_of_month not in ("*", "?"):
        days = _count(day_of_month, 31)
    else:
        days = 30.42
    return per_day * days


def _count(field_: str, size: int) -> int:
    """Values one cron field selects: lists, ranges (MON-FRI, 1-5) and steps (*/15)."""
    total = 0
    for part in field_.split(","):
        base, _, step = part.partition("/")
        if base in ("*", "?"):
            span = size
        elif "-" in base:
            names = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
            lo, hi = (names.index(x) if x in names else int(x) for x in base.split("-"))
            span = hi - lo + 1
        else:
            span = 1
        total += -(-span // int(step)) if step else span
    return total


def _money(hourly: float, hours: float, count: float) -> float:
    return round(hourly * hours * count, 2)


def estimate(resources: Sequence[StackResource], prices: PriceTable) -> Estimate:
    """Price every resource that costs money (as a stack policy sees them: outputs); list
    instance types the table lacks."""
    out = Estimate()
    s, a, hours = prices.services, prices.assumptions, prices.hours
    # Autoscaling bounds by endpoint name, and the endpoint that serves each configuration.
    scaling: dict[str, Mapping[str, Any]] = {
        str(r.props.get("resourceId", "")).split("/")[1]: r.props
        for r in resources
        if r.type == p.SCALING_TARGET and str(r.props.get("resourceId", "")).startswith("endpoint/")
    }
    endpoints: dict[str, str] = {
        str(r.props.get("endpointConfigName")): str(r.props.get("name"))
        for r in resources
        if r.type == "aws:sagemaker/endpoint:Endpoint"
    }
    schedules = [r.props for r in resources if r.type == p.SCHEDULE]
    # Each node's EBS volumes come from its launch template (or the node group's diskSize).
    template_gb = {
        r.props.get("id"): sum(
            int(p.as_dict(m.get("ebs")).get("volumeSize") or 0)
            for m in map(p.as_dict, p.as_list(r.props.get("blockDeviceMappings")))
        )
        for r in resources
        if r.type == p.LAUNCH_TEMPLATE
    }

    def add(
        r: StackResource, kind: str, detail: str, low: float, high: float | None = None
    ) -> None:
        out.lines.append(
            CostLine(
                r.name, kind, detail, round(low, 2), round(low if high is None else high, 2), r.urn
            )
        )

    def price(instance_type: Any) -> float | None:
        found = prices.hourly(instance_type) if isinstance(instance_type, str) else None
        if found is None and instance_type not in out.unpriced:
            out.unpriced.append(str(instance_type))
        return found

    for r in resources:
        props = r.props
        if r.type == p.CLUSTER:
            add(r, "EKS control plane", "per cluster", s["eksControlPlaneHourly"] * hours)
        elif r.type == p.NODE_GROUP:
            types = p.as_list(props.get("instanceTypes")) or ["t3.medium"]
            hourly = [h for h in map(price, types) if h is not None]
            if len(hourly) < len(types):
                continue
            spot = props.get("capacityType") == "SPOT"
            factor = a["ec2SpotFactor"] if spot else 1
            scale = p.as_dict(props.get("scalingConfig"))
            low, high = int(scale.get("minSize") or 0), int(scale.get("maxSize") or 0)
            template = p.as_dict(props.get("launchTemplate")).get("id")
            disk_gb = template_gb.get(template) or int(
                props.get("diskSize") or a["nodeDiskGbDefault"]
            )
            disk = disk_gb * s["ebsGp3PerGbMonth"]
            # The autoscaler may pick any listed type: cheapest at the floor, dearest at the top.
            detail = f"{'/'.join(types)} {'spot' if spot else 'on-demand'} x {low}..{high}, {disk_gb} GB gp3 each"
            add(
                r,
                "node pool",
                detail,
                _money(min(hourly) * factor, hours, low) + disk * low,
                _money(max(hourly) * factor, hours, high) + disk * high,
            )
        elif r.type == "aws:ec2/natGateway:NatGateway":
            add(
                r,
                "NAT gateway",
                f"+ {a['natGbPerMonth']:.0f} GB processed",
                s["natGatewayHourly"] * hours + s["natGatewayPerGb"] * a["natGbPerMonth"],
            )
        elif r.type == "aws:ec2/eip:Eip":
            add(r, "public IPv4", "elastic IP", s["publicIpv4Hourly"] * hours)
        elif (
            r.type == "aws:ec2/vpcEndpoint:VpcEndpoint"
            and props.get("vpcEndpointType") == "Interface"
        ):
            zones = len(p.as_list(props.get("subnetIds"))) or 1
            add(
                r,
                "interface endpoint",
                f"{zones} zones",
                s["interfaceEndpointHourlyPerAz"] * hours * zones,
            )
        elif r.type == "aws:s3/bucket:Bucket":
            add(
                r,
                "S3 bucket",
                f"{a['s3GbPerBucket']:.0f} GB assumed",
                s["s3StandardPerGbMonth"] * a["s3GbPerBucket"],
            )
        elif r.type == "aws:ecr/repository:Repository":
            add(
                r,
                "ECR repository",
                f"{a['ecrGbPerRepository']:.0f} GB assumed",
                s["ecrStoragePerGbMonth"] * a["ecrGbPerRepository"],
            )
        elif r.type == "aws:kms/key:Key":
            add(r, "KMS key", "per key", s["kmsKeyMonthly"])
        elif r.type == "aws:secretsmanager/secret:Secret":
            add(r, "secret", "per secret", s["secretMonthly"])
        elif r.type == "aws:cloudwatch/metricAlarm:MetricAlarm":
            add(r, "alarm", "per alarm", s["cloudwatchAlarmMonthly"])
        elif r.type == p.ENDPOINT_CONFIG:
            bounds = scaling.get(endpoints.get(str(props.get("name")), ""), {})
            for v in p.variants(props):
                serverless = p.as_dict(v.get("serverlessConfig"))
                if serverless:
                    gb = int(serverless.get("memorySizeInMb") or 1024) / 1024
                    cost = (
                        gb
                        * a["serverlessBusySecondsPerMonth"]
                        * s["sagemakerServerlessPerGbSecond"]
                    )
                    add(
                        r,
                        "endpoint (serverless)",
                        f"{gb:g} GB, {a['serverlessBusySecondsPerMonth']:.0f} busy s assumed",
                        cost,
                    )
                    continue
                hourly = price(v.get("instanceType"))
                if hourly is None:
                    continue
                low = int(bounds.get("minCapacity") or v.get("initialInstanceCount") or 1)
                high = int(bounds.get("maxCapacity") or low)
                add(
                    r,
                    "endpoint",
                    f"{v.get('instanceType')} x {low}..{high}",
                    _money(hourly, hours, low),
                    _money(hourly, hours, high),
                )
        elif r.type == p.PIPELINE:
            runs = sum(
                runs_per_month(str(sch.get("scheduleExpression")))
                for sch in schedules
                if p.known(props.get("arn"))
                and p.as_dict(sch.get("target")).get("arn") == props.get("arn")
            )
            for step in p.training_steps(props.get("pipelineDefinition")):
                hourly = price(step.instance_type)
                if hourly is None:
                    continue
                factor = a["sagemakerSpotFactor"] if step.spot else 1
                run_hours = (step.max_runtime_s or 0) / 3600 * step.instance_count * step.total_jobs
                detail = (
                    f"{step.instance_type} x {step.instance_count}, {runs:.1f} scheduled runs x {run_hours:g} h"
                    if runs
                    else f"{step.instance_type}: runs start by hand (not scheduled)"
                )
                add(r, "training", detail, hourly * factor * run_hours * runs)
    return out
