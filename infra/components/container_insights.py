"""GPU and cluster metrics in CloudWatch: the Amazon CloudWatch Observability EKS add-on.

Why this add-on rather than Amazon Managed Service for Prometheus with a scraper: no server or
workspace to run and pay for while the cluster idles, metrics land in CloudWatch next to the
SageMaker endpoints' (one place for alarms, the stack's alert topic and its dashboard), and the
add-on brings NVIDIA's DCGM exporter for the GPU nodes with it (Container Insights' `node_gpu_*`
and `pod_gpu_*` metrics). The cluster therefore runs no DCGM exporter of its own: two exporters
would both hold the GPUs' DCGM host engine and publish every metric twice.

The agent gets CloudWatchAgentServerPolicy through Pod Identity (add-on 3.1.0 or later), scoped to
its service account `amazon-cloudwatch/cloudwatch-agent` in this cluster, not through the node
role. Container logs (Fluent Bit) stay off: they would ship every pod's output into log groups
the add-on creates outside the stack key, billed per GB ingested.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.components.cluster_iam import PodIdentityScope, managed_policy, pod_identity_role
from infra.components.storage import stack_log_groups
from infra.context import StackContext

ADDON = "amazon-cloudwatch-observability"
# Pinned: what the add-on collects and which configuration keys it takes change between
# versions (Pod Identity from 3.1.0; AWS's install page names v6.2.0-eksbuild.1).
ADDON_VERSION = "v6.2.0-eksbuild.1"
NAMESPACE = "amazon-cloudwatch"
SERVICE_ACCOUNT = "cloudwatch-agent"
CONFIGURATION = {"containerLogs": {"enabled": False}}


@dataclass(frozen=True)
class ContainerInsightsArgs:
    """The stack and the cluster whose nodes, pods and GPUs report to CloudWatch."""

    context: StackContext
    cluster_name: pulumi.Input[str]
    cluster_arn: pulumi.Input[str]
    log_retention_days: int
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


class ContainerInsights(pulumi.ComponentResource):
    """The CloudWatch agent and DCGM exporter (EKS add-on) with their own Pod Identity role."""

    def __init__(
        self, name: str, args: ContainerInsightsArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("mlplatform:cluster:ContainerInsights", name, None, opts)
        role = pod_identity_role(
            f"{name}-cloudwatch-agent",
            description="CloudWatch agent: Container Insights and GPU metrics",
            managed_policy_arns=[
                managed_policy(args.context.partition, "CloudWatchAgentServerPolicy")
            ],
            parent=self,
            scope=PodIdentityScope(args.cluster_arn, NAMESPACE, SERVICE_ACCOUNT),
        )
        # A standalone association (namespace named), made before the agent's pods start.
        association = aws.eks.PodIdentityAssociation(
            f"{name}-cloudwatch-agent",
            cluster_name=args.cluster_name,
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            role_arn=role.arn,
            opts=pulumi.ResourceOptions(parent=role),
        )
        # Created before the agent writes to it: under the stack key and with the cluster's
        # retention, not the agent's unencrypted, never-expiring default.
        logs = aws.cloudwatch.LogGroup(
            f"{name}-container-insights",
            name=stack_log_groups(args.context.prefix)["container-insights"],
            retention_in_days=args.log_retention_days,
            kms_key_id=args.context.kms_key_arn,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.addon = aws.eks.Addon(
            f"{name}-{ADDON}",
            cluster_name=args.cluster_name,
            addon_name=ADDON,
            addon_version=ADDON_VERSION,
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            configuration_values=json.dumps(CONFIGURATION),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[*args.depends_on, association, logs]
            ),
        )
        self.register_outputs({"addonVersion": ADDON_VERSION})
