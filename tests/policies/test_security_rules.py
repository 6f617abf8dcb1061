"""Security rules on hand-built inputs shaped like pulumi-aws 7 (camelCase wire names)."""

from __future__ import annotations

import json

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError

CLUSTER = "aws:eks/cluster:Cluster"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
ECR = "aws:ecr/repository:Repository"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/k"


def _policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def test_iam_admin_statement_is_caught_in_managed_inline_and_role_policies(check):
    admin = _policy({"Sid": "Admin", "Effect": "Allow", "Action": "*", "Resource": "*"})
    assert check("iam-no-admin-statement", "aws:iam/policy:Policy", {"policy": admin})
    assert check("iam-no-admin-statement", "aws:iam/rolePolicy:RolePolicy", {"policy": admin})
    assert check(
        "iam-no-admin-statement",
        "aws:iam/role:Role",
        {"inlinePolicies": [{"name": "x", "policy": admin}]},
    )
    [message] = check("iam-no-admin-statement", "aws:iam/policy:Policy", {"policy": admin})
    assert "Admin" in message and "every action" in message


def test_iam_scoped_statements_and_star_resource_with_listed_actions_pass(check):
    scoped = _policy(
        {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
        {"Effect": "Deny", "Action": "*", "Resource": "*"},
    )
    assert (
        check("iam-no-admin-statement", "aws:iam/rolePolicy:RolePolicy", {"policy": scoped}) == []
    )


def test_eks_secrets_encryption_needs_secrets_resource_and_key(check):
    assert check("eks-secrets-encryption", CLUSTER, {})
    assert check(
        "eks-secrets-encryption",
        CLUSTER,
        {"encryptionConfig": {"resources": ["secrets"], "provider": {}}},
    )
    good = {"encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": KEY_ARN}}}
    assert check("eks-secrets-encryption", CLUSTER, good) == []


def test_eks_logging_requires_api_audit_authenticator_by_default(check):
    [message] = check("eks-control-plane-logging", CLUSTER, {"enabledClusterLogTypes": ["api"]})
    assert "audit" in message and "authenticator" in message
    assert (
        check(
            "eks-control-plane-logging",
            CLUSTER,
            {"enabledClusterLogTypes": ["api", "audit", "authenticator"]},
        )
        == []
    )


def test_eks_endpoint_is_public_unless_switched_off_explicitly(check):
    assert check("eks-private-endpoint", CLUSTER, {"vpcConfig": {"subnetIds": ["s"]}})
    private = {"vpcConfig": {"endpointPublicAccess": False, "endpointPrivateAccess": True}}
    assert check("eks-private-endpoint", CLUSTER, private) == []


