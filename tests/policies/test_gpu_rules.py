"""GPU, spot, serving and budget guardrails on hand-built inputs."""

from __future__ import annotations

import json

from policies.rules import StackFacts

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
PIPELINE = "aws:sagemaker/pipeline:Pipeline"


def _pool(instance: str, max_size: int, capacity: str = "SPOT", **extra) -> dict:
    return {
        "instanceTypes": [instance],
        "capacityType": capacity,
        "scalingConfig": {"minSize": 0, "maxSize": max_size, "desiredSize": 0},
        **extra,
    }


def _pipeline(
    instance: str, count: int = 1, spot: bool = True, tuning: tuple[int, int] | None = None
) -> dict:
    job = {
        "ResourceConfig": {
            "InstanceType": {"Get": "Parameters.TrainingInstanceType"},
            "InstanceCount": count,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 7200},
        "EnableManagedSpotTraining": spot,
    }
    step = {"Name": "Train", "Type": "Training", "Arguments": job}
    if tuning:
        step = {
            "Name": "Tune",
            "Type": "Tuning",
            "Arguments": {
                "HyperParameterTuningJobConfig": {
                    "ResourceLimits": {
                        "MaxNumberOfTrainingJobs": tuning[0],
                        "MaxParallelTrainingJobs": tuning[1],
                    }
                },
                "TrainingJobDefinition": job,
            },
        }
    definition = {
        "Parameters": [
            {"Name": "TrainingInstanceType", "Type": "String", "DefaultValue": instance}
        ],
        "Steps": [step],
    }
    return {"pipelineDefinition": json.dumps(definition)}


def test_gpu_family_outside_the_allowed_list_is_caught_on_every_plane(check):
    allowed = {"allowedFamilies": ["g5", "g6"]}
    assert "p5" in check("gpu-allowed-families", NODE_GROUP, _pool("p5.48xlarge", 1), **allowed)[0]
    variant = {"variantName": "v", "instanceType": "ml.p4d.24xlarge", "initialInstanceCount": 1}
    assert check(
        "gpu-allowed-families", ENDPOINT_CONFIG, {"productionVariants": [variant]}, **allowed
    )
    assert check("gpu-allowed-families", PIPELINE, _pipeline("ml.p4d.24xlarge"), **allowed)


def test_allowed_gpu_families_and_cpu_types_pass(check):
    allowed = {"allowedFamilies": ["g5"]}
    assert check("gpu-allowed-families", NODE_GROUP, _pool("g5.12xlarge", 2), **allowed) == []
    assert check("gpu-allowed-families", NODE_GROUP, _pool("m6i.large", 2), **allowed) == []
    assert check("gpu-allowed-families", PIPELINE, _pipeline("ml.m5.xlarge"), **allowed) == []


def test_pool_gpus_at_max_size_are_bounded(check):
    # g5.12xlarge has 4 GPUs (instance facts): 3 nodes make 12.
    [message] = check("gpu-max-per-pool", NODE_GROUP, _pool("g5.12xlarge", 3), maxGpusPerPool=8)
    assert "12 GPUs" in message
    assert check("gpu-max-per-pool", NODE_GROUP, _pool("g5.12xlarge", 2), maxGpusPerPool=8) == []


def test_stack_gpus_add_pools_endpoints_at_autoscaling_max_and_parallel_training(
    check_stack, resource
):
    resources = [
        resource(NODE_GROUP, "pool", **_pool("g5.xlarge", 4)),  # 4
        resource(
            ENDPOINT_CONFIG,
            "ec",
            name="ec-1",
            productionVariants=[
                {"variantName": "v", "instanceType": "ml.g5.xlarge", "initialInstanceCount": 1}
            ],
        ),
        resource("aws:sagemaker/endpoint:Endpoint", "ep", name="ep-1", endpointConfigName="ec-1"),
        resource(
            "aws:appautoscaling/target:Target",
            "t",
            resourceId="endpoint/ep-1/variant/v",
            minCapacity=1,
            maxCapacity=3,
        ),  # 3
        resource(PIPELINE, "p", **_pipeline("ml.g5.12xlarge", count=1, tuning=(6, 2))),  # 2 x 4
    ]
    [message] = check_stack("gpu-max-per-stack", resources, maxGpusPerStack=14)
    assert "15 GPUs" in message
    assert check_stack("gpu-max-per-stack", resources, maxGpusPerStack=15) == []


