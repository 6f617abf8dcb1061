"""CPU node pools: managed node groups for data preparation, CPU inference and batch work.

Like GPU pools, every setting follows from the instance type (infra/instances.py): the AMI
type, the node labels, and the cluster-autoscaler node-template tags (labels, CPUs, memory and
disk) that let a pending pod wake a pool sitting at zero nodes. No GPU taint and no device
plugin: any pod that selects the pool's label lands there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from infra import instances
from infra.components.cluster import node_launch_template
from infra.components.gpu_pools import AMI_FAMILY_LABEL, CAPACITY_LABEL, POOL_LABEL
from infra.components.node_groups import (
    CAPACITY_LABELS,
    CAPACITY_TYPES,
    NODE_TEMPLATE,
    NodeGroupSpec,
    managed_node_group,
)
from infra.config import CpuPool

NODE_KIND_LABEL = "mlplatform.io/node-kind"
AMI_TYPES = {
    ("al2023", "x86_64"): "AL2023_x86_64_STANDARD",
    ("al2023", "arm64"): "AL2023_ARM_64_STANDARD",
    ("bottlerocket", "x86_64"): "BOTTLEROCKET_x86_64",
    ("bottlerocket", "arm64"): "BOTTLEROCKET_ARM_64",
}


@dataclass(frozen=True)
class CpuPoolTemplate:
    """What every node of a CPU pool looks like: derived from the config, no cloud calls."""

    name: str
    instance_types: tuple[str, ...]
    ami_type: str
    capacity_type: str
    vcpus: int
    memory_mib: int
    disk_gib: int
    labels: dict[str, str]

    @property
    def node_selector(self) -> dict[str, str]:
        """What a pod puts in `nodeSelector` to land on this pool."""
        return {POOL_LABEL: self.name}

    @property
    def tolerations(self) -> list[dict[str, str]]:
        """CPU pools carry no taint: nothing to tolerate."""
        return []

    @property
    def autoscaler_tags(self) -> dict[str, str]:
        """The ASG tags cluster-autoscaler reads to build a node from nothing (scale from zero)."""
        tags = {f"{NODE_TEMPLATE}/label/{k}": v for k, v in self.labels.items()}
        tags[f"{NODE_TEMPLATE}/resources/cpu"] = str(self.vcpus)
        tags[f"{NODE_TEMPLATE}/resources/memory"] = f"{self.memory_mib}Mi"
        tags[f"{NODE_TEMPLATE}/resources/ephemeral-storage"] = f"{self.disk_gib}Gi"
        return tags


def cpu_pool_template(pool: CpuPool) -> CpuPoolTemplate:
    """Derive AMI type, labels and autoscaler tags from a validated CPU pool config."""
    facts = instances.facts(pool.instance_types[0])
    if facts is None:
        raise ValueError(f"cpuPools {pool.name}: no instance facts for {pool.instance_types[0]}")
    labels = {
        POOL_LABEL: pool.name,
        NODE_KIND_LABEL: "cpu",
        CAPACITY_LABEL: CAPACITY_LABELS[pool.capacity_type],
        AMI_FAMILY_LABEL: pool.ami_family,
        **pool.labels,
    }
    return CpuPoolTemplate(
        name=pool.name,
        instance_types=tuple(pool.instance_types),
        ami_type=AMI_TYPES[(pool.ami_family, facts.architecture)],
        capacity_type=CAPACITY_TYPES[pool.capacity_type],
        vcpus=facts.vcpus,
        memory_mib=facts.memory_mib,
        disk_gib=pool.disk_size_gib,
        labels=labels,
    )


@dataclass(frozen=True)
class CpuNodePoolArgs:
    """One CPU pool from the stack file, and the cluster it joins."""

    pool: CpuPool
    cluster_name: pulumi.Input[str]
    node_role_arn: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    depends_on: Sequence[pulumi.Resource] = ()


class CpuNodePool(pulumi.ComponentResource):
    """A managed node group of CPU instances that cluster-autoscaler sizes between min and max."""

    template: CpuPoolTemplate

    def __init__(
        self, name: str, args: CpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("mlplatform:cpu_pools:CpuNodePool", name, None, opts)
        pool = args.pool
        template = cpu_pool_template(pool)
        launch_template = node_launch_template(
            name,
            disk_size_gib=pool.disk_size_gib,
            bottlerocket=pool.ami_family == "bottlerocket",
            parent=self,
        )
        node_group = managed_node_group(
            name,
            NodeGroupSpec(
                pool_name=pool.name,
                cluster_name=args.cluster_name,
                node_role_arn=args.node_role_arn,
                subnet_ids=list(args.subnet_ids),
                instance_types=list(pool.instance_types),
                ami_type=template.ami_type,
                capacity_type=template.capacity_type,
                min_size=pool.min_size,
                max_size=pool.max_size,
                labels=template.labels,
                taints=(),
                autoscaler_tags=template.autoscaler_tags,
                launch_template=launch_template,
                depends_on=list(args.depends_on),
            ),
            parent=self,
        )
        self.template = template
        self.node_group = node_group
        self.register_outputs({"labels": template.labels, "nodeGroupArn": node_group.arn})
