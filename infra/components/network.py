"""The VPC: private subnets for compute, public subnets for NAT, endpoints for AWS APIs, and
flow logs of all its traffic to a log group under the stack key."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import config
from infra.components.cluster_iam import flow_logs_trust
from infra.components.storage import stack_log_groups
from infra.context import StackContext

# A year of flow logs: enough to investigate an incident after the fact.
FLOW_LOG_RETENTION_DAYS = 365

# Interface endpoints that keep image pulls, credential exchange (STS, and EKS Pod Identity's
# eks-auth), node-group lookups by the cluster-autoscaler (eks) and SageMaker calls private.
# Endpoints only EKS nodes and pods use.
KUBERNETES_ONLY = ("eks", "eks-auth")
INTERFACE_ENDPOINT_SERVICES = (
    "ecr.api",
    "ecr.dkr",
    "sts",
    "eks",
    "eks-auth",
    "sagemaker.api",
    "sagemaker.runtime",
)


@dataclass(frozen=True)
class NetworkArgs:
    """The stack file's `mlplatform:network` section and the stack it belongs to. Flow logs
    need the stack key: they are declared when the context carries it (`with_storage`)."""

    settings: config.Network
    context: StackContext
    # Whether anything in private subnets needs the internet (EKS nodes pull public images and
    # charts): only then NAT gateways, which cost ~$33 a month each before traffic.
    needs_egress: bool = True
    # Whether the stack has an EKS cluster (its nodes and Pod Identity use the EKS endpoints).
    kubernetes: bool = True


def subnet_cidrs(cidr: str, az_count: int) -> tuple[list[str], list[str]]:
    """Split the VPC range: large private subnets (compute), small public ones (NAT, ALB)."""
    vpc = ipaddress.ip_network(cidr)
    halves = list(vpc.subnets(prefixlen_diff=1))
    # Private: the first half split per zone (up to 8 zones). Public: /24-ish slices of the second.
    private = list(halves[0].subnets(prefixlen_diff=3))[:az_count]
    public = list(halves[1].subnets(prefixlen_diff=4))[:az_count]
    return [str(n) for n in private], [str(n) for n in public]


class Network(pulumi.ComponentResource):
    """A VPC over `az_count` zones with public and private subnets, NAT and VPC endpoints."""

    vpc_id: pulumi.Output[str]
    private_subnet_ids: list[pulumi.Output[str]]
    public_subnet_ids: list[pulumi.Output[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        settings, region = args.settings, args.context.region
        zones = aws.get_availability_zones(state="available").names
        if len(zones) < settings.az_count:
            raise ValueError(
                f"{region} has {len(zones)} available zones; network.azCount asks for "
                f"{settings.az_count}"
            )
        zones = sorted(zones)[: settings.az_count]
        private_cidrs, public_cidrs = subnet_cidrs(settings.cidr, settings.az_count)

        vpc = aws.ec2.Vpc(
            name,
            cidr_block=settings.cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": name},
            opts=child,
        )
        # The default security group of a new VPC allows all traffic between its members; strip it.
        aws.ec2.DefaultSecurityGroup(f"{name}-default", vpc_id=vpc.id, opts=child)
        igw = aws.ec2.InternetGateway(name, vpc_id=vpc.id, tags={"Name": name}, opts=child)

        public_rt = aws.ec2.RouteTable(
            f"{name}-public", vpc_id=vpc.id, tags={"Name": f"{name}-public"}, opts=child
        )
        aws.ec2.Route(
            f"{name}-public-internet",
            route_table_id=public_rt.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=igw.id,
            opts=child,
        )

        self.public_subnet_ids, self.private_subnet_ids = [], []
        private_rts, nats = [], []
        for i, zone in enumerate(zones):
            public = aws.ec2.Subnet(
                f"{name}-public-{zone}",
                vpc_id=vpc.id,
                cidr_block=public_cidrs[i],
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={"Name": f"{name}-public-{zone}", "kubernetes.io/role/elb": "1"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{zone}",
                subnet_id=public.id,
                route_table_id=public_rt.id,
                opts=child,
            )
            self.public_subnet_ids.append(public.id)
            nat_here = settings.nat_gateways == "perZone" or (
                settings.nat_gateways == "single" and i == 0
            )
            if args.needs_egress and nat_here:
                eip = aws.ec2.Eip(
                    f"{name}-nat-{zone}",
                    domain="vpc",
                    tags={"Name": f"{name}-nat-{zone}"},
                    opts=child,
                )
                nats.append(
                    aws.ec2.NatGateway(
                        f"{name}-{zone}",
                        allocation_id=eip.id,
                        subnet_id=public.id,
                        tags={"Name": f"{name}-{zone}"},
                        opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                    )
                )
            private = aws.ec2.Subnet(
                f"{name}-private-{zone}",
                vpc_id=vpc.id,
                cidr_block=private_cidrs[i],
                availability_zone=zone,
                tags={"Name": f"{name}-private-{zone}", "kubernetes.io/role/internal-elb": "1"},
                opts=child,
            )
            rt = aws.ec2.RouteTable(
                f"{name}-private-{zone}",
                vpc_id=vpc.id,
                tags={"Name": f"{name}-private-{zone}"},
                opts=child,
            )
            if nats:
                aws.ec2.Route(
                    f"{name}-private-{zone}-nat",
                    route_table_id=rt.id,
                    destination_cidr_block="0.0.0.0/0",
                    nat_gateway_id=nats[-1].id,
                    opts=child,
                )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{zone}", subnet_id=private.id, route_table_id=rt.id, opts=child
            )
            self.private_subnet_ids.append(private.id)
            private_rts.append(rt)

        # S3 traffic (datasets, checkpoints, model artifacts) never pays NAT data charges.
        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in private_rts],
            tags={"Name": f"{name}-s3"},
            opts=child,
        )
        if settings.private_endpoints:
            endpoint_sg = aws.ec2.SecurityGroup(
                f"{name}-endpoints",
                vpc_id=vpc.id,
                description="HTTPS from inside the VPC to AWS interface endpoints",
                ingress=[
                    {
                        "protocol": "tcp",
                        "from_port": 443,
                        "to_port": 443,
                        "cidr_blocks": [settings.cidr],
                        "description": "HTTPS to AWS APIs from inside the VPC",
                    }
                ],
                egress=[],
                tags={"Name": f"{name}-endpoints"},
                opts=child,
            )
            for service in INTERFACE_ENDPOINT_SERVICES:
                if service in KUBERNETES_ONLY and not args.kubernetes:
                    continue
                aws.ec2.VpcEndpoint(
                    f"{name}-{service.replace('.', '-')}",
                    vpc_id=vpc.id,
                    service_name=f"com.amazonaws.{region}.{service}",
                    vpc_endpoint_type="Interface",
                    private_dns_enabled=True,
                    subnet_ids=self.private_subnet_ids,
                    security_group_ids=[endpoint_sg.id],
                    tags={"Name": f"{name}-{service}"},
                    opts=child,
                )

        if args.context.kms_key is not None:
            self._flow_logs(name, args.context, vpc)

        self.vpc_id = vpc.id
        self.vpc_cidr = settings.cidr
        self.register_outputs(
            {
                "vpcId": self.vpc_id,
                "privateSubnetIds": self.private_subnet_ids,
                "publicSubnetIds": self.public_subnet_ids,
            }
        )

    def _flow_logs(self, name: str, context: StackContext, vpc: aws.ec2.Vpc) -> None:
        """Every accepted and rejected flow of the VPC to CloudWatch Logs, under the stack key
        (whose policy lets CloudWatch Logs use it for this group only)."""
        group_name = stack_log_groups(context.prefix)["flow-logs"]
        group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=group_name,
            retention_in_days=FLOW_LOG_RETENTION_DAYS,
            kms_key_id=context.kms_key_arn,
            opts=pulumi.ResourceOptions(parent=self),
        )
        role = aws.iam.Role(
            f"{name}-flow-logs",
            description=f"VPC Flow Logs of {name}: write to {group_name}",
            assume_role_policy=flow_logs_trust(
                context.partition, context.region, context.account_id
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        group_arn = context.arn("logs", f"log-group:{group_name}")
        aws.iam.RolePolicy(
            f"{name}-flow-logs",
            role=role.id,
            policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "WriteFlowLogs",
                            "Effect": "Allow",
                            "Action": [
                                "logs:CreateLogStream",
                                "logs:PutLogEvents",
                                "logs:DescribeLogStreams",
                            ],
                            "Resource": [group_arn, f"{group_arn}:*"],
                        },
                        {
                            # Listing groups has no per-group resource: the account's groups.
                            "Sid": "FindLogGroup",
                            "Effect": "Allow",
                            "Action": ["logs:DescribeLogGroups"],
                            "Resource": [context.arn("logs", "log-group:*")],
                        },
                    ],
                }
            ),
            opts=pulumi.ResourceOptions(parent=role),
        )
        aws.ec2.FlowLog(
            f"{name}-flow-logs",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=600,
            tags={"Name": f"{name}-flow-logs"},
            opts=pulumi.ResourceOptions(parent=self),
        )
