"""Experiment tracking: a SageMaker managed MLflow tracking server per stack (optional).

Training jobs get `MLFLOW_TRACKING_URI` = the server's ARN (the `sagemaker-mlflow` plugin in the
platform image signs requests with the job's role), and the training library logs parameters,
per-step metrics and the exported model to it. Artifacts land in `s3://<artifacts>/mlflow/`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import config
from infra.components.iam import assume_role_policy
from infra.context import StackContext

ARTIFACT_PREFIX = "mlflow/"


@dataclass(frozen=True)
class ExperimentTrackingArgs:
    """The `mlplatform:tracking` section and the stack whose artifacts bucket stores runs."""

    settings: config.Tracking
    context: StackContext


class ExperimentTracking(pulumi.ComponentResource):
    """The MLflow tracking server and the role it reads and writes its artifact store with."""

    server_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: ExperimentTrackingArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("mlplatform:tracking:ExperimentTracking", name, None, opts)
        context, settings = args.context, args.settings
        role = aws.iam.Role(
            f"{name}-mlflow",
            description=f"The {name} MLflow tracking server's access to its artifact store",
            # SageMaker documents no aws:SourceArn form for tracking servers: only the account.
            assume_role_policy=assume_role_policy("sagemaker.amazonaws.com", context.account_id),
            opts=pulumi.ResourceOptions(parent=self),
        )
        artifacts_arn = context.bucket_arns["artifacts"]
        aws.iam.RolePolicy(
            f"{name}-mlflow",
            role=role.id,
            policy=pulumi.Output.all(artifacts_arn, context.kms_key_arn).apply(
                lambda v: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "ListArtifactStore",
                                "Effect": "Allow",
                                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                                "Resource": v[0],
                                "Condition": {"StringLike": {"s3:prefix": [f"{ARTIFACT_PREFIX}*"]}},
                            },
                            {
                                "Sid": "ReadWriteArtifactStore",
                                "Effect": "Allow",
                                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                                "Resource": f"{v[0]}/{ARTIFACT_PREFIX}*",
                            },
                            {
                                "Sid": "UseStackKey",
                                "Effect": "Allow",
                                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                                "Resource": v[1],
                            },
                        ],
                    }
                )
            ),
            opts=pulumi.ResourceOptions(parent=role),
        )
        server_args: dict = {}
        if settings.mlflow_version:
            server_args["mlflow_version"] = settings.mlflow_version
        server = aws.sagemaker.MlflowTrackingServer(
            name,
            tracking_server_name=name,
            artifact_store_uri=pulumi.Output.concat(
                "s3://", context.bucket_names["artifacts"], f"/{ARTIFACT_PREFIX}"
            ),
            role_arn=role.arn,
            tracking_server_size=settings.size,
            weekly_maintenance_window_start=settings.maintenance_window,
            opts=pulumi.ResourceOptions(parent=self),
            **server_args,
        )
        self.server_arn = server.arn
        self.register_outputs({"trackingServerArn": self.server_arn})