def test_on_demand_training_is_caught_where_spot_is_required(check):
    assert (
        "Train"
        in check("training-spot-required", PIPELINE, _pipeline("ml.g5.xlarge", spot=False))[0]
    )
    assert check("training-spot-required", PIPELINE, _pipeline("ml.g5.xlarge", spot=True)) == []
    labelled = _pool(
        "g5.xlarge", 2, capacity="ON_DEMAND", labels={"mlplatform/workload": "training"}
    )
    assert check("training-spot-required", NODE_GROUP, labelled)


def test_all_gpu_pools_must_be_spot_when_configured(check):
    serving = _pool("g5.xlarge", 2, capacity="ON_DEMAND")
    assert check("training-spot-required", NODE_GROUP, serving) == []
    assert check("training-spot-required", NODE_GROUP, serving, allGpuPools=True)
    # The CPU system pool stays on-demand.
    assert (
        check(
            "training-spot-required",
            NODE_GROUP,
            _pool("m6i.large", 3, capacity="ON_DEMAND"),
            allGpuPools=True,
        )
        == []
    )


def test_serving_bounds_cover_autoscaling_variants_serverless_and_hpa(check):
    target = {
        "resourceId": "endpoint/e/variant/v",
        "scalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "minCapacity": 1,
        "maxCapacity": 9,
    }
    assert (
        "9 instances"
        in check(
            "serving-bounds", "aws:appautoscaling/target:Target", target, maxServingInstances=4
        )[0]
    )
    variant = {
        "variantName": "v",
        "serverlessConfig": {"maxConcurrency": 50, "memorySizeInMb": 2048},
    }
    assert check(
        "serving-bounds",
        ENDPOINT_CONFIG,
        {"productionVariants": [variant]},
        maxServerlessConcurrency=10,
    )
    hpa = {"spec": {"minReplicas": 1, "maxReplicas": 12}}
    assert check(
        "serving-bounds",
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
        hpa,
        maxServingInstances=4,
    )
    assert (
        check(
            "serving-bounds",
            "aws:appautoscaling/target:Target",
            {**target, "maxCapacity": 4},
            maxServingInstances=4,
        )
        == []
    )


def test_serving_bounds_cover_keda_scaling_from_zero(check):
    scaled = "kubernetes:keda.sh/v1alpha1:ScaledObject"
    spec = {"minReplicaCount": 0, "maxReplicaCount": 6}
    [message] = check("serving-bounds", scaled, {"spec": spec}, maxServingInstances=4)
    assert "ScaledObject may reach 6 replicas" in message
    assert check("serving-bounds", scaled, {"spec": spec}, maxServingInstances=6) == []


def _facts(budget: float | None) -> StackFacts:
    return StackFacts(stack="dev", environment="dev", region="us-east-1", budget_monthly_usd=budget)


def test_budget_rule_fails_over_budget_and_names_the_biggest_costs(check_stack, resource):
    # 4 x g5.xlarge on-demand at $1.006/h for 730 h plus 4 x 20 GB gp3 = $2,943.92 at max scale.
    pools = [resource(NODE_GROUP, "gpu", **_pool("g5.xlarge", 4, capacity="ON_DEMAND"))]
    [message] = check_stack("monthly-budget", pools, _facts(1000.0), compareAt="max")
    assert "$2,943.92" in message and "$1,000.00" in message and "gpu" in message
    assert check_stack("monthly-budget", pools, _facts(3000.0), compareAt="max") == []
    # At minimum scale the pool costs nothing (it scales to zero).
    assert check_stack("monthly-budget", pools, _facts(1000.0), compareAt="min") == []


def test_budget_rule_compares_the_expected_cost_by_default(check_stack, resource):
    pools = [resource(NODE_GROUP, "gpu", **_pool("g5.xlarge", 4, capacity="ON_DEMAND"))]
    # Expected: min $0 plus 25% of the way to $2,943.92 = $735.98.
    [message] = check_stack("monthly-budget", pools, _facts(700.0))
    assert "$735.98" in message and "expected" in message
    assert check_stack("monthly-budget", pools, _facts(750.0)) == []
    assert check_stack("monthly-budget", pools, _facts(750.0), expectedScaleOut=0.5)


def test_budget_rule_refuses_to_pass_what_it_cannot_price(check_stack, resource):
    pools = [resource(NODE_GROUP, "odd", **_pool("x2iedn.32xlarge", 1))]
    [message] = check_stack("monthly-budget", pools, _facts(10_000.0))
    assert "x2iedn.32xlarge" in message and "mlplatform/prices/us-east-1.json" in message
