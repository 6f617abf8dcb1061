"""The AWS foundation every stack gets: what users rely on, checked in the offline plan."""

from __future__ import annotations

import importlib
import inspect
import json
from functools import cache

import pytest

from mlplatform.plan import Plan

BUCKET = "aws:s3/bucket:Bucket"
REQUIRED_TAGS = {"project", "environment", "owner", "cost-center"}
# Actions with no resource-level permissions in IAM: "*" is the only valid Resource for them.
RESOURCELESS_ACTIONS = {
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",
    "sts:GetCallerIdentity",
    "ec2:GetInstanceTypesFromInstanceRequirements",
}


def _data_buckets(plan: Plan):
    """The datasets, artifacts and checkpoints buckets (not the access-log bucket)."""
    return [b for b in plan.of_type(BUCKET) if not b.name.endswith("-access-logs")]


def _bucket_child(plan: Plan, bucket, type_token: str):
    children = [r for r in plan.children(bucket) if r.type == type_token]
    assert len(children) == 1, f"{bucket.name} should have one {type_token}"
    return children[0]


def test_every_stack_has_datasets_artifacts_and_checkpoints_buckets(plan: Plan):
    names = sorted(b.name.rsplit("-", 1)[-1] for b in _data_buckets(plan))
    assert names == ["artifacts", "checkpoints", "datasets"]
    assert len(plan.of_type(BUCKET)) == 4  # and the bucket their access logs go to


def test_buckets_are_encrypted_with_the_stacks_own_kms_key(plan: Plan):
    (key,) = plan.of_type("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    for bucket in _data_buckets(plan):
        sse = _bucket_child(
            plan,
            bucket,
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        )
        (rule,) = sse.inputs["rules"]
        default = rule["applyServerSideEncryptionByDefault"]
        assert default["sseAlgorithm"] == "aws:kms"
        assert default["kmsMasterKeyId"] == key.outputs["arn"]


def test_buckets_are_versioned_private_and_owner_enforced(plan: Plan):
    for bucket in plan.of_type(BUCKET):
        versioning = _bucket_child(plan, bucket, "aws:s3/bucketVersioning:BucketVersioning")
        assert versioning.inputs["versioningConfiguration"]["status"] == "Enabled"
        block = _bucket_child(
            plan, bucket, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
        )
        for flag in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        ):
            assert block.inputs[flag] is True, flag
        ownership = _bucket_child(
            plan, bucket, "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
        )
        assert ownership.inputs["rule"]["objectOwnership"] == "BucketOwnerEnforced"


def test_bucket_policies_deny_every_request_without_tls(plan: Plan):
    for bucket in plan.of_type(BUCKET):
        policy = json.loads(
            _bucket_child(plan, bucket, "aws:s3/bucketPolicy:BucketPolicy").inputs["policy"]
        )
        deny = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
        assert any(
            s["Action"] == "s3:*"
            and s["Principal"] == "*"
            and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            and set(s["Resource"]) == {bucket.outputs["arn"], bucket.outputs["arn"] + "/*"}
            for s in deny
        ), policy


def test_lifecycle_rules_follow_the_stack_file(plan: Plan):
    storage = plan.config.storage
    for bucket in _data_buckets(plan):
        lifecycle = _bucket_child(
            plan, bucket, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
        )
        rules = {r["id"]: r for r in lifecycle.inputs["rules"]}
        assert (
            rules["abort-incomplete-multipart-uploads"]["abortIncompleteMultipartUpload"][
                "daysAfterInitiation"
            ]
            == storage.abort_incomplete_multipart_days
        )
        assert (
            rules["expire-noncurrent-versions"]["noncurrentVersionExpiration"]["noncurrentDays"]
            == storage.noncurrent_version_expiration_days
        )
        if bucket.name.endswith("checkpoints"):
            assert (
                rules["expire-old-checkpoints"]["expiration"]["days"]
                == storage.checkpoint_expiration_days
            )
        else:
            assert "expire-old-checkpoints" not in rules


