"""GPU node pools: managed node groups whose every setting follows from the instance type.

A pool in the stack file names instance types and a size range. From the instance facts
(infra/instances.py) this module derives the AMI type, the node labels (pool, GPU model and
count), the `nvidia.com/gpu` taint, and the cluster-autoscaler `node-template` tags that let a
pending GPU pod wake a pool that sits at zero nodes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import instances
from infra.components.cluster import node_launch_template
from infra.components.node_groups import (
    CAPACITY_LABELS,
    CAPACITY_TYPES,
    NODE_TEMPLATE,
    NodeGroupSpec,
    managed_node_group,
)
from infra.config import GpuPool

POOL_LABEL = "mlplatform.io/pool"
GPU_MODEL_LABEL = "mlplatform.io/gpu-model"
GPU_COUNT_LABEL = "mlplatform.io/gpu-count"
GPU_MEMORY_LABEL = "mlplatform.io/gpu-memory-gib"
CAPACITY_LABEL = "mlplatform.io/capacity-type"
AMI_FAMILY_LABEL = "mlplatform.io/ami-family"
# NVIDIA's own "this node has GPUs" label (the device plugin chart selects on it) and the
# label cluster-autoscaler's AWS provider reads to know a GPU node's GPUs are still coming up.
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
ACCELERATOR_LABEL = "k8s.amazonaws.com/accelerator"
EFA_LABEL = "vpc.amazonaws.com/efa.present"
GPU_RESOURCE = "nvidia.com/gpu"
EFA_RESOURCE = "vpc.amazonaws.com/efa"
GPU_TAINT = {"key": GPU_RESOURCE, "value": "true", "effect": "NoSchedule"}
SYSTEM_NODE_SELECTOR = {"mlplatform.io/node-role": "system"}

AMI_TYPES = {
    ("al2023", "x86_64"): "AL2023_x86_64_NVIDIA",
    ("al2023", "arm64"): "AL2023_ARM_64_NVIDIA",
    ("bottlerocket", "x86_64"): "BOTTLEROCKET_x86_64_NVIDIA",
    ("bottlerocket", "arm64"): "BOTTLEROCKET_ARM_64_NVIDIA",
}


def label_value(text: str) -> str:
    """A GPU model name as a label value: 'RTX PRO 4500' -> 'rtx-pro-4500'."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.")


@dataclass(frozen=True)
class GpuPoolTemplate:
    """What every node of a pool looks like: derived from the config, no cloud calls."""

    name: str
    instance_types: tuple[str, ...]
    ami_type: str
    capacity_type: str
    gpu_model: str
    gpu_count: int
    efa_interfaces: int
    labels: dict[str, str]
    taints: tuple[dict[str, str], ...]

    @property
    def node_selector(self) -> dict[str, str]:
        """What a pod puts in `nodeSelector` to land on this pool."""
        return {POOL_LABEL: self.name}

    @property
    def tolerations(self) -> list[dict[str, str]]:
        """What a pod needs to tolerate to run on this pool."""
        return [{"key": t["key"], "operator": "Exists", "effect": t["effect"]} for t in self.taints]

    @property
    def autoscaler_tags(self) -> dict[str, str]:
        """The ASG tags cluster-autoscaler reads to build a node from nothing (scale from zero)."""
        tags = {f"{NODE_TEMPLATE}/label/{k}": v for k, v in self.labels.items()}
        tags |= {
            f"{NODE_TEMPLATE}/taint/{t['key']}": f"{t['value']}:{t['effect']}" for t in self.taints
        }
        tags[f"{NODE_TEMPLATE}/resources/{GPU_RESOURCE}"] = str(self.gpu_count)
        if self.efa_interfaces:
            tags[f"{NODE_TEMPLATE}/resources/{EFA_RESOURCE}"] = str(self.efa_interfaces)
        return tags


