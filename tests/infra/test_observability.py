"""What a stack watches: Container Insights with GPU metrics on the cluster, alarms on EKS
serving that reach the alert topic, and one CloudWatch dashboard over endpoints, pipelines
and GPUs."""

from __future__ import annotations

import json

from infra.components.container_insights import ADDON_VERSION
from infra.components.dashboard import dashboard_body
from mlplatform.plan import Plan, PlannedResource

ADDON = "aws:eks/addon:Addon"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"


def observability_addon(plan: Plan) -> PlannedResource:
    (addon,) = [
        r for r in plan.of_type(ADDON) if r.inputs["addonName"] == "amazon-cloudwatch-observability"
    ]
    return addon


def test_container_insights_addon_is_pinned_and_ships_metrics_not_container_logs(plan: Plan):
    addon = observability_addon(plan)
    assert addon.inputs["addonVersion"] == ADDON_VERSION
    # Pod Identity for cloudwatch-agent needs 3.1.0 or later.
    major, minor = (int(x) for x in ADDON_VERSION.removeprefix("v").split(".")[:2])
    assert (major, minor) >= (3, 1)
    assert json.loads(addon.inputs["configurationValues"]) == {"containerLogs": {"enabled": False}}
    system = plan.get("aws:eks/nodeGroup:NodeGroup", f"mlplatform-{plan.stack}-system")
    assert system.urn in addon.depends_on, "the agent's Deployment needs nodes to report healthy"


def test_cloudwatch_agent_gets_only_its_managed_policy_through_a_scoped_pod_identity(plan: Plan):
    (association,) = [
        r for r in plan.of_type(ASSOCIATION) if r.inputs["serviceAccount"] == "cloudwatch-agent"
    ]
    assert association.inputs["namespace"] == "amazon-cloudwatch"
    assert association.urn in observability_addon(plan).depends_on, "credentials before pods"
    (role,) = [
        r
        for r in plan.of_type("aws:iam/role:Role")
        if r.outputs["arn"] == association.inputs["roleArn"]
    ]
    children = plan.children(role)
    attached = [r.inputs["policyArn"] for r in children if "policyArn" in r.inputs]
    assert attached == ["arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"]
    assert not [r for r in children if r.type == "aws:iam/rolePolicy:RolePolicy"]
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Condition"]["StringEquals"] == {
        "aws:RequestTag/eks-cluster-arn": plan.get(
            "aws:eks/cluster:Cluster", f"mlplatform-{plan.stack}"
        ).outputs["arn"],
        "aws:RequestTag/kubernetes-namespace": "amazon-cloudwatch",
        "aws:RequestTag/kubernetes-service-account": "cloudwatch-agent",
    }


def alarms_of(plan: Plan, model: str) -> dict[str, dict]:
    prefix = f"mlplatform-{plan.stack}-{model}-"
    return {
        r.inputs["name"].removeprefix(prefix): r.inputs
        for r in plan.of_type(ALARM)
        if r.inputs["name"].startswith(prefix)
    }


def test_every_eks_served_model_alarms_on_crash_loops_and_on_too_few_replicas(plan_of):
    plan = plan_of("staging")
    topic = plan.outputs["alertTopicArn"]
    cluster = plan.outputs["clusterName"]
    eks_models = [m for m in plan.config.models if m.serving.plane == "eks"]
    assert eks_models
    for model in eks_models:
        alarms = alarms_of(plan, model.name)
        crashloop, replicas = alarms["crashloop"], alarms["replicas"]
        for alarm in (crashloop, replicas):
            assert alarm["alarmActions"] == alarm["okActions"] == [topic]
        assert (crashloop["namespace"], crashloop["metricName"]) == (
            "ContainerInsights",
            "pod_container_status_waiting_reason_crash_loop_back_off",
        )
        assert crashloop["dimensions"] == {
            "ClusterName": cluster,
            "Namespace": "serving",
            "PodName": model.name,
        }
        assert crashloop["threshold"] == 1 and crashloop["treatMissingData"] == "notBreaching"
        assert replicas["metricName"] == "service_number_of_running_pods"
        assert replicas["dimensions"] == {
            "ClusterName": cluster,
            "Namespace": "serving",
            "Service": plan.outputs["kubernetesServices"][model.name],
        }
        assert replicas["threshold"] == model.serving.min_instances
        assert replicas["comparisonOperator"] == "LessThanThreshold"
        assert replicas["treatMissingData"] == "breaching", "no pod reported is below any floor"


def test_the_stack_has_one_dashboard_covering_every_endpoint_and_pipeline(plan: Plan):
    (dashboard,) = plan.of_type(DASHBOARD)
    assert dashboard.inputs["dashboardName"] == f"mlplatform-{plan.stack}"
    body = json.loads(dashboard.inputs["dashboardBody"])
    lines = [
        line
        for w in body["widgets"]
        if w["type"] == "metric"
        for line in w["properties"]["metrics"]
    ]

    def dimension(namespace: str, name: str) -> set[str]:
        return {
            line[line.index(name) + 1]
            for line in lines
            if line[0] == namespace and name in line[2:]
        }

    endpoints = {r.inputs["name"] for r in plan.of_type("aws:sagemaker/endpoint:Endpoint")}
    pipelines = {r.outputs["pipelineName"] for r in plan.of_type("aws:sagemaker/pipeline:Pipeline")}
    assert endpoints and pipelines
    assert dimension("AWS/SageMaker", "EndpointName") == endpoints
    assert dimension("AWS/Sagemaker/ModelBuildingPipeline", "PipelineName") == pipelines
    metrics = {(line[0], line[1]) for line in lines}
    assert {
        ("AWS/SageMaker", "Invocations"),
        ("AWS/SageMaker", "Invocation5XXErrors"),
        ("AWS/SageMaker", "ModelLatency"),
        ("AWS/Sagemaker/ModelBuildingPipeline", "ExecutionFailed"),
        ("ContainerInsights", "node_gpu_utilization"),
    } <= metrics
    assert dimension("ContainerInsights", "ClusterName") == {plan.outputs["clusterName"]}
    assert all(
        w["properties"].get("region", plan.config.region) == plan.config.region
        for w in body["widgets"]
    )


def test_a_stack_without_a_cluster_gets_no_gpu_widgets(plan_variant):
    plan = plan_variant(
        "dev", {"mlplatform:cluster": {"enabled": False}, "mlplatform:gpuPools": []}
    )
    (dashboard,) = plan.of_type(DASHBOARD)
    body = dashboard.inputs["dashboardBody"]
    assert "ContainerInsights" not in body and "AWS/SageMaker" in body


def test_the_dashboard_body_is_deterministic_and_laid_out_without_overlaps():
    args = ("us-east-1", ["ep-a", "ep-b", "ep-c"], ["pipe-a"], "cluster", "serving", {"m": "m"})
    body = dashboard_body(*args)
    assert body == dashboard_body(*args)
    widgets = json.loads(body)["widgets"]
    cells = set()
    for w in widgets:
        assert w["x"] + w["width"] <= 24
        for x in range(w["x"], w["x"] + w["width"]):
            for y in range(w["y"], w["y"] + w["height"]):
                assert (x, y) not in cells, w
                cells.add((x, y))
