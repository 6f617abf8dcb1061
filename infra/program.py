"""The Pulumi program: validated config in, components wired in dependency order, outputs out.

See docs/architecture.md for the data flow from a stack file to each resource."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra import instances
from infra.components.alerts import StackAlerts, StackAlertsArgs
from infra.components.batch import ModelBatch, ModelBatchArgs
from infra.components.budget import BudgetArgs, StackBudget
from infra.components.dashboard import StackDashboard, StackDashboardArgs
from infra.components.eks_plane import EksPlane, build_eks_plane
from infra.components.eks_serving import EksModelServer, EksServingArgs, tf_serving_image
from infra.components.eks_training import EksTrainingArgs, EksTrainingRuntime
from infra.components.iam import ModelRoles, ModelRolesArgs
from infra.components.images import ModelImages, ModelImagesArgs, repositories_for
from infra.components.monitoring import ModelMonitor, ModelMonitorArgs
from infra.components.network import Network, NetworkArgs
from infra.components.registry import Registry, RegistryArgs
from infra.components.sagemaker_serving import ModelEndpoint, ModelEndpointArgs
from infra.components.sagemaker_training import TrainingPipeline, TrainingPipelineArgs
from infra.components.secrets import StackSecrets, StackSecretsArgs
from infra.components.storage import Storage, StorageArgs
from infra.components.tracking import ExperimentTracking, ExperimentTrackingArgs
from infra.config import (
    AsyncEndpoint,
    EksServing,
    EksTraining,
    Model,
    SageMakerEndpoint,
    SageMakerTraining,
    ServerlessEndpoint,
    Serving,
    StackConfig,
    Training,
)
from infra.context import StackContext
from infra.data_layout import DataLayout
from infra.stackfile import load_for_program
from infra.tagging import register_stack_tags


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

    storage = Storage(name, StorageArgs(settings=config.storage, context=context))
    context = context.with_storage(storage.kms_key_arn, storage.bucket_names, storage.bucket_arns)
    # The network's flow logs are encrypted with the stack key, so storage comes first.
    network = Network(
        name,
        NetworkArgs(
            settings=config.network,
            context=context,
            needs_egress=config.eks is not None,
            kubernetes=config.eks is not None,
        ),
    )
    registry = Registry(
        name,
        RegistryArgs(
            settings=config.registry,
            context=context,
            images=[repo for model in config.models for repo in repositories_for(model)],
            force_delete=config.storage.force_destroy,
        ),
    )
    alerts = StackAlerts(name, StackAlertsArgs(settings=config.alerts, context=context))
    StackBudget(
        name,
        BudgetArgs(settings=config.budget, context=context, alert_topic_arn=alerts.topic_arn),
    )
    secrets = StackSecrets(name, StackSecretsArgs(values=config.secrets, context=context))
    tracking = (
        ExperimentTracking(name, ExperimentTrackingArgs(settings=config.tracking, context=context))
        if config.tracking.enabled
        else None
    )

    eks = (
        build_eks_plane(
            config, context, vpc_id=network.vpc_id, private_subnet_ids=network.private_subnet_ids
        )
        if config.eks is not None
        else None
    )
    models = [
        ModelStack(
            model,
            context,
            registry,
            list(secrets.arns.values()),
            eks,
            alerts,
            tracking.server_arn if tracking else None,
        )
        for model in config.models
    ]
    alerts.notify_on_failed_pipelines(
        [p.pipeline_arn for m in models for p in (m.pipeline, m.batch, m.monitor) if p is not None]
    )
    # One CloudWatch dashboard per stack (infra/components/dashboard.py): endpoints, pipelines,
    # and with a cluster its GPUs and the EKS-served models' replicas.
    StackDashboard(
        name,
        StackDashboardArgs(
            context=context,
            endpoints=[m.endpoint.endpoint_name for m in models if m.endpoint],
            pipelines=[
                p.pipeline_name for m in models for p in (m.pipeline, m.batch, m.monitor) if p
            ],
            cluster_name=eks.cluster.cluster_name if eks else None,
            serving_namespace=eks.kubernetes.namespaces["serving"] if eks else "serving",
            eks_services={m.name: m.server.replica_service_name for m in models if m.server},
        ),
    )
    return {
        "imageRefs": {m.name: m.images.refs for m in models},
        "pipelineNames": {m.name: m.pipeline.pipeline_name for m in models if m.pipeline},
        "modelPackageGroups": {m.name: m.model_package_group_name for m in models},
        "endpointNames": {m.name: m.endpoint.endpoint_name for m in models if m.endpoint},
        "kubernetesServices": {m.name: m.server.service_name for m in models if m.server},
        "trainingRuntimes": {m.name: m.runtime.runtime_name for m in models if m.runtime},
        "batchPipelines": {m.name: m.batch.pipeline_name for m in models if m.batch},
        "monitorPipelines": {m.name: m.monitor.pipeline_name for m in models if m.monitor},
        "alertTopicArn": alerts.topic_arn,
        **({"trackingServerArn": tracking.server_arn} if tracking else {}),
        "modelRoles": {
            m.name: {
                use: arn
                for use, arn in (
                    ("training", m.roles.training_role_arn),
                    ("hosting", m.roles.hosting_role_arn),
                )
                if arn is not None
            }
            for m in models
        },
        **(eks.outputs() if eks else {}),
        "vpcId": network.vpc_id,
        "privateSubnetIds": network.private_subnet_ids,
        "kmsKeyArn": storage.kms_key_arn,
        "bucketNames": storage.bucket_names,
        "repositoryUrls": registry.repository_urls,
    }


class ModelStack:
    """Everything one model entry declares: images, roles, then training and serving on the
    planes it chooses (a plain class: the components inside are the resources' parents)."""

    def __init__(
        self,
        model: Model,
        context: StackContext,
        registry: Registry,
        secret_arns: list[pulumi.Output[str]],
        eks: EksPlane | None,
        alerts: StackAlerts,
        tracking_server_arn: pulumi.Output[str] | None,
    ) -> None:
        self.name = model.name
        manifest, layout = model.manifest, DataLayout.of(model)
        resource_name = context.name(model.name)
        training, serving = model.training, model.serving
        repositories = repositories_for(model)
        self.images = ModelImages(
            resource_name,
            ModelImagesArgs(
                model=model,
                context=context,
                repository_urls={r: registry.repository_urls[r] for r in repositories},
                registry_id=registry.repositories[model.name].registry_id,
                gpu={"training": uses_gpus(training), "serving": uses_gpus(serving)},
            ),
        )
        capture = isinstance(serving, SageMakerEndpoint) and serving.data_capture_percent > 0
        batch = model.batch
        uses_hosting = not isinstance(serving, EksServing) or batch is not None
        self.roles = ModelRoles(
            resource_name,
            ModelRolesArgs(
                model_name=model.name,
                context=context,
                training=layout.training_prefixes(baseline=capture)
                if isinstance(training, SageMakerTraining)
                else None,
                hosting=layout.hosting_prefixes(
                    capture,
                    asynchronous=isinstance(serving, AsyncEndpoint),
                    batch_input=(batch.input.prefix, batch.input.uri) if batch else None,
                )
                if uses_hosting
                else None,
                repository_arns=[registry.repository_arns[r] for r in repositories],
                secret_arns=secret_arns,
                tracking_server_arn=tracking_server_arn,
            ),
        )
        self.pipeline: TrainingPipeline | None = None
        self.batch: ModelBatch | None = None
        self.runtime: EksTrainingRuntime | None = None
        self.endpoint: ModelEndpoint | None = None
        self.server: EksModelServer | None = None
        refs = self.images.refs
        if isinstance(training, SageMakerTraining):
            self.pipeline = TrainingPipeline(
                resource_name,
                TrainingPipelineArgs(
                    model=model,
                    training=training,
                    context=context,
                    layout=layout,
                    platform_image=refs["platform"],
                    training_image=refs["training"],
                    serving_image=refs["serving"],
                    source_uri=self.images.source,
                    execution_role_arn=self.roles.role_arn("training"),
                    tracking_server_arn=tracking_server_arn,
                    baseline=capture,
                ),
            )
        else:
            assert eks is not None, "the schema refuses EKS models without a cluster"
            self.runtime = EksTrainingRuntime(
                resource_name,
                EksTrainingArgs(
                    model_name=model.name,
                    training=training,
                    manifest=manifest,
                    layout=layout,
                    context=context,
                    target=eks.target("training", training.pool),
                    training_image=refs["training"],
                    operator=eks.training_operator(),
                    platform_image=refs["platform"],
                    serving_image=refs["serving"],
                    realtime_instance_types=(serving.instance_type,)
                    if isinstance(serving, SageMakerEndpoint)
                    else (),
                ),
                opts=eks.workload_options,
            )
        # Both planes register gated versions in the model's package group (model_registry).
        trainer = self.pipeline or self.runtime
        assert trainer is not None
        self.model_package_group_name: pulumi.Output[str] = trainer.model_package_group_name
        environment = serving_environment(manifest.serve.runtime)
        if isinstance(serving, EksServing):
            assert eks is not None, "the schema refuses EKS models without a cluster"
            serving_image, unpack_image = refs["serving"], None
            dlc_serving = manifest.image.serving.dlc
            if manifest.serve.runtime == "tensorflow-serving" and dlc_serving is not None:
                # On Kubernetes, TF Serving's own image of the same TensorFlow release as the
                # SageMaker container; the platform image (which has python) unpacks the archive.
                serving_image = pulumi.Output.from_input(
                    tf_serving_image(dlc_serving.version, gpu=serving.gpus_per_replica > 0)
                )
                unpack_image = refs["platform"]
            self.server = EksModelServer(
                resource_name,
                EksServingArgs(
                    model_name=model.name,
                    serving=serving,
                    context=context,
                    target=eks.target("serving", serving.pool),
                    serving_image=serving_image,
                    unpack_image=unpack_image,
                    model_data_key=layout.served_model_key,
                    runtime=manifest.serve.runtime,
                    environment=environment,
                    # Alarms on the replicas notify the stack's topic; minInstances 0 scales
                    # from zero through KEDA's HTTP add-on (infra/components/http_scaler.py).
                    alert_topic_arn=alerts.topic_arn,
                    scale_from_zero=eks.http_scaler() if serving.min_instances == 0 else None,
                ),
                opts=eks.workload_options,
            )
        else:
            self.endpoint = ModelEndpoint(
                resource_name,
                ModelEndpointArgs(
                    model_name=model.name,
                    serving=serving,
                    context=context,
                    endpoint_name=resource_name,
                    serving_image=refs["serving"],
                    execution_role_arn=self.roles.role_arn("hosting"),
                    model_data_key=layout.served_model_key,
                    environment=environment,
                    capture_json_types=[c for c in manifest.serve.content_types if "json" in c],
                    model_package_group=resource_name,  # either plane declares it
                    alert_topic_arn=alerts.topic_arn,
                    async_prefix=layout.async_prefix,
                ),
            )
        self.monitor: ModelMonitor | None = None
        if capture and isinstance(serving, SageMakerEndpoint):
            self.monitor = ModelMonitor(
                resource_name,
                ModelMonitorArgs(
                    model_name=model.name,
                    serving=serving,
                    context=context,
                    layout=layout,
                    image=refs["platform"],
                    role_arn=self.roles.role_arn("hosting"),
                    alert_topic_arn=alerts.topic_arn,
                ),
            )
        if batch is not None:
            self.batch = ModelBatch(
                resource_name,
                ModelBatchArgs(
                    model_name=model.name,
                    settings=batch,
                    context=context,
                    layout=layout,
                    serving_image=refs["serving"],
                    hosting_role_arn=self.roles.role_arn("hosting"),
                    environment=environment,
                ),
            )


def uses_gpus(part: Training | Serving) -> bool:
    """Whether a training or serving placement runs on GPUs (picks a DLC's processor)."""
    if isinstance(part, EksTraining):
        return part.gpus_per_instance > 0
    if isinstance(part, EksServing):
        return part.gpus_per_replica > 0
    if isinstance(part, ServerlessEndpoint):
        return False
    found = instances.facts(part.instance_type.removeprefix("ml."))
    return bool(found and found.gpu_count)


def serving_environment(runtime: str) -> dict[str, str]:
    """Container variables a serving runtime needs: TF Serving's container serves the model
    named like the SavedModel's directory in the archive (training.export.keras)."""
    if runtime == "tensorflow-serving":
        return {"SAGEMAKER_TFS_DEFAULT_MODEL_NAME": "saved_model"}
    return {}


def main() -> None:
    """Entry point used by `pulumi up` and by the offline plan."""
    stack = pulumi.get_stack()
    config = load_for_program(stack)
    for key, value in build(config, stack).items():
        pulumi.export(key, value)
