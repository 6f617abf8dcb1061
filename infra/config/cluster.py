"""The `mlplatform:cluster` section: the EKS cluster, its system nodes and GPU quotas."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from infra.config.base import Days, Section, check_ec2_instance_type, max_size_not_below_min_size

# Kubernetes versions EKS offers that the components here are pinned for (cluster-autoscaler's
# image follows the cluster's minor version; see infra/components/kubernetes_layer.py).
KUBERNETES_VERSIONS = ("1.32", "1.33", "1.34", "1.35")
ControlPlaneLogType = Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]


class SystemNodes(Section):
    """The small on-demand CPU node group that runs cluster services (CoreDNS, autoscaler)."""

    instance_type: str = Field(default="m6i.large", description="EC2 instance type (CPU).")
    min_size: Annotated[int, Field(ge=1, le=20)] = Field(
        default=2, description="Nodes always running (2 keeps CoreDNS up through a node loss)."
    )
    max_size: Annotated[int, Field(ge=1, le=50)] = Field(
        default=3, description="Upper bound the cluster-autoscaler may scale to."
    )
    disk_size_gib: Annotated[int, Field(ge=20, le=1024)] = Field(
        default=50, description="Encrypted root volume size (GiB)."
    )

    @field_validator("instance_type")
    @classmethod
    def _ec2_type(cls, value: str) -> str:
        return check_ec2_instance_type(value)

    _max_not_below_min = max_size_not_below_min_size()


class GpuQuota(Section):
    """GPUs (`requests.nvidia.com/gpu`) that all pods of a namespace may request together."""

    training: Annotated[int, Field(ge=0, le=10000)] = Field(
        default=0, description="GPUs for the `training` namespace (0: no GPU pods there)."
    )
    serving: Annotated[int, Field(ge=0, le=10000)] = Field(
        default=0, description="GPUs for the `serving` namespace (0: no GPU pods there)."
    )


class Cluster(Section):
    """The EKS cluster: version, API endpoint exposure, logging, system nodes and GPU quotas.
    Leave the section out (or set `enabled: false`) for a SageMaker-only stack."""

    enabled: bool = Field(
        default=True,
        description="Create the cluster; false (or no mlplatform:cluster at all): no EKS, no "
        "system nodes, no node pools, SageMaker only.",
    )

    version: str = Field(
        default="1.34",
        description="Kubernetes version, quoted (YAML reads 1.30 as 1.3), one of "
        f"{', '.join(KUBERNETES_VERSIONS)}.",
    )
    endpoint_public_access: bool = Field(
        default=False,
        description="Expose the Kubernetes API endpoint publicly (to `publicAccessCidrs` only); "
        "off: reachable from inside the VPC only (VPN, bastion or CI runner in the VPC).",
    )
    public_access_cidrs: list[str] = Field(
        default_factory=list,
        description="Networks allowed to reach a public endpoint, e.g. an office or CI egress /32.",
    )
    log_types: list[ControlPlaneLogType] = Field(
        default_factory=lambda: ["api", "audit", "authenticator", "controllerManager", "scheduler"],
        description="Control-plane logs sent to CloudWatch Logs.",
    )
    log_retention_days: Days = Field(
        default=90, description="How long CloudWatch keeps control-plane logs."
    )
    admin_role_arns: list[str] = Field(
        default_factory=list,
        description="IAM role ARNs given cluster-admin through access entries (the identity "
        "that creates the cluster is admin too).",
    )
    system_nodes: SystemNodes = Field(
        default_factory=SystemNodes, description="CPU nodes for cluster services."
    )
    gpu_quota: GpuQuota = Field(
        default_factory=GpuQuota, description="GPU ResourceQuota per workload namespace."
    )

    @field_validator("version")
    @classmethod
    def _supported_version(cls, value: str) -> str:
        if value not in KUBERNETES_VERSIONS:
            raise ValueError(
                f"unsupported Kubernetes version; use one of {', '.join(KUBERNETES_VERSIONS)}"
            )
        return value

    @field_validator("public_access_cidrs")
    @classmethod
    def _allow_list(cls, cidrs: list[str], info: ValidationInfo) -> list[str]:
        for cidr in cidrs:
            try:
                net = ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                raise ValueError(f"{cidr!r} is not a CIDR block ({exc})") from None
            if net.prefixlen == 0:
                raise ValueError(f"{cidr} opens the API to the whole internet; name your networks")
        if cidrs and info.data.get("endpoint_public_access") is False:
            raise ValueError("an allow-list applies only with endpointPublicAccess: true")
        return cidrs

    @model_validator(mode="after")
    def _public_endpoint_has_allow_list(self) -> Cluster:
        if self.endpoint_public_access and not self.public_access_cidrs:
            raise ValueError("endpointPublicAccess: true needs publicAccessCidrs (an allow-list)")
        return self

    @field_validator("admin_role_arns")
    @classmethod
    def _role_arns(cls, arns: list[str]) -> list[str]:
        for arn in arns:
            if not re.fullmatch(r"arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]+", arn):
                raise ValueError(f"{arn!r} is not an IAM role ARN")
        return arns
