"""SageMaker pipeline definitions: valid as SageMaker would read them, spot-safe, tunable,
and byte-identical when nothing changed."""

from __future__ import annotations

import json
import re
from typing import Any

import botocore.session
import pytest

from infra import instances
from infra.config import StackConfigError
from infra.stackfile import STACKS_DIR, load_stack_file
from mlplatform.plan import Plan, plan_stack
from mlplatform.variants import write_variant

PIPELINE = "aws:sagemaker/pipeline:Pipeline"
# Step type -> (botocore operation whose request the step's Arguments are, members the
# pipeline fills in itself).
STEP_REQUESTS = {
    "Training": ("CreateTrainingJob", {"TrainingJobName"}),
    "Tuning": ("CreateHyperParameterTuningJob", {"HyperParameterTuningJobName"}),
    "Processing": ("CreateProcessingJob", {"ProcessingJobName"}),
    "RegisterModel": ("CreateModelPackage", set()),
}
SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")


def definitions(plan: Plan) -> dict[str, dict]:
    return {
        r.inputs["pipelineName"]: json.loads(r.inputs["pipelineDefinition"])
        for r in plan.of_type(PIPELINE)
    }


def all_steps(steps: list[dict]) -> list[dict]:
    """Steps in order, including those nested in a Condition's branches."""
    out = []
    for step in steps:
        out.append(step)
        if step["Type"] == "Condition":
            out += all_steps(step["Arguments"]["IfSteps"] + step["Arguments"]["ElseSteps"])
    return out


def references(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["Get"]] if isinstance(value.get("Get"), str) else []
        return found + [r for v in value.values() for r in references(v)]
    if isinstance(value, list):
        return [r for v in value for r in references(v)]
    return []


def shape_errors(value: Any, shape, path: str) -> list[str]:
    """Where `value` does not fit a botocore shape: unknown or missing members, bad enums,
    wrong types. Run-time expressions (`Get`, `Std:Join`) stand in for any scalar."""
    expression = isinstance(value, dict) and ({"Get"} == set(value) or {"Std:Join"} == set(value))
    if shape.type_name == "structure":
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        errors = [
            f"{path}.{k}: not a member of {shape.name}" for k in value if k not in shape.members
        ]
        errors += [
            f"{path}: missing required {k}" for k in shape.required_members if k not in value
        ]
        for key, item in value.items():
            if key in shape.members:
                errors += shape_errors(item, shape.members[key], f"{path}.{key}")
        return errors
    if shape.type_name == "list":
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [
            e
            for i, item in enumerate(value)
            for e in shape_errors(item, shape.member, f"{path}[{i}]")
        ]
    if shape.type_name == "map":
        if not isinstance(value, dict):
            return [f"{path}: expected a map"]
        return [
            e for k, item in value.items() for e in shape_errors(item, shape.value, f"{path}[{k}]")
        ]
    if expression:
        return []
    if shape.type_name == "string":
        if not isinstance(value, str):
            return [f"{path}: expected a string, got {value!r}"]
        if shape.enum and value not in shape.enum:
            return [f"{path}: {value!r} is not one of {shape.name}"]
        if len(value) > shape.metadata.get("max", len(value)):
            return [f"{path}: longer than {shape.metadata['max']} characters"]
        try:  # some patterns are Java-only (\\p{...}); those are left to AWS
            pattern = re.compile(shape.metadata["pattern"], re.DOTALL)
        except (KeyError, re.error):
            return []
        if not pattern.fullmatch(value):
            return [f"{path}: {value!r} does not match {shape.name}'s pattern"]
        return []
    if shape.type_name in ("integer", "long"):
        return (
            []
            if isinstance(value, int) and not isinstance(value, bool)
            else [f"{path}: expected an integer"]
        )
    if shape.type_name in ("float", "double"):
        return [] if isinstance(value, (int, float)) else [f"{path}: expected a number"]
    if shape.type_name == "boolean":
        return [] if isinstance(value, bool) else [f"{path}: expected a boolean"]
    return []


