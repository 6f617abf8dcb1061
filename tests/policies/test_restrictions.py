"""The AWS restrictions table: well-formed rows with sources, the checks the schema calls, and
every serverless endpoint of every shipped stack derived from its plan and checked."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from infra import restrictions
from infra.stackfile import STACKS_DIR
from policies.rules import StackResource
from policies.rules.restrictions import serverless_problems

ROOT = Path(__file__).resolve().parents[2]
ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"


def test_every_row_names_what_it_applies_to_and_the_page_it_comes_from():
    rows = restrictions.table()
    assert len(rows) == len(json.loads(restrictions.DATA.read_text())["restrictions"])
    for row in rows.values():
        assert re.fullmatch(r"[a-z0-9-]+", row.id)
        assert row.applies_to and row.rule.endswith(".")
        assert row.source.startswith("https://"), row.id


def test_every_row_is_checked_somewhere():
    code = "\n".join(
        p.read_text()
        for p in [*ROOT.glob("infra/restrictions.py"), *ROOT.glob("policies/rules/*.py")]
    )
    unchecked = [row for row in restrictions.table() if f'"{row}"' not in code]
    assert unchecked == []


def test_every_service_trust_form_has_a_source_and_unsettled_ones_say_why():
    for service, entry in restrictions.service_trust().items():
        assert entry["source"].startswith("https://"), service
        if entry["settled"]:
            assert entry["usages"], service
        else:
            assert entry["why"], service


def test_a_use_with_a_documented_source_arn_has_a_recommended_form_too():
    # iam-trust-source-arn recommends a form for every use whose sent form is documented.
    for service, entry in restrictions.service_trust().items():
        for usage, forms in entry.get("usages", {}).items():
            assert (forms["sends"] is None) == (forms["recommended"] is None), (service, usage)


def test_the_inference_source_arn_is_exactly_the_account_wide_form():
    arn = restrictions.source_arn(
        "sagemaker.amazonaws.com", "inference", partition="aws", region="eu-west-1", account="1"
    )
    assert arn == "arn:aws:sagemaker:eu-west-1:1:*"


def _ids(problems) -> list[str]:
    return [p.restriction for p in problems]


def test_a_valid_serverless_endpoint_has_no_problems():
    assert restrictions.check_serverless_endpoint(memory_mb=2048, max_concurrency=5) == []


@pytest.mark.parametrize(
    ("change", "row"),
    [
        ({"network_isolation": True}, "serverless-network-isolation"),
        ({"vpc": True}, "serverless-vpc"),
        ({"data_capture": True}, "serverless-data-capture"),
        ({"gpu": True}, "serverless-gpu"),
        ({"variant_count": 2}, "serverless-single-variant"),
        (
            {"model_package": "arn:aws:sagemaker:us-east-1:aws-marketplace:model-package/x"},
            "serverless-marketplace",
        ),
        ({"multi_model": True}, "serverless-model-shape"),
        ({"containers": 2}, "serverless-model-shape"),
        ({"private_registry": True}, "serverless-model-shape"),
        ({"memory_mb": 1536}, "serverless-memory"),
        ({"max_concurrency": 201}, "serverless-concurrency"),
        ({"provisioned_concurrency": 6}, "serverless-concurrency"),
    ],
)
def test_each_serverless_restriction_is_caught(change, row):
    values = {"memory_mb": 2048, "max_concurrency": 5, **change}
    assert _ids(restrictions.check_serverless_endpoint(**values)) == [row]


def test_async_endpoints_are_instance_only_and_single_variant():
    assert restrictions.check_async_endpoint(serverless=False, variant_count=1) == []
    assert _ids(restrictions.check_async_endpoint(serverless=True, variant_count=2)) == [
        "async-instance-only",
        "async-single-variant",
    ]


def test_training_jobs_respect_runtime_wait_checkpoint_and_volume_key_rules():
    ok = restrictions.check_training_job(
        spot=True,
        max_runtime_s=3600,
        max_wait_s=7200,
        checkpoint_uri="s3://b/c",
        instance_type="ml.m5.xlarge",
        volume_kms_key="k",
    )
    assert ok == []
    assert _ids(restrictions.check_training_job(spot=False, max_runtime_s=2_419_201)) == [
        "training-max-runtime"
    ]
    assert _ids(
        restrictions.check_training_job(
            spot=True, max_runtime_s=3600, max_wait_s=1800, checkpoint_uri="s3://x"
        )
    ) == ["spot-max-wait"]
    assert _ids(
        restrictions.check_training_job(spot=True, max_runtime_s=3600, max_wait_s=3600)
    ) == ["spot-checkpoints"]
    refused = restrictions.check_training_job(
        spot=False, max_runtime_s=60, instance_type="ml.g5.2xlarge", volume_kms_key="k"
    )
    assert _ids(refused) == ["volume-key-instance-store"]


def test_endpoint_keys_are_refused_with_any_instance_store_variant():
    assert _ids(
        restrictions.check_endpoint_key(
            instance_types=["ml.m5.xlarge", "ml.g5.xlarge"], kms_key="k"
        )
    ) == ["endpoint-key-instance-store"]
    assert restrictions.check_endpoint_key(instance_types=["ml.m5.xlarge"], kms_key="k") == []


def test_batch_transform_payload_times_concurrency_is_capped():
    assert restrictions.check_batch_transform(max_concurrent_transforms=4, max_payload_mb=25) == []
    assert _ids(
        restrictions.check_batch_transform(max_concurrent_transforms=4, max_payload_mb=26)
    ) == ["batch-transform-payload"]
    assert _ids(
        restrictions.check_batch_transform(max_concurrent_transforms=None, max_payload_mb=101)
    ) == ["batch-transform-payload"]


@pytest.mark.parametrize(
    ("mutability", "filters", "bad"),
    [
        ("IMMUTABLE_WITH_EXCLUSION", [{"filter": "buildcache*", "filterType": "WILDCARD"}], False),
        ("IMMUTABLE_WITH_EXCLUSION", [], True),
        (
            "IMMUTABLE_WITH_EXCLUSION",
            [{"filter": f"t{i}*", "filterType": "WILDCARD"} for i in range(6)],
            True,
        ),
        ("IMMUTABLE_WITH_EXCLUSION", [{"filter": "cache/*", "filterType": "WILDCARD"}], True),
        ("IMMUTABLE_WITH_EXCLUSION", [{"filter": "cache*", "filterType": "REGEX"}], True),
        ("IMMUTABLE", [{"filter": "cache*", "filterType": "WILDCARD"}], True),
    ],
    ids=["valid", "none", "six", "slash", "not-wildcard", "wrong-mutability"],
)
def test_ecr_exclusion_filters(mutability, filters, bad):
    assert bool(restrictions.check_ecr_exclusion_filters(mutability, filters)) is bad


def test_pod_identity_trusts_need_both_actions_and_no_source_arn():
    good = {"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"]}
    assert restrictions.check_pod_identity_trust([good]) == []
    assert _ids(restrictions.check_pod_identity_trust([{**good, "Action": "sts:AssumeRole"}])) == [
        "pod-identity-trust-actions"
    ]
    source_arn = {**good, "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:eks:*"}}}
    assert _ids(restrictions.check_pod_identity_trust([source_arn])) == [
        "pod-identity-no-source-arn"
    ]


def _serverless_endpoints(plan) -> dict[str, list[str]]:
    """Every serverless endpoint configuration of a plan with the rows it breaks."""
    models = {r.outputs.get("name"): r.outputs for r in plan.of_type("aws:sagemaker/model:Model")}
    found = {}
    for r in plan.of_type(ENDPOINT_CONFIG):
        if any(v.get("serverlessConfig") for v in r.outputs.get("productionVariants", [])):
            resource = StackResource(r.type, r.name, r.urn, r.outputs)
            found[r.name] = _ids(serverless_problems(resource, models))
    return found


SERVERLESS = {"dev": 2, "staging": 0, "prod": 0}  # in the suite's stacks (tests/stacks/)


def test_every_serverless_endpoint_of_every_stack_is_checked_against_the_table(plan):
    endpoints = _serverless_endpoints(plan)
    assert len(endpoints) == SERVERLESS[plan.stack]
    for name, rows in endpoints.items():
        assert rows == [], name


def test_every_serverless_endpoint_of_every_shipped_stack_meets_the_table():
    from mlplatform.plan import plan_stack

    for path in sorted(STACKS_DIR.glob("Pulumi.*.yaml")):
        for name, rows in _serverless_endpoints(plan_stack(path)).items():
            assert rows == [], f"{path.name}: {name}"


def test_a_staging_variant_serving_serverless_is_derived_and_checked_too(plan_variant):
    models = [
        {
            "name": "digits",
            "serving": {
                "plane": "sagemaker",
                "mode": "serverless",
                "serverlessMemoryMb": 3072,
                "serverlessMaxConcurrency": 8,
            },
        }
    ]
    plan = plan_variant("staging", {"mlplatform:models": models})
    assert list(_serverless_endpoints(plan).values()) == [[]]


def test_the_restrictions_rule_flags_a_serverless_model_made_network_isolated(plan_of):
    plan = plan_of("dev")
    resources = []
    for r in plan.resources:
        outputs = copy.deepcopy(r.outputs)
        if r.type == "aws:sagemaker/model:Model" and r.name == "mlplatform-dev-digits":
            outputs["enableNetworkIsolation"] = True  # what the program once declared
        resources.append(StackResource(r.type, r.name, r.urn, outputs))
    from policies.rules import StackFacts, all_rules

    (rule,) = [x for x in all_rules() if x.name == "aws-feature-restrictions"]
    facts = StackFacts(stack="dev", environment="dev", region="us-east-1", budget_monthly_usd=1500)
    messages = [m for m, _ in rule.check(resources, rule.defaults(), facts)]
    [message] = messages
    assert "mlplatform-dev-digits" in message and "enableNetworkIsolation" in message
    assert "https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints.html" in message
