"""One CloudWatch dashboard per stack: every SageMaker endpoint (invocations, errors, model
latency), every SageMaker pipeline (executions started, succeeded, failed, stopped), and, when the
stack has a cluster, its GPUs and EKS-served models (Container Insights).

The body is plain JSON built from the names the program gives (no console edits to lose): the
same stack always renders the same bytes, so `pulumi preview` shows a dashboard change only when
an endpoint, pipeline or model comes or goes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.sagemaker_serving import VARIANT
from infra.context import StackContext

SAGEMAKER = "AWS/SageMaker"
PIPELINES = "AWS/Sagemaker/ModelBuildingPipeline"  # sic: SageMaker spells it so
INSIGHTS = "ContainerInsights"
PIPELINE_EXECUTIONS = (
    "ExecutionStarted",
    "ExecutionSucceeded",
    "ExecutionFailed",
    "ExecutionStopped",
)
WIDTH, HEIGHT = 12, 6  # two graphs a row on the dashboard's 24-column grid


@dataclass(frozen=True)
class StackDashboardArgs:
    """What the dashboard shows: names of the stack's endpoints and pipelines, and its cluster
    with the Service that selects each EKS-served model's replicas."""

    context: StackContext
    endpoints: Sequence[pulumi.Input[str]] = ()
    pipelines: Sequence[pulumi.Input[str]] = ()
    cluster_name: pulumi.Input[str] | None = None
    serving_namespace: pulumi.Input[str] = "serving"
    eks_services: Mapping[str, str] = field(default_factory=dict)  # model -> replica Service


def _graph(title: str, region: str, metrics: list[list[Any]], stat: str, period: int) -> dict:
    return {
        "type": "metric",
        "properties": {
            "title": title,
            "region": region,
            "metrics": metrics,
            "stat": stat,
            "period": period,
            "view": "timeSeries",
            "stacked": False,
        },
    }


def _heading(text: str) -> dict:
    return {"type": "text", "width": 24, "height": 1, "properties": {"markdown": f"## {text}"}}


def _place(widgets: list[dict]) -> list[dict]:
    """Lay widgets out left to right, top to bottom; headings take a row of their own."""
    x = y = row = 0
    placed = []
    for widget in widgets:
        width, height = widget.get("width", WIDTH), widget.get("height", HEIGHT)
        if x + width > 24:
            x, y, row = 0, y + row, 0
        placed.append({**widget, "x": x, "y": y, "width": width, "height": height})
        x, row = x + width, max(row, height)
    return placed


def dashboard_body(
    region: str,
    endpoints: Sequence[str],
    pipelines: Sequence[str],
    cluster: str | None = None,
    namespace: str = "serving",
    eks_services: Mapping[str, str] | None = None,
) -> str:
    """The dashboard's JSON body (deterministic: same names in, same bytes out)."""
    widgets: list[dict] = []
    if endpoints:
        widgets.append(_heading("SageMaker endpoints"))
    for endpoint in endpoints:
        dims = ["EndpointName", endpoint, "VariantName", VARIANT]
        widgets.append(
            _graph(
                f"{endpoint}: invocations and errors",
                region,
                [
                    [SAGEMAKER, "Invocations", *dims],
                    [SAGEMAKER, "Invocation4XXErrors", *dims],
                    [SAGEMAKER, "Invocation5XXErrors", *dims],
                ],
                "Sum",
                300,
            )
        )
        widgets.append(
            _graph(
                f"{endpoint}: model latency (microseconds)",
                region,
                [
                    [SAGEMAKER, "ModelLatency", *dims, {"stat": "Average"}],
                    [SAGEMAKER, "ModelLatency", *dims, {"stat": "p90"}],
                ],
                "Average",
                300,
            )
        )
    if pipelines:
        widgets.append(_heading("SageMaker pipelines"))
    for pipeline in pipelines:
        widgets.append(
            _graph(
                f"{pipeline}: executions",
                region,
                [[PIPELINES, metric, "PipelineName", pipeline] for metric in PIPELINE_EXECUTIONS],
                "Sum",
                3600,
            )
        )
    if cluster is not None:
        widgets.append(_heading(f"EKS cluster {cluster}"))
        node = ["ClusterName", cluster]
        widgets.append(
            _graph(
                "GPU utilisation (%)",
                region,
                [
                    [INSIGHTS, "node_gpu_utilization", *node, {"stat": "Average"}],
                    [INSIGHTS, "node_gpu_utilization", *node, {"stat": "Maximum"}],
                ],
                "Average",
                60,
            )
        )
        widgets.append(
            _graph(
                "GPU memory utilisation (%)",
                region,
                [
                    [INSIGHTS, "node_gpu_memory_utilization", *node, {"stat": "Average"}],
                    [INSIGHTS, "node_gpu_memory_utilization", *node, {"stat": "Maximum"}],
                ],
                "Average",
                60,
            )
        )
        for model, service in (eks_services or {}).items():
            pods = [*node, "Namespace", namespace]
            widgets.append(
                _graph(
                    f"{model}: running replicas and restarts",
                    region,
                    [
                        [INSIGHTS, "service_number_of_running_pods", *pods, "Service", service],
                        [
                            INSIGHTS,
                            "pod_number_of_container_restarts",
                            *pods,
                            "PodName",
                            model,
                            {"stat": "Maximum"},
                        ],
                    ],
                    "Minimum",
                    60,
                )
            )
    return json.dumps({"widgets": _place(widgets)}, sort_keys=True)


class StackDashboard(pulumi.ComponentResource):
    """The stack's CloudWatch dashboard, named after the stack (`mlplatform-<stack>`)."""

    dashboard_name: str

    def __init__(
        self, name: str, args: StackDashboardArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("mlplatform:monitoring:StackDashboard", name, None, opts)
        region = args.context.region
        endpoints, pipelines = list(args.endpoints), list(args.pipelines)
        services = dict(args.eks_services)

        def body(values: list[Any]) -> str:
            cluster, namespace, *names = values
            return dashboard_body(
                region,
                names[: len(endpoints)],
                names[len(endpoints) :],
                cluster,
                namespace,
                services,
            )

        self.dashboard_name = args.context.prefix
        aws.cloudwatch.Dashboard(
            name,
            dashboard_name=self.dashboard_name,
            dashboard_body=pulumi.Output.all(
                args.cluster_name, args.serving_namespace, *endpoints, *pipelines
            ).apply(body),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"dashboardName": self.dashboard_name})
