"""The EKS cluster: control plane, system nodes, managed add-ons and their IAM roles."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import config, instances
from infra.components.cluster_iam import (
    PodIdentityScope,
    cluster_key_policy,
    ebs_csi_key_policy,
    managed_policy,
    pod_identity_role,
    s3_csi_policy,
    service_trust,
)
from infra.components.storage import stack_log_groups
from infra.context import StackContext

# Add-ons installed before any node joins (networking and credentials) and after the system
# nodes are up (add-ons with Deployments, which EKS reports healthy only once they run).
ADDONS_BEFORE_NODES = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
ADDONS_AFTER_NODES = ("coredns", "aws-ebs-csi-driver", "aws-mountpoint-s3-csi-driver")
# The service accounts add-ons run AWS calls as (kube-system); the others make none.
ADDON_SERVICE_ACCOUNTS = {
    "vpc-cni": "aws-node",
    "aws-ebs-csi-driver": "ebs-csi-controller-sa",
    "aws-mountpoint-s3-csi-driver": "s3-csi-driver-sa",
}
# Where EKS runs the add-ons' pods, and so their service accounts.
ADDON_NAMESPACE = "kube-system"
# Add-on configuration: the VPC CNI's network-policy agent enforces the namespaces'
# NetworkPolicies (a string "true", as the add-on's schema wants: infra/restrictions.json).
ADDON_CONFIGURATION = {"vpc-cni": {"enableNetworkPolicy": "true"}}
ADMIN_POLICY = "arn:{partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


@dataclass(frozen=True)
class ClusterArgs:
    """The `mlplatform:cluster` section, the stack (key, datasets bucket), and its subnets."""

    settings: config.Cluster
    context: StackContext
    subnet_ids: Sequence[pulumi.Input[str]]
    protect: bool = False  # a stack that protects its data (prod) protects its cluster too

    @property
    def cluster_name(self) -> str:
        return self.context.prefix


def node_launch_template(
    name: str,
    *,
    disk_size_gib: int,
    bottlerocket: bool = False,
    extra: dict | None = None,
    parent: pulumi.Resource,
) -> aws.ec2.LaunchTemplate:
    """Node settings EKS's defaults leave open: IMDSv2 only, encrypted volumes."""
    volume: aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgsDict = {
        "volume_size": disk_size_gib,
        "volume_type": "gp3",
        "encrypted": "true",
        "delete_on_termination": "true",
    }
    # Bottlerocket boots from a small OS volume and keeps images and pods on a second one.
    devices: list[aws.ec2.LaunchTemplateBlockDeviceMappingArgsDict] = (
        [
            {"device_name": "/dev/xvda", "ebs": {**volume, "volume_size": 4}},
            {"device_name": "/dev/xvdb", "ebs": volume},
        ]
        if bottlerocket
        else [{"device_name": "/dev/xvda", "ebs": volume}]
    )
    return aws.ec2.LaunchTemplate(
        name,
        description=f"{name}: IMDSv2-only nodes with encrypted volumes",
        update_default_version=True,
        metadata_options={
            "http_endpoint": "enabled",
            "http_tokens": "required",
            # One hop keeps pods (a hop further away) off the node role's credentials; pods get
            # their own through Pod Identity instead.
            "http_put_response_hop_limit": 1,
        },
        block_device_mappings=devices,
        tag_specifications=[
            {"resource_type": kind, "tags": {"Name": name}} for kind in ("instance", "volume")
        ],
        **(extra or {}),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def kubeconfig(cluster_name: str, region: str, endpoint: str, ca_data: str) -> str:
    """A kubeconfig that authenticates with `aws eks get-token` (access entries, no tokens)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": cluster_name,
                    "cluster": {"server": endpoint, "certificate-authority-data": ca_data},
                }
            ],
            "contexts": [
                {"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}
            ],
            "current-context": cluster_name,
            "users": [
                {
                    "name": cluster_name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": [
                                "eks",
                                "get-token",
                                "--cluster-name",
                                cluster_name,
                                "--region",
                                region,
                                "--output",
                                "json",
                            ],
                            "interactiveMode": "Never",
                        }
                    },
                }
            ],
        }
    )


class EksCluster(pulumi.ComponentResource):
    """An EKS cluster in private subnets with API (access entry) auth and encrypted secrets."""

    cluster_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    version: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    node_role_arn: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    addons: dict[str, aws.eks.Addon]
    """Add-ons that must exist before nodes join; node groups depend on them."""
    node_prerequisites: list[pulumi.Resource]

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:cluster:EksCluster", name, None, opts)
        settings, context = args.settings, args.context
        nodes = settings.system_nodes
        child = pulumi.ResourceOptions(parent=self)
        policy = lambda n: managed_policy(context.partition, n)  # noqa: E731

        role = aws.iam.Role(
            f"{name}-control-plane",
            description=f"EKS control plane of {args.cluster_name}",
            assume_role_policy=service_trust("eks.amazonaws.com", tag_session=True),
            opts=child,
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-control-plane",
                role=role.name,
                policy_arn=policy("AmazonEKSClusterPolicy"),
                opts=pulumi.ResourceOptions(parent=role),
            ),
            aws.iam.RolePolicy(
                f"{name}-control-plane-kms",
                role=role.id,
                policy=pulumi.Output.from_input(context.kms_key_arn).apply(cluster_key_policy),
                opts=pulumi.ResourceOptions(parent=role),
            ),
        ]
        # EKS writes to this group; creating it first sets retention instead of "never expire",
        # and puts it under the stack key (whose policy grants CloudWatch Logs this group).
        logs = aws.cloudwatch.LogGroup(
            f"{name}-control-plane",
            name=stack_log_groups(args.cluster_name)["eks"],
            retention_in_days=settings.log_retention_days,
            kms_key_id=context.kms_key_arn,
            opts=child,
        )
        cluster = aws.eks.Cluster(
            name,
            name=args.cluster_name,
            version=settings.version,
            role_arn=role.arn,
            vpc_config={
                "subnet_ids": list(args.subnet_ids),
                "endpoint_private_access": True,
                "endpoint_public_access": settings.endpoint_public_access,
                "public_access_cidrs": list(settings.public_access_cidrs)
                if settings.endpoint_public_access
                else None,
            },
            access_config={
                "authentication_mode": "API",
                # The identity running `pulumi up` must reach the API to install the Kubernetes layer.
                "bootstrap_cluster_creator_admin_permissions": True,
            },
            encryption_config={
                "provider": {"key_arn": context.kms_key_arn},
                "resources": ["secrets"],
            },
            enabled_cluster_log_types=list(settings.log_types),
            # vpc-cni, kube-proxy and CoreDNS come as managed add-ons below, versioned by EKS.
            bootstrap_self_managed_addons=False,
            upgrade_policy={"support_type": "STANDARD"},
            deletion_protection=args.protect,
            opts=pulumi.ResourceOptions(
                parent=self, protect=args.protect, depends_on=[*attachments, logs]
            ),
        )
        cluster_opts = pulumi.ResourceOptions(parent=cluster)

        for i, principal in enumerate(settings.admin_role_arns):
            entry = aws.eks.AccessEntry(
                f"{name}-admin-{i}",
                cluster_name=cluster.name,
                principal_arn=principal,
                type="STANDARD",
                opts=cluster_opts,
            )
            aws.eks.AccessPolicyAssociation(
                f"{name}-admin-{i}",
                cluster_name=cluster.name,
                principal_arn=principal,
                policy_arn=ADMIN_POLICY.format(partition=context.partition),
                access_scope={"type": "cluster"},
                opts=pulumi.ResourceOptions(parent=entry),
            )

        node_role = aws.iam.Role(
            f"{name}-node",
            description=f"EC2 nodes of {args.cluster_name} (join the cluster, pull images)",
            assume_role_policy=service_trust("ec2.amazonaws.com"),
            opts=child,
        )
        # No CNI policy here: the VPC CNI gets its own role through Pod Identity.
        for managed in ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly"):
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{managed}",
                role=node_role.name,
                policy_arn=policy(managed),
                opts=pulumi.ResourceOptions(parent=node_role),
            )

        # The cluster's ARN is known before it exists: the roles' trusts can name it.
        cluster_arn = context.arn("eks", f"cluster/{args.cluster_name}")

        def scope(addon_name: str) -> PodIdentityScope:
            return PodIdentityScope(
                cluster_arn, ADDON_NAMESPACE, ADDON_SERVICE_ACCOUNTS[addon_name]
            )

        roles = {
            "vpc-cni": pod_identity_role(
                f"{name}-vpc-cni",
                description="VPC CNI: manages pod network interfaces",
                managed_policy_arns=[policy("AmazonEKS_CNI_Policy")],
                parent=self,
                scope=scope("vpc-cni"),
            ),
            "aws-ebs-csi-driver": pod_identity_role(
                f"{name}-ebs-csi",
                description="EBS CSI driver: creates and attaches volumes",
                managed_policy_arns=[policy("service-role/AmazonEBSCSIDriverPolicy")],
                policy=pulumi.Output.from_input(context.kms_key_arn).apply(ebs_csi_key_policy),
                parent=self,
                scope=scope("aws-ebs-csi-driver"),
            ),
            "aws-mountpoint-s3-csi-driver": pod_identity_role(
                f"{name}-s3-csi",
                description="Mountpoint for S3 CSI driver: reads the datasets bucket",
                policy=pulumi.Output.all(
                    context.bucket_arns["datasets"], context.kms_key_arn
                ).apply(lambda v: s3_csi_policy(*v)),
                parent=self,
                scope=scope("aws-mountpoint-s3-csi-driver"),
            ),
        }

        def addon(addon_name: str, depends_on: list[pulumi.Resource]) -> aws.eks.Addon:
            account = ADDON_SERVICE_ACCOUNTS.get(addon_name)
            return aws.eks.Addon(
                f"{name}-{addon_name}",
                cluster_name=cluster.name,
                addon_name=addon_name,
                # No addon_version: EKS installs its default for the cluster's version.
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="OVERWRITE",
                configuration_values=(
                    json.dumps(ADDON_CONFIGURATION[addon_name])
                    if addon_name in ADDON_CONFIGURATION
                    else None
                ),
                pod_identity_associations=(
                    [{"role_arn": roles[addon_name].arn, "service_account": account}]
                    if account
                    else None
                ),
                opts=pulumi.ResourceOptions(parent=cluster, depends_on=depends_on),
            )

        self.addons = {n: addon(n, []) for n in ADDONS_BEFORE_NODES}
        # The pod identity agent must exist before add-ons that get credentials through it.
        self.node_prerequisites = list(self.addons.values())

        template = node_launch_template(
            f"{name}-system", disk_size_gib=nodes.disk_size_gib, parent=self
        )
        facts = instances.facts(nodes.instance_type)
        arm = facts is not None and facts.architecture == "arm64"
        system_nodes = aws.eks.NodeGroup(
            f"{name}-system",
            cluster_name=cluster.name,
            node_group_name=f"{args.cluster_name}-system",
            node_role_arn=node_role.arn,
            subnet_ids=list(args.subnet_ids),
            instance_types=[nodes.instance_type],
            ami_type="AL2023_ARM_64_STANDARD" if arm else "AL2023_x86_64_STANDARD",
            capacity_type="ON_DEMAND",
            scaling_config={
                "min_size": nodes.min_size,
                "max_size": nodes.max_size,
                "desired_size": nodes.min_size,
            },
            labels={"mlplatform.io/node-role": "system"},
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            update_config={"max_unavailable": 1},
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=self.node_prerequisites,
                # The cluster-autoscaler owns the current size; `pulumi up` keeps min and max.
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )
        for n in ADDONS_AFTER_NODES:
            self.addons[n] = addon(n, [system_nodes, self.addons["eks-pod-identity-agent"]])

        self.cluster = cluster
        self.system_node_group = system_nodes
        self.cluster_name = cluster.name
        self.cluster_arn = cluster.arn
        self.endpoint = cluster.endpoint
        self.version = cluster.version
        # Output types are dicts (plain ones under the offline plan's mocks): index, don't getattr.
        self.oidc_issuer = cluster.identities.apply(lambda ids: ids[0]["oidcs"][0]["issuer"])
        self.security_group_id = cluster.vpc_config.apply(lambda v: v["cluster_security_group_id"])
        self.node_role_arn = node_role.arn
        self.kubeconfig = pulumi.Output.all(
            cluster.name, cluster.endpoint, cluster.certificate_authority
        ).apply(lambda v: kubeconfig(v[0], context.region, v[1], v[2]["data"]))
        self.register_outputs(
            {
                "clusterName": self.cluster_name,
                "endpoint": self.endpoint,
                "nodeRoleArn": self.node_role_arn,
            }
        )
