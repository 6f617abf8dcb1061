"""The stack file schema: every knob of a stack, named, described, defaulted and validated.

A stack file (`stacks/Pulumi.<stack>.yaml`) holds Pulumi config under two namespaces:
`aws:` (provider settings) and `mlplatform:` (one key per section below). `StackConfig`
validates the whole file before any resource is declared; `StackConfigError` carries one
readable message naming the file, the key path, the value given and what is allowed.
"""

from __future__ import annotations

import ipaddress
import re
from functools import cache
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

PROJECT = "mlplatform"


class StackConfigError(Exception):
    """A stack file that does not match the schema; the message is meant for people."""


class Section(BaseModel):
    """Base for every section: camelCase keys as in Pulumi YAML, unknown keys rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )


# --- AWS facts from botocore's service models (maintained by AWS, shipped with boto3) ---------


@cache
def aws_regions() -> frozenset[str]:
    """Commercial, GovCloud and China regions known to this botocore release."""
    import boto3

    session = boto3.session.Session()
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("ec2", partition_name=partition))
    return frozenset(regions)


@cache
def botocore_enum(service: str, shape: str) -> frozenset[str]:
    """The allowed values of an enum shape in a botocore service model."""
    import botocore.session

    model = botocore.session.get_session().get_service_model(service)
    return frozenset(model.shape_for(shape).enum)


def ec2_instance_types() -> frozenset[str]:
    """Every EC2 instance type botocore knows (`InstanceType` enum of the EC2 model)."""
    return botocore_enum("ec2", "InstanceType")


def _closest(value: str, allowed: frozenset[str], limit: int = 5) -> str:
    import difflib

    near = difflib.get_close_matches(value, sorted(allowed), n=limit, cutoff=0.6)
    return f"did you mean {', '.join(near)}?" if near else f"{len(allowed)} values are allowed"


def check_ec2_instance_type(value: str) -> str:
    allowed = ec2_instance_types()
    if value not in allowed:
        raise ValueError(
            f"unknown EC2 instance type (checked against botocore's EC2 model); "
            f"{_closest(value, allowed)}"
        )
    return value


def check_sagemaker_instance_type(value: str, shape: str) -> str:
    allowed = botocore_enum("sagemaker", shape)
    if value not in allowed:
        raise ValueError(
            f"not a SageMaker {shape} (checked against botocore's SageMaker model); "
            f"{_closest(value, allowed)}"
        )
    from infra import instances

    # Whether the volumes take the stack's KMS key depends on instance storage; a type the
    # facts table lacks would leave that unknown (raises UnknownInstanceType, a ValueError).
    instances.has_instance_storage(value)
    return value


Days = Annotated[int, Field(ge=1, le=3650)]
_TAG_KEY = re.compile(r"^[\w.:/=+\-@ ]{1,128}$")


# --- Sections -------------------------------------------------------------------------------


class Tags(Section):
    """Tags carried by every taggable resource; project and environment are added automatically."""

    owner: str = Field(description="Team or person that owns the stack.", min_length=1)
    cost_center: str = Field(description="Cost centre billed for the stack.", min_length=1)
    extra: dict[str, str] = Field(
        default_factory=dict, description="Further tags, e.g. data-classification."
    )

    @field_validator("extra")
    @classmethod
    def _valid_tag_keys(cls, extra: dict[str, str]) -> dict[str, str]:
        for key, value in extra.items():
            if not _TAG_KEY.match(key) or key.lower().startswith("aws:"):
                raise ValueError(f"tag key {key!r} must be 1-128 characters and not start 'aws:'")
            if len(value) > 256:
                raise ValueError(f"tag {key!r} value is longer than 256 characters")
        return extra


class Network(Section):
    """VPC layout: private subnets for compute, public subnets for NAT and load balancers."""

    cidr: str = Field(
        default="10.0.0.0/16",
        description="VPC CIDR, a private (RFC 1918) range between /16 and /20.",
    )
    az_count: int = Field(
        default=2, ge=2, le=6, description="Availability zones to spread subnets over."
    )
    nat_gateways: Literal["single", "perZone"] = Field(
        default="perZone",
        description="`single` saves cost (dev); `perZone` survives a zone outage (prod).",
    )
    private_endpoints: bool = Field(
        default=True,
        description="Interface endpoints for ECR, STS, SageMaker API/runtime, so traffic to "
        "them stays off the internet. The S3 gateway endpoint is always created.",
    )

    @field_validator("cidr")
    @classmethod
    def _private_cidr(cls, value: str) -> str:
        try:
            net = ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"not a valid IPv4 CIDR block ({exc})") from None
        if net.version != 4 or not net.is_private:
            raise ValueError("must be a private IPv4 range (10/8, 172.16/12 or 192.168/16)")
        if not 16 <= net.prefixlen <= 20:
            raise ValueError("prefix length must be between /16 and /20")
        return value


class Storage(Section):
    """Buckets for datasets, model artifacts and checkpoints, encrypted with the stack's key."""

    checkpoint_expiration_days: Days = Field(
        default=30, description="Checkpoints older than this are deleted."
    )
    noncurrent_version_expiration_days: Days = Field(
        default=90, description="Overwritten or deleted object versions are kept this long."
    )
    abort_incomplete_multipart_days: Annotated[int, Field(ge=1, le=30)] = Field(
        default=7, description="Incomplete multipart uploads are aborted after this many days."
    )
    protect: bool = Field(
        default=True,
        description="Protect buckets and the KMS key from `pulumi destroy` (set in prod).",
    )
    force_destroy: bool = Field(
        default=False,
        description="Allow deleting non-empty buckets on destroy (only sensible in dev).",
    )
    kms_deletion_window_days: Annotated[int, Field(ge=7, le=30)] = Field(
        default=30, description="Waiting period before a scheduled KMS key deletion."
    )

    @model_validator(mode="after")
    def _protected_buckets_cannot_be_force_destroyed(self) -> Storage:
        if self.protect and self.force_destroy:
            raise ValueError("forceDestroy: true contradicts protect: true; choose one")
        return self


