"""The Pulumi program: validated config in, components wired in DESIGN.md's order, outputs out."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.components.budget import BudgetArgs, StackBudget
from infra.components.eks_operator import TrainingOperator
from infra.components.eks_plane import build_eks_plane
from infra.components.eks_serving import EksModelServer, EksServingArgs
from infra.components.eks_training import EksTrainingArgs, EksTrainingRuntime, PoolPlacement
from infra.components.iam import ExecutionRoleArgs, SageMakerExecutionRole
from infra.components.images import StackImages, StackImagesArgs
from infra.components.network import Network, NetworkArgs
from infra.components.registry import Registry, RegistryArgs
from infra.components.sagemaker_serving import ModelEndpoint, ModelEndpointArgs
from infra.components.sagemaker_training import TrainingPipeline, TrainingPipelineArgs
from infra.components.secrets import StackSecrets, StackSecretsArgs
from infra.components.storage import Storage, StorageArgs
from infra.config import PROJECT, StackConfig
from infra.stackfile import PROJECT_ROOT, load_for_program
from infra.tagging import register_stack_tags


def build(config: StackConfig, stack: str) -> dict[str, object]:
    """Declare every resource of a stack; returns the stack outputs."""
    register_stack_tags(config.resource_tags(stack))
    name = f"{PROJECT}-{stack}"
    identity = aws.get_caller_identity()
    partition = aws.get_partition().partition

    network = Network(
        name,
        NetworkArgs(
            cidr=config.network.cidr,
            az_count=config.network.az_count,
            nat_per_zone=config.network.nat_gateways == "perZone",
            private_endpoints=config.network.private_endpoints,
            region=config.region,
        ),
    )
    storage = Storage(
        name,
        StorageArgs(
            account_id=identity.account_id,
            partition=partition,
            checkpoint_expiration_days=config.storage.checkpoint_expiration_days,
            noncurrent_version_expiration_days=config.storage.noncurrent_version_expiration_days,
            abort_incomplete_multipart_days=config.storage.abort_incomplete_multipart_days,
            protect=config.storage.protect,
            force_destroy=config.storage.force_destroy,
            kms_deletion_window_days=config.storage.kms_deletion_window_days,
        ),
    )
    registry = Registry(
        name,
        RegistryArgs(
            kms_key_arn=storage.kms_key_arn,
            keep_tagged_images=config.registry.keep_tagged_images,
            untagged_expiration_days=config.registry.untagged_expiration_days,
            force_delete=config.storage.force_destroy,
        ),
    )
    StackBudget(
        name,
        BudgetArgs(
            monthly_usd=config.budget.monthly_usd,
            alert_emails=config.budget.alert_emails,
            stack=stack,
        ),
    )
    secrets = StackSecrets(
        name,
        StackSecretsArgs(
            values=config.secrets, kms_key_arn=storage.kms_key_arn, prefix=f"{PROJECT}/{stack}"
        ),
    )
    role = SageMakerExecutionRole(
        f"{name}-sagemaker",
        ExecutionRoleArgs(
            account_id=identity.account_id,
            partition=partition,
            region=config.region,
            bucket_arns=storage.bucket_arns,
            kms_key_arn=storage.kms_key_arn,
            repository_arns=registry.repository_arns,
            secret_arns=list(secrets.arns.values()),
        ),
    )

    eks = build_eks_plane(
        config,
        name,
        partition=partition,
        vpc_id=network.vpc_id,
        private_subnet_ids=network.private_subnet_ids,
        kms_key_arn=storage.kms_key_arn,
        datasets_bucket_arn=storage.bucket_arns["datasets"],
    )
    images = StackImages(
        name,
        StackImagesArgs(
            contexts={image: PROJECT_ROOT / image for image in ("training", "serving")},
            repository_urls=registry.repository_urls,
            registry_id=registry.repositories["training"].registry_id,
        ),
    )
    pipelines, endpoints, servers = {}, {}, {}
    operator = None
    for model in config.models:
        model_name = f"{name}-{model.name}"
        if model.training.plane == "sagemaker":
            pipelines[model.name] = TrainingPipeline(
                model_name,
                TrainingPipelineArgs(
                    model=model,
                    account_id=identity.account_id,
                    partition=partition,
                    region=config.region,
                    training_image=images.refs["training"],
                    serving_image=images.refs["serving"],
                    execution_role_arn=role.role_arn,
                    kms_key_arn=storage.kms_key_arn,
                    bucket_names=storage.bucket_names,
                    bucket_arns=storage.bucket_arns,
                ),
            )
        if model.serving.plane == "sagemaker":
            endpoints[model.name] = ModelEndpoint(
                model_name,
                ModelEndpointArgs(
                    model=model,
                    endpoint_name=model_name,
                    account_id=identity.account_id,
                    partition=partition,
                    region=config.region,
                    serving_image=images.refs["serving"],
                    execution_role_arn=role.role_arn,
                    kms_key_arn=storage.kms_key_arn,
                    artifacts_bucket=storage.bucket_names["artifacts"],
                    model_package_group=model_name if model.name in pipelines else None,
                ),
            )
        if model.training.plane == "eks":
            operator = operator or TrainingOperator(name, eks.kubernetes.provider)
            pool = eks.pools[model.training.pool].template
            EksTrainingRuntime(
                model_name,
                EksTrainingArgs(
                    model=model,
                    stack_name=name,
                    region=config.region,
                    cluster_name=eks.cluster.cluster_name,
                    namespace=eks.kubernetes.namespaces["training"],
                    placement=PoolPlacement(pool.node_selector, pool.tolerations),
                    priority_class=eks.kubernetes.priority_class_names["training"],
                    training_image=images.refs["training"],
                    kms_key_arn=storage.kms_key_arn,
                    bucket_names=storage.bucket_names,
                    bucket_arns=storage.bucket_arns,
                    operator=operator,
                    provider=eks.kubernetes.provider,
                ),
            )
        if model.serving.plane == "eks":
            pool = eks.pools[model.serving.pool].template
            servers[model.name] = EksModelServer(
                model_name,
                EksServingArgs(
                    model=model,
                    cluster_name=eks.cluster.cluster_name,
                    namespace=eks.kubernetes.namespaces["serving"],
                    placement=PoolPlacement(pool.node_selector, pool.tolerations),
                    priority_class=eks.kubernetes.priority_class_names["serving"],
                    serving_image=images.refs["serving"],
                    kms_key_arn=storage.kms_key_arn,
                    artifacts_bucket=storage.bucket_names["artifacts"],
                    artifacts_bucket_arn=storage.bucket_arns["artifacts"],
                    provider=eks.kubernetes.provider,
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
