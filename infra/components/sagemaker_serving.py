"""SageMaker serving plane: Model -> EndpointConfiguration -> Endpoint, autoscaling, alarms.

A change to the image, the model or any endpoint setting makes a new, autonamed Model and
EndpointConfiguration (created before the old ones are deleted); the Endpoint itself keeps its
name and switches to the new configuration in place, so the live endpoint is never deleted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import instances
from infra.config import AsyncEndpoint, SageMakerEndpoint, ServerlessEndpoint
from infra.context import StackContext

VARIANT = "AllTraffic"


@dataclass(frozen=True)
class ModelEndpointArgs:
    """A model's SageMaker serving settings, the stack, and what the endpoint serves."""

    model_name: str
    serving: SageMakerEndpoint | ServerlessEndpoint | AsyncEndpoint
    context: StackContext
    endpoint_name: str
    serving_image: pulumi.Input[str]
    execution_role_arn: pulumi.Input[str]  # the model's hosting role
    model_data_key: str  # what it serves without a registered version (`mlplatform publish`)
    environment: Mapping[str, str] = field(default_factory=dict)
    capture_json_types: Sequence[str] = ("application/json",)
    model_package_group: str | None = None
    alert_topic_arn: pulumi.Input[str] | None = None  # alarms notify it (mlplatform:alerts)
    async_prefix: str = ""  # async results and failures, in the artifacts bucket


