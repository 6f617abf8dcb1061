"""EventBridge Scheduler starting a SageMaker pipeline: retraining and batch scoring on a clock."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

from infra.components.iam import assume_role_policy
from infra.context import StackContext

# Schedules live in the account's default group; Scheduler sets aws:SourceArn to the group's
# ARN (never a schedule's), per
# https://docs.aws.amazon.com/scheduler/latest/UserGuide/cross-service-confused-deputy-prevention.html
SCHEDULE_GROUP = "schedule-group/default"


def schedule_pipeline(
    name: str,
    *,
    context: StackContext,
    pipeline: aws.sagemaker.Pipeline,
    expression: str,
    description: str,
    parameters: Mapping[str, str],
    parent: pulumi.Resource,
) -> aws.scheduler.Schedule:
    """A schedule (and the role it runs as) that starts `pipeline` with `parameters`."""
    role = aws.iam.Role(
        f"{name}-schedule",
        description=f"Lets EventBridge Scheduler start the {name} pipeline",
        assume_role_policy=assume_role_policy(
            "scheduler.amazonaws.com",
            context.account_id,
            [context.arn("scheduler", SCHEDULE_GROUP)],
            like=False,
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    aws.iam.RolePolicy(
        f"{name}-schedule",
        role=role.id,
        policy=pulumi.Output.all(pipeline.arn, context.kms_key_arn).apply(
            lambda v: json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "sagemaker:StartPipelineExecution",
                            "Resource": v[0],
                        },
                        {
                            # The schedule's payload is encrypted with the stack key; Scheduler
                            # decrypts it as this role when it invokes the target.
                            "Effect": "Allow",
                            "Action": "kms:Decrypt",
                            "Resource": v[1],
                        },
                    ],
                }
            )
        ),
        opts=pulumi.ResourceOptions(parent=role),
    )
    target: aws.scheduler.ScheduleTargetArgsDict = {
        "arn": pipeline.arn,
        "role_arn": role.arn,
        "retry_policy": {"maximum_retry_attempts": 3, "maximum_event_age_in_seconds": 3600},
    }
    if parameters:
        # Scheduler's templated SageMaker target: StartPipelineExecution with these values.
        target["sagemaker_pipeline_parameters"] = {
            "pipeline_parameters": [
                {"name": key, "value": value} for key, value in sorted(parameters.items())
            ]
        }
    return aws.scheduler.Schedule(
        f"{name}-schedule",
        description=description,
        schedule_expression=expression,
        schedule_expression_timezone="UTC",
        flexible_time_window={"mode": "OFF"},
        kms_key_arn=context.kms_key_arn,
        target=target,
        opts=pulumi.ResourceOptions(parent=parent),
    )
