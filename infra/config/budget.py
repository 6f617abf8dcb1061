"""The `mlplatform:budget` section: the monthly limit (alerts go to `mlplatform:alerts`)."""

from __future__ import annotations

from pydantic import Field

from infra.config.base import Section


class Budget(Section):
    """Monthly spend limit that the cost estimate and policies check against."""

    monthly_usd: float = Field(
        default=1000.0, gt=0, description="Estimated monthly cost must stay under this (USD)."
    )