class ModelEndpoint(pulumi.ComponentResource):
    """A SageMaker endpoint for one model: real-time instances, serverless, or asynchronous."""

    endpoint_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: ModelEndpointArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("mlplatform:sagemaker:ModelEndpoint", name, None, opts)
        serving = args.serving
        # New Model/config before the old is deleted: the endpoint moves over, then they go.
        replace_first = pulumi.ResourceOptions(parent=self, delete_before_replace=False)
        if serving.model_package_version and args.model_package_group:
            package = (
                f"{args.context.arn('sagemaker', 'model-package')}/"
                f"{args.model_package_group.lower()}/{serving.model_package_version}"
            )
            container: aws.sagemaker.ModelPrimaryContainerArgsDict = {"model_package_name": package}
        else:
            container = {
                "image": args.serving_image,
                "model_data_url": pulumi.Output.concat(
                    "s3://", args.context.bucket_names["artifacts"], f"/{args.model_data_key}"
                ),
            }
        if args.environment:
            container["environment"] = dict(args.environment)
        model = aws.sagemaker.Model(
            name,
            execution_role_arn=args.execution_role_arn,
            primary_container=container,
            # The server needs no network: SageMaker fetches the model and relays requests.
            # Serverless endpoints refuse network isolation (AWS restriction, see
            # https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints.html).
            enable_network_isolation=not isinstance(serving, ServerlessEndpoint),
            opts=replace_first,
        )
        variant: aws.sagemaker.EndpointConfigurationProductionVariantArgsDict = {
            "variant_name": VARIANT,
            "model_name": model.name,
        }
        config_args: dict = {}
        if isinstance(serving, ServerlessEndpoint):
            variant["serverless_config"] = {
                "max_concurrency": serving.serverless_max_concurrency,
                "memory_size_in_mb": serving.serverless_memory_mb,
            }
        else:
            # SageMaker creates at least one instance; an async endpoint scales to zero after.
            variant.update(
                instance_type=serving.instance_type,
                initial_instance_count=max(1, serving.min_instances),
            )
            # SageMaker refuses a volume key on instance-store types (encrypted in hardware).
            if not instances.has_instance_storage(serving.instance_type):
                config_args["kms_key_arn"] = args.context.kms_key_arn
            if isinstance(serving, AsyncEndpoint):
                config_args["async_inference_config"] = self._async_config(name, args, serving)
            if isinstance(serving, SageMakerEndpoint) and serving.data_capture_percent:
                config_args["data_capture_config"] = {
                    "enable_capture": True,
                    "initial_sampling_percentage": serving.data_capture_percent,
                    "destination_s3_uri": pulumi.Output.concat(
                        "s3://",
                        args.context.bucket_names["artifacts"],
                        f"/data-capture/{args.model_name}",
                    ),
                    "kms_key_id": args.context.kms_key_arn,
                    "capture_options": [{"capture_mode": "Input"}, {"capture_mode": "Output"}],
                    "capture_content_type_header": {
                        "json_content_types": list(args.capture_json_types)
                    },
                }
        config = aws.sagemaker.EndpointConfiguration(
            name, production_variants=[variant], opts=replace_first, **config_args
        )
        alarms = self._alarms(name, args)
        endpoint_args: dict = {}
        if isinstance(serving, SageMakerEndpoint):
            # Blue/green: the new fleet takes traffic only once healthy; either alarm during
            # the bake time rolls the update back.
            endpoint_args["deployment_config"] = {
                "blue_green_update_policy": {
                    "traffic_routing_configuration": {
                        "type": "ALL_AT_ONCE",
                        "wait_interval_in_seconds": 0,
                    },
                    "termination_wait_in_seconds": 300,
                },
                "auto_rollback_configuration": {"alarms": [{"alarm_name": a.name} for a in alarms]},
            }
        endpoint = aws.sagemaker.Endpoint(
            name,
            name=args.endpoint_name,
            endpoint_config_name=config.name,
            opts=pulumi.ResourceOptions(parent=self),
            **endpoint_args,
        )
        if isinstance(serving, SageMakerEndpoint):
            self._autoscaling(name, serving, endpoint)
        elif isinstance(serving, AsyncEndpoint):
            self._async_autoscaling(name, args, serving, endpoint)
        self.endpoint_name = endpoint.name
        self.register_outputs({"endpointName": self.endpoint_name})

    def _alarms(self, name: str, args: ModelEndpointArgs) -> list[aws.cloudwatch.MetricAlarm]:
        serving = args.serving
        dimensions = {"EndpointName": args.endpoint_name, "VariantName": VARIANT}
        errors = aws.cloudwatch.MetricAlarm(
            f"{name}-5xx",
            name=f"{args.endpoint_name}-5xx",
            alarm_description=f"{args.endpoint_name} returns server errors",
            namespace="AWS/SageMaker",
            metric_name="Invocation5XXErrors",
            dimensions=dimensions,
            statistic="Sum",
            period=300,
            evaluation_periods=1,
            threshold=serving.error_alarm_count,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            **self._actions(args),
            opts=pulumi.ResourceOptions(parent=self),
        )
        latency = aws.cloudwatch.MetricAlarm(
            f"{name}-latency",
            name=f"{args.endpoint_name}-latency",
            alarm_description=f"{args.endpoint_name} model latency above {serving.latency_alarm_ms} ms",
            namespace="AWS/SageMaker",
            metric_name="ModelLatency",  # reported in microseconds
            dimensions=dimensions,
            statistic="Average",
            period=60,
            evaluation_periods=5,
            datapoints_to_alarm=3,
            threshold=serving.latency_alarm_ms * 1000,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            **self._actions(args),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return [errors, latency]

    @staticmethod
    def _actions(args: ModelEndpointArgs) -> dict[str, Any]:
        """Alarm and recovery notices go to the stack's alert topic."""
        if args.alert_topic_arn is None:
            return {}
        return {"alarm_actions": [args.alert_topic_arn], "ok_actions": [args.alert_topic_arn]}

    def _async_config(
        self, name: str, args: ModelEndpointArgs, serving: AsyncEndpoint
    ) -> aws.sagemaker.EndpointConfigurationAsyncInferenceConfigArgsDict:
        """Results and failures in the artifacts bucket under the stack key; an SNS topic each
        for successes and errors, which the hosting role publishes to."""
        topics = {
            kind: aws.sns.Topic(
                f"{name}-async-{kind}",
                kms_master_key_id=args.context.kms_key_arn,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for kind in ("success", "error")
        }
        self.async_topic_arns = {kind: topic.arn for kind, topic in topics.items()}
        # SageMaker publishes the notices as the endpoint's execution role.
        aws.iam.RolePolicy(
            f"{name}-async-notices",
            role=pulumi.Output.from_input(args.execution_role_arn).apply(
                lambda arn: arn.rsplit("/", 1)[-1]
            ),
            policy=pulumi.Output.all(topics["success"].arn, topics["error"].arn).apply(
                lambda arns: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "PublishAsyncNotices",
                                "Effect": "Allow",
                                "Action": "sns:Publish",
                                "Resource": sorted(arns),
                            }
                        ],
                    }
                )
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        base = pulumi.Output.concat(
            "s3://", args.context.bucket_names["artifacts"], f"/{args.async_prefix}"
        )
        return {
            "output_config": {
                "s3_output_path": pulumi.Output.concat(base, "output"),
                "s3_failure_path": pulumi.Output.concat(base, "failures"),
                "kms_key_id": args.context.kms_key_arn,
                "notification_config": {
                    "success_topic": topics["success"].arn,
                    "error_topic": topics["error"].arn,
                },
            },
            "client_config": {
                "max_concurrent_invocations_per_instance": (
                    serving.max_concurrent_invocations_per_instance
                )
            },
        }

    def _async_autoscaling(
        self,
        name: str,
        args: ModelEndpointArgs,
        serving: AsyncEndpoint,
        endpoint: aws.sagemaker.Endpoint,
    ) -> None:
        """Scale on the queue: track the backlog per instance, and wake from zero as soon as a
        request waits with no instance (target tracking alone would wait for the backlog to
        pass its target), per https://docs.aws.amazon.com/sagemaker/latest/dg/async-inference-autoscale.html."""
        target = self._scaling_target(name, serving, endpoint)
        child = pulumi.ResourceOptions(parent=target)
        aws.appautoscaling.Policy(
            f"{name}-backlog",
            policy_type="TargetTrackingScaling",
            service_namespace=target.service_namespace,
            resource_id=target.resource_id,
            scalable_dimension=target.scalable_dimension,
            target_tracking_scaling_policy_configuration={
                "target_value": serving.target_backlog_per_instance,
                "customized_metric_specification": {
                    "metric_name": "ApproximateBacklogSizePerInstance",
                    "namespace": "AWS/SageMaker",
                    "dimensions": [{"name": "EndpointName", "value": args.endpoint_name}],
                    "statistic": "Average",
                },
                "scale_in_cooldown": 600,
                "scale_out_cooldown": 60,
            },
            opts=child,
        )
        wake = aws.appautoscaling.Policy(
            f"{name}-wake",
            policy_type="StepScaling",
            service_namespace=target.service_namespace,
            resource_id=target.resource_id,
            scalable_dimension=target.scalable_dimension,
            step_scaling_policy_configuration={
                "adjustment_type": "ChangeInCapacity",
                "metric_aggregation_type": "Average",
                "cooldown": 300,
                "step_adjustments": [{"metric_interval_lower_bound": "0", "scaling_adjustment": 1}],
            },
            opts=child,
        )
        aws.cloudwatch.MetricAlarm(
            f"{name}-waiting",
            name=f"{args.endpoint_name}-waiting",
            alarm_description=f"{args.endpoint_name} has queued requests and no instance",
            namespace="AWS/SageMaker",
            metric_name="HasBacklogWithoutCapacity",
            dimensions={"EndpointName": args.endpoint_name},
            statistic="Average",
            period=60,
            evaluation_periods=2,
            threshold=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="missing",
            alarm_actions=[wake.arn],
            opts=child,
        )

    def _scaling_target(
        self,
        name: str,
        serving: SageMakerEndpoint | AsyncEndpoint,
        endpoint: aws.sagemaker.Endpoint,
    ) -> aws.appautoscaling.Target:
        """The endpoint's one variant as an Application Auto Scaling target, min to max."""
        return aws.appautoscaling.Target(
            name,
            service_namespace="sagemaker",
            resource_id=endpoint.name.apply(lambda n: f"endpoint/{n}/variant/{VARIANT}"),
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=serving.min_instances,
            max_capacity=serving.max_instances,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _autoscaling(
        self, name: str, serving: SageMakerEndpoint, endpoint: aws.sagemaker.Endpoint
    ) -> None:
        target = self._scaling_target(name, serving, endpoint)
        aws.appautoscaling.Policy(
            name,
            policy_type="TargetTrackingScaling",
            service_namespace=target.service_namespace,
            resource_id=target.resource_id,
            scalable_dimension=target.scalable_dimension,
            target_tracking_scaling_policy_configuration={
                "target_value": serving.target_invocations_per_instance,
                "predefined_metric_specification": {
                    "predefined_metric_type": "SageMakerVariantInvocationsPerInstance"
                },
                # Scale out fast, scale in slowly: a GPU instance takes minutes to come back.
                "scale_out_cooldown": 60,
                "scale_in_cooldown": 600,
            },
            opts=pulumi.ResourceOptions(parent=target),
        )