def test_eks_public_endpoint_with_allow_list_passes_only_where_config_allows_it(check):
    listed = {"vpcConfig": {"endpointPublicAccess": True, "publicAccessCidrs": ["203.0.113.0/24"]}}
    assert check("eks-private-endpoint", CLUSTER, listed)
    assert check("eks-private-endpoint", CLUSTER, listed, allowPublicWithAllowList=True) == []
    open_world = {"vpcConfig": {"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]}}
    assert check("eks-private-endpoint", CLUSTER, open_world, allowPublicWithAllowList=True)


def test_launch_template_must_require_imdsv2(check):
    assert check("node-imdsv2", LT, {"metadataOptions": {"httpTokens": "optional"}})
    assert check("node-imdsv2", LT, {})
    assert check("node-imdsv2", LT, {"metadataOptions": {"httpTokens": "required"}}) == []


def test_node_group_without_launch_template_is_flagged(check):
    assert check("node-imdsv2", NODE_GROUP, {"instanceTypes": ["g5.xlarge"]})
    assert (
        check("node-imdsv2", NODE_GROUP, {"launchTemplate": {"id": "lt-1", "version": "1"}}) == []
    )


def test_launch_template_volumes_must_be_encrypted(check):
    plain = {"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"volumeSize": 100}}]}
    assert "/dev/xvda" in check("node-encrypted-volumes", LT, plain)[0]
    assert check("node-encrypted-volumes", LT, {})
    encrypted = {
        "blockDeviceMappings": [
            {"deviceName": "/dev/xvda", "ebs": {"encrypted": "true", "volumeSize": 100}}
        ]
    }
    assert check("node-encrypted-volumes", LT, encrypted) == []


def test_required_tags_are_checked_on_tagged_and_billable_resources(check):
    assert check("required-tags", "aws:s3/bucket:Bucket", {})
    [message] = check(
        "required-tags", "aws:ec2/vpc:Vpc", {"tags": {"project": "p", "environment": "dev"}}
    )
    assert "owner" in message and "cost-center" in message
    full = {"tags": {"project": "p", "environment": "dev", "owner": "o", "cost-center": "c"}}
    assert check("required-tags", "aws:ec2/vpc:Vpc", full) == []
    # Untaggable resources (no `tags` input at all) are not asked for tags.
    assert check("required-tags", "aws:ec2/route:Route", {"routeTableId": "rtb-1"}) == []


def test_unknown_values_during_preview_skip_the_rule_instead_of_crashing(check):
    # The engine's proxy raises UnknownValueError, which the SDK reports as "can't run during preview".
    with pytest.raises(UnknownValueError):
        check("ecr-immutable-tags", ECR, {"imageTagMutability": UNKNOWN_STRING_VALUE})


def test_offline_computed_values_do_not_crash_rules(check):
    assert check("iam-no-admin-statement", "aws:iam/policy:Policy", {"policy": "[computed]"}) == []
    assert (
        check(
            "images-pinned",
            "aws:sagemaker/model:Model",
            {"primaryContainer": {"image": "[computed]"}},
        )
        == []
    )


# --- stack rule: SageMaker encryption with the stack key ----------------------------------------


def _training_definition(
    kms: str | None, instance: str = "ml.m5.xlarge", volume_kms: str | None = "same"
) -> str:
    return json.dumps(
        {
            "Steps": [
                {
                    "Name": "Train",
                    "Type": "Training",
                    "Arguments": {
                        "ResourceConfig": {
                            "InstanceType": instance,
                            "InstanceCount": 1,
                            "VolumeKmsKeyId": kms if volume_kms == "same" else volume_kms,
                        },
                        "OutputDataConfig": {"KmsKeyId": kms},
                    },
                }
            ]
        }
    )


def test_sagemaker_must_use_the_stacks_own_key(check_stack, resource):
    key = resource("aws:kms/key:Key", "k", arn=KEY_ARN)
    variant = {
        "variantName": "AllTraffic",
        "instanceType": "ml.m5.xlarge",
        "initialInstanceCount": 1,
    }
    foreign = "arn:aws:kms:us-east-1:999999999999:key/other"
    assert check_stack(
        "sagemaker-stack-key",
        [
            key,
            resource(
                "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
                "e",
                productionVariants=[variant],
            ),
        ],
    )
    assert check_stack(
        "sagemaker-stack-key",
        [
            key,
            resource(
                "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
                "e",
                productionVariants=[variant],
                kmsKeyArn=foreign,
            ),
        ],
    )
    assert check_stack(
        "sagemaker-stack-key",
        [
            key,
            resource(
                "aws:sagemaker/pipeline:Pipeline",
                "p",
                pipelineDefinition=_training_definition(None),
            ),
        ],
    )
    good = [
        key,
        resource(
            "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
            "e",
            productionVariants=[variant],
            kmsKeyArn=KEY_ARN,
        ),
        resource(
            "aws:sagemaker/pipeline:Pipeline", "p", pipelineDefinition=_training_definition(KEY_ARN)
        ),
    ]
    assert check_stack("sagemaker-stack-key", good) == []


def test_instance_storage_types_need_no_volume_key_and_training_must_not_ask_for_one(
    check_stack, resource
):
    # SageMaker refuses VolumeKmsKeyId on types with NVMe instance storage (ml.g5.*): the
    # instance's hardware encrypts those disks.
    key = resource("aws:kms/key:Key", "k", arn=KEY_ARN)
    g5 = {"variantName": "AllTraffic", "instanceType": "ml.g5.xlarge", "initialInstanceCount": 1}
    config = resource(
        "aws:sagemaker/endpointConfiguration:EndpointConfiguration", "e", productionVariants=[g5]
    )
    assert check_stack("sagemaker-stack-key", [key, config]) == []
    asks = _training_definition(KEY_ARN, instance="ml.g5.2xlarge")
    [message] = check_stack(
        "sagemaker-stack-key",
        [key, resource("aws:sagemaker/pipeline:Pipeline", "p", pipelineDefinition=asks)],
    )
    assert "VolumeKmsKeyId" in message and "ml.g5.2xlarge" in message
    right = _training_definition(KEY_ARN, instance="ml.g5.2xlarge", volume_kms=None)
    pipeline = resource("aws:sagemaker/pipeline:Pipeline", "p", pipelineDefinition=right)
    assert check_stack("sagemaker-stack-key", [key, pipeline]) == []


def test_serverless_endpoints_need_no_volume_key(check_stack, resource):
    serverless = {
        "variantName": "AllTraffic",
        "serverlessConfig": {"maxConcurrency": 5, "memorySizeInMb": 2048},
    }
    config = resource(
        "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
        "e",
        productionVariants=[serverless],
    )
    assert check_stack("sagemaker-stack-key", [config]) == []
