"""The `mlplatform:tags` section: ownership tags every taggable resource carries."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from infra.config.base import Section

_TAG_KEY = re.compile(r"^[\w.:/=+\-@ ]{1,128}$")


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