def test_every_stack_defines_one_pipeline_per_sagemaker_trained_model(plan: Plan):
    expected = {
        f"mlplatform-{plan.stack}-{m.name}"
        for m in plan.config.models
        if m.training.plane == "sagemaker"
    }
    assert set(definitions(plan)) == expected
    assert expected, "every shipped stack trains the digits reference model on SageMaker"


def test_definitions_reference_only_declared_parameters_and_earlier_steps(plan: Plan):
    for name, definition in definitions(plan).items():
        assert definition["Version"] == "2020-12-01"
        parameters = {p["Name"] for p in definition["Parameters"]}
        steps = all_steps(definition["Steps"])
        names = [s["Name"] for s in steps]
        assert len(names) == len(set(names)), f"{name}: step names repeat"
        seen: set[str] = set()
        for step in steps:
            for ref in references(step):
                kind, _, rest = ref.partition(".")
                target = re.split(r"[.\[]", rest)[0]
                if kind == "Parameters":
                    assert target in parameters, f"{name}/{step['Name']}: unknown parameter {ref}"
                elif kind == "Steps":
                    assert target in seen, f"{name}/{step['Name']}: {ref} is not an earlier step"
                else:
                    assert ref == "Execution.PipelineExecutionId", (
                        f"{name}: unexpected reference {ref}"
                    )
            seen.add(step["Name"])


def test_step_arguments_are_valid_sagemaker_requests(plan: Plan):
    for name, definition in definitions(plan).items():
        for step in all_steps(definition["Steps"]):
            if step["Type"] not in STEP_REQUESTS:
                continue
            operation, filled_in = STEP_REQUESTS[step["Type"]]
            shape = SAGEMAKER.operation_model(operation).input_shape
            errors = [
                e
                for e in shape_errors(step["Arguments"], shape, f"{name}/{step['Name']}")
                if not any(e.endswith(f"missing required {m}") for m in filled_in)
            ]
            assert not errors, "\n".join(errors)


def test_the_shape_check_catches_a_bad_enum_and_a_missing_field():
    shape = SAGEMAKER.operation_model("CreateTrainingJob").input_shape
    errors = shape_errors(
        {
            "AlgorithmSpecification": {"TrainingInputMode": "Sideways"},
            "RoleArn": "arn:aws:iam::1:role/x",
        },
        shape,
        "job",
    )
    assert any("Sideways" in e for e in errors)
    assert any("missing required OutputDataConfig" in e for e in errors)


def _train_arguments(definition: dict) -> dict:
    first = definition["Steps"][0]
    return (
        first["Arguments"]
        if first["Type"] == "Training"
        else first["Arguments"]["TrainingJobDefinition"]
    )


