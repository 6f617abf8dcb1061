"""What runs inside the cluster for GPUs: device plugin, autoscaler, namespaces, quotas, and the
network policies that deny workload traffic by default. GPU metrics come from the CloudWatch
Observability add-on's DCGM exporter (infra/components/container_insights.py), not from here.

Everything here goes through one `pulumi_kubernetes.Provider` built from the cluster's outputs,
so workloads (training jobs, serving Deployments) reuse `KubernetesLayer.provider` and the
namespace and PriorityClass names below, which are part of the platform's contract.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra import config
from infra.components.cluster_iam import PodIdentityScope, pod_identity_role
from infra.components.gpu_pools import (
    AMI_FAMILY_LABEL,
    EFA_LABEL,
    GPU_PRESENT_LABEL,
    GPU_TAINT,
    SYSTEM_NODE_SELECTOR,
)
from infra.components.network_policies import network_policies
from infra.context import StackContext

# Workload namespaces and the PriorityClass each one's pods use (serving preempts training).
NAMESPACES = ("training", "serving")
PRIORITY_CLASSES = {
    "serving": (
        "mlplatform-serving",
        100_000,
        "Online inference: preempts training when GPUs run short.",
    ),
    "training": ("mlplatform-training", 10_000, "Training jobs: checkpoint and yield to serving."),
}

# Pinned charts. The cluster-autoscaler's image must match the cluster's minor version.
DEVICE_PLUGIN_CHART = (
    "nvidia-device-plugin",
    "0.19.3",
    "https://nvidia.github.io/k8s-device-plugin",
)
AUTOSCALER_CHART = ("cluster-autoscaler", "9.59.0", "https://kubernetes.github.io/autoscaler")
EFA_PLUGIN_CHART = ("aws-efa-k8s-device-plugin", "v0.5.30", "https://aws.github.io/eks-charts")
AUTOSCALER_IMAGE_TAGS = {"1.32": "v1.32.7", "1.33": "v1.33.6", "1.34": "v1.34.5", "1.35": "v1.35.2"}
AUTOSCALER_SERVICE_ACCOUNT = "cluster-autoscaler"
GPU_TOLERATION = {"key": GPU_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}


@dataclass(frozen=True)
class KubernetesLayerArgs:
    """The `mlplatform:cluster` section, the stack, the cluster to talk to, and whether any
    GPU pool has EFA (then the EFA device plugin is installed)."""

    settings: config.Cluster
    context: StackContext
    cluster_name: pulumi.Input[str]
    kubeconfig: pulumi.Input[str]
    efa: bool = False
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


def autoscaler_policy(cluster_name: str, context: StackContext) -> str:
    """Read anything it must, but describe and resize only this cluster's node groups."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    # Describe and list calls have no resource-level permissions.
                    "Sid": "Discover",
                    "Effect": "Allow",
                    "Action": [
                        "autoscaling:DescribeAutoScalingGroups",
                        "autoscaling:DescribeAutoScalingInstances",
                        "autoscaling:DescribeLaunchConfigurations",
                        "autoscaling:DescribeScalingActivities",
                        "ec2:DescribeImages",
                        "ec2:DescribeInstanceTypes",
                        "ec2:DescribeLaunchTemplateVersions",
                        "ec2:GetInstanceTypesFromInstanceRequirements",
                    ],
                    "Resource": "*",
                },
                {
                    "Sid": "DescribeOwnNodeGroups",
                    "Effect": "Allow",
                    "Action": ["eks:DescribeNodegroup"],
                    "Resource": context.arn("eks", f"nodegroup/{cluster_name}/*"),
                },
                {
                    # EKS tags every managed node group's ASG with this key.
                    "Sid": "ScaleOwnNodeGroups",
                    "Effect": "Allow",
                    "Action": [
                        "autoscaling:SetDesiredCapacity",
                        "autoscaling:TerminateInstanceInAutoScalingGroup",
                    ],
                    "Resource": context.arn(
                        "autoscaling", "autoScalingGroup:*:autoScalingGroupName/*"
                    ),
                    "Condition": {
                        "StringEquals": {
                            f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"
                        }
                    },
                },
            ],
        }
    )


def device_plugin_values() -> dict:
    """GPU nodes on AL2023 only: Bottlerocket's NVIDIA variants run the plugin on the host."""
    return {
        "nodeSelector": {GPU_PRESENT_LABEL: "true", AMI_FAMILY_LABEL: "al2023"},
        # Replaces the chart's default affinity, which expects node-feature-discovery labels.
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": GPU_PRESENT_LABEL, "operator": "In", "values": ["true"]}
                            ]
                        }
                    ]
                }
            }
        },
        "tolerations": [GPU_TOLERATION],
    }


def efa_plugin_values(region: str) -> dict:
    return {
        # EKS publishes its images in every region's registry; pull from this one.
        "image": {
            "repository": f"602401143452.dkr.ecr.{region}.amazonaws.com/eks/aws-efa-k8s-device-plugin"
        },
        "nodeSelector": {EFA_LABEL: "true"},
        "tolerations": [GPU_TOLERATION],
    }


