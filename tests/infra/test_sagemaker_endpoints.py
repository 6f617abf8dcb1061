"""SageMaker endpoints: serverless in dev, autoscaled instances with data capture in prod,
alarms everywhere, and configuration changes that never delete the live endpoint."""

from __future__ import annotations

import pytest

from infra.config import StackConfigError
from infra.stackfile import load_stack_file
from mlplatform.plan import Plan

CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
TARGET = "aws:appautoscaling/target:Target"
POLICY = "aws:appautoscaling/policy:Policy"


def only(plan: Plan, kind: str):
    (resource,) = plan.of_type(kind)
    return resource


def test_dev_serves_serverless_without_autoscaling_capture_or_network_isolation(plan_of):
    plan = plan_of("dev")
    model = next(m for m in plan.config.models if m.name == "digits")
    serving = model.serving
    config = plan.get(CONFIG, "mlplatform-dev-digits")
    (variant,) = config.inputs["productionVariants"]
    assert variant["serverlessConfig"] == {
        "maxConcurrency": serving.serverless_max_concurrency,
        "memorySizeInMb": serving.serverless_memory_mb,
    }
    assert "instanceType" not in variant
    assert "dataCaptureConfig" not in config.inputs
    # AWS refuses network isolation on a serverless endpoint's Model.
    sagemaker_model = plan.get("aws:sagemaker/model:Model", "mlplatform-dev-digits")
    assert sagemaker_model.inputs["enableNetworkIsolation"] is False
    targets = [t for t in plan.of_type(TARGET) if "digits" in t.name]
    assert not targets, "serverless endpoints scale by themselves"


def test_instance_endpoints_keep_their_models_network_isolated(plan: Plan):
    for model in plan.config.models:
        if model.serving.plane != "sagemaker" or getattr(model.serving, "mode", "") != "instances":
            continue
        resource = plan.get("aws:sagemaker/model:Model", f"mlplatform-{plan.stack}-{model.name}")
        assert resource.inputs["enableNetworkIsolation"] is True


