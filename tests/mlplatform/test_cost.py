"""The cost estimate: schedules, node pools, endpoints, storage, network, the price table and its
refresh; runs are in test_cost_runs.py."""

from __future__ import annotations

import itertools
import json

import pytest
from botocore.stub import Stubber

from mlplatform.cost import CostLine, Estimate, estimate, runs_per_month
from mlplatform.prices import load
from mlplatform.prices.refresh import ec2_filters, refresh_document, sagemaker_filters
from policies.offline import stack_resources
from policies.rules import StackResource

PRICES = load("us-east-1")


def _r(type_: str, logical: str, **props) -> StackResource:
    return StackResource(type_, logical, f"urn:{logical}", props)


@pytest.mark.parametrize(
    ("expression", "runs"),
    [
        ("cron(0 3 ? * MON *)", 30.42 / 7),
        ("cron(0 3 ? * MON-FRI *)", 5 * 30.42 / 7),
        ("cron(0 */6 * * ? *)", 4 * 30.42),
        ("cron(30 2 1 * ? *)", 1),
        ("rate(7 days)", 730 / 24 / 7),
        ("rate(12 hours)", 730 / 12),
    ],
)
def test_schedule_expressions_become_runs_per_month(expression, runs):
    assert runs_per_month(expression) == pytest.approx(runs, rel=1e-3)


def test_price_table_states_region_date_and_source():
    assert PRICES.region == "us-east-1"
    assert PRICES.date[:4].isdigit() and "Price List API" in PRICES.source
    assert PRICES.hourly("g5.xlarge") > 0 and PRICES.hourly("ml.g5.xlarge") > PRICES.hourly(
        "g5.xlarge"
    )


def test_a_missing_region_table_says_how_to_add_one():
    with pytest.raises(FileNotFoundError, match="mlplatform prices refresh --region eu-north-1"):
        load("eu-north-1")


def test_node_pools_cost_nothing_at_zero_and_spot_is_discounted():
    pool = {"scalingConfig": {"minSize": 0, "maxSize": 2}, "instanceTypes": ["g5.xlarge"]}
    on_demand = estimate(
        [_r("aws:eks/nodeGroup:NodeGroup", "p", capacityType="ON_DEMAND", **pool)], PRICES
    )
    spot = estimate([_r("aws:eks/nodeGroup:NodeGroup", "p", capacityType="SPOT", **pool)], PRICES)
    disk = 2 * 20 * 0.08  # the default 20 GB per node
    assert on_demand.monthly_min == 0
    assert on_demand.monthly_max == pytest.approx(2 * 1.006 * 730 + disk)
    spot_compute = (on_demand.monthly_max - disk) * PRICES.assumptions["ec2SpotFactor"]
    assert spot.monthly_max == pytest.approx(spot_compute + disk, abs=0.01)


def test_node_volumes_come_from_the_launch_template_or_the_disk_size():
    template = _r(
        "aws:ec2/launchTemplate:LaunchTemplate",
        "lt",
        id="lt-1",
        blockDeviceMappings=[{"deviceName": "/dev/xvda", "ebs": {"volumeSize": 200}}],
    )
    pool = {
        "scalingConfig": {"minSize": 1, "maxSize": 1},
        "instanceTypes": ["m6i.large"],
        "capacityType": "ON_DEMAND",
    }
    with_template = _r(
        "aws:eks/nodeGroup:NodeGroup", "a", launchTemplate={"id": "lt-1", "version": "1"}, **pool
    )
    with_disk = _r("aws:eks/nodeGroup:NodeGroup", "b", diskSize=50, **pool)
    lines = {
        line.name: line for line in estimate([template, with_template, with_disk], PRICES).lines
    }
    assert lines["a"].monthly_max == pytest.approx(0.096 * 730 + 200 * 0.08, abs=0.01)
    assert lines["b"].monthly_max == pytest.approx(0.096 * 730 + 50 * 0.08, abs=0.01)
    assert "200 GB gp3" in lines["a"].detail


def test_a_pool_of_several_types_is_priced_cheapest_at_min_and_dearest_at_max():
    pool = {
        "scalingConfig": {"minSize": 1, "maxSize": 1},
        "instanceTypes": ["g5.2xlarge", "g5.xlarge"],
        "capacityType": "ON_DEMAND",
    }
    [line] = estimate([_r("aws:eks/nodeGroup:NodeGroup", "p", **pool)], PRICES).lines
    disk = 20 * 0.08
    assert (line.monthly_min, line.monthly_max) == (
        pytest.approx(1.006 * 730 + disk),
        pytest.approx(1.212 * 730 + disk),
    )


def test_endpoints_run_between_their_autoscaling_bounds():
    resources = [
        _r(
            "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
            "c",
            name="c-1",
            productionVariants=[
                {"variantName": "v", "instanceType": "ml.g5.xlarge", "initialInstanceCount": 2}
            ],
        ),
        _r("aws:sagemaker/endpoint:Endpoint", "e", name="e-1", endpointConfigName="c-1"),
        _r(
            "aws:appautoscaling/target:Target",
            "t",
            resourceId="endpoint/e-1/variant/v",
            minCapacity=2,
            maxCapacity=5,
        ),
    ]
    [line] = estimate(resources, PRICES).lines
    assert (line.monthly_min, line.monthly_max) == (
        round(1.408 * 730 * 2, 2),
        round(1.408 * 730 * 5, 2),
    )


