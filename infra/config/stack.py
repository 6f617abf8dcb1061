"""The whole stack file: `aws:region` plus one `mlplatform:<section>` key per section."""

from __future__ import annotations

import re
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Field, Tag, field_validator, model_validator
from pydantic.fields import FieldInfo

from infra.config.alerts import Alerts
from infra.config.base import PROJECT, Section, aws_regions, suggest
from infra.config.budget import Budget
from infra.config.cluster import Cluster
from infra.config.models import UNION_TAGS, EksServing, EksTraining, Model
from infra.config.network import Network
from infra.config.pools import CpuPool, GpuPool
from infra.config.registry import Registry
from infra.config.storage import Storage
from infra.config.tags import Tags
from infra.config.tracking import Tracking


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
    alerts: Alerts = Field(default_factory=Alerts, description="Who hears about alarms.")
    tracking: Tracking = Field(
        default_factory=Tracking, description="Experiment tracking (managed MLflow), optional."
    )
    secrets: dict[str, str] = Field(
        default_factory=dict,
        description="Named secrets (e.g. a Hugging Face token) stored in Secrets Manager under "
        "the stack key and readable by training jobs; keep them `secure:` in the file.",
    )
    models: list[Model] = Field(
        default_factory=list,
        description="Models this stack trains and serves, each on the plane it chooses.",
    )
    cluster: Cluster | None = Field(
        default=None,
        description="The EKS cluster node pools and EKS workloads run in; leave it out for a "
        "SageMaker-only stack (no cluster, no system nodes: almost nothing while idle).",
    )
    gpu_pools: list[GpuPool] = Field(
        default_factory=list, description="GPU node pools of the EKS cluster (scale to zero)."
    )
    cpu_pools: list[CpuPool] = Field(
        default_factory=list,
        description="CPU node pools of the EKS cluster, for data preparation, CPU inference and "
        "batch work (scale to zero).",
    )

    @property
    def eks(self) -> Cluster | None:
        """The cluster's settings when the stack has an EKS cluster, else None."""
        return self.cluster if self.cluster is not None and self.cluster.enabled else None

    def pool(self, name: str) -> GpuPool | CpuPool | None:
        """A GPU or CPU pool by name."""
        return next((p for p in [*self.gpu_pools, *self.cpu_pools] if p.name == name), None)

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        regions = aws_regions()
        if value not in regions:
            raise ValueError(f"unknown AWS region; {suggest(value, regions)}")
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, secrets: dict[str, str]) -> dict[str, str]:
        for name in secrets:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,63}", name):
                raise ValueError(f"secret name {name!r} must be letters, digits, _ or -")
        return secrets

    @field_validator("gpu_pools", "cpu_pools")
    @classmethod
    def _unique_within(cls, pools: list[Any]) -> list[Any]:
        names = [p.name for p in pools]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"pool names must be unique; repeated: {', '.join(duplicates)}")
        return pools

    @model_validator(mode="after")
    def _unique_pool_names(self) -> StackConfig:
        shared = sorted({p.name for p in self.gpu_pools} & {p.name for p in self.cpu_pools})
        if shared:
            raise ValueError(
                f"a GPU pool and a CPU pool share the name {', '.join(shared)}: names must be "
                "unique across mlplatform:gpuPools and mlplatform:cpuPools"
            )
        names = [p.name for p in [*self.gpu_pools, *self.cpu_pools]]
        if self.eks is None and names:
            raise ValueError(
                "node pools need a cluster: add mlplatform:cluster (enabled: true) or remove "
                f"the pools ({', '.join(names)})"
            )
        return self

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

        names = ", ".join(p.name for p in [*self.gpu_pools, *self.cpu_pools]) or "none defined"
        for index, model in enumerate(self.models):
            placements: list[tuple[str, str, int]] = []
            if isinstance(model.training, EksTraining):
                placements.append(
                    ("training", model.training.pool, model.training.gpus_per_instance)
                )
            if isinstance(model.serving, EksServing):
                placements.append(("serving", model.serving.pool, model.serving.gpus_per_replica))
            for part, pool_name, gpus in placements:
                where = f"models[{index}] ({model.name}) {part}"
                if self.eks is None:
                    raise ValueError(
                        f"{where}: plane eks, but the stack has no EKS cluster (mlplatform:cluster "
                        "is absent or enabled: false); use plane sagemaker or add the cluster"
                    )
                pool = self.pool(pool_name)
                if pool is None:
                    raise ValueError(
                        f"{where}: pool {pool_name!r} is not in mlplatform:gpuPools or "
                        f"mlplatform:cpuPools ({names})"
                    )
                if isinstance(pool, CpuPool):
                    if gpus:
                        raise ValueError(
                            f"{where}: asks {gpus} GPUs but pool {pool.name} is a CPU pool; set "
                            f"{'gpusPerInstance' if part == 'training' else 'gpusPerReplica'}: 0"
                        )
                    continue
                facts = instances.facts(pool.instance_types[0])
                if facts and gpus > facts.gpu_count:
                    raise ValueError(
                        f"{where}: asks {gpus} GPUs but pool {pool.name} nodes have "
                        f"{facts.gpu_count}"
                    )
                if part == "training":
                    quota = self.eks.gpu_quota.training
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


# Config keys outside `mlplatform:` that the schema reads; every other key of another namespace
# (`aws:profile`, `kubernetes:…`) belongs to the engine and its providers and is left to them.
SCHEMA_KEYS = {"aws:region": "region"}


def tagged_members(annotation: Any, tag: str | None = None) -> list[tuple[str | None, Any]]:
    """The classes an annotation may hold, with their discriminated-union tags: through
    Annotated, list[X], X | None and unions."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *metadata = get_args(annotation)
        tag = next((m.tag for m in metadata if isinstance(m, Tag)), tag)
        return tagged_members(inner, tag)
    if origin in (list, Union, UnionType):
        return [
            member
            for arg in get_args(annotation)
            if arg is not type(None)
            for member in tagged_members(arg, tag)
        ]
    return [(tag, annotation)]


def members(annotation: Any) -> list[Any]:
    """The classes an annotation may hold (see `tagged_members`)."""
    return [cls for _, cls in tagged_members(annotation)]


def field_at(field_path: tuple[Any, ...]) -> tuple[FieldInfo | None, list[type[BaseModel]]]:
    """The schema field a key path names (as pydantic reports it, union tags included), and the
    model classes that hold its children: several for a union until a tag picks one."""
    candidates: list[tuple[str | None, Any]] = [(None, StackConfig)]
    info: FieldInfo | None = None
    for part in field_path:
        if isinstance(part, int):
            continue
        if part in UNION_TAGS:
            candidates = [(tag, cls) for tag, cls in candidates if tag == part] or candidates
            continue
        found = None
        for _, model in candidates:
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                continue
            name = next((n for n, f in model.model_fields.items() if part in (n, f.alias)), None)
            if name is not None:
                found = model.model_fields[name]
                break
        if found is None:
            return None, _models(candidates)
        info = found
        candidates = tagged_members(found.annotation)
    return info, _models(candidates)


def _models(candidates: list[tuple[str | None, Any]]) -> list[type[BaseModel]]:
    return [c for _, c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]


def describe_allowed(field_path: tuple[Any, ...]) -> str:
    """What a key accepts, from the schema's description, for error messages."""
    info, _ = field_at(field_path)
    return info.description if info and info.description else ""
