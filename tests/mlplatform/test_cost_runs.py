"""Every run priced: training started by hand or by a schedule, tuning, pipeline steps, Batch
Transform and drift checks, each at its maximum runtime and idle at zero."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mlplatform.cost import estimate, usage_of
from mlplatform.prices import load
from policies.offline import stack_resources
from policies.rules import StackResource

PRICES = load("us-east-1")
SPOT = PRICES.assumptions["sagemakerSpotFactor"]
ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/"
FIXTURES = Path(__file__).resolve().parents[1] / "stacks"


def _r(type_: str, logical: str, **props) -> StackResource:
    return StackResource(type_, logical, f"urn:{logical}", props)


def _pipeline(name: str, *steps: dict) -> StackResource:
    definition = {"Parameters": [{"Name": "Count", "DefaultValue": 2}], "Steps": list(steps)}
    return _r(
        "aws:sagemaker/pipeline:Pipeline",
        name,
        arn=ARN + name,
        pipelineDefinition=json.dumps(definition),
    )


def _train(instance: str = "ml.g5.2xlarge", hours: int = 4, spot: bool = True) -> dict:
    return {
        "Name": "Train",
        "Type": "Training",
        "Arguments": {
            "ResourceConfig": {
                "InstanceType": instance,
                "InstanceCount": {"Get": "Parameters.Count"},
            },
            "StoppingCondition": {
                "MaxRuntimeInSeconds": hours * 3600,
                "MaxWaitTimeInSeconds": 99 * 3600,
            },
            "EnableManagedSpotTraining": spot,
        },
    }


def _processing(name: str, instance: str = "ml.m5.xlarge") -> dict:
    return {
        "Name": name,
        "Type": "Processing",
        "Arguments": {
            "ProcessingResources": {
                "ClusterConfig": {"InstanceType": instance, "InstanceCount": 1}
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
    }


def _schedule(name: str, expression: str) -> StackResource:
    return _r(
        "aws:scheduler/schedule:Schedule",
        f"{name}-schedule",
        scheduleExpression=expression,
        target={"arn": ARN + name},
    )


def _line(result, kind: str):
    [line] = [line for line in result.lines if line.kind == kind]
    return line


def test_hand_started_training_is_priced_by_the_environments_runs_a_month():
    pipeline = _pipeline("mlplatform-dev-digits", _train())
    staging = usage_of("staging", {"trainingRunsPerMonth": 10}, [{"name": "digits"}])
    result = estimate([pipeline], PRICES, staging)
    line = _line(result, "training")
    # 10 runs x 2 hosts x 4 h at the spot share of $1.515/h; the 99 h spot wait is not billed.
    assert (line.monthly_min, line.monthly_max) == (0, round(10 * 2 * 4 * 1.515 * SPOT, 2))
    assert line.expected(0.25) == line.monthly_max  # a run is usage, not scale-out
    assert (
        "digits training: 10 runs a month assumed (staging policy default; set "
        "training.runsPerMonth)" in result.assumptions
    )


def test_a_models_own_runs_a_month_replace_the_environment_default():
    pipeline = _pipeline("mlplatform-dev-digits", _train(spot=False))
    own = usage_of("dev", None, [{"name": "digits", "training": {"runsPerMonth": 3}}])
    result = estimate([pipeline], PRICES, own)
    assert _line(result, "training").monthly_max == round(3 * 2 * 4 * 1.515, 2)
    assert (
        "digits training: 3 runs a month (stack file: training.runsPerMonth)" in result.assumptions
    )


def test_a_model_is_matched_by_its_longest_name():
    pipeline = _pipeline("mlplatform-dev-x-digits", _train())
    usage = usage_of(
        "dev",
        None,
        [{"name": "digits", "training": {"runsPerMonth": 1}}, {"name": "x-digits", "training": {}}],
    )
    result = estimate([pipeline], PRICES, usage)
    assert any(a.startswith("x-digits training: 20 runs") for a in result.assumptions)


def test_scheduled_training_costs_the_runs_its_schedule_starts():
    name = "mlplatform-prod-digits"
    usage = usage_of("prod", None, [{"name": "digits", "training": {"runsPerMonth": 50}}])
    result = estimate([_pipeline(name, _train()), _schedule(name, "rate(7 days)")], PRICES, usage)
    runs = 730 / 24 / 7
    assert _line(result, "training").monthly_max == pytest.approx(runs * 8 * 1.515 * SPOT, abs=0.01)
    assert "digits training: 4.3 runs a month (its schedule rate(7 days))" in result.assumptions
    assert _line(result, "schedule").monthly_max == 0  # EventBridge Scheduler: $1 a million


def test_tuning_costs_max_jobs_at_max_runtime_whatever_its_parallelism():
    def tune(parallel: int) -> dict:
        train = _train("ml.g5.xlarge", hours=2)["Arguments"]
        limits = {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": parallel}
        return {
            "Name": "Tune",
            "Type": "Tuning",
            "Arguments": {
                "HyperParameterTuningJobConfig": {"ResourceLimits": limits},
                "TrainingJobDefinition": train,
            },
        }

    one, three = (_line(estimate([_pipeline("p", tune(n))], PRICES), "tuning") for n in (1, 3))
    assert one.monthly_max == three.monthly_max == round(20 * 6 * 2 * 2 * 1.408 * SPOT, 2)
    assert "x 6 jobs x 2 h" in one.detail


def test_pipeline_steps_around_training_are_priced_per_run_including_conditional_ones():
    condition = {
        "Name": "MeetsThreshold",
        "Type": "Condition",
        "Arguments": {"IfSteps": [_processing("Baseline")], "ElseSteps": []},
    }
    pipeline = _pipeline("p", _processing("Prepare"), _train(), _processing("Evaluate"), condition)
    line = _line(estimate([pipeline], PRICES), "pipeline steps")
    # Three processing jobs of 1 h on ml.m5.xlarge ($0.23/h, on demand) for 20 runs.
    assert (line.monthly_min, line.monthly_max) == (0, round(20 * 3 * 0.23, 2))
    assert "Baseline (ml.m5.xlarge, 1 h)" in line.detail


def _transform(instance: str = "ml.m5.large", count: int = 2) -> dict:
    resources = {"InstanceType": instance, "InstanceCount": count}
    return {"Name": "Score", "Type": "Transform", "Arguments": {"TransformResources": resources}}


def test_batch_transform_costs_runs_times_hours_per_run_times_instances():
    name = "mlplatform-dev-digits-batch"
    batch = {"runsPerMonth": 12, "hoursPerRun": 1.5}
    usage = usage_of("dev", None, [{"name": "digits", "batch": batch}])
    # The model's own runsPerMonth wins over the schedule for batch.
    resources = [_pipeline(name, _transform()), _schedule(name, "rate(1 day)")]
    line = _line(estimate(resources, PRICES, usage), "batch transform")
    assert (line.monthly_min, line.monthly_max) == (0, round(12 * 1.5 * 2 * 0.115, 2))


def test_batch_without_its_own_numbers_follows_the_schedule_else_the_environment():
    name = "mlplatform-dev-digits-batch"
    usage = usage_of("dev", {"batchRunsPerMonth": 4}, [{"name": "digits", "batch": {}}])
    scheduled = estimate(
        [_pipeline(name, _transform()), _schedule(name, "rate(1 day)")], PRICES, usage
    )
    assert _line(scheduled, "batch transform").monthly_max == pytest.approx(
        730 / 24 * 2 * 0.115, abs=0.01
    )
    by_hand = estimate([_pipeline(name, _transform())], PRICES, usage)
    assert _line(by_hand, "batch transform").monthly_max == round(4 * 2 * 0.115, 2)
    assert "digits batch: 4 runs a month assumed (dev policy default; set batch.runsPerMonth)" in (
        by_hand.assumptions
    )


def test_drift_checks_cost_their_daily_runs_on_a_small_instance():
    name = "mlplatform-prod-digits-monitor"
    resources = [
        _pipeline(name, _processing("CheckDrift", "ml.m5.large")),
        _schedule(name, "rate(1 day)"),
    ]
    line = _line(estimate(resources, PRICES), "drift check")
    assert (line.monthly_min, line.monthly_max) == (0, round(730 / 24 * 0.115, 2))


def test_the_dev_fixtures_runs_are_all_priced_and_cost_nothing_idle(plan_of):
    from mlplatform.report import preview

    est = preview(plan_of("dev")).estimate
    runs = [line for line in est.lines if line.group == "runs"]
    kinds = {line.kind for line in runs}
    assert {"training", "pipeline steps", "batch transform"} <= kinds
    assert all(line.monthly_min == 0 < line.monthly_max for line in runs)
    # The fixture's breast-cancer batch has no schedule and no runsPerMonth: dev's default.
    assert any(a.startswith("breast-cancer batch: 4 runs a month assumed") for a in est.assumptions)


def test_a_stacks_runs_per_month_reaches_the_estimate(plan_variant):
    from mlplatform.report import preview

    models = [
        {**m, "training": {**m["training"], "runsPerMonth": 2}} for m in _fixture_models("dev")
    ]
    est = preview(plan_variant("dev", {"mlplatform:models": models})).estimate
    assert "digits training: 2 runs a month (stack file: training.runsPerMonth)" in est.assumptions


def _fixture_models(stack: str) -> list[dict]:
    document = yaml.safe_load((FIXTURES / f"Pulumi.{stack}.yaml").read_text())
    return document["config"]["mlplatform:models"]


def test_stack_resources_keep_pipeline_arns_for_schedules(plan_of):
    resources = stack_resources(plan_of("prod"))
    scheduled = {r.props["target"]["arn"] for r in resources if r.type.endswith("Schedule")}
    pipelines = {r.props.get("arn") for r in resources if r.type.endswith("Pipeline")}
    assert scheduled and scheduled <= pipelines