def test_prod_autoscales_instances_between_the_configured_bounds(plan_of):
    plan = plan_of("prod")
    serving = plan.config.models[0].serving
    (variant,) = only(plan, CONFIG).inputs["productionVariants"]
    assert variant["instanceType"] == serving.instance_type
    assert variant["initialInstanceCount"] == serving.min_instances
    target = only(plan, TARGET).inputs
    assert (target["minCapacity"], target["maxCapacity"]) == (
        serving.min_instances,
        serving.max_instances,
    )
    assert target["resourceId"] == "endpoint/mlplatform-prod-digits/variant/AllTraffic"
    assert target["scalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    tracking = only(plan, POLICY).inputs["targetTrackingScalingPolicyConfiguration"]
    assert tracking["targetValue"] == serving.target_invocations_per_instance
    assert (
        tracking["predefinedMetricSpecification"]["predefinedMetricType"]
        == "SageMakerVariantInvocationsPerInstance"
    )


def test_prod_captures_requests_to_the_artifacts_bucket_under_the_stack_key(plan_of):
    plan = plan_of("prod")
    capture = only(plan, CONFIG).inputs["dataCaptureConfig"]
    assert (
        capture["destinationS3Uri"]
        == f"s3://{plan.outputs['bucketNames']['artifacts']}/data-capture/digits"
    )
    assert capture["kmsKeyId"] == plan.outputs["kmsKeyArn"]
    assert (
        capture["initialSamplingPercentage"] == plan.config.models[0].serving.data_capture_percent
    )
    assert {o["captureMode"] for o in capture["captureOptions"]} == {"Input", "Output"}


def test_every_endpoint_alarms_on_server_errors_and_latency(plan: Plan):
    for model in plan.config.models:
        if model.serving.plane != "sagemaker":
            continue
        endpoint = f"mlplatform-{plan.stack}-{model.name}"
        alarms = {
            r.inputs["metricName"]: r.inputs
            for r in plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
            if r.inputs["dimensions"].get("EndpointName") == endpoint
        }
        assert alarms["Invocation5XXErrors"]["threshold"] == model.serving.error_alarm_count
        assert alarms["ModelLatency"]["threshold"] == model.serving.latency_alarm_ms * 1000, (
            "microseconds"
        )


def test_config_changes_switch_the_live_endpoint_to_a_new_configuration(plan_of):
    plan = plan_of("prod")
    config, endpoint = only(plan, CONFIG), only(plan, "aws:sagemaker/endpoint:Endpoint")
    assert "name" not in config.inputs, "autonamed: a changed config is a new one, made first"
    assert endpoint.inputs["name"] == "mlplatform-prod-digits"
    assert endpoint.inputs["endpointConfigName"] == config.outputs["name"]
    rollback = endpoint.inputs["deploymentConfig"]["autoRollbackConfiguration"]["alarms"]
    assert {a["alarmName"] for a in rollback} == {
        "mlplatform-prod-digits-5xx",
        "mlplatform-prod-digits-latency",
    }


def test_bounds_instance_type_and_served_version_follow_the_stack_file(plan_variant):
    serving = {
        "instanceType": "ml.m5.xlarge",
        "minInstances": 3,
        "maxInstances": 9,
        "modelPackageVersion": 4,
    }
    plan = plan_variant("prod", {"mlplatform:models": [{"name": "digits", "serving": serving}]})
    target = only(plan, TARGET).inputs
    assert (target["minCapacity"], target["maxCapacity"]) == (3, 9)
    config = only(plan, CONFIG).inputs
    assert config["productionVariants"][0]["initialInstanceCount"] == 3
    assert config["kmsKeyArn"] == plan.outputs["kmsKeyArn"], "EBS-backed types get the stack key"
    model = only(plan, "aws:sagemaker/model:Model").inputs
    assert model["enableNetworkIsolation"] is True
    container = model["primaryContainer"]
    assert container == {
        "modelPackageName": "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlplatform-variant-digits/4"
    }


def test_local_nvme_instance_types_get_no_volume_key_because_sagemaker_refuses_one(plan_of):
    assert "kmsKeyArn" not in only(plan_of("prod"), CONFIG).inputs  # ml.g5.xlarge


@pytest.mark.parametrize(
    ("serving", "message"),
    [
        (
            {"plane": "eks", "mode": "serverless", "pool": "l4"},
            "unknown key; it applies to plane: sagemaker only",
        ),
        (
            {"mode": "serverless", "dataCapturePercent": 10},
            "unknown key; it applies to plane: sagemaker, mode: instances only",
        ),
        ({"minInstances": 4, "maxInstances": 2}, "minInstances cannot exceed maxInstances"),
        (
            {"instanceType": "ml.g5.huge"},
            r"not a SageMaker ProductionVariantInstanceType.*did you mean",
        ),
    ],
)
def test_impossible_serving_settings_are_refused_with_the_key_path(
    tmp_path, serving, message, stack_variant
):
    path = stack_variant("dev", {"mlplatform:models": [{"name": "digits", "serving": serving}]})
    with pytest.raises(StackConfigError, match=rf"mlplatform:models\[0\]\.serving.*{message}"):
        load_stack_file(path)


@pytest.mark.parametrize(
    ("training", "message"),
    [
        ({"maxRuntimeHours": 8, "maxWaitHours": 4}, "maxWaitHours must be >= maxRuntimeHours"),
        ({"spot": False, "maxWaitHours": 4}, "maxWaitHours applies to spot training only"),
        (
            {"plane": "eks", "pool": "l4", "schedule": "rate(7 days)"},
            "unknown key; it applies to plane: sagemaker only",
        ),
        ({"schedule": "every monday"}, r"must be cron\(\.\.\.\) or rate\(\.\.\.\)"),
        (
            {"instanceType": "ml.g5.xlarge", "pool": "l4"},
            "unknown key; it applies to plane: eks only",
        ),
    ],
)
def test_impossible_training_settings_are_refused_with_the_key_path(
    tmp_path, training, message, stack_variant
):
    path = stack_variant("dev", {"mlplatform:models": [{"name": "digits", "training": training}]})
    with pytest.raises(StackConfigError, match=rf"mlplatform:models\[0\]\.training.*{message}"):
        load_stack_file(path)
