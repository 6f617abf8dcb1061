"""Object storage: one customer-managed KMS key and the buckets training and serving use."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import config
from infra.context import StackContext

BUCKET_PURPOSES = ("datasets", "artifacts", "checkpoints")


@dataclass(frozen=True)
class StorageArgs:
    """The stack file's `mlplatform:storage` section and the stack it belongs to."""

    settings: config.Storage
    context: StackContext


def tls_only_policy(bucket_arn: str) -> str:
    """A bucket policy that refuses any request not made over TLS."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )


class Storage(pulumi.ComponentResource):
    """A rotating KMS key and the datasets, artifacts and checkpoints buckets, all SSE-KMS."""

    kms_key_arn: pulumi.Output[str]
    buckets: dict[str, aws.s3.Bucket]

    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:storage:Storage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        settings, context = args.settings, args.context
        kept = pulumi.ResourceOptions(parent=self, protect=settings.protect)

        key = aws.kms.Key(
            name,
            description=f"{name}: encrypts datasets, models, checkpoints, images and secrets",
            enable_key_rotation=True,
            deletion_window_in_days=settings.kms_deletion_window_days,
            # The account root may administer the key; everything else is granted through IAM.
            policy=pulumi.Output.from_input(context.account_id).apply(
                lambda account: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "AccountAdministers",
                                "Effect": "Allow",
                                "Principal": {
                                    "AWS": f"arn:{context.partition}:iam::{account}:root"
                                },
                                "Action": "kms:*",
                                "Resource": "*",
                            }
                        ],
                    }
                )
            ),
            opts=kept,
        )
        aws.kms.Alias(name, name=f"alias/{name}", target_key_id=key.key_id, opts=child)

        self.buckets = {}
        for purpose in BUCKET_PURPOSES:
            bucket_name = f"{name}-{purpose}"
            bucket = aws.s3.Bucket(bucket_name, force_destroy=settings.force_destroy, opts=kept)
            bucket_opts = pulumi.ResourceOptions(parent=bucket)
            aws.s3.BucketOwnershipControls(
                bucket_name,
                bucket=bucket.id,
                rule={"object_ownership": "BucketOwnerEnforced"},
                opts=bucket_opts,
            )
            public_block = aws.s3.BucketPublicAccessBlock(
                bucket_name,
                bucket=bucket.id,
                block_public_acls=True,
                block_public_policy=True,
                ignore_public_acls=True,
                restrict_public_buckets=True,
                opts=bucket_opts,
            )
            aws.s3.BucketServerSideEncryptionConfiguration(
                bucket_name,
                bucket=bucket.id,
                rules=[
                    {
                        "apply_server_side_encryption_by_default": {
                            "sse_algorithm": "aws:kms",
                            "kms_master_key_id": key.arn,
                        },
                        # One data key per bucket instead of per object: far fewer KMS calls.
                        "bucket_key_enabled": True,
                    }
                ],
                opts=bucket_opts,
            )
            versioning = aws.s3.BucketVersioning(
                bucket_name,
                bucket=bucket.id,
                versioning_configuration={"status": "Enabled"},
                opts=bucket_opts,
            )
            aws.s3.BucketPolicy(
                bucket_name,
                bucket=bucket.id,
                policy=bucket.arn.apply(tls_only_policy),
                # A policy write races the public-access block; order them.
                opts=pulumi.ResourceOptions(parent=bucket, depends_on=[public_block]),
            )
            rules: list[aws.s3.BucketLifecycleConfigurationRuleArgsDict] = [
                {
                    "id": "abort-incomplete-multipart-uploads",
                    "status": "Enabled",
                    "filter": {},
                    "abort_incomplete_multipart_upload": {
                        "days_after_initiation": settings.abort_incomplete_multipart_days
                    },
                },
                {
                    "id": "expire-noncurrent-versions",
                    "status": "Enabled",
                    "filter": {},
                    "noncurrent_version_expiration": {
                        "noncurrent_days": settings.noncurrent_version_expiration_days
                    },
                },
            ]
            if purpose == "checkpoints":
                rules.append(
                    {
                        "id": "expire-old-checkpoints",
                        "status": "Enabled",
                        "filter": {},
                        "expiration": {"days": settings.checkpoint_expiration_days},
                    }
                )
            aws.s3.BucketLifecycleConfiguration(
                bucket_name,
                bucket=bucket.id,
                rules=rules,
                # Lifecycle rules on noncurrent versions need versioning in place first.
                opts=pulumi.ResourceOptions(parent=bucket, depends_on=[versioning]),
            )
            self.buckets[purpose] = bucket

        self.kms_key_arn = key.arn
        self.kms_key_id = key.key_id
        self.bucket_names = {p: b.bucket for p, b in self.buckets.items()}
        self.bucket_arns = {p: b.arn for p, b in self.buckets.items()}
        self.register_outputs({"kmsKeyArn": self.kms_key_arn, "bucketNames": self.bucket_names})
