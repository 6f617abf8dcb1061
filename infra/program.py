"""The Pulumi program: validated config in, components wired in dependency order, outputs out.

See docs/architecture.md for the data flow from a stack file to each resource."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.components.budget import BudgetArgs, StackBudget
from infra.components.eks_operator import TrainingOperator
from infra.components.eks_plane import build_eks_plane
from infra.components.eks_serving import EksModelServer, EksServingArgs
from infra.components.eks_training import EksTrainingArgs, EksTrainingRuntime
from infra.components.iam import ExecutionRoleArgs, SageMakerExecutionRole
from infra.components.images import StackImages, StackImagesArgs
from infra.components.network import Network, NetworkArgs
from infra.components.registry import Registry, RegistryArgs
from infra.components.sagemaker_serving import ModelEndpoint, ModelEndpointArgs
from infra.components.sagemaker_training import TrainingPipeline, TrainingPipelineArgs
from infra.components.secrets import StackSecrets, StackSecretsArgs
from infra.components.storage import Storage, StorageArgs
from infra.config import EksServing, SageMakerTraining, StackConfig
from infra.context import StackContext
from infra.stackfile import PROJECT_ROOT, load_for_program
from infra.tagging import register_stack_tags

# The images every stack builds from this repository, one ECR repository each.
IMAGES = ("training", "serving")


def build(config: StackConfig, stack: str) -> dict[str, object]:
    """Declare every resource of a stack; returns the stack outputs."""
    tags = config.resource_tags(stack)
    register_stack_tags(tags)
    identity = aws.get_caller_identity()
    context = StackContext(
        stack=stack,
        environment=config.environment,
        account_id=identity.account_id,
        partition=aws.get_partition().partition,
        region=config.region,
        tags=tags,
    )
    name = context.prefix

    network = Network(name, NetworkArgs(settings=config.network, context=context))
    storage = Storage(name, StorageArgs(settings=config.storage, context=context))
    context = context.with_storage(storage.kms_key_arn, storage.bucket_names, storage.bucket_arns)
    registry = Registry(
        name,
        RegistryArgs(
            settings=config.registry,
            context=context,
            images=IMAGES,
            force_delete=config.storage.force_destroy,
        ),
    )
    StackBudget(name, BudgetArgs(settings=config.budget, context=context))
    secrets = StackSecrets(name, StackSecretsArgs(values=config.secrets, context=context))
    role = SageMakerExecutionRole(
        f"{name}-sagemaker",
        ExecutionRoleArgs(
            context=context,
            repository_arns=registry.repository_arns,
            secret_arns=list(secrets.arns.values()),
        ),
    )

    eks = build_eks_plane(
        config, context, vpc_id=network.vpc_id, private_subnet_ids=network.private_subnet_ids
    )
    images = StackImages(
        name,
        StackImagesArgs(
            contexts={image: PROJECT_ROOT / image for image in IMAGES},
            repository_urls=registry.repository_urls,
            registry_id=registry.repositories["training"].registry_id,
        ),
    )
    pipelines: dict[str, TrainingPipeline] = {}
    endpoints: dict[str, ModelEndpoint] = {}
    servers: dict[str, EksModelServer] = {}
    operator: TrainingOperator | None = None
    for model in config.models:
        model_name = context.name(model.name)
        training, serving = model.training, model.serving
        if isinstance(training, SageMakerTraining):
            pipelines[model.name] = TrainingPipeline(
                model_name,
                TrainingPipelineArgs(
                    model=model,
                    training=training,
                    context=context,
                    training_image=images.refs["training"],
                    serving_image=images.refs["serving"],
                    execution_role_arn=role.role_arn,
                ),
            )
        else:
            operator = operator or TrainingOperator(name, opts=eks.workload_options)
            EksTrainingRuntime(
                model_name,
                EksTrainingArgs(
                    model_name=model.name,
                    training=training,
                    context=context,
                    target=eks.target("training", training.pool),
                    training_image=images.refs["training"],
                    operator=operator,
                ),
                opts=eks.workload_options,
            )
        if isinstance(serving, EksServing):
            servers[model.name] = EksModelServer(
                model_name,
                EksServingArgs(
                    model_name=model.name,
                    serving=serving,
                    context=context,
                    target=eks.target("serving", serving.pool),
                    serving_image=images.refs["serving"],
                ),
                opts=eks.workload_options,
            )
        else:
            endpoints[model.name] = ModelEndpoint(
                model_name,
                ModelEndpointArgs(
                    model_name=model.name,
                    serving=serving,
                    context=context,
                    endpoint_name=model_name,
                    serving_image=images.refs["serving"],
                    execution_role_arn=role.role_arn,
                    model_package_group=model_name if model.name in pipelines else None,
                ),
            )

    return {
        "imageRefs": images.refs,
        "pipelineNames": {m: p.pipeline_name for m, p in pipelines.items()},
        "modelPackageGroups": {m: p.model_package_group_name for m, p in pipelines.items()},
        "endpointNames": {m: e.endpoint_name for m, e in endpoints.items()},
        "kubernetesServices": {m: s.service_name for m, s in servers.items()},
        **eks.outputs(),
        "vpcId": network.vpc_id,
        "privateSubnetIds": network.private_subnet_ids,
        "kmsKeyArn": storage.kms_key_arn,
        "bucketNames": storage.bucket_names,
        "repositoryUrls": registry.repository_urls,
        "sagemakerExecutionRoleArn": role.role_arn,
    }


def main() -> None:
    """Entry point used by `pulumi up` and by the offline plan."""
    stack = pulumi.get_stack()
    config = load_for_program(stack)
    for key, value in build(config, stack).items():
        pulumi.export(key, value)
