"""Network rules: nothing open to the internet but what a public load balancer needs, workloads
in private subnets, VPC traffic logged, and workload namespaces denied by default.

Security-group ingress is read from every shape it can take: inline `ingress` blocks,
`aws:ec2/securityGroupRule` and `aws:vpc/securityGroupIngressRule` resources.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from infra import restrictions
from policies.rules import Rule, StackFacts, StackResource
from policies.rules.props import (
    CLUSTER,
    LAUNCH_TEMPLATE,
    NODE_GROUP,
    SAGEMAKER_MODEL,
    as_dict,
    as_list,
    json_doc,
    truthy,
)

OPEN = {"0.0.0.0/0", "::/0"}
SUBNET = "aws:ec2/subnet:Subnet"
NAMESPACE = "kubernetes:core/v1:Namespace"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def _ingress_rules(resource_type: str, props: Mapping[str, Any]) -> Iterator[tuple[str, dict]]:
    """(label, {protocol, from, to, cidrs}) of each ingress permission a resource grants."""
    if resource_type in (
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
    ):
        for i, rule in enumerate(as_list(props.get("ingress"))):
            rule = as_dict(rule)
            yield (
                f"ingress[{i}]",
                {
                    "protocol": str(rule.get("protocol")),
                    "from": rule.get("fromPort"),
                    "to": rule.get("toPort"),
                    "cidrs": as_list(rule.get("cidrBlocks")) + as_list(rule.get("ipv6CidrBlocks")),
                },
            )
    elif (
        resource_type == "aws:ec2/securityGroupRule:SecurityGroupRule"
        and props.get("type") == "ingress"
    ):
        yield (
            "rule",
            {
                "protocol": str(props.get("protocol")),
                "from": props.get("fromPort"),
                "to": props.get("toPort"),
                "cidrs": as_list(props.get("cidrBlocks")) + as_list(props.get("ipv6CidrBlocks")),
            },
        )
    elif resource_type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        yield (
            "rule",
            {
                "protocol": str(props.get("ipProtocol")),
                "from": props.get("fromPort"),
                "to": props.get("toPort"),
                "cidrs": [c for c in (props.get("cidrIpv4"), props.get("cidrIpv6")) if c],
            },
        )


def _allowed(rule: dict, allowances: Sequence[Mapping[str, Any]]) -> bool:
    """Whether an open rule is exactly one of the load balancer listeners the config allows."""
    return any(
        rule["protocol"].lower() in (str(a.get("protocol", "tcp")).lower(), "6")
        and rule["from"] == rule["to"] == a.get("port")
        for a in allowances
    )


def no_public_ingress(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    allowances = config.get("publicIngress", [])
    for label, rule in _ingress_rules(resource_type, props):
        open_to = sorted(OPEN & {str(c) for c in rule["cidrs"]})
        if open_to and not _allowed(rule, allowances):
            ports = (
                "all ports"
                if rule["protocol"] == "-1"
                else f"{rule['protocol']} {rule['from']}-{rule['to']}"
            )
            allowed = [f"{a.get('protocol', 'tcp')}/{a.get('port')}" for a in allowances] or "none"
            yield (
                f"{label} admits {open_to} on {ports}; only a public load balancer's listener may "
                f"be open to the internet (allowed in this environment: {allowed}, policy config "
                "publicIngress); narrow the source to the VPC or a security group"
            )


def no_public_ip(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    if resource_type == SUBNET and truthy(props.get("mapPublicIpOnLaunch")):
        yield "subnet gives instances public IPs (mapPublicIpOnLaunch); set it false: the NAT gateway has the one public address"
    if resource_type == LAUNCH_TEMPLATE:
        for i, nic in enumerate(as_list(props.get("networkInterfaces"))):
            if truthy(as_dict(nic).get("associatePublicIpAddress")):
                yield f"networkInterfaces[{i}] gives nodes a public IP (associatePublicIpAddress)"
    if resource_type == "aws:ec2/instance:Instance" and truthy(
        props.get("associatePublicIpAddress")
    ):
        yield "instance gets a public IP (associatePublicIpAddress)"


def public_subnets(resources: Sequence[StackResource]) -> dict[str, str]:
    """Subnet id -> name of every planned subnet that is public: it maps public IPs, or its
    route table sends 0.0.0.0/0 (or ::/0) to an internet gateway."""
    gateways = {
        r.props.get("id") for r in resources if r.type == "aws:ec2/internetGateway:InternetGateway"
    }
    to_internet = set()
    for r in resources:
        routes = [r.props] if r.type == "aws:ec2/route:Route" else []
        if r.type == "aws:ec2/routeTable:RouteTable":
            routes = [
                dict(as_dict(x), routeTableId=r.props.get("id"))
                for x in as_list(r.props.get("routes"))
            ]
        for route in routes:
            destination = (
                route.get("destinationCidrBlock")
                or route.get("cidrBlock")
                or route.get("destinationIpv6CidrBlock")
            )
            gateway = route.get("gatewayId")
            if destination in OPEN and (gateway in gateways or str(gateway).startswith("igw-")):
                to_internet.add(route.get("routeTableId"))
    tables = {
        r.props.get("subnetId"): r.props.get("routeTableId")
        for r in resources
        if r.type == "aws:ec2/routeTableAssociation:RouteTableAssociation"
    }
    return {
        r.props["id"]: r.name
        for r in resources
        if r.type == SUBNET
        and r.props.get("id")
        and (truthy(r.props.get("mapPublicIpOnLaunch")) or tables.get(r.props["id"]) in to_internet)
    }


def _workload_subnets(r: StackResource) -> list[Any]:
    if r.type == NODE_GROUP:
        return as_list(r.props.get("subnetIds"))
    if r.type == CLUSTER:
        return as_list(as_dict(r.props.get("vpcConfig")).get("subnetIds"))
    if r.type == SAGEMAKER_MODEL:
        return as_list(as_dict(r.props.get("vpcConfig")).get("subnets"))
    if r.type == "aws:ec2/instance:Instance":
        return [r.props.get("subnetId")]
    if r.type == "aws:sagemaker/pipeline:Pipeline":
        return _step_subnets(json_doc(r.props.get("pipelineDefinition")))
    return []


def _step_subnets(doc: Any) -> list[Any]:
    found = []
    for step in as_list(as_dict(doc).get("Steps")):
        args = as_dict(as_dict(step).get("Arguments"))
        args = as_dict(args.get("TrainingJobDefinition")) or args
        found += as_list(as_dict(args.get("VpcConfig")).get("Subnets"))
        found += as_list(
            as_dict(as_dict(args.get("NetworkConfig")).get("VpcConfig")).get("Subnets")
        )
    return found


def workloads_in_private_subnets(
    resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
) -> Iterable[tuple[str, str | None]]:
    public = public_subnets(resources)
    for r in resources:
        exposed = sorted({public[s] for s in _workload_subnets(r) if s in public})
        if exposed:
            yield (
                f"{r.type.rsplit(':', 1)[-1]} {r.name!r} runs in public subnets {exposed} (routed "
                "to the internet gateway); place it in the private subnets",
                r.urn,
            )


def vpc_flow_logs(
    resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
) -> Iterable[tuple[str, str | None]]:
    wanted = config.get("trafficType", "ALL")
    logs = [r.props for r in resources if r.type == "aws:ec2/flowLog:FlowLog"]
    for vpc in (r for r in resources if r.type == "aws:ec2/vpc:Vpc"):
        mine = [f for f in logs if f.get("vpcId") == vpc.props.get("id")]
        if not any(f.get("trafficType") in (wanted, "ALL") for f in mine):
            yield (
                f"VPC {vpc.name!r} has no flow log of {wanted} traffic: add an aws.ec2.FlowLog "
                "(vpc_id, traffic_type ALL) to a log group under the stack key",
                vpc.urn,
            )


def default_deny(
    resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
) -> Iterable[tuple[str, str | None]]:
    wanted = set(config.get("namespaces", ["training", "serving"]))
    namespaces = {
        as_dict(r.props.get("metadata")).get("name"): r for r in resources if r.type == NAMESPACE
    }
    for name in sorted(wanted & set(namespaces)):
        denies = [
            r
            for r in resources
            if r.type == NETWORK_POLICY
            and as_dict(r.props.get("metadata")).get("namespace") == name
            and not as_dict(as_dict(r.props.get("spec")).get("podSelector"))
            and {"Ingress", "Egress"}
            <= set(as_list(as_dict(r.props.get("spec")).get("policyTypes")))
            and not as_list(as_dict(r.props.get("spec")).get("ingress"))
            and not as_list(as_dict(r.props.get("spec")).get("egress"))
        ]
        if not denies:
            yield (
                f"namespace {name!r} has no default-deny NetworkPolicy (podSelector {{}}, "
                "policyTypes [Ingress, Egress], no rules): any pod may reach its pods and they "
                "may reach anything",
                namespaces[name].urn,
            )


def network_policy_enforced(
    resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
) -> Iterable[tuple[str, str | None]]:
    if not any(r.type == NETWORK_POLICY for r in resources):
        return
    row = restrictions.table()["vpc-cni-network-policy"]
    for r in resources:
        if r.type != "aws:eks/addon:Addon" or r.props.get("addonName") != "vpc-cni":
            continue
        values = json_doc(r.props.get("configurationValues"))
        if as_dict(values).get("enableNetworkPolicy") != "true":
            yield (
                f"add-on {r.name!r} does not enforce NetworkPolicies: set configurationValues "
                f'{{"enableNetworkPolicy": "true"}} (a string) [{row.id}: {row.source}]',
                r.urn,
            )


RULES = [
    Rule(
        "sg-no-public-ingress",
        "No security group admits 0.0.0.0/0 or ::/0 except a public load balancer's allowed listeners.",
        "critical",
        no_public_ingress,
        config_schema={
            "publicIngress": {
                "type": "array",
                "default": [],
                "description": "Listeners of a public load balancer open to the internet in this environment.",
                "items": {
                    "type": "object",
                    "properties": {
                        "protocol": {"type": "string"},
                        "port": {"type": "integer"},
                        "reason": {"type": "string"},
                    },
                    "required": ["port", "reason"],
                },
            }
        },
    ),
    Rule("subnet-no-public-ip", "Subnets and nodes hand out no public IPs.", "high", no_public_ip),
    Rule(
        "workloads-in-private-subnets",
        "Clusters, node groups, SageMaker models and jobs run in private subnets.",
        "high",
        workloads_in_private_subnets,
        scope="stack",
    ),
    Rule(
        "vpc-flow-logs",
        "Every VPC logs its traffic (flow logs).",
        "medium",
        vpc_flow_logs,
        scope="stack",
        config_schema={
            "trafficType": {"type": "string", "enum": ["ALL", "REJECT", "ACCEPT"], "default": "ALL"}
        },
    ),
    Rule(
        "k8s-default-deny",
        "Workload namespaces deny all pod traffic unless a NetworkPolicy allows it.",
        "high",
        default_deny,
        scope="stack",
        config_schema={
            "namespaces": {
                "type": "array",
                "items": {"type": "string"},
                "default": ["training", "serving"],
            }
        },
    ),
    Rule(
        "eks-network-policy-enforced",
        "The VPC CNI enforces the NetworkPolicies the stack declares.",
        "high",
        network_policy_enforced,
        scope="stack",
    ),
]
