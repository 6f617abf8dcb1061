"""The rules through the real program: shipped stacks pass, stack variants that break a rule
are caught with a message that says what and where."""

from __future__ import annotations

import copy

import yaml

from infra.stackfile import STACKS_DIR
from policies.offline import check_plan, mandatory


def _section(stack: str, key: str):
    return copy.deepcopy(
        yaml.safe_load((STACKS_DIR / f"Pulumi.{stack}.yaml").read_text())["config"][key]
    )


def _by_policy(plan) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for v in mandatory(check_plan(plan)):
        found.setdefault(v.policy, []).append(f"{v.resource}: {v.message}")
    return found


def test_shipped_stacks_pass_every_mandatory_policy(plan):
    assert [f"{v.policy}: {v.resource}: {v.message}" for v in mandatory(check_plan(plan))] == []


def test_an_on_demand_a100_pool_in_dev_breaks_family_size_spot_and_budget_rules(plan_variant):
    pools = _section("dev", "mlplatform:gpuPools")
    pools.append(
        {
            "name": "big",
            "instanceTypes": ["p4d.24xlarge"],
            "capacityType": "onDemand",
            "minSize": 0,
            "maxSize": 1,
        }
    )
    found = _by_policy(plan_variant("dev", {"mlplatform:gpuPools": pools}))
    assert (
        "p4d.24xlarge" in found["gpu-allowed-families"][0]
        and "big" in found["gpu-allowed-families"][0]
    )
    assert "8 GPUs" in found["gpu-max-per-pool"][0]
    assert "GPUs at full scale" in found["gpu-max-per-stack"][0]
    assert "ON_DEMAND" in found["training-spot-required"][0]
    assert "over the budget of $1,500.00" in found["monthly-budget"][0]


def test_on_demand_training_and_wide_serverless_concurrency_are_caught_in_dev(plan_variant):
    models = _section("dev", "mlplatform:models")
    models[0]["training"].update(spot=False)
    models[0]["training"].pop("maxWaitHours", None)
    models[0]["serving"]["serverlessMaxConcurrency"] = 50
    found = _by_policy(plan_variant("dev", {"mlplatform:models": models}))
    assert "on-demand" in found["training-spot-required"][0]
    assert "50 concurrent serverless invocations" in found["serving-bounds"][0]


def test_an_endpoint_allowed_to_scale_past_the_staging_bound_is_caught(plan_variant):
    models = _section("staging", "mlplatform:models")
    models[0]["serving"]["maxInstances"] = 10
    found = _by_policy(plan_variant("staging", {"mlplatform:models": models}))
    assert "10 instances" in found["serving-bounds"][0]


def test_a_public_api_endpoint_in_prod_is_caught_even_with_an_allow_list(plan_variant):
    cluster = {"endpointPublicAccess": True, "publicAccessCidrs": ["203.0.113.0/24"]}
    found = _by_policy(plan_variant("prod", {"mlplatform:cluster": cluster}))
    assert "endpoint is public" in found["eks-private-endpoint"][0]


def test_a_budget_below_the_expected_cost_fails_the_prod_check(plan_variant):
    found = _by_policy(plan_variant("prod", {"mlplatform:budget": {"monthlyUsd": 5000}}))
    [message] = found["monthly-budget"]
    assert "over the budget of $5,000.00" in message and "mlplatform:budget.monthlyUsd" in message


def test_an_eks_deployment_allowed_to_scale_past_the_staging_bound_is_caught(plan_variant):
    models = _section("staging", "mlplatform:models")
    eks = next(m for m in models if m["serving"]["plane"] == "eks")
    eks["serving"]["maxInstances"] = 6
    found = _by_policy(plan_variant("staging", {"mlplatform:models": models}))
    assert any("HorizontalPodAutoscaler may reach 6 replicas" in m for m in found["serving-bounds"])


def test_the_suites_stacks_have_no_advisory_findings_either(plan):
    # Every rule holds on the real program: an advisory finding is a regression to look at.
    found = {(v.policy, v.resource) for v in check_plan(plan) if v.enforcement == "advisory"}
    assert found == set()
