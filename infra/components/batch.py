"""SageMaker Batch Transform for one model: a Model for transform jobs and a one-step pipeline
(Transform) that scores an S3 prefix, started by its schedule or by `mlplatform batch`.

A pipeline rather than a bare CreateTransformJob: SageMaker names each run's job, the run shows
in `mlplatform status` like training does, and the schedule reuses the retraining schedule's
shape. Results go to `s3://<artifacts>/batch/<model>/<execution id>/`, one `<file>.out` per input
file, under the stack key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import instances
from infra.components.iam import assume_role_policy
from infra.components.schedules import schedule_pipeline
from infra.config import BatchTransform
from infra.context import StackContext
from infra.data_layout import DataLayout

EXECUTION_ID = {"Get": "Execution.PipelineExecutionId"}


@dataclass(frozen=True)
class BatchInputs:
    """Everything the batch pipeline's definition refers to, as resolved strings."""

    model_name: str
    settings: BatchTransform
    sagemaker_model: str
    input_uri: str
    output_uri: str
    kms_key_arn: str


def batch_definition(p: BatchInputs) -> dict[str, Any]:
    """The pipeline definition: one Transform step over `Parameters.InputUri`."""
    s = p.settings
    resources: dict[str, Any] = {"InstanceType": s.instance_type, "InstanceCount": s.instance_count}
    if not instances.has_instance_storage(s.instance_type):
        # SageMaker refuses a volume key on instance-store types (encrypted in hardware).
        resources["VolumeKmsKeyId"] = p.kms_key_arn
    transform: dict[str, Any] = {
        "ModelName": p.sagemaker_model,
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": {"Get": "Parameters.InputUri"}}
            },
            "ContentType": s.content_type,
            "SplitType": s.split_type,
        },
        "TransformOutput": {
            "S3OutputPath": {"Std:Join": {"On": "/", "Values": [p.output_uri, EXECUTION_ID]}},
            "Accept": s.content_type,
            "AssembleWith": "Line" if s.split_type == "Line" else "None",
            "KmsKeyId": p.kms_key_arn,
        },
        "TransformResources": resources,
        "MaxPayloadInMB": s.max_payload_mb,
        "MaxConcurrentTransforms": s.max_concurrent_transforms,
        # Records split by line are packed into requests up to the payload limit.
        "BatchStrategy": "MultiRecord" if s.split_type == "Line" else "SingleRecord",
    }
    return {
        "Version": "2020-12-01",
        "Metadata": {},
        "Parameters": [{"Name": "InputUri", "Type": "String", "DefaultValue": p.input_uri}],
        "Steps": [{"Name": "Score", "Type": "Transform", "Arguments": transform}],
    }


def batch_role_policy(*, context: StackContext, hosting_role_arn: str, kms_key_arn: str) -> str:
    """What the batch pipeline does: start transform jobs as the model's hosting role."""
    jobs = context.arn("sagemaker", "transform-job/*")
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "RunTransformJobs",
                    "Effect": "Allow",
                    "Action": [
                        "sagemaker:CreateTransformJob",
                        "sagemaker:DescribeTransformJob",
                        "sagemaker:StopTransformJob",
                        "sagemaker:AddTags",
                    ],
                    "Resource": jobs,
                },
                {
                    "Sid": "PassOnlyTheHostingRole",
                    "Effect": "Allow",
                    "Action": "iam:PassRole",
                    "Resource": hosting_role_arn,
                    "Condition": {
                        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
                    },
                },
                {
                    "Sid": "UseStackKey",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"],
                    "Resource": kms_key_arn,
                },
            ],
        }
    )


@dataclass(frozen=True)
class ModelBatchArgs:
    """A model's batch settings, the stack, and what its transform jobs run."""

    model_name: str
    settings: BatchTransform
    context: StackContext
    layout: DataLayout
    serving_image: pulumi.Input[str]
    hosting_role_arn: pulumi.Input[str]
    environment: dict[str, str]


class ModelBatch(pulumi.ComponentResource):
    """The transform Model, the batch pipeline (+ its schedule) for one model."""

    pipeline_name: pulumi.Output[str]

    def __init__(self, name: str, args: ModelBatchArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:sagemaker:ModelBatch", name, None, opts)
        context, settings, layout = args.context, args.settings, args.layout
        child = pulumi.ResourceOptions(parent=self)
        artifacts = context.bucket_names["artifacts"]
        container: aws.sagemaker.ModelPrimaryContainerArgsDict = {
            "image": args.serving_image,
            "model_data_url": pulumi.Output.concat(
                "s3://", artifacts, f"/{layout.served_model_key}"
            ),
        }
        if args.environment:
            container["environment"] = dict(args.environment)
        model = aws.sagemaker.Model(
            f"{name}-batch",
            execution_role_arn=args.hosting_role_arn,
            primary_container=container,
            enable_network_isolation=True,  # scoring needs no network; SageMaker moves the data
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=False),
        )
        given = settings.input
        input_uri: pulumi.Input[str] = given.uri or pulumi.Output.concat(
            "s3://",
            context.bucket_names["datasets"],
            f"/{given.prefix or layout.batch_input_prefix}",
        )
        definition = pulumi.Output.all(model.name, input_uri, artifacts, context.kms_key_arn).apply(
            lambda v: json.dumps(
                batch_definition(
                    BatchInputs(
                        model_name=args.model_name,
                        settings=settings,
                        sagemaker_model=v[0],
                        input_uri=v[1],
                        output_uri=f"s3://{v[2]}/{layout.batch_output_prefix}".rstrip("/"),
                        kms_key_arn=v[3],
                    )
                ),
                sort_keys=True,
                separators=(",", ":"),
            )
        )
        role = aws.iam.Role(
            f"{name}-batch-pipeline",
            description=f"Runs the {name} batch pipeline's transform jobs",
            assume_role_policy=assume_role_policy(
                "sagemaker.amazonaws.com",
                context.account_id,
                [context.arn("sagemaker", f"pipeline/{name}-batch/*")],
            ),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-batch-pipeline",
            role=role.id,
            policy=pulumi.Output.all(args.hosting_role_arn, context.kms_key_arn).apply(
                lambda v: batch_role_policy(
                    context=context, hosting_role_arn=v[0], kms_key_arn=v[1]
                )
            ),
            opts=pulumi.ResourceOptions(parent=role),
        )
        pipeline = aws.sagemaker.Pipeline(
            f"{name}-batch",
            pipeline_name=f"{name}-batch",
            pipeline_display_name=f"{name}-batch",
            pipeline_description=f"Score data with {args.model_name} (Batch Transform)",
            role_arn=role.arn,
            pipeline_definition=definition,
            opts=child,
        )
        if settings.schedule:
            schedule_pipeline(
                f"{name}-batch",
                context=context,
                pipeline=pipeline,
                expression=settings.schedule,
                description=f"Score data with {args.model_name}",
                parameters={},
                parent=self,
            )
        self.pipeline_name = pipeline.pipeline_name
        self.pipeline_arn = pipeline.arn
        self.register_outputs({"pipelineName": self.pipeline_name})
