"""What every section of the schema shares: the base model, the error type, AWS facts.

AWS facts come from botocore's service models (maintained by AWS, shipped with boto3), so an
instance type or region the API would refuse is refused here first, before any resource exists.
"""

from __future__ import annotations

import difflib
from functools import cache
from typing import Annotated, Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
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


Days = Annotated[int, Field(ge=1, le=3650)]


def suggest(value: str, allowed: frozenset[str] | set[str], limit: int = 5) -> str:
    """'did you mean …?' for a near miss, else how many values are allowed."""
    near = difflib.get_close_matches(value, sorted(allowed), n=limit, cutoff=0.6)
    return f"did you mean {', '.join(near)}?" if near else f"{len(allowed)} values are allowed"


@cache
def aws_regions() -> frozenset[str]:
    """Commercial, GovCloud and China regions known to this botocore release."""
    import boto3.session

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


def check_ec2_instance_type(value: str) -> str:
    """An EC2 instance type the EC2 API knows."""
    allowed = ec2_instance_types()
    if value not in allowed:
        raise ValueError(
            f"unknown EC2 instance type (checked against botocore's EC2 model); "
            f"{suggest(value, allowed)}"
        )
    return value


def check_sagemaker_instance_type(value: str, shape: str) -> str:
    """An ml.* type of the given SageMaker enum shape, with instance facts on file."""
    allowed = botocore_enum("sagemaker", shape)
    if value not in allowed:
        raise ValueError(
            f"not a SageMaker {shape} (checked against botocore's SageMaker model); "
            f"{suggest(value, allowed)}"
        )
    from infra import instances

    # Whether the volumes take the stack's KMS key depends on instance storage; a type the
    # facts table lacks would leave that unknown (raises UnknownInstanceType, a ValueError).
    instances.has_instance_storage(value)
    return value


def max_size_not_below_min_size() -> Any:
    """A `max_size` field validator for node groups: not below `min_size` (declared before it)."""

    def check(cls: type, value: int, info: ValidationInfo) -> int:
        low = info.data.get("min_size")
        if low is not None and value < low:
            raise ValueError(f"maxSize must be >= minSize ({low})")
        return value

    return field_validator("max_size")(classmethod(check))


class _Replicas(Protocol):
    min_instances: int
    max_instances: int


_R = TypeVar("_R", bound=_Replicas)


def instances_in_order(model: _R) -> _R:
    """An after-validator for serving sections: minInstances cannot exceed maxInstances."""
    if model.min_instances > model.max_instances:
        raise ValueError("minInstances cannot exceed maxInstances")
    return model


@cache
def provider_config_keys(namespace: str) -> frozenset[str] | None:
    """The config keys a Pulumi provider reads (`aws:profile`, …), from its SDK's generated
    config module, or None when no such SDK is installed (then the key is left to Pulumi)."""
    import importlib.util
    import re
    from pathlib import Path

    spec = importlib.util.find_spec(f"pulumi_{namespace.replace('-', '_')}")
    if spec is None or not spec.submodule_search_locations:
        return None
    # Read, not imported: the generated module is only importable through its package, and
    # only the names it reads matter here.
    source = Path(next(iter(spec.submodule_search_locations))) / "config" / "vars.py"
    if not source.is_file():
        return None
    keys = re.findall(r"__config__\.get(?:_\w+)?\('(\w+)'\)", source.read_text())
    return frozenset(keys) or None
