"""IAM for SageMaker, per model: a training role and a hosting role, each scoped to that model.

The training role runs the model's training, tuning and processing jobs (prepare, evaluate): it
reads the model's channels and code, writes its artifacts and checkpoints. The hosting role runs
its endpoint: it reads only the model's artifacts (and writes captured data when capture is on).
Both trust SageMaker only on behalf of this account, in the ARN forms SageMaker sets for each use
(confused-deputy guard, https://docs.aws.amazon.com/sagemaker/latest/dg/security-confused-deputy-prevention.html).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.context import StackContext

# The aws:SourceArn SageMaker sets when it assumes an execution role, by use (the page above):
# jobs carry their own ARN; every inference kind (real-time, serverless, async) carries exactly
# the account-wide form, never a model or endpoint ARN.
JOB_SOURCE_ARNS = ("training-job/*", "processing-job/*", "hyper-parameter-tuning-job/*")
HOSTING_SOURCE_ARN = "*"

# What a training job does on the server: create experiments and runs, log to them, read back.
RUN_ACTIONS = (
    "sagemaker-mlflow:CreateExperiment",
    "sagemaker-mlflow:GetExperiment",
    "sagemaker-mlflow:GetExperimentByName",
    "sagemaker-mlflow:SearchExperiments",
    "sagemaker-mlflow:CreateRun",
    "sagemaker-mlflow:GetRun",
    "sagemaker-mlflow:UpdateRun",
    "sagemaker-mlflow:LogMetric",
    "sagemaker-mlflow:LogParam",
    "sagemaker-mlflow:LogBatch",
    "sagemaker-mlflow:SetTag",
    "sagemaker-mlflow:GetMetricHistory",
    "sagemaker-mlflow:ListArtifacts",
)


def run_policy_statement(server_arn: str) -> dict[str, Any]:
    """What a training role needs to log runs to the stack's MLflow server (and nothing more)."""
    return {
        "Sid": "LogRunsToMlflow",
        "Effect": "Allow",
        "Action": list(RUN_ACTIONS),
        "Resource": server_arn,
    }


def assume_role_policy(
    service: str, account_id: str, source_arns: Sequence[str] = (), *, like: bool = True
) -> str:
    """Trust `service` only on behalf of this account and, where the service documents the
    form it sets, only for these source ARNs (confused-deputy guard)."""
    condition: dict[str, Any] = {"StringEquals": {"aws:SourceAccount": account_id}}
    if source_arns:
        operator = "ArnLike" if like else "ArnEquals"
        arns = list(source_arns)
        condition[operator] = {"aws:SourceArn": arns[0] if len(arns) == 1 else arns}
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": "sts:AssumeRole",
                    "Condition": condition,
                }
            ],
        }
    )


@dataclass(frozen=True)
class Prefixes:
    """What one model may touch in the stack's buckets, as `<bucket role>/<key prefix>` pairs."""

    read: Sequence[tuple[str, str]] = ()
    write: Sequence[tuple[str, str]] = ()
    external_read: Sequence[str] = ()  # s3://bucket/prefix the stack allows on purpose


def _object_arns(bucket_arns: Mapping[str, str], pairs: Sequence[tuple[str, str]]) -> list[str]:
    return sorted({f"{bucket_arns[b]}/{prefix}*" for b, prefix in pairs})


def _external_arns(uris: Sequence[str], partition: str) -> tuple[list[str], list[str]]:
    buckets, objects = set(), set()
    for uri in uris:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        buckets.add(f"arn:{partition}:s3:::{bucket}")
        objects.add(f"arn:{partition}:s3:::{bucket}/{prefix}*")
    return sorted(buckets), sorted(objects)


