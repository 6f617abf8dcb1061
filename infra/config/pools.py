"""The `mlplatform:gpuPools` and `mlplatform:cpuPools` sections: node pools whose settings follow
from the instance type."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from infra.config.base import Section, check_ec2_instance_type, max_size_not_below_min_size

_POOL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
_CAPACITY_RESERVATION = re.compile(r"^cr-[0-9a-f]{17}$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
RESERVED_LABEL_DOMAINS = (
    "mlplatform.io/",
    "nvidia.com/",
    "k8s.amazonaws.com/",
    "eks.amazonaws.com/",
)


def check_gpu_instance_type(value: str) -> str:
    """An EC2 type with whole NVIDIA GPUs, per the instance facts table (infra/instances.py)."""
    from infra import instances

    check_ec2_instance_type(value)
    found = instances.facts(value)
    if found is None:
        raise ValueError(
            f"no instance facts for {value} in {instances.TABLE.name}; regenerate it with "
            "`python -m infra.instances` after upgrading moto"
        )
    if found.gpu_model is None:
        families = sorted({f.family for f in instances.table().values() if f.gpu_count})
        raise ValueError(
            f"not a GPU instance type ({value} has no GPUs); GPU families: {', '.join(families)}"
        )
    if found.gpu_manufacturer != "NVIDIA":
        raise ValueError(f"{value} has {found.gpu_manufacturer} GPUs; GPU pools run NVIDIA AMIs")
    if found.gpu_count < 1:
        raise ValueError(
            f"{value} gets a fraction ({found.gpu_partition:g}) of one {found.gpu_model}; GPU pools "
            "need whole GPUs that the NVIDIA device plugin can offer as nvidia.com/gpu"
        )
    return value


GpuInstanceType = Annotated[str, AfterValidator(check_gpu_instance_type)]


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    """Valid Kubernetes labels outside the domains the platform sets itself."""
    for key, value in labels.items():
        if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
            raise ValueError(f"{key}={value!r} is not a valid Kubernetes label")
        if key.startswith(RESERVED_LABEL_DOMAINS):
            raise ValueError(
                f"{key}: labels under {', '.join(RESERVED_LABEL_DOMAINS)} are set by the platform"
            )
    return labels


class GpuPool(Section):
    """A managed node group of GPU instances that the cluster-autoscaler sizes (scale to zero)."""

    name: str = Field(description="Pool name: 2-32 lower-case letters, digits or -.")
    instance_types: list[GpuInstanceType] = Field(
        min_length=1,
        description="NVIDIA GPU instance types with the same GPU model and count, e.g. "
        "[g6e.xlarge] or [g5.12xlarge, g6.12xlarge]; the first is preferred.",
    )
    min_size: Annotated[int, Field(ge=0, le=1000)] = Field(
        default=0, description="Nodes always running; 0 lets the pool idle at no cost."
    )
    max_size: Annotated[int, Field(ge=1, le=1000)] = Field(
        description="Nodes the cluster-autoscaler may add for pending GPU pods."
    )
    capacity_reservation_id: str | None = Field(
        default=None,
        description="cr-… id of a Capacity Block (required for capacityBlock) or an on-demand "
        "capacity reservation to launch into.",
    )
    capacity_type: Literal["onDemand", "spot", "capacityBlock"] = Field(
        default="onDemand",
        description="`onDemand`, `spot` (cheaper, may be reclaimed) or `capacityBlock` "
        "(a purchased EC2 Capacity Block for ML; give capacityReservationId).",
    )
    disk_size_gib: Annotated[int, Field(ge=20, le=16384)] = Field(
        default=200, description="Encrypted root/data volume per node (GiB); ML images are large."
    )
    efa: bool = Field(
        default=False,
        description="Elastic Fabric Adapter networking for multi-node training; every instance "
        "type must support it; nodes are placed in one zone in a cluster placement group.",
    )
    ami_family: Literal["al2023", "bottlerocket"] = Field(
        default="al2023",
        description="Node OS: the EKS-optimised AL2023 NVIDIA AMI or Bottlerocket NVIDIA.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Extra Kubernetes node labels for this pool."
    )

    @field_validator("name")
    @classmethod
    def _pool_name(cls, value: str) -> str:
        if not _POOL_NAME.match(value):
            raise ValueError("must be 2-32 lower-case letters, digits or -, starting with a letter")
        return value

    @field_validator("instance_types")
    @classmethod
    def _one_shape(cls, types: list[str]) -> list[str]:
        from infra import instances

        shapes = {
            (f.gpu_model, f.gpu_count, f.architecture) for f in map(instances.facts, types) if f
        }
        if len(shapes) > 1:
            described = "; ".join(
                f"{t}: {f.gpu_count} x {f.gpu_model} ({f.architecture})"
                for t, f in ((t, instances.facts(t)) for t in types)
                if f
            )
            raise ValueError(
                "instance types of one pool must share GPU model, GPU count and architecture, so "
                f"node labels and autoscaler templates hold for every node ({described}); split "
                "them into pools"
            )
        if len(set(types)) != len(types):
            raise ValueError("instance types repeat")
        return types

    _max_not_below_min = max_size_not_below_min_size()

    @field_validator("capacity_reservation_id")
    @classmethod
    def _reservation_id(cls, value: str | None) -> str | None:
        if value is not None and not _CAPACITY_RESERVATION.match(value):
            raise ValueError("must be a capacity reservation id: cr- and 17 hex digits")
        return value

    @field_validator("capacity_type")
    @classmethod
    def _capacity_fits(cls, value: str, info: ValidationInfo) -> str:
        reservation = info.data.get("capacity_reservation_id")
        if value == "capacityBlock":
            if len(info.data.get("instance_types") or []) > 1:
                raise ValueError("a Capacity Block holds one instance type; list only that type")
            if reservation is None and "capacity_reservation_id" not in info.data:
                return value  # the reservation id itself was malformed and is reported there
            if reservation is None:
                raise ValueError(
                    "capacityBlock needs capacityReservationId: the Capacity Block's cr-… id"
                )
        if value == "spot" and reservation is not None:
            raise ValueError(
                "spot capacity cannot launch into capacityReservationId; remove it or use onDemand"
            )
        return value

    @field_validator("efa")
    @classmethod
    def _efa_capable(cls, value: bool, info: ValidationInfo) -> bool:
        from infra import instances

        if value:
            lacking = [
                t for t in info.data.get("instance_types") or [] if not instances.efa_supported(t)
            ]
            if lacking:
                raise ValueError(f"EFA is not supported by {', '.join(lacking)}")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        return check_labels(labels)


def check_cpu_instance_type(value: str) -> str:
    """An EC2 type without GPUs, with instance facts on file (CPU pools)."""
    from infra import instances

    check_ec2_instance_type(value)
    found = instances.facts(value)
    if found is None:
        raise ValueError(
            f"no instance facts for {value} in {instances.TABLE.name}; regenerate it with "
            "`python -m infra.instances` after upgrading moto"
        )
    if found.gpu_count or found.gpu_model:
        raise ValueError(f"{value} has GPUs; put it in mlplatform:gpuPools")
    return value


CpuInstanceType = Annotated[str, AfterValidator(check_cpu_instance_type)]


class CpuPool(Section):
    """A managed node group of CPU instances for data preparation, CPU inference and batch work;
    sized by the cluster-autoscaler between min and max (zero when idle)."""

    name: str = Field(description="Pool name: 2-32 lower-case letters, digits or -.")
    instance_types: list[CpuInstanceType] = Field(
        min_length=1,
        description="EC2 types with the same vCPUs, memory and architecture, e.g. [m7i.2xlarge, "
        "m6i.2xlarge]; the first is preferred.",
    )
    min_size: Annotated[int, Field(ge=0, le=1000)] = Field(
        default=0, description="Nodes always running; 0 lets the pool idle at no cost."
    )
    max_size: Annotated[int, Field(ge=1, le=1000)] = Field(
        description="Nodes the cluster-autoscaler may add for pending pods."
    )
    capacity_type: Literal["onDemand", "spot"] = Field(
        default="onDemand", description="`onDemand`, or `spot` (cheaper, may be reclaimed)."
    )
    disk_size_gib: Annotated[int, Field(ge=20, le=16384)] = Field(
        default=100, description="Encrypted root/data volume per node (GiB)."
    )
    ami_family: Literal["al2023", "bottlerocket"] = Field(
        default="al2023", description="Node OS: EKS-optimised AL2023 or Bottlerocket."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Extra Kubernetes node labels for this pool."
    )

    @field_validator("name")
    @classmethod
    def _pool_name(cls, value: str) -> str:
        if not _POOL_NAME.match(value):
            raise ValueError("must be 2-32 lower-case letters, digits or -, starting with a letter")
        return value

    @field_validator("instance_types")
    @classmethod
    def _one_shape(cls, types: list[str]) -> list[str]:
        from infra import instances

        shapes = {(f.vcpus, f.memory_mib, f.architecture) for f in map(instances.facts, types) if f}
        if len(shapes) > 1:
            raise ValueError(
                "instance types of one pool must share vCPUs, memory and architecture, so the "
                "autoscaler's node template holds for every node; split them into pools"
            )
        if len(set(types)) != len(types):
            raise ValueError("instance types repeat")
        return types

    _max_not_below_min = max_size_not_below_min_size()

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        return check_labels(labels)
