"""The budget rule prices a stack with its environment's assumptions and its models' own numbers,
in the offline check and in the pack alike."""

from __future__ import annotations

import json
from pathlib import Path

from policies.offline import effective, facts, load_config
from policies.pack import stack_facts
from policies.rules import StackFacts
from policies.rules.budget import RULES, stack_usage

PIPELINE = "aws:sagemaker/pipeline:Pipeline"
POLICIES = Path(__file__).resolve().parents[2] / "policies"


def _training(name: str) -> dict:
    step = {
        "Name": "Train",
        "Type": "Training",
        "Arguments": {
            "ResourceConfig": {"InstanceType": "ml.g5.48xlarge", "InstanceCount": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 10 * 3600},
        },
    }
    return {"arn": f"arn:pipeline/{name}", "pipelineDefinition": json.dumps({"Steps": [step]})}


def _facts(budget: float, models: tuple = ()) -> StackFacts:
    return StackFacts("dev", "dev", "us-east-1", budget, models)


def test_the_environments_runs_a_month_decide_whether_training_fits(check_stack, resource):
    # One on-demand run: 10 h x $20.36 = $203.60.
    pipeline = [resource(PIPELINE, "mlplatform-dev-big", **_training("mlplatform-dev-big"))]
    assumptions = {"trainingRunsPerMonth": 4}
    assert check_stack("monthly-budget", pipeline, _facts(1000), assumptions=assumptions) == []
    [message] = check_stack(
        "monthly-budget", pipeline, _facts(1000), assumptions={"trainingRunsPerMonth": 5}
    )
    assert "$1,018.00" in message and "mlplatform-dev-big" in message


def test_a_models_runs_per_month_in_the_stack_file_override_the_environment(check_stack, resource):
    pipeline = [resource(PIPELINE, "mlplatform-dev-big", **_training("mlplatform-dev-big"))]
    model = {"name": "big", "training": {"plane": "sagemaker", "runsPerMonth": 1}}
    assert check_stack("monthly-budget", pipeline, _facts(300, (model,))) == []
    assert check_stack("monthly-budget", pipeline, _facts(300))  # 20 runs by dev's default


def test_each_environment_states_its_usage_assumptions():
    rule = RULES[0]
    runs = {}
    for environment in ("dev", "staging", "prod"):
        _level, params = effective(rule, load_config(environment))
        usage = stack_usage(params, _facts(1))
        assert set(params["assumptions"]) == set(rule.config_schema["assumptions"]["properties"])
        runs[environment] = usage["trainingRunsPerMonth"]
    assert runs == {"dev": 20, "staging": 10, "prod": 4}


def test_the_offline_check_hands_the_rule_the_stack_files_models(plan_of):
    models = facts(plan_of("dev")).models
    assert [m["name"] for m in models] == ["digits", "breast-cancer", "mnist-keras"]
    assert models[0]["training"]["maxRuntimeHours"] == 1


def test_the_pack_reads_the_models_from_the_stack_config(monkeypatch):
    models = [{"name": "digits", "training": {"runsPerMonth": 3}}]
    config = {"mlplatform:environment": "dev", "mlplatform:models": json.dumps(models)}
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(config))
    monkeypatch.setenv("PULUMI_STACK", "dev")
    found = stack_facts()
    assert found.models == tuple(models)
    usage = stack_usage({}, found)
    assert usage.model("mlplatform-dev-digits").training_runs == 3
