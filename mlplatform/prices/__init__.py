"""Price tables: one JSON file per region stating its date, source and assumptions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

PRICES_DIR = Path(__file__).parent


@dataclass(frozen=True)
class PriceTable:
    """On-demand hourly prices per instance type, service prices and usage assumptions."""

    region: str
    date: str
    source: str
    ec2_hourly: dict[str, float]
    sagemaker_hourly: dict[str, float]
    services: dict[str, float]
    assumptions: dict[str, float]
    image_gb: dict[str, float] = field(default_factory=dict)
    """Compressed platform image size per framework (`other` for the rest)."""
    mlflow_hourly: dict[str, float] = field(default_factory=dict)
    """Managed MLflow tracking server price per size."""

    def hourly(self, instance_type: str) -> float | None:
        """The on-demand price of an EC2 or SageMaker (`ml.*`) instance type, if listed."""
        table = self.sagemaker_hourly if instance_type.startswith("ml.") else self.ec2_hourly
        return table.get(instance_type)

    @property
    def hours(self) -> float:
        return self.assumptions["hoursPerMonth"]


def path_for(region: str) -> Path:
    return PRICES_DIR / f"{region}.json"


def from_document(document: dict[str, Any]) -> PriceTable:
    return PriceTable(
        region=document["region"],
        date=document["date"],
        source=document["source"],
        ec2_hourly=dict(document["ec2Hourly"]),
        sagemaker_hourly=dict(document["sagemakerHourly"]),
        services=dict(document["services"]),
        assumptions=dict(document["assumptions"]),
        image_gb=dict(document.get("imageGb", {})),
        mlflow_hourly=dict(document.get("mlflowTrackingServerHourly", {})),
    )


def missing(region: str) -> str:
    """What to do about a region without a price table."""
    known = sorted(p.stem for p in PRICES_DIR.glob("*.json"))
    return (
        f"no price table for region {region!r} (have {known}); copy one to "
        f"mlplatform/prices/{region}.json and run `mlplatform prices refresh --region {region}` "
        "with AWS credentials"
    )


def empty(region: str) -> PriceTable:
    """A table that prices nothing: every instance type comes out unpriced."""
    return PriceTable(region, "none", missing(region), {}, {}, {}, {"hoursPerMonth": 730})


@cache
def load(region: str) -> PriceTable:
    """The price table of a region; a clear error when the repository has none."""
    path = path_for(region)
    if not path.exists():
        raise FileNotFoundError(missing(region))
    return from_document(json.loads(path.read_text()))
