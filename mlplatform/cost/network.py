"""Network choices and what each costs: NAT gateways and their addresses (egress for nodes),
interface endpoints (AWS APIs without the internet), flow logs (an audit trail of connections)."""

from __future__ import annotations

from mlplatform.cost.lines import Pricing
from policies.rules import StackResource

# What each interface endpoint is for, by service (com.amazonaws.<region>.<service>).
PURPOSES = {
    "ecr.api": "image manifests",
    "ecr.dkr": "image layers",
    "sts": "role credentials",
    "sagemaker.api": "SageMaker API calls",
    "sagemaker.runtime": "endpoint invocations",
    "eks": "the EKS API",
    "eks-auth": "Pod Identity credentials",
    "logs": "CloudWatch Logs",
}


def nat_gateway(r: StackResource, c: Pricing) -> None:
    gb = float(c.usage["natGbPerMonth"])
    hourly = c.service("natGatewayHourly") * c.hours
    detail = f"outbound internet for the cluster's nodes; {gb:g} GB a month processed"
    c.add(
        r,
        "NAT gateway",
        "network",
        detail,
        hourly,
        hourly + c.service("natGatewayPerGb") * gb,
        scales=False,
    )
    c.assume(f"NAT gateways: {gb:g} GB a month processed each ({c.usage.source('natGbPerMonth')})")


def elastic_ip(r: StackResource, c: Pricing) -> None:
    c.add(
        r,
        "public IPv4",
        "network",
        "the NAT gateway's address",
        c.service("publicIpv4Hourly") * c.hours,
    )


def interface_endpoint(r: StackResource, c: Pricing) -> None:
    if r.props.get("vpcEndpointType") != "Interface":
        return  # the S3 gateway endpoint is free
    zones = len([s for s in r.props.get("subnetIds") or [] if s]) or 1
    service = str(r.props.get("serviceName", "")).split(".", 3)[-1]
    purpose = PURPOSES.get(service, service)
    detail = f"private path for {purpose}; {zones} zones"
    c.add(
        r,
        "interface endpoint",
        "network",
        detail,
        c.service("interfaceEndpointHourlyPerAz") * c.hours * zones,
    )


def flow_log(r: StackResource, c: Pricing) -> None:
    gb = float(c.usage["flowLogGbPerMonth"])
    to_s3 = r.props.get("logDestinationType") == "s3"
    price = c.service("s3VendedLogsPerGb" if to_s3 else "cloudwatchLogsIngestionPerGb")
    where = "S3" if to_s3 else "CloudWatch Logs"
    # An idle SageMaker-only VPC has no network interfaces, so it records nothing.
    idle = gb * price if c.always_on else 0.0
    quiet = "" if c.always_on else "; nothing while idle (no always-on interfaces)"
    detail = f"every connection in the VPC, for audit: {gb:g} GB a month to {where}{quiet}"
    c.add(r, "flow log", "network", detail, idle, gb * price, scales=False)
    c.assume(f"VPC flow logs: {gb:g} GB a month ({c.usage.source('flowLogGbPerMonth')})")
