"""SageMaker Pipeline definitions, built as plain JSON from a model's manifest and stack entry.

No SDK and no AWS call: the definition is the documented JSON (`Version` 2020-12-01) whose
steps carry CreateProcessingJob / CreateTrainingJob / CreateHyperParameterTuningJob /
CreateModelPackage arguments. `render` sorts keys, so an unchanged stack re-plans to the same
bytes and `pulumi preview` shows no diff.

    [Prepare] -> Train | Tune -> Evaluate (independent) -> MeetsThreshold ? Register [+ Baseline]
                                                                            : Fail

Prepare runs the model's own preparation entry point and writes its channels and the held-out
`test` channel. Evaluate runs the platform's evaluator (`python -m serving evaluate`) on the
*exported* model and the test channel, which the training job never reads, and writes
evaluation.json; the condition reads that, never what the training job wrote about itself.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infra import instances
from infra.config import Model, SageMakerEndpoint, SageMakerTraining
from infra.config.manifests import tuning_metric
from infra.data_layout import DataLayout

if TYPE_CHECKING:
    from training.manifest import Entry, ModelManifest

CODE_DIR = "/opt/ml/code"  # where the platform image holds the model's code
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
PROCESSING = "/opt/ml/processing"
STEP_INSTANCE_TYPE = "ml.m5.xlarge"  # prepare and evaluate: CPU work on small data
EVALUATION_FILE = "evaluation.json"
PROPERTY_FILE = "EvaluationReport"
EXECUTION_ID = {"Get": "Execution.PipelineExecutionId"}
TEST_CHANNEL = "test"


@dataclass(frozen=True)
class PipelineInputs:
    """Everything a definition refers to, as resolved strings."""

    model: Model
    training: SageMakerTraining
    layout: DataLayout
    platform_image: str  # prepare and evaluate run here (the platform's libraries + the model)
    training_image: str
    serving_image: str
    source_uri: str | None  # script mode: s3://…/sourcedir.tar.gz when the image lacks the code
    role_arn: str
    kms_key_arn: str
    datasets_bucket: str
    artifacts_bucket: str
    checkpoints_bucket: str
    model_package_group: str
    region: str
    environment: dict[str, str] | None = None  # the training job's variables (e.g. MLflow's)
    baseline: bool = False  # the endpoint captures data: record the training data's baseline

    @property
    def manifest(self) -> ModelManifest:
        return self.model.manifest


def join(*values: Any, on: str = "/") -> dict[str, Any]:
    """`Std:Join`: a string assembled at run time from literals and `Get` references."""
    return {"Std:Join": {"On": on, "Values": list(values)}}


def parameter(name: str) -> dict[str, str]:
    return {"Get": f"Parameters.{name}"}


def channel_parameter(name: str) -> str:
    return "Channel" + "".join(part.capitalize() for part in name.split("_")) + "Uri"


def _channel_default(p: PipelineInputs, name: str) -> str:
    source = next(c for c in p.layout.channels if c.name == name)
    return source.uri or f"s3://{p.datasets_bucket}/{source.prefix}"


def _prepared(p: PipelineInputs) -> set[str]:
    """Channels the Prepare step provides (the rest are named in the stack file)."""
    if p.manifest.prepare is None:
        return set()
    return {c.name for c in p.layout.prepared_channels}


def parameters(p: PipelineInputs) -> list[dict[str, Any]]:
    """Values `mlplatform train` (or the console) may override per execution."""
    t, objective = p.training, p.manifest.train.objective
    found: list[dict[str, Any]] = [
        {
            "Name": channel_parameter(c.name),
            "Type": "String",
            "DefaultValue": _channel_default(p, c.name),
        }
        for c in p.layout.channels
        if c.name not in _prepared(p)
    ]
    if p.manifest.prepare is None:
        found.append(
            {
                "Name": channel_parameter(TEST_CHANNEL),
                "Type": "String",
                "DefaultValue": f"s3://{p.datasets_bucket}/{p.layout.test_prefix}",
            }
        )
    found += [
        {"Name": "TrainingInstanceCount", "Type": "Integer", "DefaultValue": t.instance_count},
        {"Name": "ModelApprovalStatus", "Type": "String", "DefaultValue": "PendingManualApproval"},
    ]
    if objective.threshold is not None:
        found.append(
            {"Name": "MetricThreshold", "Type": "Float", "DefaultValue": objective.threshold}
        )
    return found


def entry_command(entry: Entry, extra: list[str]) -> list[str]:
    """A manifest entry point as a container command in the platform image (the EKS plane's
    prepare job runs the same)."""
    if entry.command:
        return [*entry.command, *extra]
    if entry.module:
        return ["python", "-m", entry.module, *extra]
    return ["python", f"{CODE_DIR}/{entry.entry_point}", *extra]


def _processing_output(name: str, local: str, uri: Any) -> dict[str, Any]:
    return {
        "OutputName": name,
        "AppManaged": False,
        "S3Output": {"S3Uri": uri, "LocalPath": local, "S3UploadMode": "EndOfJob"},
    }


def _processing_input(name: str, uri: Any, local: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "AppManaged": False,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
            "S3CompressionType": "None",
        },
    }


def _processing_job(p: PipelineInputs, entrypoint: list[str]) -> dict[str, Any]:
    return {
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceType": STEP_INSTANCE_TYPE,
                "InstanceCount": 1,
                "VolumeSizeInGB": 30,
                "VolumeKmsKeyId": p.kms_key_arn,
            }
        },
        "AppSpecification": {"ImageUri": p.platform_image, "ContainerEntrypoint": entrypoint},
        "RoleArn": p.role_arn,
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }


def prepare_job(p: PipelineInputs) -> dict[str, Any]:
    """CreateProcessingJob arguments: the model's prepare entry point writes every channel."""
    assert p.manifest.prepare is not None
    extra = ["--out", f"{PROCESSING}/output"]
    inputs = []
    raw = p.layout.raw
    if raw is not None:
        uri = raw.uri or f"s3://{p.datasets_bucket}/{raw.prefix}"
        inputs.append(_processing_input("raw", uri, f"{PROCESSING}/input/raw"))
        extra += ["--input", f"{PROCESSING}/input/raw"]
    channels = [*sorted(_prepared(p)), TEST_CHANNEL]
    job = _processing_job(p, entry_command(p.manifest.prepare, extra))
    job["ProcessingInputs"] = inputs
    job["ProcessingOutputConfig"] = {
        "Outputs": [
            _processing_output(
                name,
                f"{PROCESSING}/output/{name}",
                join(
                    f"s3://{p.datasets_bucket}/{p.layout.prepared_prefix}".rstrip("/"),
                    EXECUTION_ID,
                    name,
                ),
            )
            for name in channels
        ],
        "KmsKeyId": p.kms_key_arn,
    }
    return job


