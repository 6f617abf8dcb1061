"""SageMaker Pipeline definitions, built as plain JSON from a model's stack entry.

No SDK and no AWS call: the definition is the documented JSON (`Version` 2020-12-01) whose
steps carry CreateTrainingJob / CreateHyperParameterTuningJob / CreateProcessingJob /
CreateModelPackage arguments. `render` sorts keys, so an unchanged stack re-plans to the same
bytes and `pulumi preview` shows no diff.

    Train | Tune  ->  Evaluate (reads metrics.json)  ->  MeetsThreshold ? Register : BelowThreshold
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from infra import instances
from infra.config import Model, SageMakerEndpoint, SageMakerTraining

CHANNEL = "training"  # the channel name the training image reads (training.environment)
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
EVALUATION_INSTANCE_TYPE = "ml.t3.medium"  # reading one JSON file needs no more
EVALUATION_FILE = "metrics.json"  # written by training (training.train)
PROPERTY_FILE = "Evaluation"
EXECUTION_ID = {"Get": "Execution.PipelineExecutionId"}

# Runs in the training image: publish the model's own metrics.json as the property file.
# (One ContainerEntrypoint item may hold 256 characters.)
EVALUATE_SCRIPT = (
    "import tarfile\n"
    "a=tarfile.open('/opt/ml/processing/model/model.tar.gz')\n"
    "a.extractall('/opt/ml/processing/evaluation',"
    "[m for m in a if m.name.endswith('metrics.json')],filter='data')\n"
)


@dataclass(frozen=True)
class PipelineInputs:
    """Everything a definition refers to, as resolved strings."""

    model: Model
    training: SageMakerTraining
    training_image: str
    serving_image: str
    role_arn: str
    kms_key_arn: str
    datasets_bucket: str
    artifacts_bucket: str
    checkpoints_bucket: str
    model_package_group: str


def metric_definitions() -> list[dict[str, str]]:
    """The regexes SageMaker uses to read metrics from the training log."""
    from training.metrics import METRIC_DEFINITIONS

    return [dict(d) for d in METRIC_DEFINITIONS]


def join(*values: Any, on: str = "/") -> dict[str, Any]:
    """`Std:Join`: a string assembled at run time from literals and `Get` references."""
    return {"Std:Join": {"On": on, "Values": list(values)}}


def parameter(name: str) -> dict[str, str]:
    return {"Get": f"Parameters.{name}"}


def parameters(p: PipelineInputs) -> list[dict[str, Any]]:
    """Values `mlplatform train` (or the console) may override per execution."""
    t = p.training
    return [
        {
            "Name": "InputDataUri",
            "Type": "String",
            "DefaultValue": f"s3://{p.datasets_bucket}/{p.model.name}/",
        },
        {"Name": "TrainingInstanceCount", "Type": "Integer", "DefaultValue": t.instance_count},
        {"Name": "MetricThreshold", "Type": "Float", "DefaultValue": t.threshold},
        {"Name": "ModelApprovalStatus", "Type": "String", "DefaultValue": "PendingManualApproval"},
    ]


def _training_output_path(p: PipelineInputs) -> str:
    return f"s3://{p.artifacts_bucket}/models/{p.model.name}/training"


def training_job(p: PipelineInputs, *, for_tuning: bool = False) -> dict[str, Any]:
    """CreateTrainingJob arguments (or a tuning job's TrainingJobDefinition)."""
    t = p.training
    algorithm: dict[str, Any] = {
        "TrainingImage": p.training_image,
        "TrainingInputMode": "File",
        "MetricDefinitions": metric_definitions(),
    }
    job: dict[str, Any] = {
        "AlgorithmSpecification": algorithm,
        "RoleArn": p.role_arn,
        "InputDataConfig": [
            {
                "ChannelName": CHANNEL,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": parameter("InputDataUri"),
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
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
            "S3Uri": join(f"s3://{p.checkpoints_bucket}/{p.model.name}", EXECUTION_ID),
            "LocalPath": CHECKPOINT_LOCAL_PATH,
        }
    static = {k: _hyperparameter_text(v) for k, v in sorted(t.hyperparameters.items())}
    if for_tuning:
        job["StaticHyperParameters"] = static
    else:
        job["HyperParameters"] = static
        algorithm["EnableSageMakerMetricsTimeSeries"] = True
    return job


def _hyperparameter_text(value: object) -> str:
    # SageMaker passes hyperparameters as strings; booleans the way training.config reads them.
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
    return {
        "HyperParameterTuningJobConfig": {
            "Strategy": tuning.strategy,
            "HyperParameterTuningJobObjective": {
                "Type": tuning.objective,
                "MetricName": tuning.objective_metric,
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


def _model_artifacts(p: PipelineInputs) -> Any:
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
    """CreateProcessingJob arguments: unpack the model and publish its metrics.json."""
    return {
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceType": EVALUATION_INSTANCE_TYPE,
                "InstanceCount": 1,
                "VolumeSizeInGB": 10,
                "VolumeKmsKeyId": p.kms_key_arn,
            }
        },
        "AppSpecification": {
            "ImageUri": p.training_image,
            "ContainerEntrypoint": ["python", "-c", EVALUATE_SCRIPT],
        },
        "RoleArn": p.role_arn,
        "ProcessingInputs": [
            {
                "InputName": "model",
                "AppManaged": False,
                "S3Input": {
                    "S3Uri": _model_artifacts(p),
                    "LocalPath": "/opt/ml/processing/model",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                    "S3CompressionType": "None",
                },
            }
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "evaluation",
                    "AppManaged": False,
                    "S3Output": {
                        "S3Uri": join(
                            f"s3://{p.artifacts_bucket}/models/{p.model.name}/evaluation",
                            EXECUTION_ID,
                        ),
                        "LocalPath": "/opt/ml/processing/evaluation",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
            "KmsKeyId": p.kms_key_arn,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 1800},
    }


def register_model(p: PipelineInputs) -> dict[str, Any]:
    """CreateModelPackage arguments: a version in the model's group, awaiting approval."""
    evaluation_uri = {
        "Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"
    }
    serving = p.model.serving
    inference: dict[str, Any] = {
        "Containers": [{"Image": p.serving_image, "ModelDataUrl": _model_artifacts(p)}],
        "SupportedContentTypes": ["application/json"],
        "SupportedResponseMIMETypes": ["application/json"],
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


def definition(p: PipelineInputs) -> dict[str, Any]:
    """The whole pipeline definition as a dict."""
    t = p.training
    train = (
        {"Name": "Tune", "Type": "Tuning", "Arguments": tuning_job(p)}
        if t.tuning
        else {"Name": "Train", "Type": "Training", "Arguments": training_job(p)}
    )
    evaluate = {
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
    metric = {
        "Std:JsonGet": {
            "PropertyFile": {"Get": f"Steps.Evaluate.PropertyFiles.{PROPERTY_FILE}"},
            "Path": t.metric,
        }
    }
    register = {"Name": "Register", "Type": "RegisterModel", "Arguments": register_model(p)}
    below = {
        "Name": "BelowThreshold",
        "Type": "Fail",
        "Arguments": {
            "ErrorMessage": join(
                f"{t.metric} is below the threshold", parameter("MetricThreshold"), on=" "
            )
        },
    }
    condition = {
        "Name": "MeetsThreshold",
        "Type": "Condition",
        "Arguments": {
            "Conditions": [
                {
                    "Type": "GreaterThanOrEqualTo",
                    "LeftValue": metric,
                    "RightValue": parameter("MetricThreshold"),
                }
            ],
            "IfSteps": [register],
            "ElseSteps": [below],
        },
    }
    return {
        "Version": "2020-12-01",
        "Metadata": {},
        "Parameters": parameters(p),
        "Steps": [train, evaluate, condition],
    }


def render(p: PipelineInputs) -> str:
    """The definition as the canonical JSON string the Pipeline resource stores."""
    return json.dumps(definition(p), sort_keys=True, separators=(",", ":"))
