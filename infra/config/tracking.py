"""The `mlplatform:tracking` section: an optional SageMaker managed MLflow tracking server."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from infra.config.base import Section


class Tracking(Section):
    """Experiment tracking: training runs log parameters, per-step metrics and artifacts to it."""

    enabled: bool = Field(
        default=False,
        description="Create a SageMaker managed MLflow tracking server for the stack (billed per "
        "hour it exists); its artifacts go to the artifacts bucket under mlflow/.",
    )
    size: Literal["Small", "Medium", "Large"] = Field(
        default="Small", description="Tracking server size (Small suits a team)."
    )
    mlflow_version: str | None = Field(
        default=None, description="MLflow version of the server, e.g. 3.0; default: AWS's."
    )
    maintenance_window: str = Field(
        default="SUN:03:00", description="Weekly maintenance start (UTC), DDD:HH:MM."
    )

    @field_validator("maintenance_window")
    @classmethod
    def _window(cls, value: str) -> str:
        if not re.fullmatch(r"(MON|TUE|WED|THU|FRI|SAT|SUN):([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError("must look like SUN:03:00 (day, 24-hour UTC time)")
        return value