def autoscaler_values(cluster_name: str, region: str, version: str) -> dict:
    return {
        "cloudProvider": "aws",
        "awsRegion": region,
        "autoDiscovery": {"clusterName": cluster_name},
        "image": {"tag": AUTOSCALER_IMAGE_TAGS[version]},
        "rbac": {"serviceAccount": {"create": True, "name": AUTOSCALER_SERVICE_ACCOUNT}},
        "nodeSelector": SYSTEM_NODE_SELECTOR,
        "extraArgs": {
            "expander": "least-waste",
            "balance-similar-node-groups": "true",
            # Kubernetes and EKS add-on pods on a GPU node must not keep an idle GPU node alive.
            "skip-nodes-with-system-pods": "false",
            "scale-down-unneeded-time": "10m",
        },
    }


class KubernetesLayer(pulumi.ComponentResource):
    """The provider, GPU system software, workload namespaces, GPU quotas and priorities."""

    provider: k8s.Provider
    namespaces: dict[str, pulumi.Output[str]]
    priority_class_names: dict[str, str]

    def __init__(
        self, name: str, args: KubernetesLayerArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("mlplatform:kubernetes:KubernetesLayer", name, None, opts)
        self.provider = k8s.Provider(
            name,
            kubeconfig=args.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self),
        )
        k8s_opts = pulumi.ResourceOptions(
            parent=self, provider=self.provider, depends_on=list(args.depends_on)
        )

        self.priority_class_names = {}
        for purpose, (class_name, value, description) in PRIORITY_CLASSES.items():
            k8s.scheduling.v1.PriorityClass(
                f"{name}-{class_name}",
                metadata={"name": class_name},
                value=value,
                global_default=False,
                preemption_policy="PreemptLowerPriority",
                description=description,
                opts=k8s_opts,
            )
            self.priority_class_names[purpose] = class_name

        self.namespaces = {}
        for namespace in NAMESPACES:
            created = k8s.core.v1.Namespace(
                f"{name}-{namespace}",
                metadata={
                    "name": namespace,
                    "labels": {
                        "mlplatform.io/workload": namespace,
                        # Workloads run as ordinary pods: no host access, no privilege.
                        "pod-security.kubernetes.io/enforce": "baseline",
                        "pod-security.kubernetes.io/warn": "restricted",
                    },
                },
                opts=k8s_opts,
            )
            k8s.core.v1.ResourceQuota(
                f"{name}-{namespace}-gpus",
                metadata={"name": "gpus", "namespace": created.metadata.name},
                spec={
                    "hard": {
                        "requests.nvidia.com/gpu": str(getattr(args.settings.gpu_quota, namespace))
                    }
                },
                opts=pulumi.ResourceOptions(parent=created, provider=self.provider),
            )
            for policy_name, spec in network_policies(namespace).items():
                k8s.networking.v1.NetworkPolicy(
                    f"{name}-{namespace}-{policy_name}",
                    metadata={"name": policy_name, "namespace": created.metadata.name},
                    # Written in the API's camelCase (what kubernetes-validate checks).
                    spec=cast(k8s.networking.v1.NetworkPolicySpecArgsDict, spec),
                    opts=pulumi.ResourceOptions(parent=created, provider=self.provider),
                )
            self.namespaces[namespace] = created.metadata.name

        role = pod_identity_role(
            f"{name}-cluster-autoscaler",
            description="cluster-autoscaler: resizes this cluster's node groups",
            policy=pulumi.Output.from_input(args.cluster_name).apply(
                lambda cluster: autoscaler_policy(cluster, args.context)
            ),
            parent=self,
            scope=PodIdentityScope(
                pulumi.Output.from_input(args.cluster_name).apply(
                    lambda cluster: args.context.arn("eks", f"cluster/{cluster}")
                ),
                "kube-system",
                AUTOSCALER_SERVICE_ACCOUNT,
            ),
        )
        association = aws.eks.PodIdentityAssociation(
            f"{name}-cluster-autoscaler",
            cluster_name=args.cluster_name,
            namespace="kube-system",
            service_account=AUTOSCALER_SERVICE_ACCOUNT,
            role_arn=role.arn,
            opts=pulumi.ResourceOptions(parent=role),
        )

        def release(
            chart: tuple[str, str, str], values: pulumi.Input[dict], extra: list[pulumi.Resource]
        ) -> k8s.helm.v3.Release:
            chart_name, version, repo = chart
            return k8s.helm.v3.Release(
                f"{name}-{chart_name}",
                name=chart_name,
                chart=chart_name,
                version=version,
                repository_opts={"repo": repo},
                namespace="kube-system",
                values=values,
                atomic=True,
                cleanup_on_fail=True,
                opts=pulumi.ResourceOptions(
                    parent=self, provider=self.provider, depends_on=[*args.depends_on, *extra]
                ),
            )

        self.device_plugin = release(DEVICE_PLUGIN_CHART, device_plugin_values(), [])
        if args.efa:
            self.efa_plugin = release(EFA_PLUGIN_CHART, efa_plugin_values(args.context.region), [])
        self.autoscaler = release(
            AUTOSCALER_CHART,
            pulumi.Output.from_input(args.cluster_name).apply(
                lambda cluster: autoscaler_values(
                    cluster, args.context.region, args.settings.version
                )
            ),
            [association],
        )
        self.register_outputs(
            {"namespaces": self.namespaces, "priorityClassNames": self.priority_class_names}
        )
