"""Object storage: one customer-managed KMS key, the buckets training and serving use, and the
bucket their server access logs go to."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import config
from infra.context import StackContext

BUCKET_PURPOSES = ("datasets", "artifacts", "checkpoints")
# Server access logs are kept a year: long enough to investigate an incident after the fact.
ACCESS_LOG_RETENTION_DAYS = 365


def stack_log_groups(prefix: str) -> dict[str, str]:
    """The CloudWatch log groups the stack key encrypts, by purpose. Their names are fixed so
    the key policy can let CloudWatch Logs use the key for exactly these groups."""
    return {
        "eks": f"/aws/eks/{prefix}/cluster",
        "flow-logs": f"/aws/vpc/{prefix}/flow-logs",
        # Where the CloudWatch Observability add-on writes Container Insights' performance
        # events (its metrics come from them); left to the agent, the group is unencrypted by
        # the stack key and kept forever.
        "container-insights": f"/aws/containerinsights/{prefix}/performance",
    }


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


def key_policy(context: StackContext, account: str, log_groups: list[str]) -> str:
    """The account administers the key through IAM; CloudWatch Logs may use it only for the
    stack's own log groups (the encryption context names the group)."""
    logs_arns = [
        f"arn:{context.partition}:logs:{context.region}:{account}:log-group:{group}"
        for group in log_groups
    ]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    # The key's default policy: without it nobody could manage the key.
                    "Sid": "AccountAdministers",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:{context.partition}:iam::{account}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "CloudWatchLogsForStackLogGroups",
                    "Effect": "Allow",
                    "Principal": {"Service": f"logs.{context.region}.amazonaws.com"},
                    "Action": [
                        "kms:Encrypt*",
                        "kms:Decrypt*",
                        "kms:ReEncrypt*",
                        "kms:GenerateDataKey*",
                        "kms:Describe*",
                    ],
                    "Resource": "*",
                    "Condition": {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": logs_arns}},
                },
            ],
        }
    )


def access_log_bucket_policy(
    log_bucket_arn: str, source_bucket_arns: list[str], account: str
) -> str:
    """TLS only, and S3's log delivery may write here only for this account's source buckets."""
    statements = json.loads(tls_only_policy(log_bucket_arn))["Statement"]
    statements.append(
        {
            "Sid": "S3ServerAccessLogDelivery",
            "Effect": "Allow",
            "Principal": {"Service": "logging.s3.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": f"{log_bucket_arn}/*",
            "Condition": {
                "ArnLike": {"aws:SourceArn": source_bucket_arns},
                "StringEquals": {"aws:SourceAccount": account},
            },
        }
    )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


class Storage(pulumi.ComponentResource):
    """A rotating KMS key, the datasets, artifacts and checkpoints buckets (SSE-KMS), and the
    bucket that receives their server access logs (SSE-S3: the only encryption S3 log
    delivery supports)."""

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
            policy=pulumi.Output.from_input(context.account_id).apply(
                lambda account: key_policy(
                    context, account, list(stack_log_groups(context.prefix).values())
                )
            ),
            opts=kept,
        )
        aws.kms.Alias(name, name=f"alias/{name}", target_key_id=key.key_id, opts=child)

        self.buckets = {}
        for purpose in BUCKET_PURPOSES:
            bucket_name = f"{name}-{purpose}"
            bucket = aws.s3.Bucket(bucket_name, force_destroy=settings.force_destroy, opts=kept)
            versioning, _ = self._harden(
                bucket_name,
                bucket,
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": key.arn,
                    },
                    # One data key per bucket instead of per object: far fewer KMS calls.
                    "bucket_key_enabled": True,
                },
                policy=bucket.arn.apply(tls_only_policy),
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

        # S3 log delivery supports only SSE-S3 on the target bucket (infra/restrictions.json,
        # s3-log-target-sse-s3); the logs hold request metadata, never object contents.
        self.log_bucket = aws.s3.Bucket(
            f"{name}-access-logs", force_destroy=settings.force_destroy, opts=kept
        )
        log_rule: aws.s3.BucketServerSideEncryptionConfigurationRuleArgsDict = {
            "apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}
        }
        log_versioning, log_block = self._harden(f"{name}-access-logs", self.log_bucket, log_rule)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-access-logs",
            bucket=self.log_bucket.id,
            rules=[
                {
                    "id": "expire-access-logs",
                    "status": "Enabled",
                    "filter": {},
                    "expiration": {"days": ACCESS_LOG_RETENTION_DAYS},
                    "abort_incomplete_multipart_upload": {
                        "days_after_initiation": settings.abort_incomplete_multipart_days
                    },
                    "noncurrent_version_expiration": {
                        "noncurrent_days": settings.noncurrent_version_expiration_days
                    },
                }
            ],
            opts=pulumi.ResourceOptions(parent=self.log_bucket, depends_on=[log_versioning]),
        )

        # Written only after the delivery grant exists, so no log is dropped at creation.
        log_policy = aws.s3.BucketPolicy(
            f"{name}-access-logs",
            bucket=self.log_bucket.id,
            policy=pulumi.Output.all(
                self.log_bucket.arn,
                [b.arn for b in self.buckets.values()],
                context.account_id,
            ).apply(lambda v: access_log_bucket_policy(v[0], v[1], v[2])),
            opts=pulumi.ResourceOptions(parent=self.log_bucket, depends_on=[log_block]),
        )
        for purpose, bucket in self.buckets.items():
            aws.s3.BucketLogging(
                f"{name}-{purpose}",
                bucket=bucket.id,
                target_bucket=self.log_bucket.id,
                target_prefix=f"{purpose}/",
                # Date-partitioned keys: Athena and lifecycle rules can work per day.
                target_object_key_format={
                    "partitioned_prefix": {"partition_date_source": "EventTime"}
                },
                opts=pulumi.ResourceOptions(parent=bucket, depends_on=[log_policy]),
            )

        self.kms_key_arn = key.arn
        self.kms_key_id = key.key_id
        self.bucket_names = {p: b.bucket for p, b in self.buckets.items()}
        self.bucket_arns = {p: b.arn for p, b in self.buckets.items()}
        self.register_outputs(
            {
                "kmsKeyArn": self.kms_key_arn,
                "bucketNames": self.bucket_names,
                "accessLogBucket": self.log_bucket.bucket,
            }
        )

    def _harden(
        self,
        name: str,
        bucket: aws.s3.Bucket,
        encryption: aws.s3.BucketServerSideEncryptionConfigurationRuleArgsDict,
        policy: pulumi.Input[str] | None = None,
    ) -> tuple[aws.s3.BucketVersioning, aws.s3.BucketPublicAccessBlock]:
        """What every bucket gets: owner-enforced objects, no public access, default
        encryption, versioning and, when given, its policy. Returns the versioning (lifecycle
        rules on noncurrent versions wait for it) and the public-access block (policies do)."""
        opts = pulumi.ResourceOptions(parent=bucket)
        aws.s3.BucketOwnershipControls(
            name, bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=opts
        )
        public_block = aws.s3.BucketPublicAccessBlock(
            name,
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=opts,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            name, bucket=bucket.id, rules=[encryption], opts=opts
        )
        versioning = aws.s3.BucketVersioning(
            name, bucket=bucket.id, versioning_configuration={"status": "Enabled"}, opts=opts
        )
        if policy is not None:
            aws.s3.BucketPolicy(
                name,
                bucket=bucket.id,
                policy=policy,
                # A policy write races the public-access block; order them.
                opts=pulumi.ResourceOptions(parent=bucket, depends_on=[public_block]),
            )
        return versioning, public_block
