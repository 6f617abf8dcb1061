"""Network rules: internet ingress, public IPs, private placement, flow logs, network policies."""

from __future__ import annotations

import json

import pytest

SG = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SUBNET = "aws:ec2/subnet:Subnet"
NP = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


@pytest.mark.parametrize(
    ("type_", "props"),
    [
        (
            SG,
            {
                "ingress": [
                    {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}
                ]
            },
        ),
        (
            SG,
            {
                "ingress": [
                    {"protocol": "-1", "fromPort": 0, "toPort": 0, "ipv6CidrBlocks": ["::/0"]}
                ]
            },
        ),
        (
            SG_RULE,
            {
                "type": "ingress",
                "protocol": "tcp",
                "fromPort": 443,
                "toPort": 443,
                "cidrBlocks": ["0.0.0.0/0"],
            },
        ),
        (INGRESS_RULE, {"ipProtocol": "tcp", "fromPort": 80, "toPort": 80, "cidrIpv6": "::/0"}),
    ],
    ids=["inline-ssh", "inline-all-ipv6", "sg-rule-https", "vpc-ingress-rule"],
)
def test_every_shape_of_security_group_ingress_from_the_internet_is_caught(check, type_, props):
    [message] = check("sg-no-public-ingress", type_, props)
    assert "publicIngress" in message and ("0.0.0.0/0" in message or "::/0" in message)