def test_training_runs_on_managed_spot_with_checkpoints_in_the_stack_bucket_and_a_max_wait(
    plan: Plan,
):
    checkpoints = plan.outputs["bucketNames"]["checkpoints"]
    for model in plan.config.models:
        if model.training.plane != "sagemaker":
            continue
        job = _train_arguments(definitions(plan)[f"mlplatform-{plan.stack}-{model.name}"])
        assert job["EnableManagedSpotTraining"] is model.training.spot is True
        stop = job["StoppingCondition"]
        assert stop["MaxRuntimeInSeconds"] == model.training.max_runtime_hours * 3600
        assert (
            stop["MaxWaitTimeInSeconds"]
            == model.training.wait_hours * 3600
            >= stop["MaxRuntimeInSeconds"]
        )
        if model.training.tuning:
            assert "CheckpointConfig" not in job, "parallel trials must not share checkpoints"
        else:
            uri = job["CheckpointConfig"]["S3Uri"]["Std:Join"]["Values"]
            assert uri[0] == f"s3://{checkpoints}/{model.name}"
            assert uri[1] == {"Get": "Execution.PipelineExecutionId"}, (
                "each execution checkpoints apart"
            )
            assert job["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
        assert job["OutputDataConfig"]["KmsKeyId"] == plan.outputs["kmsKeyArn"]
        # Instance-store types (g5...) encrypt in hardware; SageMaker refuses a key there.
        volume_key = job["ResourceConfig"].get("VolumeKmsKeyId")
        local = instances.has_instance_storage(model.training.instance_type)
        assert volume_key == (None if local else plan.outputs["kmsKeyArn"])


@pytest.mark.parametrize(
    ("instance_type", "takes_volume_key"),
    [("ml.g5.xlarge", False), ("ml.p4d.24xlarge", False), ("ml.m5.xlarge", True)],
)
def test_training_volume_key_only_on_ebs_backed_types(
    plan_variant, instance_type, takes_volume_key
):
    # SageMaker refuses VolumeKmsKeyId on instance-store (NVMe) types: the hardware encrypts them.
    overrides = {
        "mlplatform:models": [{"name": "digits", "training": {"instanceType": instance_type}}]
    }
    plan = plan_variant("dev", overrides)
    resources = _train_arguments(definitions(plan)["mlplatform-variant-digits"])["ResourceConfig"]
    assert resources["InstanceType"] == instance_type
    expected = plan.outputs["kmsKeyArn"] if takes_volume_key else None
    assert resources.get("VolumeKmsKeyId") == expected


def test_prod_trains_on_two_hosts_from_config_with_the_content_tagged_image(plan_of):
    plan = plan_of("prod")
    definition = definitions(plan)["mlplatform-prod-digits"]
    params = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    assert params["TrainingInstanceCount"] == 2
    job = _train_arguments(definition)
    assert job["ResourceConfig"]["InstanceType"] == "ml.g5.2xlarge"
    assert job["ResourceConfig"]["InstanceCount"] == {"Get": "Parameters.TrainingInstanceCount"}
    assert job["AlgorithmSpecification"]["TrainingImage"] == plan.outputs["imageRefs"]["training"]
    assert job["HyperParameters"] == {"batch_size": "128", "epochs": "12"}
    assert job["EnableInterContainerTrafficEncryption"] is True


def test_models_register_only_when_the_metric_meets_the_threshold(plan: Plan):
    for model in plan.config.models:
        if model.training.plane != "sagemaker":
            continue
        definition = definitions(plan)[f"mlplatform-{plan.stack}-{model.name}"]
        condition = next(s for s in definition["Steps"] if s["Type"] == "Condition")["Arguments"]
        (check,) = condition["Conditions"]
        assert check["Type"] == "GreaterThanOrEqualTo"
        assert check["LeftValue"]["Std:JsonGet"]["Path"] == model.training.metric
        assert check["RightValue"] == {"Get": "Parameters.MetricThreshold"}
        default = next(p for p in definition["Parameters"] if p["Name"] == "MetricThreshold")
        assert default["DefaultValue"] == model.training.threshold
        (register,) = condition["IfSteps"]
        assert register["Type"] == "RegisterModel"
        assert (
            register["Arguments"]["ModelPackageGroupName"]
            == f"mlplatform-{plan.stack}-{model.name}"
        )
        assert (
            register["Arguments"]["InferenceSpecification"]["Containers"][0]["Image"]
            == plan.outputs["imageRefs"]["serving"]
        )
        assert [s["Type"] for s in condition["ElseSteps"]] == ["Fail"]


def test_hyperparameter_ranges_turn_training_into_tuning_and_the_best_job_is_evaluated(plan_of):
    definition = definitions(plan_of("staging"))["mlplatform-staging-digits"]
    tune, evaluate = definition["Steps"][0], definition["Steps"][1]
    assert tune["Type"] == "Tuning"
    config = tune["Arguments"]["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {
        "Type": "Maximize",
        "MetricName": "test:accuracy",
    }
    ranges = config["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"] == [
        {"Name": "lr", "MinValue": "0.0003", "MaxValue": "0.01", "ScalingType": "Logarithmic"}
    ]
    assert ranges["CategoricalParameterRanges"] == [{"Name": "width", "Values": ["16", "32", "64"]}]
    metric_names = {
        d["Name"]
        for d in tune["Arguments"]["TrainingJobDefinition"]["AlgorithmSpecification"][
            "MetricDefinitions"
        ]
    }
    assert "test:accuracy" in metric_names
    model_uri = evaluate["Arguments"]["ProcessingInputs"][0]["S3Input"]["S3Uri"]["Std:Join"][
        "Values"
    ]
    assert {"Get": "Steps.Tune.TrainingJobSummaries[0].TrainingJobName"} in model_uri
    assert model_uri[-1] == "output/model.tar.gz"


def test_a_tuning_objective_the_image_does_not_report_is_refused(tmp_path):
    tuning = {
        "ranges": {"lr": {"type": "continuous", "min": 0.001, "max": 0.01}},
        "objectiveMetric": "val:f1",
    }
    path = write_variant(
        tmp_path,
        "staging",
        {"mlplatform:models": [{"name": "digits", "training": {"tuning": tuning}}]},
    )
    with pytest.raises(
        StackConfigError,
        match=r"models\[0\]\.training\.tuning\.objectiveMetric.*reports only.*test:accuracy",
    ):
        load_stack_file(path)


def test_an_unchanged_replan_yields_identical_definitions(plan_of):
    first = plan_of("prod")
    again = plan_stack(STACKS_DIR / "Pulumi.prod.yaml", "prod")
    for kind in (
        PIPELINE,
        "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
        "docker-build:index:Image",
    ):
        before = {r.name: json.dumps(r.inputs, sort_keys=True) for r in first.of_type(kind)}
        after = {r.name: json.dumps(r.inputs, sort_keys=True) for r in again.of_type(kind)}
        assert before == after, kind
    raw = first.of_type(PIPELINE)[0].inputs["pipelineDefinition"]
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")), (
        "canonical JSON"
    )