def model_policy(
    *,
    context_arns: Mapping[str, str],
    partition: str,
    region: str,
    account_id: str,
    kms_key_arn: str,
    prefixes: Prefixes,
    repository_arns: Sequence[str],
    secret_arns: Sequence[str] = (),
    extra: Sequence[dict[str, Any]] = (),
) -> str:
    """Least privilege for one model's SageMaker jobs or endpoint: its prefixes, key, images
    (plus `extra` statements, e.g. logging to the stack's MLflow server)."""
    touched = {b for b, _ in (*prefixes.read, *prefixes.write)}
    listed = {
        b: sorted({p for bb, p in (*prefixes.read, *prefixes.write) if bb == b}) for b in touched
    }
    statements: list[dict[str, Any]] = [
        {
            "Sid": f"List{bucket.capitalize()}Prefixes",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [context_arns[bucket]],
            "Condition": {"StringLike": {"s3:prefix": [f"{p}*" for p in listed[bucket]]}},
        }
        for bucket in sorted(touched)
    ]
    if prefixes.read:
        statements.append(
            {
                "Sid": "ReadModelObjects",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": _object_arns(context_arns, [*prefixes.read, *prefixes.write]),
            }
        )
    if prefixes.write:
        statements.append(
            {
                "Sid": "WriteModelObjects",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": _object_arns(context_arns, prefixes.write),
            }
        )
    if prefixes.external_read:
        buckets, objects = _external_arns(prefixes.external_read, partition)
        statements += [
            {
                "Sid": "ListExternalChannels",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": buckets,
            },
            {
                "Sid": "ReadExternalChannels",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": objects,
            },
        ]
    statements += [
        {
            "Sid": "UseStackKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:DescribeKey"],
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
            "Sid": "PullModelImages",
            "Effect": "Allow",
            "Action": [
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
                "ecr:BatchCheckLayerAvailability",
            ],
            "Resource": sorted(repository_arns),
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
                "Resource": sorted(secret_arns),
            }
        )
    statements += extra
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


@dataclass(frozen=True)
class ModelRolesArgs:
    """One model's name, the stack, what its jobs and endpoint may touch, and its images."""

    model_name: str
    context: StackContext
    training: Prefixes | None  # None: the model does not train on SageMaker
    hosting: Prefixes | None  # None: the model does not serve on SageMaker
    repository_arns: Sequence[pulumi.Input[str]]
    secret_arns: Sequence[pulumi.Input[str]] = field(default_factory=list)
    tracking_server_arn: pulumi.Input[str] | None = None  # training logs runs to it


class ModelRoles(pulumi.ComponentResource):
    """A model's SageMaker training role (jobs) and hosting role (its endpoint), each only where
    the model uses that plane (EKS workloads get Pod Identity roles of their own)."""

    training_role_arn: pulumi.Output[str] | None
    hosting_role_arn: pulumi.Output[str] | None

    def __init__(self, name: str, args: ModelRolesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:iam:ModelRoles", name, None, opts)
        self._name = name
        context = args.context
        uses = {
            "training": (
                f"SageMaker training, tuning and processing jobs of {args.model_name}",
                [context.arn("sagemaker", arn) for arn in JOB_SOURCE_ARNS],
                args.training,
                args.secret_arns,
            ),
            "hosting": (
                f"SageMaker endpoints of {args.model_name} (read-only on its artifacts)",
                [context.arn("sagemaker", HOSTING_SOURCE_ARN)],
                args.hosting,
                [],
            ),
        }
        arns: dict[str, pulumi.Output[str]] = {}
        for use, (description, sources, prefixes, secrets) in uses.items():
            if prefixes is None:
                continue
            role = aws.iam.Role(
                f"{name}-sagemaker-{use}",
                description=description,
                assume_role_policy=assume_role_policy(
                    "sagemaker.amazonaws.com", context.account_id, sources
                ),
                max_session_duration=43200,
                opts=pulumi.ResourceOptions(parent=self),
            )
            tracking = args.tracking_server_arn if use == "training" else None
            policy = pulumi.Output.all(
                context.kms_key_arn,
                {k: v for k, v in context.bucket_arns.items()},
                list(args.repository_arns),
                list(secrets),
                tracking,
            ).apply(
                lambda v, p=prefixes: model_policy(
                    context_arns=v[1],
                    partition=context.partition,
                    region=context.region,
                    account_id=context.account_id,
                    kms_key_arn=v[0],
                    prefixes=p,
                    repository_arns=v[2],
                    secret_arns=v[3],
                    extra=[run_policy_statement(v[4])] if v[4] else [],
                )
            )
            aws.iam.RolePolicy(
                f"{name}-sagemaker-{use}",
                role=role.id,
                policy=policy,
                opts=pulumi.ResourceOptions(parent=role),
            )
            arns[use] = role.arn
        self._arns = arns
        self.training_role_arn = arns.get("training")
        self.hosting_role_arn = arns.get("hosting")
        self.register_outputs(
            {"trainingRoleArn": self.training_role_arn, "hostingRoleArn": self.hosting_role_arn}
        )

    def role_arn(self, use: str) -> pulumi.Output[str]:
        """The ARN of the `training` or `hosting` role (created only where the model uses it)."""
        if use not in self._arns:
            raise ValueError(f"{self._name} has no SageMaker {use} role")
        return self._arns[use]