def test_prod_data_and_key_are_protected_from_deletion(plan_of):
    prod, dev = plan_of("prod"), plan_of("dev")
    for resource in prod.of_type(BUCKET) + prod.of_type("aws:kms/key:Key"):
        assert resource.protect, resource.name
        assert not resource.inputs.get("forceDestroy")
    assert not any(r.protect for r in dev.of_type(BUCKET))


def test_ecr_repositories_are_immutable_scanned_and_kms_encrypted(plan: Plan):
    key_arn = plan.of_type("aws:kms/key:Key")[0].outputs["arn"]
    repos = plan.of_type("aws:ecr/repository:Repository")
    # One repository per model (its platform image), none shared between models.
    names = sorted(r.inputs["name"] for r in repos)
    assert names == sorted(f"mlplatform-{plan.stack}/{m.name}" for m in plan.config.models)
    for repo in repos:
        assert repo.inputs["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
        # Only the build-cache tag may be overwritten; release tags never.
        assert repo.inputs["imageTagMutabilityExclusionFilters"] == [
            {"filter": "buildcache*", "filterType": "WILDCARD"}
        ]
        assert repo.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
        assert repo.inputs["encryptionConfigurations"] == [
            {"encryptionType": "KMS", "kmsKey": key_arn}
        ]
        (lifecycle,) = [
            r for r in plan.children(repo) if r.type == "aws:ecr/lifecyclePolicy:LifecyclePolicy"
        ]
        rules = json.loads(lifecycle.inputs["policy"])["rules"]
        assert rules[-1]["selection"]["countNumber"] == plan.config.registry.keep_tagged_images


@pytest.mark.parametrize(
    ("stack", "nat_gateways", "zones"), [("dev", 1, 2), ("staging", 1, 2), ("prod", 3, 3)]
)
def test_nat_gateways_per_environment(plan_of, stack, nat_gateways, zones):
    plan = plan_of(stack)
    assert len(plan.of_type("aws:ec2/natGateway:NatGateway")) == nat_gateways
    subnets = plan.of_type("aws:ec2/subnet:Subnet")
    assert len({s.inputs["availabilityZone"] for s in subnets}) == zones
    private = [s for s in subnets if "-private-" in s.name]
    assert len(private) == zones and not any(s.inputs.get("mapPublicIpOnLaunch") for s in subnets)


def test_private_subnets_route_to_a_nat_in_their_own_zone_in_prod(plan_of):
    plan = plan_of("prod")
    nat_ids = {
        n.name.rsplit("-", 1)[-1]: n.outputs["id"]
        for n in plan.of_type("aws:ec2/natGateway:NatGateway")
    }
    routes = [r for r in plan.of_type("aws:ec2/route:Route") if r.name.endswith("-nat")]
    for route in routes:
        zone_suffix = route.name.removesuffix("-nat").rsplit("-", 1)[-1]
        assert route.inputs["natGatewayId"] == nat_ids[zone_suffix]


def test_interface_endpoints_only_where_the_stack_asks(plan_of):
    dev = plan_of("dev").of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert [e.inputs["vpcEndpointType"] for e in dev] == ["Gateway"]
    prod = {
        e.inputs["serviceName"] for e in plan_of("prod").of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    }
    for service in (
        "s3",
        "ecr.api",
        "ecr.dkr",
        "sts",
        "eks",
        "eks-auth",
        "sagemaker.api",
        "sagemaker.runtime",
    ):
        assert f"com.amazonaws.us-east-1.{service}" in prod


@cache
def _accepts_tags(type_token: str) -> bool:
    """Whether the pulumi-aws resource class behind a type token takes a `tags` input."""
    module, _, name = type_token.split(":", 1)[1].partition("/")
    cls = getattr(importlib.import_module(f"pulumi_aws.{module}"), name.split(":")[-1])
    return "tags" in inspect.signature(cls._internal_init).parameters


def test_every_taggable_resource_carries_the_stack_tags(plan: Plan):
    taggable = [
        r
        for r in plan.resources
        if r.custom and r.type.startswith("aws:") and _accepts_tags(r.type)
    ]
    assert len(taggable) > 10
    for resource in taggable:
        tags = resource.inputs.get("tags") or {}
        assert REQUIRED_TAGS <= set(tags), (
            f"{resource.type} {resource.name} lacks {REQUIRED_TAGS - set(tags)}"
        )
        assert tags["environment"] == plan.config.environment
        assert tags["cost-center"] == plan.config.tags.cost_center


def test_resources_keep_their_own_tags_next_to_the_stack_tags(plan_of):
    vpc = plan_of("prod").of_type("aws:ec2/vpc:Vpc")[0]
    assert vpc.inputs["tags"]["Name"] == "mlplatform-prod"
    assert vpc.inputs["tags"]["data-classification"] == "confidential"


def _statements(plan: Plan):
    for resource in plan.resources:
        if resource.type in ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy"):
            yield from ((resource, s) for s in json.loads(resource.inputs["policy"])["Statement"])


def _needs_no_resource(action: str) -> bool:
    """Actions that AWS does not scope by resource: discovery calls and a few named ones."""
    verb = action.split(":", 1)[1]
    return action in RESOURCELESS_ACTIONS or verb.startswith(("Describe", "List"))


def test_iam_statements_name_resources_unless_aws_offers_none(plan: Plan):
    statements = list(_statements(plan))
    assert statements
    for resource, statement in statements:
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        assert "*" not in actions and not any(a.endswith(":*") for a in actions), resource.name
        if statement.get("Resource") in ("*", ["*"]):
            # Either nothing narrower exists, or a condition pins the statement to this stack.
            scoped = any(
                key.startswith("aws:ResourceTag/") or key == "cloudwatch:namespace"
                for operator in (statement.get("Condition") or {}).values()
                for key in operator
            )
            assert scoped or all(_needs_no_resource(a) for a in actions), (
                f"{resource.name}: {statement.get('Sid')} uses Resource '*' for {actions}"
            )


def test_secure_values_plan_without_decryption_and_stay_secret(plan_of):
    plan = plan_of("dev")
    (version,) = plan.of_type("aws:secretsmanager/secretVersion:SecretVersion")
    assert version.inputs["secretString"] == "[secret]"
    (secret,) = plan.of_type("aws:secretsmanager/secret:Secret")
    assert secret.inputs["kmsKeyId"] == plan.of_type("aws:kms/key:Key")[0].outputs["arn"]


def test_stack_outputs_name_the_concrete_resources(plan: Plan):
    outputs = plan.outputs
    assert outputs["vpcId"].startswith("vpc-")
    assert set(outputs["bucketNames"]) == {"datasets", "artifacts", "checkpoints"}
    for model in plan.config.models:
        if not model.path:
            assert outputs["repositoryUrls"][model.name].endswith(
                f"mlplatform-{plan.stack}/{model.name}"
            )
        for arn in outputs["modelRoles"][model.name].values():
            assert arn.startswith("arn:aws:iam::123456789012:role/")


def test_budget_matches_the_stack_file_and_alerts_its_owners(plan_of):
    prod = plan_of("prod")
    (budget,) = prod.of_type("aws:budgets/budget:Budget")
    assert budget.inputs["limitAmount"] == "40000.00" and budget.inputs["timeUnit"] == "MONTHLY"
    assert budget.inputs["costFilters"] == [{"name": "TagKeyValue", "values": ["user:stack$prod"]}]
    alerts = {(n["notificationType"], n["threshold"]) for n in budget.inputs["notifications"]}
    assert alerts == {("ACTUAL", 80), ("FORECASTED", 100)}
    for notification in budget.inputs["notifications"]:
        # Through the stack's alert topic, which e-mails mlplatform:alerts.emails.
        assert notification["subscriberSnsTopicArns"] == [prod.outputs["alertTopicArn"]]
