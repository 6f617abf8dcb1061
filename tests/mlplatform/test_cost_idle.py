"""What a stack bills while idle: endpoints and pools that scale to zero, storage sized from what
it keeps, network choices each with what it is for, and the shipped stacks' idle figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.stackfile import STACKS_DIR
from mlplatform.cost import estimate, usage_of
from mlplatform.plan import Plan, plan_stack
from mlplatform.prices import load
from mlplatform.report import preview
from policies.rules import StackResource

PRICES = load("us-east-1")
README = Path(__file__).resolve().parents[2] / "README.md"
_shipped: dict[str, Plan] = {}


def _r(type_: str, logical: str, **props) -> StackResource:
    return StackResource(type_, logical, f"urn:{logical}", props)


def _shipped_plan(stack: str) -> Plan:
    if stack not in _shipped:
        _shipped[stack] = plan_stack(STACKS_DIR / f"Pulumi.{stack}.yaml", stack)
    return _shipped[stack]


def _endpoint(variant: dict, low: int, high: int, **config) -> list[StackResource]:
    return [
        _r(
            "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
            "c",
            name="c-1",
            productionVariants=[{"variantName": "v", **variant}],
            **config,
        ),
        _r("aws:sagemaker/endpoint:Endpoint", "e", name="e-1", endpointConfigName="c-1"),
        _r(
            "aws:appautoscaling/target:Target",
            "t",
            resourceId="endpoint/e-1/variant/v",
            minCapacity=low,
            maxCapacity=high,
        ),
    ]


@pytest.mark.parametrize("zero", [0, 0.0], ids=["offline", "engine"])
def test_an_async_endpoint_at_zero_instances_costs_nothing_idle(zero):
    variant = {"instanceType": "ml.m5.large", "initialInstanceCount": 1}
    resources = _endpoint(variant, zero, 2, asyncInferenceConfig={"clientConfig": {}})
    [line] = estimate(resources, PRICES).lines
    assert (line.kind, line.monthly_min, line.monthly_max) == (
        "endpoint (async)",
        0,
        round(2 * 0.115 * 730, 2),
    )
    assert "scales to zero" in line.detail


def test_a_serverless_endpoint_costs_nothing_idle_and_its_assumed_busy_time_at_most():
    serverless = {"serverlessConfig": {"memorySizeInMb": 2048, "maxConcurrency": 5}}
    resources = _endpoint(serverless, 0, 0)[:2]
    usage = usage_of("prod", {"serverlessBusySecondsPerMonth": 50_000}, [])
    result = estimate(resources, PRICES, usage)
    [line] = result.lines
    assert (line.monthly_min, line.monthly_max) == (0, round(2 * 50_000 * 0.00002, 2))
    assert any("50,000 busy seconds" in a for a in result.assumptions)


def _pool(name: str, minimum: int, maximum: int, gpus: int = 1) -> StackResource:
    return _r(
        "aws:eks/nodeGroup:NodeGroup",
        name,
        instanceTypes=["g6e.xlarge"],
        capacityType="ON_DEMAND",
        scalingConfig={"minSize": minimum, "maxSize": maximum},
        labels={"mlplatform.io/pool": name, "mlplatform.io/gpu-count": str(gpus)},
        diskSize=100,
    )


def _deployment(pool: str, replicas: int = 1) -> StackResource:
    container = {"name": "server", "resources": {"requests": {"nvidia.com/gpu": "1", "cpu": "1"}}}
    template = {"spec": {"nodeSelector": {"mlplatform.io/pool": pool}, "containers": [container]}}
    return _r(
        "kubernetes:apps/v1:Deployment",
        "server",
        metadata={"name": "server", "namespace": "serving"},
        spec={"replicas": replicas, "template": template},
    )


def _floor(kind: str, minimum: int) -> StackResource:
    key = "minReplicas" if kind == "hpa" else "minReplicaCount"
    return _r(
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
        if kind == "hpa"
        else "kubernetes:keda.sh/v1alpha1:ScaledObject",
        "floor",
        metadata={"name": "server", "namespace": "serving"},
        spec={"scaleTargetRef": {"name": "server"}, key: minimum},
    )


def test_a_serving_deployment_with_a_minimum_replica_keeps_a_node_of_its_pool_up():
    resources = [_pool("serving", 0, 2), _deployment("serving"), _floor("hpa", 2)]
    [line] = estimate(resources, PRICES).lines
    node = 1.861 * 730 + 100 * 0.08  # one g6e.xlarge (1 GPU) per replica
    assert line.monthly_min == pytest.approx(2 * node, abs=0.01)
    assert "2 kept up by server: 2 minimum replicas" in line.detail


def test_a_serving_deployment_that_scales_to_zero_costs_nothing_beyond_its_pool():
    resources = [_pool("serving", 0, 2), _deployment("serving"), _floor("keda", 0)]
    [line] = estimate(resources, PRICES).lines
    assert line.monthly_min == 0 and "kept up" not in line.detail


def test_eks_serving_in_the_staging_fixture_keeps_its_gpu_node_up_idle(plan_of):
    est = preview(plan_of("staging")).estimate
    [serving] = [line for line in est.lines if line.name == "mlplatform-staging-serving"]
    assert serving.monthly_min > 0 and "kept up by" in serving.detail
    assert "digits-eks" in serving.detail


def test_a_cpu_pool_is_priced_from_the_same_table(plan_variant):
    pools = [{"name": "prep", "instanceTypes": ["m7i.2xlarge"], "minSize": 0, "maxSize": 3}]
    est = preview(plan_variant("dev", {"mlplatform:cpuPools": pools})).estimate
    [line] = [line for line in est.lines if line.name.endswith("-prep")]
    assert line.monthly_min == 0
    assert line.monthly_max == pytest.approx(3 * (0.4032 * 730 + 100 * 0.08), abs=0.01)
    assert est.unpriced == []


def test_repositories_hold_one_base_image_plus_each_kept_build():
    def repository(framework: str, keep: int) -> list[StackResource]:
        name = f"mlplatform-dev/{framework}"
        policy = {
            "rules": [{"selection": {"countType": "imageCountMoreThan", "countNumber": keep}}]
        }
        return [
            _r("aws:ecr/repository:Repository", framework, name=name),
            _r(
                "aws:ecr/lifecyclePolicy:LifecyclePolicy",
                framework,
                repository=name,
                policy=json.dumps(policy),
            ),
            _r(
                "docker-build:index:Image",
                framework,
                buildArgs={"FRAMEWORK": framework},
                tags=[f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{name}:ctx-1"],
            ),
        ]

    lines = {
        line.name: line
        for line in estimate(repository("pytorch", 10) + repository("sklearn", 3), PRICES).lines
    }
    per_build = PRICES.assumptions["imageGbPerBuild"]
    for name, keep in (("pytorch", 10), ("sklearn", 3)):
        gb = PRICES.image_gb[name] + keep * per_build
        assert lines[name].monthly_min == round(gb * 0.1, 2)


def test_buckets_are_sized_by_their_role_in_the_environments_assumptions():
    buckets = [
        _r("aws:s3/bucket:Bucket", f"mlplatform-prod-{role}")
        for role in ("datasets", "access-logs")
    ]
    usage = usage_of("prod", {"bucketGb": {"datasets": 500, "access-logs": 10}}, [])
    lines = {line.name: line for line in estimate(buckets, PRICES, usage).lines}
    assert lines["mlplatform-prod-datasets"].monthly_min == round(500 * 0.023, 2)
    assert lines["mlplatform-prod-access-logs"].monthly_min == round(10 * 0.023, 2)
    assert "access logs" in lines["mlplatform-prod-access-logs"].detail


def test_a_nat_gateway_bills_by_the_hour_idle_and_its_assumed_data_at_most():
    usage = usage_of("dev", {"natGbPerMonth": 100}, [])
    [line] = estimate([_r("aws:ec2/natGateway:NatGateway", "nat")], PRICES, usage).lines
    assert (line.monthly_min, line.monthly_max) == (
        round(0.045 * 730, 2),
        round(0.045 * 730 + 4.5, 2),
    )
    assert "outbound internet" in line.detail


def test_interface_endpoints_say_what_they_are_for_and_cost_per_zone():
    endpoint = _r(
        "aws:ec2/vpcEndpoint:VpcEndpoint",
        "ecr-dkr",
        vpcEndpointType="Interface",
        serviceName="com.amazonaws.us-east-1.ecr.dkr",
        subnetIds=["a", "b", "c"],
    )
    gateway = _r("aws:ec2/vpcEndpoint:VpcEndpoint", "s3", vpcEndpointType="Gateway")
    [line] = estimate([endpoint, gateway], PRICES).lines
    assert line.monthly_min == round(0.01 * 730 * 3, 2) and "image layers" in line.detail


def test_flow_logs_of_an_idle_sagemaker_only_vpc_cost_nothing_idle():
    flow = _r("aws:ec2/flowLog:FlowLog", "flow", logDestinationType="cloud-watch-logs")
    [quiet] = estimate([flow], PRICES).lines
    assert quiet.monthly_min == 0 and quiet.monthly_max == 2 * 0.5
    busy = estimate([flow, _r("aws:ec2/natGateway:NatGateway", "nat")], PRICES).lines
    assert [line.monthly_min for line in busy if line.kind == "flow log"] == [1.0]


def test_a_small_mlflow_server_bills_every_hour_and_a_size_without_a_price_is_listed():
    server = "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer"
    [small] = estimate([_r(server, "t", trackingServerSize="Small")], PRICES).lines
    assert small.monthly_min == small.monthly_max == round(0.6 * 730, 2)
    medium = estimate([_r(server, "t", trackingServerSize="Medium")], PRICES)
    assert medium.lines == [] and medium.unpriced == ["MLflow tracking server Medium"]


def test_the_alert_topic_bills_per_message_and_nothing_idle():
    topic = _r("aws:sns/topic:Topic", "mlplatform-dev-alerts", arn="arn:topic")
    email = _r(
        "aws:sns/topicSubscription:TopicSubscription", "s", topic="arn:topic", protocol="email"
    )
    [line] = estimate([topic, email], PRICES).lines
    assert line.kind == "alert topic" and line.monthly_min == 0
    assert line.monthly_max == round(1000 * (0.5 / 1e6 + 2 / 1e5), 2)


def test_the_stack_dashboard_bills_its_monthly_fee_idle_and_busy():
    dashboard = _r("aws:cloudwatch/dashboard:Dashboard", "mlplatform-dev", dashboardName="d")
    [line] = estimate([dashboard], PRICES).lines
    assert line.kind == "dashboard" and line.monthly_min == line.monthly_max == 3.0


def test_the_sandbox_idles_under_ten_dollars_and_its_pr_comment_says_so():
    checked = preview(_shipped_plan("sandbox"))
    idle = checked.estimate.monthly_min
    assert 0 < idle < 10
    assert f"Idle (nothing running): ${idle:,.2f}/month" in checked.markdown()
    kinds = {line.kind for line in checked.estimate.lines}
    assert not kinds & {"NAT gateway", "EKS control plane", "node pool", "interface endpoint"}
    assert checked.estimate.unpriced == [] and not checked.blocking


def test_dev_with_its_cluster_idles_at_or_under_250_dollars():
    est = preview(_shipped_plan("dev")).estimate
    assert "EKS control plane" in {line.kind for line in est.lines}
    assert est.monthly_min <= 250


def test_readme_shows_what_every_shipped_stack_costs():
    from mlplatform import readme
    from mlplatform.report import COSTS_END, COSTS_START, shipped_costs, shipped_stacks

    shown = readme.block(README, COSTS_START, COSTS_END)
    expected = shipped_costs([preview(_shipped_plan(s)) for s in shipped_stacks()])
    assert shown == expected, "README.md's stack costs are stale: run `python -m mlplatform.report`"


def test_a_stack_with_experiment_tracking_pays_for_its_server_every_hour(plan_variant):
    est = preview(plan_variant("dev", {"mlplatform:tracking": {"enabled": True}})).estimate
    [server] = [line for line in est.lines if line.kind == "MLflow tracking server"]
    assert server.monthly_min == server.monthly_max == round(0.6 * 730, 2)
    assert est.unpriced == []