def _channel_uri(p: PipelineInputs, name: str) -> Any:
    if name in _prepared(p) or (name == TEST_CHANNEL and p.manifest.prepare is not None):
        return {"Get": f"Steps.Prepare.ProcessingOutputConfig.Outputs['{name}'].S3Output.S3Uri"}
    return parameter(channel_parameter(name))


def _training_output_path(p: PipelineInputs) -> str:
    return f"s3://{p.artifacts_bucket}/{p.layout.artifacts_prefix}training"


def _script_mode(p: PipelineInputs) -> bool:
    image = p.manifest.image.training
    return bool(image.uri or image.dlc)


def hyperparameters(p: PipelineInputs) -> dict[str, str]:
    """The stack's values (the manifest's defaults fill the rest in the job), plus what
    SageMaker's training toolkit needs to run the model's code in script mode."""
    values = {k: _hyperparameter_text(v) for k, v in sorted(p.training.hyperparameters.items())}
    if _script_mode(p):
        entry = p.manifest.train
        program = entry.entry_point or (entry.command or [""])[-1]
        # The SDK JSON-encodes these; the toolkit decodes them (models_byo.md, measured).
        values["sagemaker_program"] = json.dumps(program)
        values["sagemaker_submit_directory"] = json.dumps(p.source_uri)
        values["sagemaker_region"] = json.dumps(p.region)
        if entry.distribution == "torchrun":
            values["sagemaker_torch_distributed_enabled"] = "true"
            values["sagemaker_instance_type"] = json.dumps(p.training.instance_type)
    return values