def test_ingress_from_the_vpc_egress_rules_and_allowed_listeners_pass(check):
    inside = {
        "ingress": [
            {"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["10.0.0.0/16"]}
        ]
    }
    assert check("sg-no-public-ingress", SG, inside) == []
    egress = {
        "type": "egress",
        "protocol": "-1",
        "fromPort": 0,
        "toPort": 0,
        "cidrBlocks": ["0.0.0.0/0"],
    }
    assert check("sg-no-public-ingress", SG_RULE, egress) == []
    listener = {"ipProtocol": "tcp", "fromPort": 443, "toPort": 443, "cidrIpv4": "0.0.0.0/0"}
    allowed = [{"protocol": "tcp", "port": 443, "reason": "public ALB"}]
    assert check("sg-no-public-ingress", INGRESS_RULE, listener, publicIngress=allowed) == []
    # An allowance for one listener port is not a range.
    wide = {**listener, "toPort": 444}
    assert check("sg-no-public-ingress", INGRESS_RULE, wide, publicIngress=allowed)


def test_subnets_and_node_interfaces_hand_out_no_public_ips(check):
    assert check("subnet-no-public-ip", SUBNET, {"mapPublicIpOnLaunch": True})
    assert check("subnet-no-public-ip", SUBNET, {"mapPublicIpOnLaunch": False}) == []
    template = "aws:ec2/launchTemplate:LaunchTemplate"
    assert check(
        "subnet-no-public-ip",
        template,
        {"networkInterfaces": [{"associatePublicIpAddress": "true"}]},
    )
    assert check("subnet-no-public-ip", template, {"networkInterfaces": [{"deviceIndex": 0}]}) == []


def _vpc(resource, *, public_routes_to_igw: bool = True):
    igw = resource("aws:ec2/internetGateway:InternetGateway", "igw", id="igw-1")
    public = resource(SUBNET, "public-a", id="subnet-pub", mapPublicIpOnLaunch=False)
    private = resource(SUBNET, "private-a", id="subnet-priv")
    routes = [
        resource(
            "aws:ec2/route:Route",
            "to-igw",
            routeTableId="rtb-pub",
            destinationCidrBlock="0.0.0.0/0",
            gatewayId="igw-1" if public_routes_to_igw else None,
        ),
        resource(
            "aws:ec2/route:Route",
            "to-nat",
            routeTableId="rtb-priv",
            destinationCidrBlock="0.0.0.0/0",
            natGatewayId="nat-1",
        ),
    ]
    associations = [
        resource(
            "aws:ec2/routeTableAssociation:RouteTableAssociation",
            "a1",
            subnetId="subnet-pub",
            routeTableId="rtb-pub",
        ),
        resource(
            "aws:ec2/routeTableAssociation:RouteTableAssociation",
            "a2",
            subnetId="subnet-priv",
            routeTableId="rtb-priv",
        ),
    ]
    return [igw, public, private, *routes, *associations]


def test_a_node_group_in_a_subnet_routed_to_the_internet_gateway_is_caught(check_stack, resource):
    nodes = resource("aws:eks/nodeGroup:NodeGroup", "gpu", subnetIds=["subnet-priv", "subnet-pub"])
    [message] = check_stack("workloads-in-private-subnets", [*_vpc(resource), nodes])
    assert "'gpu'" in message and "public-a" in message
    private = resource("aws:eks/nodeGroup:NodeGroup", "gpu", subnetIds=["subnet-priv"])
    assert check_stack("workloads-in-private-subnets", [*_vpc(resource), private]) == []


def test_sagemaker_models_and_pipeline_jobs_count_as_workloads(check_stack, resource):
    model = resource(
        "aws:sagemaker/model:Model",
        "m",
        vpcConfig={"subnets": ["subnet-pub"], "securityGroupIds": []},
    )
    definition = json.dumps(
        {"Steps": [{"Type": "Training", "Arguments": {"VpcConfig": {"Subnets": ["subnet-pub"]}}}]}
    )
    pipeline = resource("aws:sagemaker/pipeline:Pipeline", "p", pipelineDefinition=definition)
    found = check_stack("workloads-in-private-subnets", [*_vpc(resource), model, pipeline])
    assert len(found) == 2


def test_a_vpc_without_a_flow_log_of_all_traffic_is_caught(check_stack, resource):
    vpc = resource("aws:ec2/vpc:Vpc", "net", id="vpc-1")
    assert check_stack("vpc-flow-logs", [vpc])
    rejects = resource("aws:ec2/flowLog:FlowLog", "fl", vpcId="vpc-1", trafficType="REJECT")
    assert check_stack("vpc-flow-logs", [vpc, rejects])
    everything = resource("aws:ec2/flowLog:FlowLog", "fl", vpcId="vpc-1", trafficType="ALL")
    assert check_stack("vpc-flow-logs", [vpc, everything]) == []


def _namespace(resource, name: str):
    return resource("kubernetes:core/v1:Namespace", name, metadata={"name": name})


def _policy(resource, namespace: str, name: str, **spec):
    return resource(NP, name, metadata={"name": name, "namespace": namespace}, spec=spec)


def test_a_workload_namespace_without_default_deny_is_caught(check_stack, resource):
    allow_all = _policy(
        resource, "serving", "allow", podSelector={}, policyTypes=["Ingress"], ingress=[{}]
    )
    [message] = check_stack("k8s-default-deny", [_namespace(resource, "serving"), allow_all])
    assert "'serving'" in message and "default-deny" in message
    deny = _policy(resource, "serving", "deny", podSelector={}, policyTypes=["Ingress", "Egress"])
    assert check_stack("k8s-default-deny", [_namespace(resource, "serving"), deny]) == []
    ingress_only = _policy(resource, "serving", "deny", podSelector={}, policyTypes=["Ingress"])
    assert check_stack("k8s-default-deny", [_namespace(resource, "serving"), ingress_only])


def test_network_policies_without_the_cni_enforcing_them_are_caught(check_stack, resource):
    deny = _policy(resource, "serving", "deny", podSelector={}, policyTypes=["Ingress", "Egress"])

    def cni(values):
        return resource(
            "aws:eks/addon:Addon", "cni", addonName="vpc-cni", configurationValues=values
        )

    assert check_stack("eks-network-policy-enforced", [deny, cni(None)])
    # The add-on's schema wants the string "true": a JSON boolean is not the same value.
    assert check_stack("eks-network-policy-enforced", [deny, cni('{"enableNetworkPolicy": true}')])
    assert (
        check_stack("eks-network-policy-enforced", [deny, cni('{"enableNetworkPolicy": "true"}')])
        == []
    )
    assert check_stack("eks-network-policy-enforced", [cni(None)]) == []
