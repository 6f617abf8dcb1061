"""IAM: the SageMaker execution role, scoped to this stack's buckets, key and repositories."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.context import StackContext


@dataclass(frozen=True)
class ExecutionRoleArgs:
    """The stack (its key and buckets) and the repositories and secrets the role may read;
    nothing outside them."""

    context: StackContext
    repository_arns: Mapping[str, pulumi.Input[str]]
    secret_arns: Sequence[pulumi.Input[str]] = field(default_factory=list)


def assume_role_policy(service: str, account_id: str) -> str:
    """Trust `service`, but only on behalf of this account (confused-deputy guard)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
                }
            ],
        }
    )


def execution_policy(
    *,
    account_id: str,
    partition: str,
    region: str,
    bucket_arns: list[str],
    kms_key_arn: str,
    repository_arns: list[str],
    secret_arns: list[str],
) -> str:
    """Least privilege for SageMaker training, processing and hosting of this stack."""
    statements = [
        {
            "Sid": "ListStackBuckets",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
            "Resource": bucket_arns,
        },
        {
            "Sid": "ReadWriteStackObjects",
            "Effect": "Allow",
            "Action": [
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:AbortMultipartUpload",
            ],
            "Resource": [f"{arn}/*" for arn in bucket_arns],
        },
        {
            "Sid": "UseStackKey",
            "Effect": "Allow",
            "Action": [
                "kms:Decrypt",
                "kms:Encrypt",
                "kms:GenerateDataKey*",
                "kms:ReEncrypt*",
                "kms:DescribeKey",
            ],
            "Resource": [kms_key_arn],
        },
        {
            # SageMaker encrypts the ML storage volume of jobs and endpoints through a grant.
            "Sid": "GrantStackKeyToSageMakerVolumes",
            "Effect": "Allow",
            "Action": ["kms:CreateGrant"],
            "Resource": [kms_key_arn],
            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        },
        {
            "Sid": "PullStackImages",
            "Effect": "Allow",
            "Action": [
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
                "ecr:BatchCheckLayerAvailability",
            ],
            "Resource": repository_arns,
        },
        {
            # GetAuthorizationToken has no resource-level permissions: "*" is the only form.
            "Sid": "RegistryLogin",
            "Effect": "Allow",
            "Action": ["ecr:GetAuthorizationToken"],
            "Resource": "*",
        },
        {
            "Sid": "WriteSageMakerLogs",
            "Effect": "Allow",
            "Action": [
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "logs:DescribeLogStreams",
            ],
            "Resource": [f"arn:{partition}:logs:{region}:{account_id}:log-group:/aws/sagemaker/*"],
        },
        {
            # PutMetricData has no resource-level permissions; the namespace condition scopes it.
            "Sid": "PublishSageMakerMetrics",
            "Effect": "Allow",
            "Action": ["cloudwatch:PutMetricData"],
            "Resource": "*",
            "Condition": {
                "StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "mlplatform/*"]}
            },
        },
    ]
    if secret_arns:
        statements.append(
            {
                "Sid": "ReadStackSecrets",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue"],
                "Resource": secret_arns,
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


class SageMakerExecutionRole(pulumi.ComponentResource):
    """The role SageMaker jobs and endpoints of this stack run as."""

    role_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: ExecutionRoleArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("mlplatform:iam:SageMakerExecutionRole", name, None, opts)
        context = args.context
        role = aws.iam.Role(
            name,
            description="SageMaker execution role scoped to this stack's buckets, key and images",
            assume_role_policy=assume_role_policy("sagemaker.amazonaws.com", context.account_id),
            max_session_duration=43200,
            opts=pulumi.ResourceOptions(parent=self),
        )
        buckets = sorted(context.bucket_arns)
        repos = sorted(args.repository_arns)
        policy = pulumi.Output.all(
            context.account_id,
            context.kms_key_arn,
            [context.bucket_arns[k] for k in buckets],
            [args.repository_arns[k] for k in repos],
            list(args.secret_arns),
        ).apply(
            lambda v: execution_policy(
                account_id=v[0],
                partition=context.partition,
                region=context.region,
                kms_key_arn=v[1],
                bucket_arns=v[2],
                repository_arns=v[3],
                secret_arns=v[4],
            )
        )
        aws.iam.RolePolicy(
            name, role=role.id, policy=policy, opts=pulumi.ResourceOptions(parent=role)
        )
        self.role = role
        self.role_arn = role.arn
        self.role_name = role.name
        self.register_outputs({"roleArn": self.role_arn})