def training_job(p: PipelineInputs, *, for_tuning: bool = False) -> dict[str, Any]:
    """CreateTrainingJob arguments (or a tuning job's TrainingJobDefinition)."""
    t = p.training
    algorithm: dict[str, Any] = {
        "TrainingImage": p.training_image,
        "TrainingInputMode": "File",
        "MetricDefinitions": p.manifest.train.metric_definitions(),
    }
    job: dict[str, Any] = {
        "AlgorithmSpecification": algorithm,
        "RoleArn": p.role_arn,
        "InputDataConfig": [
            {
                "ChannelName": c.name,
                "InputMode": c.input_mode,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": _channel_uri(p, c.name),
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for c in p.layout.channels
        ],
        "OutputDataConfig": {"S3OutputPath": _training_output_path(p), "KmsKeyId": p.kms_key_arn},
        # The type is fixed per definition: whether the volume takes the stack key depends on it.
        "ResourceConfig": {
            "InstanceType": t.instance_type,
            "InstanceCount": parameter("TrainingInstanceCount"),
            "VolumeSizeInGB": t.volume_size_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": t.max_runtime_hours * 3600},
        # Hosts of a multi-host job talk only to each other; encrypt what they exchange.
        "EnableInterContainerTrafficEncryption": t.instance_count > 1,
    }
    if p.environment:
        job["Environment"] = dict(sorted(p.environment.items()))
    if not instances.has_instance_storage(t.instance_type):
        # SageMaker refuses a volume key on instance-store types, which encrypt in hardware.
        job["ResourceConfig"]["VolumeKmsKeyId"] = p.kms_key_arn
    if t.spot:
        job["EnableManagedSpotTraining"] = True
        job["StoppingCondition"]["MaxWaitTimeInSeconds"] = t.wait_hours * 3600
    if not for_tuning:
        # Checkpoints go to S3 (spot reclaims resume from them). One prefix per execution: a
        # new run must not resume the previous run's finished state. Tuning trials get none:
        # they run side by side from one definition, and a shared prefix would let one trial
        # resume another's weights; a reclaimed trial restarts instead.
        job["CheckpointConfig"] = {
            "S3Uri": join(
                f"s3://{p.checkpoints_bucket}/{p.layout.checkpoints_prefix}".rstrip("/"),
                EXECUTION_ID,
            ),
            "LocalPath": CHECKPOINT_LOCAL_PATH,
        }
    if for_tuning:
        job["StaticHyperParameters"] = hyperparameters(p)
    else:
        job["HyperParameters"] = hyperparameters(p)
        algorithm["EnableSageMakerMetricsTimeSeries"] = True
    return job


def _hyperparameter_text(value: object) -> str:
    # SageMaker passes hyperparameters as strings; booleans the way the training library reads them.
    return str(value).lower() if isinstance(value, bool) else str(value)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def tuning_job(p: PipelineInputs) -> dict[str, Any]:
    """CreateHyperParameterTuningJob arguments searching the stack entry's ranges."""
    tuning = p.training.tuning
    assert tuning is not None
    ranges: dict[str, list[dict[str, Any]]] = {
        "ContinuousParameterRanges": [],
        "IntegerParameterRanges": [],
        "CategoricalParameterRanges": [],
    }
    for name, r in sorted(tuning.ranges.items()):
        if r.type == "categorical":
            ranges["CategoricalParameterRanges"].append({"Name": name, "Values": list(r.values)})
            continue
        key = "ContinuousParameterRanges" if r.type == "continuous" else "IntegerParameterRanges"
        ranges[key].append(
            {
                "Name": name,
                # The schema guarantees both bounds for numeric ranges.
                "MinValue": _number(r.min or 0.0),
                "MaxValue": _number(r.max or 0.0),
                "ScalingType": r.scaling,
            }
        )
    goal = p.manifest.train.objective.goal or "maximize"
    return {
        "HyperParameterTuningJobConfig": {
            "Strategy": tuning.strategy,
            "HyperParameterTuningJobObjective": {
                "Type": goal.capitalize(),
                "MetricName": tuning_metric(p.training, p.manifest),
            },
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": tuning.max_jobs,
                "MaxParallelTrainingJobs": tuning.max_parallel_jobs,
            },
            "ParameterRanges": ranges,
            "TrainingJobEarlyStoppingType": "Off",
        },
        "TrainingJobDefinition": training_job(p, for_tuning=True),
    }


def model_artifacts(p: PipelineInputs) -> Any:
    if p.training.tuning is None:
        return {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    # The best job (TrainingJobSummaries are sorted by the objective) wrote its model under
    # <output path>/<job name>/output/model.tar.gz.
    return join(
        _training_output_path(p),
        {"Get": "Steps.Tune.TrainingJobSummaries[0].TrainingJobName"},
        "output/model.tar.gz",
    )


def evaluation_job(p: PipelineInputs) -> dict[str, Any]:
    """CreateProcessingJob arguments: the platform's evaluator scores every exported variant
    on the test channel and writes evaluation.json."""
    model_dir = "/tmp/model"
    evaluate = [
        "python", "-m", "serving", "evaluate",
        "--model-dir", model_dir,
        "--data-dir", f"{PROCESSING}/test",
        "--out", f"{PROCESSING}/evaluation/{EVALUATION_FILE}",
        "--variants", "all",
    ]  # fmt: skip
    # The model arrives as SageMaker's model.tar.gz; unpack it, then hand over (exec) to Python.
    script = (
        f"mkdir -p {model_dir} && tar -xzf {PROCESSING}/model/model.tar.gz -C {model_dir} "
        f"&& exec {shlex.join(evaluate)}"
    )
    job = _processing_job(p, ["sh", "-c", script])
    job["ProcessingInputs"] = [
        _processing_input("model", model_artifacts(p), f"{PROCESSING}/model"),
        _processing_input(TEST_CHANNEL, _channel_uri(p, TEST_CHANNEL), f"{PROCESSING}/test"),
    ]
    job["ProcessingOutputConfig"] = {
        "Outputs": [
            _processing_output(
                "evaluation",
                f"{PROCESSING}/evaluation",
                join(
                    f"s3://{p.artifacts_bucket}/{p.layout.artifacts_prefix}evaluation", EXECUTION_ID
                ),
            )
        ],
        "KmsKeyId": p.kms_key_arn,
    }
    return job


def baseline_job(p: PipelineInputs) -> dict[str, Any]:
    """CreateProcessingJob arguments: the drift baseline of the data the model trained on,
    written where the endpoint's scheduled drift check reads it."""
    channel = (
        "train" if any(c.name == "train" for c in p.layout.channels) else p.layout.channels[0].name
    )
    command = [
        "python", "-m", "training.drift", "baseline",
        "--data-dir", f"{PROCESSING}/{channel}",
        "--out", f"{PROCESSING}/baseline/baseline.json",
    ]  # fmt: skip
    job = _processing_job(p, command)
    job["ProcessingInputs"] = [
        _processing_input(channel, _channel_uri(p, channel), f"{PROCESSING}/{channel}")
    ]
    job["ProcessingOutputConfig"] = {
        "Outputs": [
            _processing_output(
                "baseline",
                f"{PROCESSING}/baseline",
                f"s3://{p.artifacts_bucket}/{p.layout.baseline_key.rsplit('/', 1)[0]}",
            )
        ],
        "KmsKeyId": p.kms_key_arn,
    }
    return job


def register_model(p: PipelineInputs) -> dict[str, Any]:
    """CreateModelPackage arguments: a version in the model's group, awaiting approval."""
    evaluation_uri = {
        "Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"
    }
    serving = p.model.serving
    content_types = list(p.manifest.serve.content_types)
    inference: dict[str, Any] = {
        "Containers": [{"Image": p.serving_image, "ModelDataUrl": model_artifacts(p)}],
        "SupportedContentTypes": content_types,
        "SupportedResponseMIMETypes": content_types,
    }
    if isinstance(serving, SageMakerEndpoint):
        inference["SupportedRealtimeInferenceInstanceTypes"] = [serving.instance_type]
    return {
        "ModelPackageGroupName": p.model_package_group,
        "ModelPackageDescription": f"{p.model.name}, trained by pipeline execution",
        "InferenceSpecification": inference,
        "ModelApprovalStatus": parameter("ModelApprovalStatus"),
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": join(evaluation_uri, EVALUATION_FILE),
                }
            }
        },
    }


