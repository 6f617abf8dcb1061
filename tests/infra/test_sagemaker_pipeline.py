"""SageMaker pipeline definitions, per model from its manifest: valid as SageMaker would read them,
prepared, spot-safe, tunable, gated by an independent evaluation, byte-identical when unchanged."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from infra import instances
from infra.config import StackConfigError
from infra.stackfile import load_stack_file
from mlplatform.plan import Plan, plan_stack

PIPELINE = "aws:sagemaker/pipeline:Pipeline"
# Step type -> (botocore operation whose request the step's Arguments are, members the
# pipeline fills in itself).
STEP_REQUESTS = {
    "Training": ("CreateTrainingJob", {"TrainingJobName"}),
    "Tuning": ("CreateHyperParameterTuningJob", {"HyperParameterTuningJobName"}),
    "Processing": ("CreateProcessingJob", {"ProcessingJobName"}),
    "RegisterModel": ("CreateModelPackage", set()),
    "Transform": ("CreateTransformJob", {"TransformJobName"}),
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


def sagemaker_models(plan: Plan) -> list:
    return [m for m in plan.config.models if m.training.plane == "sagemaker"]


def step(definition: dict, name: str) -> dict:
    return next(s for s in all_steps(definition["Steps"]) if s["Name"] == name)


def _train_arguments(definition: dict) -> dict:
    train = next(s for s in definition["Steps"] if s["Type"] in ("Training", "Tuning"))
    return (
        train["Arguments"]
        if train["Type"] == "Training"
        else train["Arguments"]["TrainingJobDefinition"]
    )


def test_every_stack_defines_one_pipeline_per_sagemaker_trained_model(plan: Plan):
    expected = {f"mlplatform-{plan.stack}-{m.name}" for m in sagemaker_models(plan)}
    expected |= {f"mlplatform-{plan.stack}-{m.name}-batch" for m in plan.config.models if m.batch}
    expected |= {
        f"mlplatform-{plan.stack}-{m.name}-monitor"
        for m in plan.config.models
        if getattr(m.serving, "data_capture_percent", 0)
    }
    assert set(definitions(plan)) == expected
    assert expected, "each of the suite's stacks trains models on SageMaker"


def test_models_with_a_prepare_entry_point_prepare_every_channel_and_the_test_split(plan: Plan):
    datasets = plan.outputs["bucketNames"]["datasets"]
    for model in sagemaker_models(plan):
        manifest = model.manifest
        definition = definitions(plan)[f"mlplatform-{plan.stack}-{model.name}"]
        names = [s["Name"] for s in definition["Steps"]]
        assert manifest.prepare is not None, "every reference model prepares its data"
        assert names[0] == "Prepare"
        prepare = step(definition, "Prepare")["Arguments"]
        assert (
            prepare["AppSpecification"]["ImageUri"]
            == plan.outputs["imageRefs"][model.name]["platform"]
        )
        entry = prepare["AppSpecification"]["ContainerEntrypoint"]
        assert entry[:2] == ["python", f"/opt/ml/code/{manifest.prepare.entry_point}"]
        assert entry[2:4] == ["--out", "/opt/ml/processing/output"]
        outputs = {
            o["OutputName"]: o["S3Output"] for o in prepare["ProcessingOutputConfig"]["Outputs"]
        }
        assert set(outputs) == {*manifest.train.channels, "test"}
        for name, output in outputs.items():
            assert output["LocalPath"] == f"/opt/ml/processing/output/{name}"
            values = output["S3Uri"]["Std:Join"]["Values"]
            assert values[0] == f"s3://{datasets}/{model.name}/prepared"
            assert values[1:] == [{"Get": "Execution.PipelineExecutionId"}, name]
        channels = {
            c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
            for c in _train_arguments(definition)["InputDataConfig"]
        }
        assert set(channels) == set(manifest.train.channels), "training never reads `test`"
        for name, uri in channels.items():
            assert uri == {
                "Get": f"Steps.Prepare.ProcessingOutputConfig.Outputs['{name}'].S3Output.S3Uri"
            }


def test_training_reads_the_channels_the_model_declares_where_the_stack_puts_them(plan_variant):
    overrides = {
        "mlplatform:models": [
            {"name": "digits", "training": {"channels": {"train": {"prefix": "shared/digits-v2/"}}}}
        ]
    }
    plan = plan_variant("dev", overrides)
    definition = definitions(plan)["mlplatform-variant-digits"]
    (channel,) = _train_arguments(definition)["InputDataConfig"]
    assert channel["ChannelName"] == "train"
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == {"Get": "Parameters.ChannelTrainUri"}
    parameters = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    datasets = plan.outputs["bucketNames"]["datasets"]
    assert parameters["ChannelTrainUri"] == f"s3://{datasets}/shared/digits-v2/"
    outputs = step(definition, "Prepare")["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    assert {o["OutputName"] for o in outputs} == {"test"}, "prepare still makes the test split"


def test_the_evaluation_is_independent_of_what_training_wrote(plan: Plan):
    for model in sagemaker_models(plan):
        definition = definitions(plan)[f"mlplatform-{plan.stack}-{model.name}"]
        evaluate = step(definition, "Evaluate")
        args = evaluate["Arguments"]
        assert (
            args["AppSpecification"]["ImageUri"]
            == plan.outputs["imageRefs"][model.name]["platform"]
        )
        command = args["AppSpecification"]["ContainerEntrypoint"][2]
        assert "python -m serving evaluate" in command and "--variants all" in command
        assert "metrics.json" not in command, "the job's own report is never read"
        inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in args["ProcessingInputs"]}
        assert inputs["test"] == {
            "Get": "Steps.Prepare.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"
        }
        assert evaluate["PropertyFiles"] == [
            {
                "PropertyFileName": "EvaluationReport",
                "OutputName": "evaluation",
                "FilePath": "evaluation.json",
            }
        ]


def test_models_register_only_when_the_evaluated_metric_meets_their_threshold(plan: Plan):
    for model in sagemaker_models(plan):
        objective = model.manifest.train.objective
        definition = definitions(plan)[f"mlplatform-{plan.stack}-{model.name}"]
        condition = step(definition, "MeetsThreshold")["Arguments"]
        (check,) = condition["Conditions"]
        better = "GreaterThanOrEqualTo" if objective.goal == "maximize" else "LessThanOrEqualTo"
        assert check["Type"] == better
        assert check["LeftValue"]["Std:JsonGet"] == {
            "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"},
            "Path": f"metrics.{objective.metric}.value",
        }
        default = next(p for p in definition["Parameters"] if p["Name"] == "MetricThreshold")
        assert default["DefaultValue"] == objective.threshold
        register = condition["IfSteps"][0]
        assert (
            register["Arguments"]["ModelPackageGroupName"]
            == f"mlplatform-{plan.stack}-{model.name}"
        )
        container = register["Arguments"]["InferenceSpecification"]["Containers"][0]
        assert container["Image"] == plan.outputs["imageRefs"][model.name]["serving"]
        assert [s["Type"] for s in condition["ElseSteps"]] == ["Fail"]


def test_each_model_gates_on_its_own_metric(plan_of):
    paths = {
        name: step(d, "MeetsThreshold")["Arguments"]["Conditions"][0]["LeftValue"]["Std:JsonGet"][
            "Path"
        ]
        for name, d in definitions(plan_of("dev")).items()
        if not name.endswith("-batch")
    }
    assert paths == {
        "mlplatform-dev-digits": "metrics.accuracy.value",
        "mlplatform-dev-breast-cancer": "metrics.f1_macro.value",
        "mlplatform-dev-mnist-keras": "metrics.accuracy.value",
    }


def test_training_runs_on_managed_spot_with_checkpoints_in_the_stack_bucket_and_a_max_wait(
    plan: Plan,
):
    checkpoints = plan.outputs["bucketNames"]["checkpoints"]
    for model in sagemaker_models(plan):
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
        assert job["RoleArn"] == plan.outputs["modelRoles"][model.name]["training"]


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


def test_prod_trains_on_two_hosts_with_the_models_own_image_metrics_and_stack_values(plan_of):
    plan = plan_of("prod")
    definition = definitions(plan)["mlplatform-prod-digits"]
    params = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    assert params["TrainingInstanceCount"] == 2
    job = _train_arguments(definition)
    assert job["ResourceConfig"]["InstanceType"] == "ml.g5.2xlarge"
    assert job["ResourceConfig"]["InstanceCount"] == {"Get": "Parameters.TrainingInstanceCount"}
    algorithm = job["AlgorithmSpecification"]
    assert algorithm["TrainingImage"] == plan.outputs["imageRefs"]["digits"]["training"]
    declared = plan.config.models[0].manifest.train.metrics
    assert algorithm["MetricDefinitions"] == [
        {"Name": m.name, "Regex": m.pattern()} for m in declared
    ]
    assert job["HyperParameters"] == {"batch_size": "128", "epochs": "12"}
    assert job["EnableInterContainerTrafficEncryption"] is True


def test_hyperparameter_ranges_turn_training_into_tuning_on_the_models_metric(plan_of):
    definition = definitions(plan_of("staging"))["mlplatform-staging-digits"]
    tune = step(definition, "Tune")
    config = tune["Arguments"]["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {
        "Type": "Maximize",
        "MetricName": "validation:accuracy",  # digits' model.yaml tuningMetric
    }
    ranges = config["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"] == [
        {"Name": "lr", "MinValue": "0.0003", "MaxValue": "0.01", "ScalingType": "Logarithmic"}
    ]
    assert ranges["CategoricalParameterRanges"] == [{"Name": "width", "Values": ["16", "32", "64"]}]
    evaluate = step(definition, "Evaluate")["Arguments"]
    model_uri = next(i for i in evaluate["ProcessingInputs"] if i["InputName"] == "model")
    values = model_uri["S3Input"]["S3Uri"]["Std:Join"]["Values"]
    assert {"Get": "Steps.Tune.TrainingJobSummaries[0].TrainingJobName"} in values
    assert values[-1] == "output/model.tar.gz"


@pytest.mark.parametrize(
    ("tuning", "key", "message"),
    [
        (
            {
                "ranges": {"lr": {"type": "continuous", "min": 0.001, "max": 0.01}},
                "objectiveMetric": "val:f1",
            },
            r"tuning\.objectiveMetric = 'val:f1'",
            "declares no metric 'val:f1'",
        ),
        (
            {"ranges": {"hidden": {"type": "integer", "min": 8, "max": 64}}},
            r"tuning\.ranges\.hidden",
            "not a hyperparameter of digits",
        ),
        (
            {"ranges": {"lr": {"type": "integer", "min": 1, "max": 5}}},
            r"tuning\.ranges\.lr\.type",
            "a integer range for a float hyperparameter",
        ),
    ],
)
def test_a_tuning_search_the_model_cannot_run_is_a_plan_time_error(
    stack_variant, tuning, key, message
):
    path = stack_variant(
        "staging", {"mlplatform:models": [{"name": "digits", "training": {"tuning": tuning}}]}
    )
    with pytest.raises(StackConfigError, match=rf"models\[0\]\.training\.{key}.*{message}"):
        load_stack_file(path)


def test_script_mode_ships_the_code_for_an_existing_training_image(plan_variant, tmp_path):
    import shutil

    from infra.config.models import PROJECT_ROOT

    copy = PROJECT_ROOT / "models" / "digits-dlc-test"
    shutil.copytree(PROJECT_ROOT / "models" / "digits", copy)
    try:
        manifest = (
            (copy / "model.yaml").read_text().replace("name: digits\n", "name: digits-dlc-test\n")
        )
        manifest = manifest.replace(
            "training: {build: platform}", "training: {dlc: {version: 2.8.0}}"
        )
        (copy / "model.yaml").write_text(manifest)
        plan = plan_variant(
            "dev",
            {
                "mlplatform:models": [
                    {"name": "digits-dlc-test", "training": {"instanceType": "ml.g5.xlarge"}}
                ]
            },
        )
    finally:
        shutil.rmtree(copy)
    definition = definitions(plan)["mlplatform-variant-digits-dlc-test"]
    job = _train_arguments(definition)
    image = job["AlgorithmSpecification"]["TrainingImage"]
    assert image == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8.0-gpu-py312"
    hp = job["HyperParameters"]
    source = plan.outputs["imageRefs"]["digits-dlc-test"]
    assert json.loads(hp["sagemaker_program"]) == "train.py"
    (upload,) = [
        r
        for r in plan.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
        if "digits-dlc-test" in r.name
    ]
    assert (
        json.loads(hp["sagemaker_submit_directory"])
        == f"s3://{upload.inputs['bucket']}/{upload.inputs['key']}"
    )
    assert upload.inputs["key"].endswith("/sourcedir.tar.gz")
    assert hp["sagemaker_torch_distributed_enabled"] == "true"
    assert source["platform"] != image, "prepare and evaluate still run in the platform image"


def test_an_unchanged_replan_yields_identical_definitions(plan_of):
    first = plan_of("prod")
    again = plan_stack(Path(__file__).resolve().parents[1] / "stacks" / "Pulumi.prod.yaml", "prod")
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
    schedule = plan.get("aws:scheduler/schedule:Schedule", "mlplatform-prod-digits-schedule")
    assert schedule.inputs["scheduleExpression"] == plan.config.models[0].training.schedule
    pipeline = plan.get(PIPELINE, "mlplatform-prod-digits")
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
        },
        # The schedule's payload is encrypted with the stack key.
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": plan.outputs["kmsKeyArn"]},
    ]
    assert schedule.inputs["kmsKeyArn"] == plan.outputs["kmsKeyArn"]
    dev = [s.name for s in plan_of("dev").of_type("aws:scheduler/schedule:Schedule")]
    assert not [name for name in dev if name.endswith("digits-schedule")], "dev retrains by hand"


def test_the_pipeline_role_passes_only_the_models_training_role_and_requires_the_stack_key(
    plan: Plan,
):
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
            == plan.outputs["modelRoles"][model.name]["training"]
        )
        condition = statements["RunStepJobsWithStackKey"]["Condition"]
        assert condition["StringEquals"] == {"sagemaker:OutputKmsKey": plan.outputs["kmsKeyArn"]}
        assert condition["StringEqualsIfExists"] == {
            "sagemaker:VolumeKmsKey": plan.outputs["kmsKeyArn"]
        }
