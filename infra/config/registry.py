"""The `mlplatform:registry` section: the ECR repositories of the stack's images."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from infra.config.base import Days, Section


class Registry(Section):
    """ECR repositories for the training and serving images."""

    keep_tagged_images: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=30, description="How many tagged images each repository keeps."
    )
    untagged_expiration_days: Days = Field(
        default=7, description="Untagged images (old build cache layers) expire after this."
    )
