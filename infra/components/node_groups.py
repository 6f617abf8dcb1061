"""What every node pool shares: an EKS managed node group sized by the cluster-autoscaler, and
the node-template tags on its Auto Scaling group that let a pool at zero nodes be woken."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

NODE_TEMPLATE = "k8s.io/cluster-autoscaler/node-template"
CAPACITY_TYPES = {"onDemand": "ON_DEMAND", "spot": "SPOT", "capacityBlock": "CAPACITY_BLOCK"}
CAPACITY_LABELS = {"onDemand": "on-demand", "spot": "spot", "capacityBlock": "capacity-block"}
_EKS_TAINT_EFFECTS = {
    "NoSchedule": "NO_SCHEDULE",
    "NoExecute": "NO_EXECUTE",
    "PreferNoSchedule": "PREFER_NO_SCHEDULE",
}


@dataclass(frozen=True)
class NodeGroupSpec:
    """One managed node group: who it joins, what runs on it, how big it may get."""

    pool_name: str
    cluster_name: pulumi.Input[str]
    node_role_arn: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    instance_types: Sequence[str] | None  # None: the launch template names the type
    ami_type: str
    capacity_type: str  # EKS's: ON_DEMAND, SPOT, CAPACITY_BLOCK
    min_size: int
    max_size: int
    labels: Mapping[str, str]
    taints: Sequence[Mapping[str, str]]
    autoscaler_tags: Mapping[str, str]
    launch_template: aws.ec2.LaunchTemplate
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


def managed_node_group(
    name: str, spec: NodeGroupSpec, parent: pulumi.Resource
) -> aws.eks.NodeGroup:
    """The node group, and its Auto Scaling group tagged with the pool's node template."""
    node_group = aws.eks.NodeGroup(
        name,
        cluster_name=spec.cluster_name,
        node_group_name=pulumi.Output.from_input(spec.cluster_name).apply(
            lambda c: f"{c}-{spec.pool_name}"
        ),
        node_role_arn=spec.node_role_arn,
        subnet_ids=list(spec.subnet_ids),
        instance_types=None if spec.instance_types is None else list(spec.instance_types),
        ami_type=spec.ami_type,
        capacity_type=spec.capacity_type,
        # desired starts at min; from then on the cluster-autoscaler owns it (ignore_changes).
        scaling_config={
            "min_size": spec.min_size,
            "max_size": spec.max_size,
            "desired_size": spec.min_size,
        },
        labels=dict(spec.labels),
        taints=[
            {"key": t["key"], "value": t["value"], "effect": _EKS_TAINT_EFFECTS[t["effect"]]}
            for t in spec.taints
        ],
        launch_template={
            "id": spec.launch_template.id,
            "version": spec.launch_template.latest_version.apply(str),
        },
        update_config={"max_unavailable": 1},
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=list(spec.depends_on),
            ignore_changes=["scalingConfig.desiredSize"],
        ),
    )
    # Managed node groups do not copy their tags to the autoscaling group, which is where
    # cluster-autoscaler looks for node templates; tag the group directly.
    group_name = node_group.resources.apply(lambda r: r[0]["autoscaling_groups"][0]["name"])
    for key, value in spec.autoscaler_tags.items():
        aws.autoscaling.Tag(
            f"{name}-{key.removeprefix(NODE_TEMPLATE + '/').replace('/', '-')}",
            autoscaling_group_name=group_name,
            tag={"key": key, "value": value, "propagate_at_launch": False},
            opts=pulumi.ResourceOptions(parent=node_group),
        )
    return node_group