def test_scheduled_retraining_starts_the_pipeline_with_a_role_that_can_do_only_that(plan_of):
    plan = plan_of("prod")
    (schedule,) = plan.of_type("aws:scheduler/schedule:Schedule")
    assert schedule.inputs["scheduleExpression"] == plan.config.models[0].training.schedule
    (pipeline,) = plan.of_type(PIPELINE)
    assert schedule.inputs["target"]["arn"] == pipeline.outputs["arn"]
    policy = json.loads(
        plan.get("aws:iam/rolePolicy:RolePolicy", "mlplatform-prod-digits-schedule").inputs[
            "policy"
        ]
    )
    assert policy["Statement"] == [
        {
            "Effect": "Allow",
            "Action": "sagemaker:StartPipelineExecution",
            "Resource": pipeline.outputs["arn"],
        }
    ]
    assert not plan_of("dev").of_type("aws:scheduler/schedule:Schedule"), "dev retrains by hand"


def test_the_pipeline_role_passes_only_the_execution_role_and_requires_the_stack_key(plan: Plan):
    for model in plan.config.models:
        if model.training.plane != "sagemaker":
            continue
        name = f"mlplatform-{plan.stack}-{model.name}-pipeline"
        statements = {
            s["Sid"]: s
            for s in json.loads(plan.get("aws:iam/rolePolicy:RolePolicy", name).inputs["policy"])[
                "Statement"
            ]
        }
        assert (
            statements["PassOnlyTheExecutionRole"]["Resource"]
            == plan.outputs["sagemakerExecutionRoleArn"]
        )
        condition = statements["RunStepJobsWithStackKey"]["Condition"]
        assert condition["StringEquals"] == {"sagemaker:OutputKmsKey": plan.outputs["kmsKeyArn"]}
        assert condition["StringEqualsIfExists"] == {
            "sagemaker:VolumeKmsKey": plan.outputs["kmsKeyArn"]
        }
