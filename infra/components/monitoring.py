"""Drift monitoring for an endpoint that captures data: a scheduled one-step pipeline runs the
platform's drift check (`python -m training.drift check`) in the model's image on the captured
requests of the last day against the baseline the training pipeline computed from its data,
publishes the drift score to CloudWatch, and an alarm on the score notifies the stack's topic.

Model Monitor does this where an account still has it; AWS closed it to new customers
(https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture.html), so the platform
runs its own check and needs nothing account-specific.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.iam import assume_role_policy
from infra.components.schedules import schedule_pipeline
from infra.config import SageMakerEndpoint
from infra.context import StackContext
from infra.data_layout import DataLayout

METRIC_NAMESPACE = "mlplatform/Drift"
PROCESSING = "/opt/ml/processing"
CHECK_INSTANCE_TYPE = "ml.m5.large"
WINDOW_HOURS = 24
EXECUTION_ID = {"Get": "Execution.PipelineExecutionId"}


def monitor_definition(
    *,
    model: str,
    image: str,
    role_arn: str,
    artifacts_bucket: str,
    kms_key_arn: str,
    layout: DataLayout,
) -> dict[str, Any]:
    """The pipeline: one Processing step that checks the last day's captured requests."""
    check = [
        "python", "-m", "training.drift", "check",
        "--baseline", f"s3://{artifacts_bucket}/{layout.baseline_key}",
        "--capture", f"s3://{artifacts_bucket}/{layout.capture_prefix}",
        "--hours", str(WINDOW_HOURS),
        "--out", f"{PROCESSING}/report/drift.json",
        "--metric-namespace", METRIC_NAMESPACE,
        "--model", model,
    ]  # fmt: skip
    job = {
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceType": CHECK_INSTANCE_TYPE,
                "InstanceCount": 1,
                "VolumeSizeInGB": 30,
                "VolumeKmsKeyId": kms_key_arn,
            }
        },
        # Each entrypoint item may hold 256 characters (CreateProcessingJob): no `sh -c` line.
        "AppSpecification": {"ImageUri": image, "ContainerEntrypoint": check},
        "RoleArn": role_arn,
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "report",
                    "AppManaged": False,
                    "S3Output": {
                        "S3Uri": {
                            "Std:Join": {
                                "On": "/",
                                "Values": [
                                    f"s3://{artifacts_bucket}/{layout.monitoring_prefix}reports",
                                    EXECUTION_ID,
                                ],
                            }
                        },
                        "LocalPath": f"{PROCESSING}/report",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
            "KmsKeyId": kms_key_arn,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    return {
        "Version": "2020-12-01",
        "Metadata": {},
        "Parameters": [],
        "Steps": [{"Name": "CheckDrift", "Type": "Processing", "Arguments": job}],
    }


def monitor_role_policy(*, context: StackContext, role_arn: str) -> str:
    """What the monitor pipeline does: start its processing job as the model's hosting role."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "RunDriftChecks",
                    "Effect": "Allow",
                    "Action": [
                        "sagemaker:CreateProcessingJob",
                        "sagemaker:DescribeProcessingJob",
                        "sagemaker:StopProcessingJob",
                        "sagemaker:AddTags",
                    ],
                    "Resource": context.arn("sagemaker", "processing-job/*"),
                },
                {
                    "Sid": "PassOnlyTheHostingRole",
                    "Effect": "Allow",
                    "Action": "iam:PassRole",
                    "Resource": role_arn,
                    "Condition": {
                        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
                    },
                },
            ],
        }
    )


@dataclass(frozen=True)
class ModelMonitorArgs:
    """The endpoint's settings, the stack, and the image and role the check runs with."""

    model_name: str
    serving: SageMakerEndpoint
    context: StackContext
    layout: DataLayout
    image: pulumi.Input[str]
    role_arn: pulumi.Input[str]  # the model's hosting role (reads capture, writes reports)
    alert_topic_arn: pulumi.Input[str]


class ModelMonitor(pulumi.ComponentResource):
    """Scheduled drift checks of one endpoint's captured requests, and their alarm."""

    def __init__(
        self, name: str, args: ModelMonitorArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("mlplatform:monitoring:ModelMonitor", name, None, opts)
        context, layout = args.context, args.layout
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{name}-monitor",
            description=f"Runs the {name} drift checks",
            assume_role_policy=assume_role_policy(
                "sagemaker.amazonaws.com",
                context.account_id,
                [context.arn("sagemaker", f"pipeline/{name}-monitor/*")],
            ),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-monitor",
            role=role.id,
            policy=pulumi.Output.from_input(args.role_arn).apply(
                lambda arn: monitor_role_policy(context=context, role_arn=arn)
            ),
            opts=pulumi.ResourceOptions(parent=role),
        )
        definition = pulumi.Output.all(
            args.image, args.role_arn, context.bucket_names["artifacts"], context.kms_key_arn
        ).apply(
            lambda v: json.dumps(
                monitor_definition(
                    model=args.model_name,
                    image=v[0],
                    role_arn=v[1],
                    artifacts_bucket=v[2],
                    kms_key_arn=v[3],
                    layout=layout,
                ),
                sort_keys=True,
                separators=(",", ":"),
            )
        )
        pipeline = aws.sagemaker.Pipeline(
            f"{name}-monitor",
            pipeline_name=f"{name}-monitor",
            pipeline_display_name=f"{name}-monitor",
            pipeline_description=f"Check {args.model_name}'s captured requests for drift",
            role_arn=role.arn,
            pipeline_definition=definition,
            opts=child,
        )
        schedule_pipeline(
            f"{name}-monitor",
            context=context,
            pipeline=pipeline,
            expression=args.serving.drift_schedule,
            description=f"Check {args.model_name} for drift",
            parameters={},
            parent=self,
        )
        aws.cloudwatch.MetricAlarm(
            f"{name}-drift",
            name=f"{name}-drift",
            alarm_description=(
                f"{args.model_name}'s inputs drifted from its training data "
                f"(share of drifted features >= {args.serving.drift_alarm_score})"
            ),
            namespace=METRIC_NAMESPACE,
            metric_name="DriftScore",
            dimensions={"Model": args.model_name},
            statistic="Maximum",
            period=86400,
            evaluation_periods=1,
            threshold=args.serving.drift_alarm_score,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[args.alert_topic_arn],
            ok_actions=[args.alert_topic_arn],
            opts=child,
        )
        self.pipeline_name = pipeline.pipeline_name
        self.pipeline_arn = pipeline.arn
        self.register_outputs({"pipelineName": self.pipeline_name})
