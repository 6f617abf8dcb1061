"""The EKS compute plane wired from a stack's config: cluster, node pools, Kubernetes layer,
Container Insights.

`build_eks_plane` is what `infra/program.py` calls; workloads that run on the cluster take
what they need from the returned `EksPlane` (provider, namespaces, pools, PriorityClasses).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi

from infra.components.cluster import ClusterArgs, EksCluster
from infra.components.container_insights import ContainerInsights, ContainerInsightsArgs
from infra.components.cpu_pools import CpuNodePool, CpuNodePoolArgs
from infra.components.eks_operator import TrainingOperator
from infra.components.eks_training import EksTarget, PoolPlacement
from infra.components.gpu_pools import GpuNodePool, GpuNodePoolArgs
from infra.components.http_scaler import HttpScaler, HttpScalerArgs
from infra.components.kubernetes_layer import KubernetesLayer, KubernetesLayerArgs
from infra.config import StackConfig
from infra.context import StackContext


@dataclass
class EksPlane:
    """The cluster and what workloads need to land on its GPU pools."""

    name: str
    cluster: EksCluster
    pools: dict[str, GpuNodePool | CpuNodePool]
    kubernetes: KubernetesLayer
    kubernetes_version: str
    _operator: TrainingOperator | None = field(default=None, init=False, repr=False)
    _scaler: HttpScaler | None = field(default=None, init=False, repr=False)

    def target(self, namespace: str, pool: str) -> EksTarget:
        """Where a workload of `namespace` (training, serving) lands on `pool`."""
        template = self.pools[pool].template
        return EksTarget(
            cluster_name=self.cluster.cluster_name,
            cluster_arn=self.cluster.cluster_arn,
            namespace=self.kubernetes.namespaces[namespace],
            priority_class=self.kubernetes.priority_class_names[namespace],
            placement=PoolPlacement(template.node_selector, template.tolerations),
        )

    def training_operator(self) -> TrainingOperator:
        """Kubeflow Trainer, installed once, when the first model trains on the cluster."""
        if self._operator is None:
            self._operator = TrainingOperator(self.name, opts=self.workload_options)
        return self._operator

    def http_scaler(self) -> HttpScaler:
        """KEDA and its HTTP add-on, installed once, when the first model scales from zero."""
        if self._scaler is None:
            self._scaler = HttpScaler(
                self.name,
                HttpScalerArgs(
                    kubernetes_version=self.kubernetes_version,
                    serving_namespace=self.kubernetes.namespaces["serving"],
                    depends_on=[self.kubernetes],
                ),
                opts=self.workload_options,
            )
        return self._scaler

    @property
    def workload_options(self) -> pulumi.ResourceOptions:
        """Options for components that declare Kubernetes objects: the cluster's provider."""
        return pulumi.ResourceOptions(provider=self.kubernetes.provider)

    def outputs(self) -> dict[str, object]:
        """Stack outputs: enough for `aws eks update-kubeconfig` and for placing pods."""
        return {
            "clusterName": self.cluster.cluster_name,
            "clusterEndpoint": self.cluster.endpoint,
            "kubernetesNamespaces": self.kubernetes.namespaces,
            "priorityClassNames": self.kubernetes.priority_class_names,
            "gpuPools": {
                name: {
                    "nodeSelector": pool.template.node_selector,
                    "tolerations": pool.template.tolerations,
                    "gpuModel": pool.template.gpu_model,
                    "gpusPerNode": pool.template.gpu_count,
                    "instanceTypes": list(pool.template.instance_types),
                }
                for name, pool in self.pools.items()
                if isinstance(pool, GpuNodePool)
            },
            "cpuPools": {
                name: {
                    "nodeSelector": pool.template.node_selector,
                    "vcpusPerNode": pool.template.vcpus,
                    "memoryMibPerNode": pool.template.memory_mib,
                    "instanceTypes": list(pool.template.instance_types),
                }
                for name, pool in self.pools.items()
                if isinstance(pool, CpuNodePool)
            },
        }


def build_eks_plane(
    config: StackConfig,
    context: StackContext,
    *,
    vpc_id: pulumi.Input[str],
    private_subnet_ids: Sequence[pulumi.Input[str]],
) -> EksPlane:
    """Declare the cluster, one node group per pool, and the in-cluster GPU software."""
    settings = config.eks
    assert settings is not None, "build_eks_plane needs mlplatform:cluster"
    name = context.prefix
    cluster = EksCluster(
        name,
        ClusterArgs(
            settings=settings,
            context=context,
            subnet_ids=private_subnet_ids,
            # A stack that protects its data (prod) protects its cluster the same way.
            protect=config.storage.protect,
        ),
    )
    pools: dict[str, GpuNodePool | CpuNodePool] = {
        pool.name: GpuNodePool(
            f"{name}-{pool.name}",
            GpuNodePoolArgs(
                pool=pool,
                cluster_name=cluster.cluster_name,
                node_role_arn=cluster.node_role_arn,
                subnet_ids=private_subnet_ids,
                vpc_id=vpc_id,
                cluster_security_group_id=cluster.security_group_id,
                depends_on=cluster.node_prerequisites,
            ),
            opts=pulumi.ResourceOptions(parent=cluster),
        )
        for pool in config.gpu_pools
    }
    for cpu_pool in config.cpu_pools:
        pools[cpu_pool.name] = CpuNodePool(
            f"{name}-{cpu_pool.name}",
            CpuNodePoolArgs(
                pool=cpu_pool,
                cluster_name=cluster.cluster_name,
                node_role_arn=cluster.node_role_arn,
                subnet_ids=private_subnet_ids,
                depends_on=cluster.node_prerequisites,
            ),
            opts=pulumi.ResourceOptions(parent=cluster),
        )
    kubernetes = KubernetesLayer(
        name,
        KubernetesLayerArgs(
            settings=settings,
            context=context,
            cluster_name=cluster.cluster_name,
            kubeconfig=cluster.kubeconfig,
            efa=any(pool.efa for pool in config.gpu_pools),
            depends_on=[cluster.system_node_group, *cluster.addons.values()],
        ),
        opts=pulumi.ResourceOptions(parent=cluster),
    )
    # GPU and cluster metrics (and the DCGM exporter) once the system nodes can run the agent.
    ContainerInsights(
        name,
        ContainerInsightsArgs(
            context=context,
            cluster_name=cluster.cluster_name,
            cluster_arn=cluster.cluster_arn,
            log_retention_days=settings.log_retention_days,
            depends_on=[cluster.system_node_group, cluster.addons["eks-pod-identity-agent"]],
        ),
        opts=pulumi.ResourceOptions(parent=cluster),
    )
    return EksPlane(
        name=name,
        cluster=cluster,
        pools=pools,
        kubernetes=kubernetes,
        kubernetes_version=settings.version,
    )