def pool_template(pool: GpuPool) -> GpuPoolTemplate:
    """Derive AMI type, labels, taints and autoscaler tags from a validated pool config."""
    facts = instances.facts(pool.instance_types[0])
    if facts is None or not facts.gpu_count or facts.gpu_model is None:
        raise ValueError(
            f"gpuPools {pool.name}: {pool.instance_types[0]} is not a GPU instance type"
        )
    labels = {
        POOL_LABEL: pool.name,
        GPU_MODEL_LABEL: label_value(facts.gpu_model),
        GPU_COUNT_LABEL: str(facts.gpu_count),
        GPU_MEMORY_LABEL: str(facts.gpu_memory_mib // 1024),
        CAPACITY_LABEL: CAPACITY_LABELS[pool.capacity_type],
        AMI_FAMILY_LABEL: pool.ami_family,
        GPU_PRESENT_LABEL: "true",
        ACCELERATOR_LABEL: f"nvidia-{label_value(facts.gpu_model)}",
        **pool.labels,
    }
    if pool.efa:
        labels[EFA_LABEL] = "true"
    return GpuPoolTemplate(
        name=pool.name,
        instance_types=tuple(pool.instance_types),
        ami_type=AMI_TYPES[(pool.ami_family, facts.architecture)],
        capacity_type=CAPACITY_TYPES[pool.capacity_type],
        gpu_model=facts.gpu_model,
        gpu_count=facts.gpu_count,
        efa_interfaces=facts.efa_interfaces if pool.efa else 0,
        labels=labels,
        taints=(dict(GPU_TAINT),),
    )


@dataclass(frozen=True)
class GpuNodePoolArgs:
    """One pool from the stack file, and the cluster it joins."""

    pool: GpuPool
    cluster_name: pulumi.Input[str]
    node_role_arn: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    vpc_id: pulumi.Input[str]
    cluster_security_group_id: pulumi.Input[str]
    depends_on: Sequence[pulumi.Resource] = ()


class GpuNodePool(pulumi.ComponentResource):
    """A managed node group of GPU instances that cluster-autoscaler sizes between min and max."""

    template: GpuPoolTemplate
    node_group: aws.eks.NodeGroup

    def __init__(
        self, name: str, args: GpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("mlplatform:gpu_pools:GpuNodePool", name, None, opts)
        pool = args.pool
        template = pool_template(pool)
        child = pulumi.ResourceOptions(parent=self)
        subnets = list(args.subnet_ids)
        extra: dict = {}
        if pool.capacity_type == "capacityBlock":
            # A Capacity Block is bought for one instance type; EKS wants it in the template.
            extra["instance_type"] = pool.instance_types[0]
            extra["instance_market_options"] = {"market_type": "capacity-block"}
        if pool.capacity_reservation_id:
            extra["capacity_reservation_specification"] = {
                "capacity_reservation_target": {
                    "capacity_reservation_id": pool.capacity_reservation_id
                }
            }
        if pool.efa:
            # EFA wants the nodes close together (one zone, a cluster placement group) and
            # all traffic between them open; the interfaces then carry the cluster's SG too.
            subnets = subnets[:1]
            placement = aws.ec2.PlacementGroup(name, strategy="cluster", opts=child)
            efa_sg = aws.ec2.SecurityGroup(
                f"{name}-efa",
                description=f"EFA traffic between nodes of GPU pool {pool.name}",
                vpc_id=args.vpc_id,
                ingress=[
                    {
                        "protocol": "-1",
                        "from_port": 0,
                        "to_port": 0,
                        "self": True,
                        "description": "EFA peers",
                    }
                ],
                egress=[
                    {
                        "protocol": "-1",
                        "from_port": 0,
                        "to_port": 0,
                        "self": True,
                        "description": "EFA peers",
                    }
                ],
                tags={"Name": f"{name}-efa"},
                opts=child,
            )
            extra["placement"] = {"group_name": placement.name}
            extra["network_interfaces"] = [
                {
                    "device_index": 0 if card == 0 else 1,
                    "network_card_index": card,
                    # The first card also carries IP traffic; the rest only EFA (saves IPs).
                    "interface_type": "efa" if card == 0 else "efa-only",
                    "security_groups": [args.cluster_security_group_id, efa_sg.id],
                    "delete_on_termination": "true",
                }
                for card in range(template.efa_interfaces)
            ]
        launch_template = node_launch_template(
            name,
            disk_size_gib=pool.disk_size_gib,
            bottlerocket=pool.ami_family == "bottlerocket",
            extra=extra,
            parent=self,
        )
        node_group = managed_node_group(
            name,
            NodeGroupSpec(
                pool_name=pool.name,
                cluster_name=args.cluster_name,
                node_role_arn=args.node_role_arn,
                subnet_ids=subnets,
                instance_types=None
                if pool.capacity_type == "capacityBlock"
                else list(pool.instance_types),
                ami_type=template.ami_type,
                capacity_type=template.capacity_type,
                min_size=pool.min_size,
                max_size=pool.max_size,
                labels=template.labels,
                taints=template.taints,
                autoscaler_tags=template.autoscaler_tags,
                launch_template=launch_template,
                depends_on=list(args.depends_on),
            ),
            parent=self,
        )
        self.template = template
        self.node_group = node_group
        self.register_outputs({"labels": template.labels, "nodeGroupArn": node_group.arn})
