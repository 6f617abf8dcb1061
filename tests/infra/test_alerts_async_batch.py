"""Alerts reach people; asynchronous endpoints queue, notify and scale to zero; Batch Transform
scores S3 data on a schedule or on demand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.config import StackConfigError
from infra.stackfile import STACKS_DIR, load_stack_file
from mlplatform.plan import Plan, plan_stack

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
PIPELINE = "aws:sagemaker/pipeline:Pipeline"
CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"


def shipped_plans() -> list[Plan]:
    return [plan_stack(path) for path in sorted(STACKS_DIR.glob("Pulumi.*.yaml"))]


def test_every_alarm_in_every_stack_has_an_action(plan: Plan):
    for stack_plan in (plan, *shipped_plans()) if plan.stack == "dev" else (plan,):
        for alarm in stack_plan.of_type(ALARM):
            assert alarm.inputs.get("alarmActions"), (
                f"{stack_plan.stack}: {alarm.name} tells nobody"
            )


def test_one_encrypted_alert_topic_per_stack_with_its_emails(plan_of):
    plan = plan_of("prod")
    topic = plan.get(TOPIC, "mlplatform-prod-alerts")
    assert topic.inputs["kmsMasterKeyId"] == plan.outputs["kmsKeyArn"]
    subscriptions = plan.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert [(s.inputs["protocol"], s.inputs["endpoint"]) for s in subscriptions] == [
        ("email", "ml-platform-oncall@example.com")
    ]
    policy = json.loads(
        plan.get("aws:sns/topicPolicy:TopicPolicy", "mlplatform-prod-alerts").inputs["policy"]
    )
    publish = next(s for s in policy["Statement"] if s["Effect"] == "Allow")
    assert publish["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    assert set(publish["Principal"]["Service"]) == {
        "cloudwatch.amazonaws.com",
        "events.amazonaws.com",
        "budgets.amazonaws.com",
    }


def test_endpoint_alarms_and_the_budget_notify_the_alert_topic(plan_of):
    plan = plan_of("prod")
    topic = plan.outputs["alertTopicArn"]
    for alarm in plan.of_type(ALARM):
        if alarm.name.endswith(("-5xx", "-latency")):
            assert alarm.inputs["alarmActions"] == [topic] == alarm.inputs["okActions"]
    (budget,) = plan.of_type("aws:budgets/budget:Budget")
    for notification in budget.inputs["notifications"]:
        assert notification["subscriberSnsTopicArns"] == [topic]


def test_failed_pipelines_are_posted_to_the_alert_topic(plan: Plan):
    rule = plan.get(
        "aws:cloudwatch/eventRule:EventRule", f"mlplatform-{plan.stack}-failed-pipelines"
    )
    pattern = json.loads(rule.inputs["eventPattern"])
    assert pattern["detail"]["currentPipelineExecutionStatus"] == ["Failed", "Stopped"]
    every = {r.outputs["arn"] for r in plan.of_type(PIPELINE)}
    assert set(pattern["detail"]["pipelineArn"]) == every, "training, batch and drift checks"
    (target,) = plan.of_type("aws:cloudwatch/eventTarget:EventTarget")
    assert target.inputs["arn"] == plan.outputs["alertTopicArn"]


def test_async_endpoints_write_results_to_the_artifacts_bucket_and_notify(plan_of):
    plan = plan_of("staging")
    config = plan.get(CONFIG, "mlplatform-staging-mnist-keras").inputs
    artifacts = plan.outputs["bucketNames"]["artifacts"]
    output = config["asyncInferenceConfig"]["outputConfig"]
    assert output["s3OutputPath"] == f"s3://{artifacts}/async/mnist-keras/output"
    assert output["s3FailurePath"] == f"s3://{artifacts}/async/mnist-keras/failures"
    assert output["kmsKeyId"] == plan.outputs["kmsKeyArn"]
    topics = {t.name: t.outputs["arn"] for t in plan.of_type(TOPIC)}
    assert output["notificationConfig"] == {
        "successTopic": topics["mlplatform-staging-mnist-keras-async-success"],
        "errorTopic": topics["mlplatform-staging-mnist-keras-async-error"],
    }
    (variant,) = config["productionVariants"]
    assert variant["initialInstanceCount"] == 1, "SageMaker starts one; autoscaling goes to zero"
    notices = json.loads(
        plan.get(
            "aws:iam/rolePolicy:RolePolicy", "mlplatform-staging-mnist-keras-async-notices"
        ).inputs["policy"]
    )
    assert set(notices["Statement"][0]["Resource"]) == set(output["notificationConfig"].values())


def test_async_endpoints_scale_to_zero_and_wake_on_a_waiting_request(plan_of):
    plan = plan_of("staging")
    target = plan.get("aws:appautoscaling/target:Target", "mlplatform-staging-mnist-keras").inputs
    assert (target["minCapacity"], target["maxCapacity"]) == (0, 2)
    policies = {p.name: p.inputs for p in plan.of_type("aws:appautoscaling/policy:Policy")}
    backlog = policies["mlplatform-staging-mnist-keras-backlog"]
    metric = backlog["targetTrackingScalingPolicyConfiguration"]["customizedMetricSpecification"]
    assert metric["metricName"] == "ApproximateBacklogSizePerInstance"
    wake = plan.get("aws:appautoscaling/policy:Policy", "mlplatform-staging-mnist-keras-wake")
    alarm = plan.get(ALARM, "mlplatform-staging-mnist-keras-waiting").inputs
    assert alarm["metricName"] == "HasBacklogWithoutCapacity"
    assert alarm["alarmActions"] == [wake.outputs["arn"]]


def test_async_is_instance_only(stack_variant):
    path = stack_variant(
        "dev",
        {
            "mlplatform:models": [
                {"name": "digits", "serving": {"mode": "async", "serverlessMemoryMb": 2048}}
            ]
        },
    )
    with pytest.raises(
        StackConfigError,
        match=r"serving\.serverlessMemoryMb.*applies to plane: sagemaker, mode: serverless only",
    ):
        load_stack_file(path)


def test_batch_pipelines_score_s3_data_as_the_models_hosting_role(plan_of):
    plan = plan_of("dev")
    pipeline = plan.get(PIPELINE, "mlplatform-dev-breast-cancer-batch")
    definition = json.loads(pipeline.inputs["pipelineDefinition"])
    (score,) = definition["Steps"]
    args = score["Arguments"]
    datasets, artifacts = (plan.outputs["bucketNames"][k] for k in ("datasets", "artifacts"))
    (parameter,) = definition["Parameters"]
    assert parameter == {
        "Name": "InputUri",
        "Type": "String",
        "DefaultValue": f"s3://{datasets}/breast-cancer/to-score/",
    }
    assert args["TransformInput"]["ContentType"] == "text/csv"
    assert args["TransformInput"]["SplitType"] == "Line" and args["BatchStrategy"] == "MultiRecord"
    assert args["TransformOutput"]["S3OutputPath"]["Std:Join"]["Values"][0] == (
        f"s3://{artifacts}/batch/breast-cancer"
    )
    assert args["TransformOutput"]["KmsKeyId"] == plan.outputs["kmsKeyArn"]
    model = plan.get("aws:sagemaker/model:Model", "mlplatform-dev-breast-cancer-batch")
    assert args["ModelName"] == model.outputs["name"]
    assert (
        model.inputs["executionRoleArn"] == plan.outputs["modelRoles"]["breast-cancer"]["hosting"]
    )
    assert plan.outputs["batchPipelines"]["breast-cancer"] == "mlplatform-dev-breast-cancer-batch"
    assert not [
        s for s in plan.of_type("aws:scheduler/schedule:Schedule") if "breast-cancer" in s.name
    ], "no schedule: on demand only"


def test_scheduled_batch_runs_start_the_batch_pipeline(plan_of):
    plan = plan_of("staging")
    schedule = plan.get(
        "aws:scheduler/schedule:Schedule", "mlplatform-staging-mnist-keras-batch-schedule"
    )
    pipeline = plan.get(PIPELINE, "mlplatform-staging-mnist-keras-batch")
    assert schedule.inputs["scheduleExpression"] == "cron(0 2 * * ? *)"
    assert schedule.inputs["target"]["arn"] == pipeline.outputs["arn"]
    trust = json.loads(
        plan.get("aws:iam/role:Role", "mlplatform-staging-mnist-keras-batch-schedule").inputs[
            "assumeRolePolicy"
        ]
    )
    assert trust["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"] == (
        "arn:aws:scheduler:us-east-1:123456789012:schedule-group/default"
    )


def test_batch_payload_limits_are_checked_at_plan_time(stack_variant):
    batch = {"maxPayloadMb": 50, "maxConcurrentTransforms": 4}
    path = stack_variant("dev", {"mlplatform:models": [{"name": "digits", "batch": batch}]})
    with pytest.raises(
        StackConfigError,
        match=r"models\[0\]\.batch.*= 200 MB, above 100 MB \[batch-transform-payload: https:",
    ):
        load_stack_file(path)


def test_the_batch_input_may_be_external_only_on_purpose(stack_variant, tmp_path: Path):
    batch = {"input": {"uri": "s3://other-team/scores/"}}
    path = stack_variant("dev", {"mlplatform:models": [{"name": "digits", "batch": batch}]})
    with pytest.raises(StackConfigError, match=r"batch\.input.*outside the stack's buckets"):
        load_stack_file(path)


def test_training_logs_to_the_stacks_mlflow_server_when_tracking_is_on(plan_of):
    plan = plan_of("prod")
    server = plan.get("aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer", "mlplatform-prod")
    artifacts = plan.outputs["bucketNames"]["artifacts"]
    assert server.inputs["artifactStoreUri"] == f"s3://{artifacts}/mlflow/"
    assert server.inputs["trackingServerSize"] == "Small"
    arn = plan.outputs["trackingServerArn"]
    definition = json.loads(
        plan.get(PIPELINE, "mlplatform-prod-digits").inputs["pipelineDefinition"]
    )
    train = next(s for s in definition["Steps"] if s["Type"] == "Training")["Arguments"]
    assert train["Environment"] == {
        "MLFLOW_EXPERIMENT_NAME": "digits",
        "MLFLOW_TRACKING_URI": arn,
    }
    policy = json.loads(
        plan.get(
            "aws:iam/rolePolicy:RolePolicy", "mlplatform-prod-digits-sagemaker-training"
        ).inputs["policy"]
    )
    (logging,) = [s for s in policy["Statement"] if s["Sid"] == "LogRunsToMlflow"]
    assert logging["Resource"] == arn
    assert all(a.startswith("sagemaker-mlflow:") and "*" not in a for a in logging["Action"])


def test_no_tracking_server_unless_the_stack_asks(plan_of):
    plan = plan_of("dev")
    assert not plan.of_type("aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer")
    definition = json.loads(
        plan.get(PIPELINE, "mlplatform-dev-digits").inputs["pipelineDefinition"]
    )
    train = next(s for s in definition["Steps"] if s["Type"] == "Training")["Arguments"]
    assert "Environment" not in train


def test_training_records_a_drift_baseline_when_the_endpoint_captures_data(plan_of):
    plan = plan_of("prod")
    definition = json.loads(
        plan.get(PIPELINE, "mlplatform-prod-digits").inputs["pipelineDefinition"]
    )
    steps = [s["Name"] for s in definition["Steps"]]
    assert steps == ["Prepare", "Train", "Evaluate", "MeetsThreshold"]
    gate = definition["Steps"][-1]["Arguments"]
    assert [s["Name"] for s in gate["IfSteps"]] == ["Register", "Baseline"], "only gated models"
    baseline = gate["IfSteps"][1]["Arguments"]
    command = baseline["AppSpecification"]["ContainerEntrypoint"]
    assert command[:4] == ["python", "-m", "training.drift", "baseline"]
    (output,) = baseline["ProcessingOutputConfig"]["Outputs"]
    artifacts = plan.outputs["bucketNames"]["artifacts"]
    assert output["S3Output"]["S3Uri"] == f"s3://{artifacts}/monitoring/digits/baseline"
    dev = json.loads(
        plan_of("dev").get(PIPELINE, "mlplatform-dev-digits").inputs["pipelineDefinition"]
    )
    assert [s["Name"] for s in dev["Steps"][-1]["Arguments"]["IfSteps"]] == ["Register"]


def test_captured_requests_are_checked_for_drift_on_a_schedule_with_an_alarm(plan_of):
    plan = plan_of("prod")
    pipeline = plan.get(PIPELINE, "mlplatform-prod-digits-monitor")
    (check,) = json.loads(pipeline.inputs["pipelineDefinition"])["Steps"]
    args = check["Arguments"]
    artifacts = plan.outputs["bucketNames"]["artifacts"]
    command = args["AppSpecification"]["ContainerEntrypoint"]
    assert command[:4] == ["python", "-m", "training.drift", "check"]
    options = dict(zip(command[4::2], command[5::2], strict=True))
    assert options["--baseline"] == f"s3://{artifacts}/monitoring/digits/baseline/baseline.json"
    assert options["--capture"] == f"s3://{artifacts}/data-capture/digits/"
    assert options["--metric-namespace"] == "mlplatform/Drift" and options["--model"] == "digits"
    assert args["AppSpecification"]["ImageUri"] == plan.outputs["imageRefs"]["digits"]["platform"]
    assert args["RoleArn"] == plan.outputs["modelRoles"]["digits"]["hosting"]
    schedule = plan.get(
        "aws:scheduler/schedule:Schedule", "mlplatform-prod-digits-monitor-schedule"
    )
    assert schedule.inputs["scheduleExpression"] == "rate(1 day)"
    alarm = plan.get(ALARM, "mlplatform-prod-digits-drift").inputs
    assert (alarm["namespace"], alarm["metricName"]) == ("mlplatform/Drift", "DriftScore")
    assert alarm["threshold"] == 0.2 and alarm["alarmActions"] == [plan.outputs["alertTopicArn"]]
    assert not [p for p in plan_of("dev").of_type(PIPELINE) if p.name.endswith("-monitor")]
