"""The `mlplatform:storage` section: buckets, retention and the stack key."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from infra.config.base import Days, Section


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
