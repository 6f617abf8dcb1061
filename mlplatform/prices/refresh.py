"""Refresh a price table's instance rows from the AWS Price List API (boto3 `pricing`).

Only the instance rows are refreshed: they are what moves, and what the estimate is most
sensitive to. Service prices and usage assumptions stay as the table states them.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from mlplatform.prices import load, path_for

# The Price List API is served from a few regions only; us-east-1 answers for all of them.
PRICING_REGION = "us-east-1"


def _match(field: str, value: str) -> dict[str, str]:
    return {"Type": "TERM_MATCH", "Field": field, "Value": value}


def ec2_filters(instance_type: str, region: str) -> list[dict[str, str]]:
    """Linux, shared tenancy, no pre-installed software, on-demand capacity."""
    return [
        _match("instanceType", instance_type),
        _match("regionCode", region),
        _match("operatingSystem", "Linux"),
        _match("tenancy", "Shared"),
        _match("preInstalledSw", "NA"),
        _match("capacitystatus", "Used"),
        _match("licenseModel", "No License required"),
    ]


def sagemaker_filters(instance_type: str, region: str) -> list[dict[str, str]]:
    """Real-time hosting instances (training prices of the same type are within a few cents)."""
    return [
        _match("instanceName", instance_type),
        _match("regionCode", region),
        _match("component", "Hosting"),
        _match("productFamily", "ML Instance"),
    ]


def on_demand_hourly(price_list: list[str]) -> float | None:
    """The hourly USD price of the first product with an on-demand hourly dimension."""
    for item in price_list:
        product = json.loads(item)
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                usd = dimension.get("pricePerUnit", {}).get("USD")
                if dimension.get("unit") in ("Hrs", "Hour") and usd and float(usd) > 0:
                    return float(usd)
    return None


def fetch(client: Any, instance_type: str, region: str) -> float | None:
    """The on-demand hourly price of an EC2 or SageMaker (`ml.*`) type, None if not offered."""
    sagemaker = instance_type.startswith("ml.")
    response = client.get_products(
        ServiceCode="AmazonSageMaker" if sagemaker else "AmazonEC2",
        Filters=(sagemaker_filters if sagemaker else ec2_filters)(instance_type, region),
        FormatVersion="aws_v1",
        MaxResults=10,
    )
    return on_demand_hourly(response.get("PriceList", []))


def refresh_document(document: dict[str, Any], client: Any) -> dict[str, tuple[float, float]]:
    """Update the instance rows of a price table document in place; returns what changed."""
    changed: dict[str, tuple[float, float]] = {}
    for key in ("ec2Hourly", "sagemakerHourly"):
        for instance_type, old in sorted(document[key].items()):
            new = fetch(client, instance_type, document["region"])
            if new is not None and new != old:
                document[key][instance_type] = new
                changed[instance_type] = (old, new)
    document["date"] = datetime.date.today().isoformat()
    return changed


def refresh_file(region: str, client: Any = None) -> dict[str, tuple[float, float]]:
    """Refresh `mlplatform/prices/<region>.json` with live prices (needs AWS credentials)."""
    if client is None:
        import boto3

        client = boto3.client("pricing", region_name=PRICING_REGION)
    path = path_for(region)
    document = json.loads(path.read_text())
    changed = refresh_document(document, client)
    path.write_text(json.dumps(document, indent=2) + "\n")
    load.cache_clear()
    return changed
