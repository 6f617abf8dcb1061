"""Encryption rules: the stack key everywhere, or a documented restriction; access logs."""

from __future__ import annotations

import json

import pytest

from infra.components.images import TAG_PREFIX
from policies.rules.images import deploy_tag_shape, glob_can_match

ACCOUNT = "123456789012"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
FOREIGN = "arn:aws:kms:us-east-1:999999999999:key/other"
GROUP = "/aws/eks/c/cluster"


def _key(resource, *logs_values, condition_operator="ArnEquals"):
    statements = [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    if logs_values:
        statements.append(
            {
                "Effect": "Allow",
                "Principal": {"Service": "logs.us-east-1.amazonaws.com"},
                "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {
                    condition_operator: {"kms:EncryptionContext:aws:logs:arn": list(logs_values)}
                },
            }
        )
    policy = json.dumps({"Version": "2012-10-17", "Statement": statements})
    return resource("aws:kms/key:Key", "key", arn=KEY_ARN, keyId="k", policy=policy)


@pytest.mark.parametrize(
    ("type_", "field"),
    [
        ("aws:cloudwatch/logGroup:LogGroup", "kmsKeyId"),
        ("aws:secretsmanager/secret:Secret", "kmsKeyId"),
        ("aws:sns/topic:Topic", "kmsMasterKeyId"),
        ("aws:ebs/volume:Volume", "kmsKeyId"),
    ],
)
def test_data_not_under_the_stack_key_is_caught(check_stack, resource, type_, field):
    [message] = check_stack("stack-key-encryption", [_key(resource), resource(type_, "data")])
    assert "'data'" in message and field in message
    assert check_stack(
        "stack-key-encryption", [_key(resource), resource(type_, "data", **{field: FOREIGN})]
    )
    assert (
        check_stack(
            "stack-key-encryption", [_key(resource), resource(type_, "data", **{field: KEY_ARN})]
        )
        == []
    )


def test_repositories_and_eks_secrets_need_the_stack_key(check_stack, resource):
    repo = resource(
        "aws:ecr/repository:Repository",
        "r",
        encryptionConfigurations=[{"encryptionType": "AES256"}],
    )
    cluster = resource(
        "aws:eks/cluster:Cluster",
        "c",
        encryptionConfig={"resources": ["secrets"], "provider": {"keyArn": FOREIGN}},
    )
    assert len(check_stack("stack-key-encryption", [_key(resource), repo, cluster])) == 2


def test_node_volumes_take_the_account_ebs_key_as_the_restriction_documents(check_stack, resource):
    encrypted = {"deviceName": "/dev/xvda", "ebs": {"encrypted": "true"}}
    template = resource(
        "aws:ec2/launchTemplate:LaunchTemplate", "lt", id="lt-1", blockDeviceMappings=[encrypted]
    )
    nodes = resource("aws:eks/nodeGroup:NodeGroup", "ng", launchTemplate={"id": "lt-1"})
    assert check_stack("stack-key-encryption", [_key(resource), template, nodes]) == []
    # A template no node group uses gets no such exception.
    [message] = check_stack("stack-key-encryption", [_key(resource), template])
    assert "node-volumes-account-key" in message


def test_a_log_group_under_a_key_that_does_not_grant_cloudwatch_logs_is_caught(
    check_stack, resource
):
    group = resource("aws:cloudwatch/logGroup:LogGroup", "g", name=GROUP, kmsKeyId=KEY_ARN)
    [message] = check_stack("kms-log-group-grant", [_key(resource), group])
    assert GROUP in message and "logs-kms-key-policy" in message
    other = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/other"
    assert check_stack("kms-log-group-grant", [_key(resource, other), group])
    granted = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{GROUP}"
    assert check_stack("kms-log-group-grant", [_key(resource, granted), group]) == []


