"""Alerts that reach people: one KMS-encrypted SNS topic per stack, the e-mails subscribed to it,
and the rule that turns a failed training pipeline into a message on it.

Every CloudWatch alarm of the stack (endpoints, drift, EKS serving) and the AWS Budget notify this
topic; `mlplatform:alerts.emails` says who reads it. The stack key encrypts the topic; its key
policy lets CloudWatch, EventBridge and AWS Budgets use it for SNS only (infra/components/storage).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import config
from infra.context import StackContext

# AWS services that publish to the topic: alarms, EventBridge rules, budget notifications.
PUBLISHERS = ("cloudwatch.amazonaws.com", "events.amazonaws.com", "budgets.amazonaws.com")


def topic_policy(topic_arn: str, account_id: str) -> str:
    """Publishing is for this account's own alarms, rules and budgets (confused-deputy guard)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "StackServicesPublish",
                    "Effect": "Allow",
                    "Principal": {"Service": list(PUBLISHERS)},
                    "Action": "sns:Publish",
                    "Resource": topic_arn,
                    "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
                },
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "sns:Publish",
                    "Resource": topic_arn,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ],
        }
    )


def pipeline_failure_pattern(pipeline_arns: list[str]) -> str:
    """EventBridge pattern: an execution of one of these pipelines failed (or was stopped)."""
    return json.dumps(
        {
            "source": ["aws.sagemaker"],
            "detail-type": ["SageMaker Model Building Pipeline Execution Status Change"],
            "detail": {
                "currentPipelineExecutionStatus": ["Failed", "Stopped"],
                "pipelineArn": sorted(pipeline_arns),
            },
        },
        sort_keys=True,
    )


@dataclass(frozen=True)
class StackAlertsArgs:
    """The `mlplatform:alerts` section and the stack whose key encrypts the topic."""

    settings: config.Alerts
    context: StackContext


class StackAlerts(pulumi.ComponentResource):
    """The stack's alert topic and its e-mail subscriptions."""

    topic_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: StackAlertsArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("mlplatform:alerts:StackAlerts", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        topic = aws.sns.Topic(
            f"{name}-alerts",
            kms_master_key_id=args.context.kms_key_arn,
            opts=child,
        )
        aws.sns.TopicPolicy(
            f"{name}-alerts",
            arn=topic.arn,
            policy=topic.arn.apply(lambda arn: topic_policy(arn, args.context.account_id)),
            opts=pulumi.ResourceOptions(parent=topic),
        )
        for index, email in enumerate(args.settings.emails):
            aws.sns.TopicSubscription(
                f"{name}-alerts-{index}",
                topic=topic.arn,
                protocol="email",
                endpoint=email,
                opts=pulumi.ResourceOptions(parent=topic),
            )
        self._name, self._topic = name, topic
        self.topic_arn = topic.arn
        self.register_outputs({"topicArn": self.topic_arn})

    def notify_on_failed_pipelines(self, pipeline_arns: list[pulumi.Output[str]]) -> None:
        """An EventBridge rule that posts failed or stopped executions of these pipelines
        (training, batch scoring, drift checks)."""
        if not pipeline_arns:
            return
        rule = aws.cloudwatch.EventRule(
            f"{self._name}-failed-pipelines",
            description="A pipeline of this stack (training, batch, drift check) failed or was stopped",
            event_pattern=pulumi.Output.all(*pipeline_arns).apply(
                lambda arns: pipeline_failure_pattern(list(arns))
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.cloudwatch.EventTarget(
            f"{self._name}-failed-pipelines",
            rule=rule.name,
            arn=self._topic.arn,
            opts=pulumi.ResourceOptions(parent=rule),
        )