def test_unknown_instance_types_are_listed_not_guessed():
    pool = _r(
        "aws:eks/nodeGroup:NodeGroup",
        "p",
        instanceTypes=["z9.mega"],
        scalingConfig={"minSize": 1, "maxSize": 1},
    )
    result = estimate([pool], PRICES)
    assert result.lines == [] and result.unpriced == ["z9.mega"]


def test_every_shipped_stack_is_fully_priced_and_under_its_budget_as_compared(plan):
    from mlplatform.report import preview

    checked = preview(plan)
    assert checked.estimate.unpriced == []
    assert 0 < checked.estimate.monthly_min <= checked.compared <= checked.estimate.monthly_max
    assert checked.compared <= plan.config.budget.monthly_usd


def test_prod_costs_more_than_dev_and_counts_nat_per_zone(plan_of):
    dev, prod = (estimate(stack_resources(plan_of(s)), PRICES) for s in ("dev", "prod"))
    assert prod.monthly_min > dev.monthly_min
    assert [line.kind for line in prod.lines].count("NAT gateway") == 3
    assert [line.kind for line in dev.lines].count("NAT gateway") == 1


def _product(usd: str) -> str:
    return json.dumps(
        {
            "terms": {
                "OnDemand": {
                    "T": {"priceDimensions": {"D": {"unit": "Hrs", "pricePerUnit": {"USD": usd}}}}
                }
            }
        }
    )


def test_refresh_reads_on_demand_prices_from_the_price_list_api():
    import boto3

    client = boto3.client(
        "pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    document = {
        "region": "us-east-1",
        "date": "2000-01-01",
        "ec2Hourly": {"g5.xlarge": 1.0},
        "sagemakerHourly": {"ml.g5.xlarge": 1.0},
    }
    with Stubber(client) as stub:
        stub.add_response(
            "get_products",
            {"PriceList": [_product("1.1")], "FormatVersion": "aws_v1"},
            {
                "ServiceCode": "AmazonEC2",
                "Filters": ec2_filters("g5.xlarge", "us-east-1"),
                "FormatVersion": "aws_v1",
                "MaxResults": 10,
            },
        )
        stub.add_response(
            "get_products",
            {"PriceList": [], "FormatVersion": "aws_v1"},
            {
                "ServiceCode": "AmazonSageMaker",
                "Filters": sagemaker_filters("ml.g5.xlarge", "us-east-1"),
                "FormatVersion": "aws_v1",
                "MaxResults": 10,
            },
        )
        changed = refresh_document(document, client)
    assert changed == {"g5.xlarge": (1.0, 1.1)}
    # A type the API does not list keeps its price rather than vanishing.
    assert (
        document["ec2Hourly"]["g5.xlarge"] == 1.1
        and document["sagemakerHourly"]["ml.g5.xlarge"] == 1.0
    )
    assert document["date"] != "2000-01-01"


def test_refresh_file_rewrites_only_instance_prices_and_the_date(tmp_path, monkeypatch):
    import shutil

    import boto3

    from mlplatform.prices import PRICES_DIR, refresh

    table = tmp_path / "us-east-1.json"
    shutil.copy(PRICES_DIR / "us-east-1.json", table)
    monkeypatch.setattr(refresh, "path_for", lambda region: table)
    before = json.loads(table.read_text())
    client = boto3.client(
        "pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stub:
        for _ in [*before["ec2Hourly"], *before["sagemakerHourly"]]:
            stub.add_response(
                "get_products", {"PriceList": [_product("2.0")], "FormatVersion": "aws_v1"}
            )
        changed = refresh.refresh_file("us-east-1", client)
    after = json.loads(table.read_text())
    assert set(after["ec2Hourly"].values()) == {2.0} and len(changed) == len(
        before["ec2Hourly"]
    ) + len(before["sagemakerHourly"])
    assert after["services"] == before["services"] and after["assumptions"] == before["assumptions"]
    assert after["source"] == before["source"] and after["date"] != before["date"]


def test_the_estimate_does_not_depend_on_the_order_its_lines_come_in():
    # Totals that sit on a half cent: a plain left-to-right sum rounds them by order (prod's
    # expected total moved by a cent when the plan's order changed).
    amounts = [3607.705, 2955.77, 4507.14, 111.61]
    totals = set()
    for order in itertools.permutations(amounts):
        lines = [CostLine(f"r{i}", "endpoint", "", a, a, scales=False) for i, a in enumerate(order)]
        cost = Estimate(lines=lines)
        totals.add((cost.monthly_min, cost.monthly_expected(0.25), cost.monthly_max))
    assert totals == {(11182.23, 11182.23, 11182.23)}
