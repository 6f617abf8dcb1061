"""CloudWatch alarms on an EKS-served model, from the Container Insights metrics the CloudWatch
Observability add-on publishes (infra/components/container_insights.py): its containers
restarting over and over (CrashLoopBackOff: crashes, out-of-memory kills, failed liveness
probes), and fewer running replicas than `minInstances`. Both notify the stack's alert topic, on alarm and on recovery."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.eks_training import EksTarget
from infra.config import EksServing

INSIGHTS = "ContainerInsights"


@dataclass(frozen=True)
class ServingAlarmsArgs:
    """The model, its serving settings, where it runs, and who hears about it."""

    model: str
    serving: EksServing
    target: EksTarget
    replica_service: str  # the Service that selects the model's replicas
    topic_arn: pulumi.Input[str]


def serving_alarms(
    name: str, args: ServingAlarmsArgs, parent: pulumi.Resource
) -> list[aws.cloudwatch.MetricAlarm]:
    """The crash-loop alarm, and the replica floor alarm where the floor is above zero."""
    model, serving = args.model, args.serving
    topic = [args.topic_arn]
    pods = {"ClusterName": args.target.cluster_name, "Namespace": args.target.namespace}
    opts = pulumi.ResourceOptions(parent=parent)
    # A gauge of the model's containers waiting in CrashLoopBackOff (PodName is the
    # Deployment's name): repeated crashes, out-of-memory kills or failed liveness probes.
    alarms = [
        aws.cloudwatch.MetricAlarm(
            f"{name}-crashloop",
            name=f"{name}-crashloop",
            alarm_description=f"containers of EKS model {model} keep restarting (CrashLoopBackOff)",
            namespace=INSIGHTS,
            metric_name="pod_container_status_waiting_reason_crash_loop_back_off",
            dimensions={**pods, "PodName": model},
            statistic="Maximum",
            period=60,
            evaluation_periods=3,
            threshold=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=topic,
            ok_actions=topic,
            opts=opts,
        )
    ]
    if serving.min_instances == 0:
        return alarms  # scaled to zero is the normal idle state: no floor to fall below
    # No datapoint means no running pod reported at all: that breaches the floor too.
    alarms.append(
        aws.cloudwatch.MetricAlarm(
            f"{name}-replicas",
            name=f"{name}-replicas",
            alarm_description=f"EKS model {model} runs fewer than {serving.min_instances} replicas",
            namespace=INSIGHTS,
            metric_name="service_number_of_running_pods",
            dimensions={**pods, "Service": args.replica_service},
            statistic="Minimum",
            period=60,
            evaluation_periods=5,
            threshold=serving.min_instances,
            comparison_operator="LessThanThreshold",
            treat_missing_data="breaching",
            alarm_actions=topic,
            ok_actions=topic,
            opts=opts,
        )
    )
    return alarms