class Registry(Section):
    """ECR repositories for the training and serving images."""

    keep_tagged_images: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=30, description="How many tagged images each repository keeps."
    )
    untagged_expiration_days: Days = Field(
        default=7, description="Untagged images (old build cache layers) expire after this."
    )


class Budget(Section):
    """Monthly spend limit that the cost estimate and policies check against."""

    monthly_usd: float = Field(
        default=1000.0, gt=0, description="Estimated monthly cost must stay under this (USD)."
    )
    alert_emails: list[str] = Field(
        default_factory=list, description="Who AWS Budgets notifies at 80% and 100%."
    )

    @field_validator("alert_emails")
    @classmethod
    def _emails(cls, emails: list[str]) -> list[str]:
        for email in emails:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
                raise ValueError(f"{email!r} is not an email address")
        return emails


# --- EKS: the cluster and its GPU node pools ---------------------------------------------------

# Kubernetes versions EKS offers that the components here are pinned for (cluster-autoscaler's
# image follows the cluster's minor version; see infra/components/kubernetes_layer.py).
KUBERNETES_VERSIONS = ("1.32", "1.33", "1.34", "1.35")
ControlPlaneLogType = Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]
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

    @field_validator("max_size")
    @classmethod
    def _max_not_below_min(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("min_size")
        if low is not None and value < low:
            raise ValueError(f"maxSize must be >= minSize ({low})")
        return value


class GpuQuota(Section):
    """GPUs (`requests.nvidia.com/gpu`) that all pods of a namespace may request together."""

    training: Annotated[int, Field(ge=0, le=10000)] = Field(
        default=0, description="GPUs for the `training` namespace (0: no GPU pods there)."
    )
    serving: Annotated[int, Field(ge=0, le=10000)] = Field(
        default=0, description="GPUs for the `serving` namespace (0: no GPU pods there)."
    )


class Cluster(Section):
    """The EKS cluster: version, API endpoint exposure, logging, system nodes and GPU quotas."""

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

    @field_validator("max_size")
    @classmethod
    def _max_not_below_min(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("min_size")
        if low is not None and value < low:
            raise ValueError(f"maxSize must be >= minSize ({low})")
        return value

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
        for key, value in labels.items():
            if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
                raise ValueError(f"{key}={value!r} is not a valid Kubernetes label")
            if key.startswith(RESERVED_LABEL_DOMAINS):
                raise ValueError(
                    f"{key}: labels under {', '.join(RESERVED_LABEL_DOMAINS)} are set by the platform"
                )
        return labels


# --- Models: what each model trains and serves on, per compute plane ---------------------------

_MODEL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
_SCHEDULE = re.compile(r"^(cron|rate)\(.+\)$")
HyperparameterValue = str | int | float | bool


def check_plane_placement(plane: str, instance_type: str, pool: str | None, shape: str) -> None:
    """SageMaker takes an `ml.` type from its own list; EKS work lands on a named GPU pool."""
    if plane == "sagemaker":
        check_sagemaker_instance_type(instance_type, shape)
        if pool:
            raise ValueError("pool applies to plane: eks; SageMaker uses instanceType")
    elif not pool:
        raise ValueError("plane: eks needs `pool`, the mlplatform:gpuPools entry to run on")


class HyperparameterRange(Section):
    """One searched hyperparameter: a numeric interval or a list of categories."""

    type: Literal["continuous", "integer", "categorical"] = Field(
        description="`continuous` (floats), `integer`, or `categorical` (give `values`)."
    )
    min: float | None = Field(default=None, description="Lower bound (continuous, integer).")
    max: float | None = Field(default=None, description="Upper bound (continuous, integer).")
    values: list[str] = Field(default_factory=list, description="Choices (categorical).")
    scaling: Literal["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"] = Field(
        default="Auto", description="How the tuner samples the interval (e.g. Logarithmic for lr)."
    )

    @model_validator(mode="after")
    def _bounds_or_values(self) -> HyperparameterRange:
        if self.type == "categorical":
            if not self.values:
                raise ValueError("a categorical range needs `values`")
        elif self.min is None or self.max is None or not self.min < self.max:
            raise ValueError(f"a {self.type} range needs `min` < `max`")
        if self.scaling == "Logarithmic" and self.min is not None and self.min <= 0:
            raise ValueError("Logarithmic scaling needs min > 0")
        return self


class Tuning(Section):
    """The hyperparameter search run instead of a single training job."""

    ranges: dict[str, HyperparameterRange] = Field(
        description="Searched hyperparameters by name, e.g. lr: {type: continuous, min: 1e-4, "
        "max: 1e-2, scaling: Logarithmic}."
    )
    objective_metric: str = Field(
        default="test:accuracy",
        description="A metric the training log reports (training.metrics.METRIC_DEFINITIONS).",
    )
    objective: Literal["Maximize", "Minimize"] = Field(default="Maximize", description="Direction.")

    @field_validator("objective_metric")
    @classmethod
    def _reported_metric(cls, value: str) -> str:
        from training.metrics import METRIC_DEFINITIONS

        reported = sorted(d["Name"] for d in METRIC_DEFINITIONS)
        if value not in reported:
            raise ValueError(f"the training image reports only {', '.join(reported)}")
        return value

    strategy: Literal["Bayesian", "Random", "Hyperband", "Grid"] = Field(
        default="Bayesian", description="SageMaker's search strategy."
    )
    max_jobs: Annotated[int, Field(ge=1, le=500)] = Field(
        default=8, description="Training jobs the search may run in total."
    )
    max_parallel_jobs: Annotated[int, Field(ge=1, le=100)] = Field(
        default=2, description="Training jobs running at once (each takes instanceCount hosts)."
    )

    @model_validator(mode="after")
    def _parallel_within_total(self) -> Tuning:
        if not self.ranges:
            raise ValueError("give at least one range to search")
        if self.max_parallel_jobs > self.max_jobs:
            raise ValueError("maxParallelJobs cannot exceed maxJobs")
        return self


class Training(Section):
    """How and where a model trains."""

    plane: Literal["sagemaker", "eks"] = Field(
        default="sagemaker",
        description="`sagemaker`: a SageMaker Pipeline (train, evaluate, register); `eks`: a "
        "training-operator job template on the cluster's GPU pools.",
    )
    instance_type: str = Field(
        default="ml.g5.xlarge", description="SageMaker: an ml.* TrainingInstanceType."
    )
    pool: str | None = Field(
        default=None, description="EKS: the mlplatform:gpuPools entry whose nodes train."
    )
    instance_count: Annotated[int, Field(ge=1, le=64)] = Field(
        default=1, description="Hosts (nodes); above 1 the image runs torchrun across them."
    )
    gpus_per_instance: Annotated[int, Field(ge=0, le=16)] = Field(
        default=1, description="EKS: `nvidia.com/gpu` requested per node (0 trains on CPU)."
    )
    volume_size_gb: Annotated[int, Field(ge=1, le=16384)] = Field(
        default=50, description="Local storage per host for data, model and checkpoints."
    )
    spot: bool = Field(
        default=True,
        description="Managed spot (SageMaker) / spot-tolerant pods (EKS); checkpoints let an "
        "interrupted run resume.",
    )
    max_runtime_hours: Annotated[int, Field(ge=1, le=672)] = Field(
        default=24, description="A run is stopped after this long (SageMaker allows 28 days)."
    )
    max_wait_hours: Annotated[int, Field(ge=1, le=672)] | None = Field(
        default=None,
        description="Spot only: runtime plus time spent waiting for capacity; default "
        "2 x maxRuntimeHours (at most 28 days).",
    )
    hyperparameters: dict[str, HyperparameterValue] = Field(
        default_factory=dict,
        description="Fixed hyperparameters (training.config.TrainConfig), passed as strings.",
    )
    tuning: Tuning | None = Field(
        default=None, description="Hyperparameter search: turns the training step into tuning."
    )
    metric: str = Field(
        default="accuracy", description="Key in the model's metrics.json the condition reads."
    )
    threshold: float = Field(
        default=0.9, description="Register the model only if `metric` >= this value."
    )
    schedule: str | None = Field(
        default=None,
        description="EventBridge Scheduler expression that starts the pipeline, e.g. "
        "'cron(0 3 ? * MON *)' or 'rate(7 days)'; none: runs start by hand.",
    )

    @field_validator("schedule")
    @classmethod
    def _schedule_expression(cls, value: str | None) -> str | None:
        if value is not None and not _SCHEDULE.match(value):
            raise ValueError("must be cron(...) or rate(...), e.g. 'cron(0 3 ? * MON *)'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Training:
        check_plane_placement(self.plane, self.instance_type, self.pool, "TrainingInstanceType")
        if self.max_wait_hours is not None:
            if not self.spot:
                raise ValueError("maxWaitHours applies to spot training only (spot: true)")
            if self.max_wait_hours < self.max_runtime_hours:
                raise ValueError("maxWaitHours must be >= maxRuntimeHours")
        if self.tuning and self.plane != "sagemaker":
            raise ValueError("tuning runs on the sagemaker plane only")
        if self.schedule and self.plane != "sagemaker":
            raise ValueError("schedule starts SageMaker pipelines; use plane: sagemaker")
        if self.tuning:
            fixed = set(self.tuning.ranges) & set(self.hyperparameters)
            if fixed:
                raise ValueError(f"{sorted(fixed)} are both fixed and searched; keep one")
        return self

    @property
    def wait_hours(self) -> int:
        """Spot wait limit in hours (SageMaker requires it >= the runtime limit)."""
        return self.max_wait_hours or min(2 * self.max_runtime_hours, 672)


class Serving(Section):
    """How and where a model serves."""

    plane: Literal["sagemaker", "eks"] = Field(
        default="sagemaker",
        description="`sagemaker`: Model, EndpointConfiguration, Endpoint; `eks`: Deployment, "
        "Service, HPA and PDB on the GPU serving pool.",
    )
    mode: Literal["serverless", "instances"] = Field(
        default="instances",
        description="`serverless` (SageMaker only, CPU, pay per request: dev) or `instances`.",
    )
    instance_type: str = Field(
        default="ml.g5.xlarge", description="SageMaker: an ml.* ProductionVariantInstanceType."
    )
    pool: str | None = Field(
        default=None, description="EKS: the mlplatform:gpuPools entry whose nodes serve."
    )
    min_instances: Annotated[int, Field(ge=1, le=100)] = Field(
        default=1, description="Autoscaling floor (instances or replicas)."
    )
    max_instances: Annotated[int, Field(ge=1, le=100)] = Field(
        default=2, description="Autoscaling ceiling (instances or replicas)."
    )
    target_invocations_per_instance: Annotated[int, Field(ge=1, le=100000)] = Field(
        default=100, description="SageMaker target tracking: invocations per instance per minute."
    )
    target_cpu_utilization: Annotated[int, Field(ge=10, le=100)] = Field(
        default=70, description="EKS HPA target: average CPU utilisation of the replicas (%)."
    )
    gpus_per_replica: Annotated[int, Field(ge=0, le=8)] = Field(
        default=1, description="EKS: `nvidia.com/gpu` per replica."
    )
    serverless_memory_mb: Literal[1024, 2048, 3072, 4096, 5120, 6144] = Field(
        default=2048, description="Serverless memory (also sets its vCPUs)."
    )
    serverless_max_concurrency: Annotated[int, Field(ge=1, le=200)] = Field(
        default=5, description="Serverless concurrent invocations before throttling."
    )
    data_capture_percent: Annotated[int, Field(ge=0, le=100)] = Field(
        default=0,
        description="Share of requests and responses captured to the artifacts bucket under the "
        "stack key (instances only); 0 turns capture off.",
    )
    latency_alarm_ms: Annotated[int, Field(ge=1)] = Field(
        default=500, description="Alarm when average model latency exceeds this (ms)."
    )
    error_alarm_count: Annotated[int, Field(ge=1)] = Field(
        default=5, description="Alarm when 5xx errors per 5 minutes reach this count."
    )
    model_package_version: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="Serve this approved version from the model's package group; none: serve "
        "s3://<artifacts>/models/<name>/model.tar.gz.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Serving:
        if self.mode == "serverless" and self.plane != "sagemaker":
            raise ValueError("serverless serving exists on the sagemaker plane only")
        if self.mode == "instances":
            check_plane_placement(
                self.plane, self.instance_type, self.pool, "ProductionVariantInstanceType"
            )
        elif self.data_capture_percent:
            raise ValueError("data capture needs mode: instances (serverless endpoints lack it)")
        if self.min_instances > self.max_instances:
            raise ValueError("minInstances cannot exceed maxInstances")
        if self.model_package_version and self.plane != "sagemaker":
            raise ValueError("modelPackageVersion needs plane: sagemaker (the package registry)")
        return self


class Model(Section):
    """One model: its name, training and serving."""

    name: str = Field(description="Lower-case letters, digits and -, 2-32 characters.")
    training: Training = Field(default_factory=Training, description="Training settings.")
    serving: Serving = Field(default_factory=Serving, description="Serving settings.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _MODEL_NAME.match(value):
            raise ValueError("must be 2-32 lower-case letters, digits or -, starting with a letter")
        return value

    @model_validator(mode="after")
    def _package_needs_registry(self) -> Model:
        if self.serving.model_package_version and self.training.plane != "sagemaker":
            raise ValueError(
                "serving.modelPackageVersion needs training.plane: sagemaker (its package group)"
            )
        return self


class StackConfig(Section):
    """A whole stack file: `aws:region` plus one `mlplatform:<section>` key per section."""

    region: str = Field(description="AWS region of every resource (`aws:region`).")
    environment: Literal["dev", "staging", "prod"] = Field(
        description="Which environment this stack is; drives policies and defaults."
    )
    tags: Tags = Field(description="Ownership tags for cost allocation.")
    network: Network = Field(default_factory=Network, description="VPC layout.")
    storage: Storage = Field(default_factory=Storage, description="Buckets and retention.")
    registry: Registry = Field(default_factory=Registry, description="Container registry.")
    budget: Budget = Field(default_factory=Budget, description="Monthly cost limit.")
    secrets: dict[str, str] = Field(
        default_factory=dict,
        description="Named secrets (e.g. a Hugging Face token) stored in Secrets Manager under "
        "the stack key and readable by training jobs; keep them `secure:` in the file.",
    )
    models: list[Model] = Field(
        default_factory=list,
        description="Models this stack trains and serves, each on the plane it chooses.",
    )
    cluster: Cluster = Field(
        default_factory=Cluster, description="The EKS cluster GPU pools and workloads run in."
    )
    gpu_pools: list[GpuPool] = Field(
        default_factory=list, description="GPU node pools of the EKS cluster (scale to zero)."
    )

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        regions = aws_regions()
        if value not in regions:
            raise ValueError(f"unknown AWS region; {_closest(value, regions)}")
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, secrets: dict[str, str]) -> dict[str, str]:
        for name in secrets:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,63}", name):
                raise ValueError(f"secret name {name!r} must be letters, digits, _ or -")
        return secrets

    @field_validator("gpu_pools")
    @classmethod
    def _unique_pool_names(cls, pools: list[GpuPool]) -> list[GpuPool]:
        names = [p.name for p in pools]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"GPU pool names must be unique; repeated: {', '.join(duplicates)}")
        return pools

    @field_validator("models")
    @classmethod
    def _unique_model_names(cls, models: list[Model]) -> list[Model]:
        names = [m.name for m in models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique; repeated: {', '.join(duplicates)}")
        return models

    @model_validator(mode="after")
    def _models_use_existing_pools(self) -> StackConfig:
        from infra import instances

        pools = {p.name: p for p in getattr(self, "gpu_pools", [])}
        for index, model in enumerate(self.models):
            for part, gpus in (
                (model.training, model.training.gpus_per_instance),
                (model.serving, model.serving.gpus_per_replica),
            ):
                if part.plane != "eks":
                    continue
                where = f"models[{index}] ({model.name}) {type(part).__name__.lower()}"
                pool = pools.get(part.pool or "")
                if pool is None:
                    raise ValueError(
                        f"{where}: pool {part.pool!r} is not in mlplatform:gpuPools "
                        f"({', '.join(sorted(pools)) or 'none defined'})"
                    )
                facts = instances.facts(pool.instance_types[0])
                if facts and gpus > facts.gpu_count:
                    raise ValueError(
                        f"{where}: asks {gpus} GPUs but pool {pool.name} nodes have "
                        f"{facts.gpu_count}"
                    )
                if part is model.training:
                    quota = self.cluster.gpu_quota.training
                    if gpus * model.training.instance_count > quota:
                        raise ValueError(
                            f"{where}: {model.training.instance_count} nodes x {gpus} GPUs "
                            f"exceed the training namespace's GPU quota ({quota}; "
                            "mlplatform:cluster.gpuQuota.training)"
                        )
        return self

    def resource_tags(self, stack: str) -> dict[str, str]:
        """The tags every taggable resource of this stack carries."""
        return {
            **self.tags.extra,
            "project": PROJECT,
            "environment": self.environment,
            "stack": stack,
            "owner": self.tags.owner,
            "cost-center": self.tags.cost_center,
            "managed-by": "pulumi",
        }


# Keys a stack file may set in the `aws:` namespace; the rest of the provider's settings
# are deliberately fixed by the program (default tags, for instance, come from `tags`).
AWS_KEYS = {"aws:region": "region", "aws:profile": None, "aws:allowedAccountIds": None}


def describe_allowed(field_path: tuple[Any, ...]) -> str:
    """What a key accepts, from the schema's description, for error messages."""
    model: Any = StackConfig
    info = None
    for part in field_path:
        while get_origin(model) in (list, Union, UnionType):  # list[X], X | None: look at X
            model = next(a for a in get_args(model) if a is not type(None))
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            break
        name = next(
            (n for n, f in model.model_fields.items() if part in (n, f.alias)),
            None,
        )
        if name is None:
            break
        info = model.model_fields[name]
        model = info.annotation
    return info.description if info and info.description else ""
