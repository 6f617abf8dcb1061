"""The EKS compute plane wired from a stack's config: cluster, GPU pools, Kubernetes layer.

`build_eks_plane` is what `infra/program.py` calls; workloads that run on the cluster take
what they need from the returned `EksPlane` (provider, namespaces, pools, PriorityClasses).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.components.cluster import ClusterArgs, EksCluster
from infra.components.gpu_pools import GpuNodePool, GpuNodePoolArgs
from infra.components.kubernetes_layer import KubernetesLayer, KubernetesLayerArgs
from infra.config import StackConfig


@dataclass(frozen=True)
class EksPlane:
    """The cluster and what workloads need to land on its GPU pools."""

    cluster: EksCluster
    pools: dict[str, GpuNodePool]
    kubernetes: KubernetesLayer

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
            },
        }


def build_eks_plane(
    config: StackConfig,
    name: str,
    *,
    partition: str,
    vpc_id: pulumi.Input[str],
    private_subnet_ids: list[pulumi.Input[str]],
    kms_key_arn: pulumi.Input[str],
    datasets_bucket_arn: pulumi.Input[str],
) -> EksPlane:
    """Declare the cluster, one node group per GPU pool, and the in-cluster GPU software."""
    settings = config.cluster
    cluster = EksCluster(
        name,
        ClusterArgs(
            cluster_name=name,
            version=settings.version,
            region=config.region,
            partition=partition,
            subnet_ids=private_subnet_ids,
            kms_key_arn=kms_key_arn,
            datasets_bucket_arn=datasets_bucket_arn,
            endpoint_public_access=settings.endpoint_public_access,
            public_access_cidrs=settings.public_access_cidrs,
            log_types=settings.log_types,
            log_retention_days=settings.log_retention_days,
            system_instance_type=settings.system_nodes.instance_type,
            system_min_size=settings.system_nodes.min_size,
            system_max_size=settings.system_nodes.max_size,
            system_disk_size_gib=settings.system_nodes.disk_size_gib,
            admin_role_arns=settings.admin_role_arns,
            # A stack that protects its data (prod) protects its cluster the same way.
            protect=config.storage.protect,
        ),
    )
    pools = {
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
    kubernetes = KubernetesLayer(
        name,
        KubernetesLayerArgs(
            cluster_name=cluster.cluster_name,
            kubeconfig=cluster.kubeconfig,
            kubernetes_version=settings.version,
            region=config.region,
            gpu_quota=settings.gpu_quota.model_dump(),
            efa=any(pool.efa for pool in config.gpu_pools),
            depends_on=[cluster.system_node_group, *cluster.addons.values()],
        ),
        opts=pulumi.ResourceOptions(parent=cluster),
    )
    return EksPlane(cluster=cluster, pools=pools, kubernetes=kubernetes)