def test_a_key_that_serves_any_log_group_is_caught(check_stack, resource):
    every_group = f"arn:aws:logs:us-east-1:{ACCOUNT}:*"
    [message] = check_stack(
        "kms-log-group-grant", [_key(resource, every_group, condition_operator="ArnLike")]
    )
    assert "any log group" in message


def _bucket(resource, name):
    return resource("aws:s3/bucket:Bucket", name, bucket=name, id=name)


def _sse(resource, bucket, algorithm, key=None):
    default = {"sseAlgorithm": algorithm, **({"kmsMasterKeyId": key} if key else {})}
    return resource(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        f"{bucket}-sse",
        bucket=bucket,
        rules=[{"applyServerSideEncryptionByDefault": default}],
    )


def _logging(resource, source, target):
    return resource(
        "aws:s3/bucketLogging:BucketLogging",
        f"{source}-logging",
        bucket=source,
        targetBucket=target,
        targetPrefix="x/",
    )


def test_a_bucket_without_access_logs_is_caught_and_the_log_bucket_is_exempt(check_stack, resource):
    data, logs = _bucket(resource, "data"), _bucket(resource, "logs")
    [message] = check_stack("s3-access-logging", [data])
    assert "'data'" in message
    assert check_stack("s3-access-logging", [data, logs, _logging(resource, "data", "logs")]) == []
    assert check_stack("s3-access-logging", [data, _logging(resource, "data", "data")])


def test_the_log_target_must_use_sse_s3_and_only_it_may(check_stack, resource):
    data, logs = _bucket(resource, "data"), _bucket(resource, "logs")
    logging = _logging(resource, "data", "logs")
    right = [
        data,
        logs,
        logging,
        _sse(resource, "data", "aws:kms", KEY_ARN),
        _sse(resource, "logs", "AES256"),
    ]
    assert check_stack("s3-bucket-kms-encryption", right) == []
    wrong = [
        data,
        logs,
        logging,
        _sse(resource, "data", "aws:kms", KEY_ARN),
        _sse(resource, "logs", "aws:kms", KEY_ARN),
    ]
    [message] = check_stack("s3-bucket-kms-encryption", wrong)
    assert "'logs'" in message and "s3-log-target-sse-s3" in message
    # The exception is for log targets only: a data bucket on SSE-S3 still fails.
    plain = [data, _sse(resource, "data", "AES256")]
    assert check_stack("s3-bucket-kms-encryption", plain)


@pytest.mark.parametrize("pattern", ["*", "ctx-*", "c*", "*0", "*-*", "ctx-*f*"])
def test_exclusion_filters_that_can_match_a_deploy_tag_are_caught(check, pattern):
    repo = {
        "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
        "imageTagMutabilityExclusionFilters": [{"filter": pattern, "filterType": "WILDCARD"}],
    }
    [message] = check("ecr-exclusions-spare-deploy-tags", "aws:ecr/repository:Repository", repo)
    assert repr(pattern) in message


@pytest.mark.parametrize(
    "pattern", ["buildcache*", "ctx", "ctx-*x", "latest", "ctx-0123456789abcdef0"]
)
def test_exclusion_filters_that_cannot_match_a_deploy_tag_pass(check, pattern):
    repo = {
        "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
        "imageTagMutabilityExclusionFilters": [{"filter": pattern, "filterType": "WILDCARD"}],
    }
    assert check("ecr-exclusions-spare-deploy-tags", "aws:ecr/repository:Repository", repo) == []


def test_the_rules_deploy_tag_shape_is_the_one_the_images_component_makes(check):
    from policies.rules import all_rules

    (rule,) = [r for r in all_rules() if r.name == "ecr-exclusions-spare-deploy-tags"]
    assert rule.defaults()["deployTagPrefix"] == TAG_PREFIX
    shape = deploy_tag_shape(rule.defaults())
    assert glob_can_match("ctx-0123456789abcdef", shape)
    assert not glob_can_match("ctx-0123456789abcdeg", shape)
