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
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

PROJECT = "mlplatform"
ENVIRONMENTS = ("dev", "staging", "prod")


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
    return value


Ec2InstanceType = Annotated[str, Field(min_length=1)]
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
