"""Monthly cost estimate of a stack, from its resources, a price table and its expected usage.

Each priced resource gets a line. Its minimum is what it bills while nothing runs: node pools at
minSize (or the nodes their workloads' minimum replicas need), endpoints at their minimum
instances (0 for async endpoints that scale to zero and for serverless), no runs, no traffic.
Its maximum is at maximum scale with the usage the environment assumes (runs a month, GB stored
and moved, busy time). Lines that scale are expected part of the way from min to max; usage
lines (runs, traffic) at their assumed usage. Prices come from the table in
`mlplatform/prices/`; usage from `mlplatform.cost.usage`. The same function prices the offline
plan and, inside the policy pack, the resources the engine hands a stack policy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mlplatform.cost import alerts, compute, network, runs, storage
from mlplatform.cost.lines import GROUPS, CostLine, Estimate, Pricing
from mlplatform.cost.usage import DEFAULT_ASSUMPTIONS, Usage, runs_per_month, usage_of
from mlplatform.prices import PriceTable
from policies.rules import StackResource
from policies.rules import props as p

__all__ = [
    "DEFAULT_ASSUMPTIONS",
    "GROUPS",
    "CostLine",
    "Estimate",
    "Usage",
    "estimate",
    "runs_per_month",
    "usage_of",
]

PRICERS: dict[str, Callable[[StackResource, Pricing], None]] = {
    p.CLUSTER: compute.cluster,
    p.NODE_GROUP: compute.node_pool,
    p.ENDPOINT_CONFIG: compute.endpoint_config,
    "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer": compute.tracking_server,
    p.PIPELINE: runs.pipeline,
    "aws:ec2/natGateway:NatGateway": network.nat_gateway,
    "aws:ec2/eip:Eip": network.elastic_ip,
    "aws:ec2/vpcEndpoint:VpcEndpoint": network.interface_endpoint,
    "aws:ec2/flowLog:FlowLog": network.flow_log,
    "aws:s3/bucket:Bucket": storage.bucket,
    "aws:ecr/repository:Repository": storage.repository,
    "aws:kms/key:Key": alerts.key,
    "aws:secretsmanager/secret:Secret": alerts.secret,
    "aws:cloudwatch/metricAlarm:MetricAlarm": alerts.alarm,
    "aws:cloudwatch/dashboard:Dashboard": alerts.dashboard,
    "aws:sns/topic:Topic": alerts.topic,
    p.SCHEDULE: alerts.schedule,
}


def estimate(
    resources: Sequence[StackResource], prices: PriceTable, usage: Usage | None = None
) -> Estimate:
    """Price every resource that costs money (as a stack policy sees them: outputs); list what
    the table cannot price and the usage assumptions the figures rest on."""
    pricing = Pricing(prices, usage or Usage(), resources)
    for r in resources:
        pricer = PRICERS.get(r.type)
        if pricer:
            pricer(r, pricing)
    out = pricing.out
    if any(line.group == "runs" for line in out.lines):
        spot = prices.assumptions["sagemakerSpotFactor"]
        pricing.assume(
            f"Each run lasts its maximum runtime; spot runs at {spot:.0%} of on-demand (price "
            "table), their wait for capacity unbilled"
        )
    out.assumptions.sort()
    return out
