"""SageMaker training plane: a model package group and a pipeline per model, optionally on a
schedule. The pipeline definition comes from `infra.pipeline_definition` (no AWS call)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.iam import assume_role_policy
from infra.components.model_registry import model_package_group, register_statement
from infra.components.schedules import schedule_pipeline
from infra.config import Model, SageMakerTraining
from infra.context import StackContext
from infra.data_layout import DataLayout
from infra.pipeline_definition import PipelineInputs, render


@dataclass(frozen=True)
class TrainingPipelineArgs:
    """A model's stack entry (training on SageMaker), the stack, and the images, code and role
    its pipeline's steps run with."""

    model: Model
    training: SageMakerTraining
    context: StackContext
    layout: DataLayout
    platform_image: pulumi.Input[str]
    training_image: pulumi.Input[str]
    serving_image: pulumi.Input[str]
    source_uri: pulumi.Input[str] | None
    execution_role_arn: pulumi.Input[str]
    tracking_server_arn: pulumi.Input[str] | None = None  # runs log to MLflow when set
    baseline: bool = False  # the endpoint captures data: record a drift baseline


def pipeline_role_policy(
    *,
    partition: str,
    region: str,
    account_id: str,
    group: str,
    execution_role_arn: str,
    kms_key_arn: str,
    artifacts_bucket_arn: str,
    artifacts_prefix: str,
) -> str:
    """What the pipeline itself does: start its steps' jobs with the stack's key and role,
    register versions in its own group, and read its evaluation property file."""
    sagemaker = f"arn:{partition}:sagemaker:{region}:{account_id}"
    jobs = [
        f"{sagemaker}:{kind}/*"
        for kind in ("training-job", "processing-job", "hyper-parameter-tuning-job")
    ]
    statements = [
        {
            # Every job a step creates must encrypt its volume and output with the stack key.
            "Sid": "RunStepJobsWithStackKey",
            "Effect": "Allow",
            "Action": [
                "sagemaker:CreateTrainingJob",
                "sagemaker:CreateProcessingJob",
                "sagemaker:CreateHyperParameterTuningJob",
            ],
            "Resource": jobs,
            # Instance-store types carry no volume key (SageMaker refuses one there).
            "Condition": {
                "StringEquals": {"sagemaker:OutputKmsKey": kms_key_arn},
                "StringEqualsIfExists": {"sagemaker:VolumeKmsKey": kms_key_arn},
            },
        },
        {
            "Sid": "FollowStepJobs",
            "Effect": "Allow",
            "Action": [
                "sagemaker:DescribeTrainingJob",
                "sagemaker:DescribeProcessingJob",
                "sagemaker:DescribeHyperParameterTuningJob",
                "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
                "sagemaker:StopTrainingJob",
                "sagemaker:StopProcessingJob",
                "sagemaker:StopHyperParameterTuningJob",
                "sagemaker:AddTags",
            ],
            "Resource": jobs,
        },
        register_statement(
            sagemaker,
            group,
            ["sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage", "sagemaker:AddTags"],
        ),
        {
            "Sid": "PassOnlyTheExecutionRole",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": execution_role_arn,
            "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        },
        {
            # The Condition step reads the evaluation property file from the artifacts bucket.
            "Sid": "ReadEvaluation",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": f"{artifacts_bucket_arn}/{artifacts_prefix}*",
        },
        {
            "Sid": "DecryptWithStackKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": kms_key_arn,
        },
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def tracking_environment(server_arn: str | None, experiment: str) -> dict[str, str]:
    """What points a run's MLflow client at the stack's tracking server (none: no tracking)."""
    if not server_arn:
        return {}
    return {"MLFLOW_TRACKING_URI": server_arn, "MLFLOW_EXPERIMENT_NAME": experiment}


class TrainingPipeline(pulumi.ComponentResource):
    """Model package group + SageMaker Pipeline (+ schedule) for one model."""

    pipeline_name: pulumi.Output[str]
    model_package_group_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: TrainingPipelineArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("mlplatform:sagemaker:TrainingPipeline", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        model, context = args.model, args.context
        group = model_package_group(name, model.name, parent=self)
        role = aws.iam.Role(
            f"{name}-pipeline",
            description=f"Runs the {name} SageMaker pipeline's steps",
            # Pipelines set aws:SourceArn to an execution of the pipeline (docs: security-
            # confused-deputy-prevention): `pipeline/<name>/*`, never the execution's own ARN.
            assume_role_policy=assume_role_policy(
                "sagemaker.amazonaws.com",
                context.account_id,
                [context.arn("sagemaker", f"pipeline/{name}/*")],
            ),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-pipeline",
            role=role.id,
            policy=pulumi.Output.all(
                args.execution_role_arn, context.kms_key_arn, context.bucket_arns["artifacts"]
            ).apply(
                lambda v: pipeline_role_policy(
                    partition=context.partition,
                    region=context.region,
                    account_id=context.account_id,
                    group=name,
                    execution_role_arn=v[0],
                    kms_key_arn=v[1],
                    artifacts_bucket_arn=v[2],
                    artifacts_prefix=args.layout.artifacts_prefix,
                )
            ),
            opts=pulumi.ResourceOptions(parent=role),
        )
        definition = pulumi.Output.all(
            args.platform_image,
            args.training_image,
            args.serving_image,
            args.source_uri,
            args.execution_role_arn,
            context.kms_key_arn,
            context.bucket_names["datasets"],
            context.bucket_names["artifacts"],
            context.bucket_names["checkpoints"],
            group.model_package_group_name,
            args.tracking_server_arn,
        ).apply(
            lambda v: render(
                PipelineInputs(
                    model=model,
                    training=args.training,
                    layout=args.layout,
                    platform_image=v[0],
                    training_image=v[1],
                    serving_image=v[2],
                    source_uri=v[3],
                    role_arn=v[4],
                    kms_key_arn=v[5],
                    datasets_bucket=v[6],
                    artifacts_bucket=v[7],
                    checkpoints_bucket=v[8],
                    model_package_group=v[9],
                    region=context.region,
                    environment=tracking_environment(v[10], model.name),
                    baseline=args.baseline,
                )
            )
        )
        pipeline = aws.sagemaker.Pipeline(
            name,
            pipeline_name=name,
            pipeline_display_name=name,
            pipeline_description=f"Train, evaluate and register {model.name}",
            role_arn=role.arn,
            pipeline_definition=definition,
            opts=child,
        )
        if args.training.schedule:
            schedule_pipeline(
                name,
                context=context,
                pipeline=pipeline,
                expression=args.training.schedule,
                description=f"Retrain {model.name}",
                parameters={"ModelApprovalStatus": "PendingManualApproval"},
                parent=self,
            )
        self.pipeline_name = pipeline.pipeline_name
        self.pipeline_arn = pipeline.arn
        self.model_package_group_name = group.model_package_group_name
        self.definition = definition
        self.register_outputs(
            {
                "pipelineName": self.pipeline_name,
                "modelPackageGroupName": self.model_package_group_name,
            }
        )
