"""Bucket rules (stack rules over pulumi-aws 7's separate bucket resources) on hand-built inputs."""

from __future__ import annotations

import json

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/k"


def _policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


BUCKET = "aws:s3/bucket:Bucket"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
POLICY = "aws:s3/bucketPolicy:BucketPolicy"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
TLS = _policy(
    {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": "*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
)


def _bucket_set(resource, **overrides):
    parts = {
        "sse": resource(
            SSE,
            "b",
            bucket="b-1",
            rules=[
                {
                    "applyServerSideEncryptionByDefault": {
                        "sseAlgorithm": "aws:kms",
                        "kmsMasterKeyId": KEY_ARN,
                    }
                }
            ],
        ),
        "block": resource(
            BLOCK,
            "b",
            bucket="b-1",
            blockPublicAcls=True,
            blockPublicPolicy=True,
            ignorePublicAcls=True,
            restrictPublicBuckets=True,
        ),
        "policy": resource(POLICY, "b", bucket="b-1", policy=TLS),
        "versioning": resource(
            VERSIONING, "b", bucket="b-1", versioningConfiguration={"status": "Enabled"}
        ),
    }
    parts.update(overrides)
    return [
        resource(BUCKET, "b", bucket="b-1", id="b-1"),
        *[p for p in parts.values() if p is not None],
    ]


def test_compliant_bucket_passes_every_bucket_rule(check_stack, resource):
    for name in (
        "s3-bucket-kms-encryption",
        "s3-public-access-block",
        "s3-tls-only",
        "s3-versioning",
    ):
        assert check_stack(name, _bucket_set(resource)) == [], name


def test_bucket_with_aws_managed_encryption_or_none_is_caught(check_stack, resource):
    aes = resource(
        SSE,
        "b",
        bucket="b-1",
        rules=[{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}],
    )
    assert check_stack("s3-bucket-kms-encryption", _bucket_set(resource, sse=aes))
    assert check_stack("s3-bucket-kms-encryption", _bucket_set(resource, sse=None))


def test_bucket_with_a_partial_public_access_block_is_caught(check_stack, resource):
    partial = resource(
        BLOCK,
        "b",
        bucket="b-1",
        blockPublicAcls=True,
        blockPublicPolicy=False,
        ignorePublicAcls=True,
        restrictPublicBuckets=True,
    )
    assert check_stack("s3-public-access-block", _bucket_set(resource, block=partial))


def test_bucket_without_tls_deny_or_versioning_is_caught(check_stack, resource):
    allow_all = resource(
        POLICY,
        "b",
        bucket="b-1",
        policy=_policy(
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}
        ),
    )
    assert check_stack("s3-tls-only", _bucket_set(resource, policy=allow_all))
    suspended = resource(
        VERSIONING, "b", bucket="b-1", versioningConfiguration={"status": "Suspended"}
    )
    assert check_stack("s3-versioning", _bucket_set(resource, versioning=suspended))


def test_companions_of_another_bucket_do_not_count(check_stack, resource):
    other = resource(VERSIONING, "o", bucket="other", versioningConfiguration={"status": "Enabled"})
    assert check_stack("s3-versioning", _bucket_set(resource, versioning=other))
