"""What every component of a stack shares, passed as one object: `StackContext`.

Who and where the stack is (account, partition, region), what it is called, its tags, and once
storage exists, its KMS key and buckets. Components take it inside their args instead of a dozen
loose fields, so adding a shared fact is one change here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi

from infra.config import PROJECT


@dataclass(frozen=True)
class StackContext:
    """The stack's identity, names, tags and (after `with_storage`) its key and buckets."""

    stack: str
    environment: str
    account_id: str
    partition: str
    region: str
    tags: dict[str, str] = field(default_factory=dict)
    kms_key: pulumi.Input[str] | None = None
    buckets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    bucket_arn_map: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        """`mlplatform-<stack>`: the first part of every resource name of the stack."""
        return f"{PROJECT}-{self.stack}"

    def name(self, *parts: str) -> str:
        """A resource name of this stack: `mlplatform-<stack>-<part>-…`."""
        return "-".join((self.prefix, *parts))

    @property
    def kms_key_arn(self) -> pulumi.Input[str]:
        """The stack's KMS key (set by `with_storage`)."""
        if self.kms_key is None:
            raise RuntimeError("the stack's KMS key is not known yet: create Storage first")
        return self.kms_key

    @property
    def bucket_names(self) -> Mapping[str, pulumi.Input[str]]:
        """Bucket names by role: datasets, artifacts, checkpoints (set by `with_storage`)."""
        if not self.buckets:
            raise RuntimeError("the stack's buckets are not known yet: create Storage first")
        return self.buckets

    @property
    def bucket_arns(self) -> Mapping[str, pulumi.Input[str]]:
        """Bucket ARNs by role (set by `with_storage`)."""
        if not self.bucket_arn_map:
            raise RuntimeError("the stack's buckets are not known yet: create Storage first")
        return self.bucket_arn_map

    def arn(self, service: str, resource: str, *, regional: bool = True) -> str:
        """An ARN in this stack's partition, account and (unless `regional=False`) region."""
        region = self.region if regional else ""
        return f"arn:{self.partition}:{service}:{region}:{self.account_id}:{resource}"

    def with_storage(
        self,
        kms_key_arn: pulumi.Input[str],
        bucket_names: Mapping[str, pulumi.Input[str]],
        bucket_arns: Mapping[str, pulumi.Input[str]],
    ) -> StackContext:
        """This context plus the key and buckets that components after storage use."""
        return dataclasses.replace(
            self, kms_key=kms_key_arn, buckets=bucket_names, bucket_arn_map=bucket_arns
        )