def _gate(p: PipelineInputs, passed: list[dict[str, Any]]) -> dict[str, Any]:
    """Register only when the evaluator's metric reaches the model's threshold."""
    objective = p.manifest.train.objective
    metric = {
        "Std:JsonGet": {
            "PropertyFile": {"Get": f"Steps.Evaluate.PropertyFiles.{PROPERTY_FILE}"},
            "Path": f"metrics.{objective.metric}.value",
        }
    }
    better = "GreaterThanOrEqualTo" if objective.goal != "minimize" else "LessThanOrEqualTo"
    below = {
        "Name": "BelowThreshold",
        "Type": "Fail",
        "Arguments": {
            "ErrorMessage": join(
                f"{objective.metric} on the held-out test channel misses the threshold",
                parameter("MetricThreshold"),
                on=" ",
            )
        },
    }
    return {
        "Name": "MeetsThreshold",
        "Type": "Condition",
        "Arguments": {
            "Conditions": [
                {"Type": better, "LeftValue": metric, "RightValue": parameter("MetricThreshold")}
            ],
            "IfSteps": passed,
            "ElseSteps": [below],
        },
    }


def definition(p: PipelineInputs) -> dict[str, Any]:
    """The whole pipeline definition as a dict."""
    steps: list[dict[str, Any]] = []
    if p.manifest.prepare is not None:
        steps.append({"Name": "Prepare", "Type": "Processing", "Arguments": prepare_job(p)})
    steps.append(
        {"Name": "Tune", "Type": "Tuning", "Arguments": tuning_job(p)}
        if p.training.tuning
        else {"Name": "Train", "Type": "Training", "Arguments": training_job(p)}
    )
    steps.append(
        {
            "Name": "Evaluate",
            "Type": "Processing",
            "Arguments": evaluation_job(p),
            "PropertyFiles": [
                {
                    "PropertyFileName": PROPERTY_FILE,
                    "OutputName": "evaluation",
                    "FilePath": EVALUATION_FILE,
                }
            ],
        }
    )
    passed = [{"Name": "Register", "Type": "RegisterModel", "Arguments": register_model(p)}]
    if p.baseline:
        passed.append({"Name": "Baseline", "Type": "Processing", "Arguments": baseline_job(p)})
    has_threshold = p.manifest.train.objective.threshold is not None
    steps += [_gate(p, passed)] if has_threshold else passed
    return {
        "Version": "2020-12-01",
        "Metadata": {},
        "Parameters": parameters(p),
        "Steps": steps,
    }


def render(p: PipelineInputs) -> str:
    """The definition as the canonical JSON string the Pipeline resource stores."""
    return json.dumps(definition(p), sort_keys=True, separators=(",", ":"))
