"""The `mlplatform:models` section: where each model trains and serves, per compute plane.

Plane-specific settings are discriminated unions: `training` is a `SageMakerTraining` or an
`EksTraining` (by `plane`), `serving` a `SageMakerEndpoint`, `ServerlessEndpoint` or
`EksServing` (by `plane` and `mode`). A key of one plane on another is an error of the schema
itself, and code that reads a setting sees only what applies.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag, field_validator, model_validator

from infra import restrictions
from infra.config.base import Section, check_sagemaker_instance_type, instances_in_order

if TYPE_CHECKING:
    from training.manifest import ModelManifest

# The project's root (where Pulumi.yaml and models/ live): model paths are relative to it.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def load_model_manifest(directory: Path) -> ModelManifest:
    """Read and check `<directory>/model.yaml`; a ManifestError lists every problem."""
    manifest_file = directory / "model.yaml"
    stamp = manifest_file.stat().st_mtime_ns if manifest_file.is_file() else 0
    return _load_manifest(directory, stamp)


@lru_cache(maxsize=64)
def _load_manifest(directory: Path, stamp: int) -> ModelManifest:
    from training.manifest import load_manifest

    return load_manifest(directory)[0]


_MODEL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
_SCHEDULE = re.compile(r"^(cron|rate)\(.+\)$")
HyperparameterValue = str | int | float | bool


def _schedule_expression(value: str) -> str:
    if not _SCHEDULE.match(value):
        raise ValueError(
            "must be cron(...) or rate(...), e.g. 'cron(0 3 ? * MON *)' or 'rate(1 day)'"
        )
    return value


# An instance type SageMaker endpoints take.
EndpointInstanceType = Annotated[
    str,
    AfterValidator(
        lambda value: check_sagemaker_instance_type(value, "ProductionVariantInstanceType")
    ),
]

# An EventBridge Scheduler expression (at(...) one-off schedules are not offered).
ScheduleExpression = Annotated[str, AfterValidator(_schedule_expression)]


class HyperparameterRange(Section):
    """One searched hyperparameter: a numeric interval or a list of categories."""

    type: Literal["continuous", "integer", "categorical"] = Field(
        description="`continuous` (floats), `integer`, or `categorical` (give `values`)."
    )
    min: float | None = Field(default=None, description="Lower bound (continuous, integer).")
    max: float | None = Field(default=None, description="Upper bound (continuous, integer).")
    values: list[str] = Field(default_factory=list, description="Choices (categorical).")
    scaling: Literal["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"] = Field(
        default="Auto", description="How the tuner samples the interval (e.g. Logarithmic for lr)."
    )

    @model_validator(mode="after")
    def _bounds_or_values(self) -> HyperparameterRange:
        if self.type == "categorical":
            if not self.values:
                raise ValueError("a categorical range needs `values`")
        elif self.min is None or self.max is None or not self.min < self.max:
            raise ValueError(f"a {self.type} range needs `min` < `max`")
        if self.scaling == "Logarithmic" and self.min is not None and self.min <= 0:
            raise ValueError("Logarithmic scaling needs min > 0")
        return self


class Tuning(Section):
    """The hyperparameter search run instead of a single training job."""

    ranges: dict[str, HyperparameterRange] = Field(
        description="Searched hyperparameters by name, e.g. lr: {type: continuous, min: 1e-4, "
        "max: 1e-2, scaling: Logarithmic}."
    )
    objective_metric: str | None = Field(
        default=None,
        description="A metric the model declares in model.yaml `train.metrics`; default: its "
        "`train.objective.tuningMetric`. The direction is the objective's goal.",
    )
    strategy: Literal["Bayesian", "Random", "Hyperband", "Grid"] = Field(
        default="Bayesian", description="SageMaker's search strategy."
    )
    max_jobs: Annotated[int, Field(ge=1, le=500)] = Field(
        default=8, description="Training jobs the search may run in total."
    )
    max_parallel_jobs: Annotated[int, Field(ge=1, le=100)] = Field(
        default=2, description="Training jobs running at once (each takes instanceCount hosts)."
    )

    @model_validator(mode="after")
    def _parallel_within_total(self) -> Tuning:
        if not self.ranges:
            raise ValueError("give at least one range to search")
        if self.max_parallel_jobs > self.max_jobs:
            raise ValueError("maxParallelJobs cannot exceed maxJobs")
        return self


# --- training ----------------------------------------------------------------------------------

_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")


class Channel(Section):
    """One input channel: a prefix of the stack's datasets bucket, or an explicit S3 URI."""

    prefix: str | None = Field(
        default=None,
        description="A prefix in the stack's datasets bucket, e.g. `digits/v2/train/`; default "
        "`<model>/<channel>/` for a training channel, `<model>/raw/` for `rawData`, "
        "`<model>/batch/input/` for `batch.input`.",
    )
    uri: str | None = Field(
        default=None,
        description="An S3 URI outside the stack's buckets (needs `allowExternal: true`; the "
        "model's role is then granted read access to it).",
    )
    allow_external: bool = Field(
        default=False,
        description="Allow `uri` to name data outside the stack's buckets, on purpose.",
    )
    input_mode: Literal["File", "FastFile", "Pipe"] = Field(
        default="File",
        description="SageMaker: File (copied before the run), FastFile (streamed on read) or "
        "Pipe; EKS always mounts the prefix through the S3 CSI driver.",
    )

    @field_validator("prefix")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        if value is not None and (value.startswith(("/", "s3://")) or ".." in value):
            raise ValueError("a key prefix inside the datasets bucket, e.g. `digits/train/`")
        return value

    @field_validator("uri")
    @classmethod
    def _s3(cls, value: str | None) -> str | None:
        if value is not None and not _S3_URI.match(value):
            raise ValueError("an s3://bucket/prefix URI")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Channel:
        if self.prefix is not None and self.uri is not None:
            raise ValueError("give prefix (stack bucket) or uri (external), not both")
        if self.uri is not None and not self.allow_external:
            raise ValueError(
                f"{self.uri} is outside the stack's buckets; set allowExternal: true to read it "
                "on purpose, or copy the data to the datasets bucket and give `prefix`"
            )
        return self


class TrainingBase(Section):
    """What a training run needs on either plane."""

    instance_count: Annotated[int, Field(ge=1, le=64)] = Field(
        default=1, description="Hosts (nodes); above 1 the image runs torchrun across them."
    )
    spot: bool = Field(
        default=True,
        description="Managed spot (SageMaker) / spot-tolerant pods (EKS); checkpoints let an "
        "interrupted run resume.",
    )
    max_runtime_hours: Annotated[int, Field(ge=1, le=672)] = Field(
        default=24, description="A run is stopped after this long (SageMaker allows 28 days)."
    )
    hyperparameters: dict[str, HyperparameterValue] = Field(
        default_factory=dict,
        description="Values for hyperparameters the model declares in model.yaml (typed and "
        "bounded there); the rest keep the manifest's defaults.",
    )
    channels: dict[str, Channel] = Field(
        default_factory=dict,
        description="Where each input channel the model declares comes from; default: the "
        "prefix `<model>/<channel>/` of the stack's datasets bucket.",
    )
    raw_data: Channel | None = Field(
        default=None,
        description="Raw input of the model's prepare step (`--input`): a prefix of the "
        "datasets bucket or an external URI; none: prepare makes or fetches its own data.",
    )


class SageMakerTraining(TrainingBase):
    """Training as a SageMaker Pipeline: train (or tune), evaluate, register."""

    plane: Literal["sagemaker"] = Field(
        default="sagemaker",
        description="`sagemaker`: a SageMaker Pipeline (train, evaluate, register); `eks`: a "
        "Kubeflow Trainer TrainingRuntime on one of the cluster's node pools.",
    )
    instance_type: str = Field(default="ml.g5.xlarge", description="An ml.* TrainingInstanceType.")
    volume_size_gb: Annotated[int, Field(ge=1, le=16384)] = Field(
        default=50, description="Local storage per host for data, model and checkpoints."
    )
    max_wait_hours: Annotated[int, Field(ge=1, le=672)] | None = Field(
        default=None,
        description="Spot only: runtime plus time spent waiting for capacity; default "
        "2 x maxRuntimeHours (at most 28 days).",
    )
    tuning: Tuning | None = Field(
        default=None, description="Hyperparameter search: turns the training step into tuning."
    )
    schedule: ScheduleExpression | None = Field(
        default=None,
        description="EventBridge Scheduler expression that starts the pipeline, e.g. "
        "'cron(0 3 ? * MON *)' or 'rate(7 days)'; none: runs start by hand.",
    )
    runs_per_month: Annotated[int, Field(ge=0, le=10000)] | None = Field(
        default=None,
        description="Expected runs a month for the cost estimate when there is no schedule "
        "(default: the environment's policy config, e.g. 20 in dev).",
    )

    @field_validator("instance_type")
    @classmethod
    def _sagemaker_type(cls, value: str) -> str:
        return check_sagemaker_instance_type(value, "TrainingInstanceType")

    @model_validator(mode="after")
    def _consistent(self) -> SageMakerTraining:
        if self.max_wait_hours is not None:
            if not self.spot:
                raise ValueError("maxWaitHours applies to spot training only (spot: true)")
            if self.max_wait_hours < self.max_runtime_hours:
                raise ValueError("maxWaitHours must be >= maxRuntimeHours")
        # The documented limits the policy pack checks too (infra/restrictions.json). The
        # pipeline always gives a spot job a checkpoint prefix (or runs trials without one).
        _refuse(
            restrictions.check_training_job(
                spot=self.spot,
                max_runtime_s=self.max_runtime_hours * 3600,
                max_wait_s=self.wait_hours * 3600 if self.spot else None,
                checkpoint_uri="s3://checkpoints" if self.spot else None,
            )
        )
        if self.tuning:
            fixed = set(self.tuning.ranges) & set(self.hyperparameters)
            if fixed:
                raise ValueError(f"{sorted(fixed)} are both fixed and searched; keep one")
        return self

    @property
    def wait_hours(self) -> int:
        """Spot wait limit in hours (SageMaker requires it >= the runtime limit)."""
        return self.max_wait_hours or min(2 * self.max_runtime_hours, 672)


class EksTraining(TrainingBase):
    """Training as a Kubeflow Trainer TrainingRuntime on one of the cluster's node pools."""

    plane: Literal["eks"] = Field(description="`eks`: a TrainingRuntime on the cluster.")
    pool: str = Field(
        description="The mlplatform:gpuPools or mlplatform:cpuPools entry whose nodes train."
    )
    gpus_per_instance: Annotated[int, Field(ge=0, le=16)] = Field(
        default=1, description="`nvidia.com/gpu` requested per node (0 trains on CPU)."
    )
    cpus: Annotated[float, Field(gt=0, le=192)] = Field(
        default=2, description="CPU cores requested per node's training container."
    )
    memory_gib: Annotated[int, Field(ge=1, le=2048)] = Field(
        default=16,
        description="Memory requested and limited per node's training container (GiB).",
    )

    @property
    def memory(self) -> str:
        return f"{self.memory_gib}Gi"


def _refuse(problems: list[restrictions.Problem]) -> None:
    """A documented AWS restriction the values break: one error naming each and its page."""
    if problems:
        raise ValueError("; ".join(str(p) for p in problems))


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else getattr(value, key, None)


def _training_plane(value: Any) -> str:
    """The union member a training mapping selects (`plane` defaults to sagemaker)."""
    return str(_get(value, "plane") or "sagemaker")


def _serving_kind(value: Any) -> str:
    """The union member a serving mapping selects: its plane, and on SageMaker its mode."""
    plane = str(_get(value, "plane") or "sagemaker")
    return f"sagemaker-{_get(value, 'mode') or 'instances'}" if plane == "sagemaker" else plane


Training = Annotated[
    Annotated[SageMakerTraining, Tag("sagemaker")] | Annotated[EksTraining, Tag("eks")],
    Discriminator(
        _training_plane,
        custom_error_type="plane",
        custom_error_message="plane must be sagemaker or eks",
    ),
]


# --- serving -----------------------------------------------------------------------------------


class ServingBase(Section):
    """Alarm thresholds and the version served, on any plane."""

    latency_alarm_ms: Annotated[int, Field(ge=1)] = Field(
        default=500, description="Alarm when average model latency exceeds this (ms)."
    )
    error_alarm_count: Annotated[int, Field(ge=1)] = Field(
        default=5, description="Alarm when 5xx errors per 5 minutes reach this count."
    )


class SageMakerServingBase(ServingBase):
    """A SageMaker endpoint: Model, EndpointConfiguration, Endpoint."""

    plane: Literal["sagemaker"] = Field(
        default="sagemaker",
        description="`sagemaker`: Model, EndpointConfiguration, Endpoint; `eks`: Deployment, "
        "Service, HPA and PDB on a node pool.",
    )
    model_package_version: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="Serve this approved version from the model's package group; none: serve "
        "s3://<artifacts>/models/<name>/model.tar.gz.",
    )


class SageMakerEndpoint(SageMakerServingBase):
    """An instance-backed SageMaker endpoint with target-tracking autoscaling."""

    mode: Literal["instances"] = Field(
        default="instances",
        description="`instances` (real-time, autoscaled), `serverless` (CPU, pay per request) "
        "or `async` (queued, scales to zero).",
    )
    instance_type: EndpointInstanceType = Field(
        default="ml.g5.xlarge", description="An ml.* ProductionVariantInstanceType."
    )
    min_instances: Annotated[int, Field(ge=1, le=100)] = Field(
        default=1, description="Autoscaling floor."
    )
    max_instances: Annotated[int, Field(ge=1, le=100)] = Field(
        default=2, description="Autoscaling ceiling."
    )
    target_invocations_per_instance: Annotated[int, Field(ge=1, le=100000)] = Field(
        default=100, description="Target tracking: invocations per instance per minute."
    )
    data_capture_percent: Annotated[int, Field(ge=0, le=100)] = Field(
        default=0,
        description="Share of requests and responses captured to the artifacts bucket under the "
        "stack key; 0 turns capture off.",
    )
    drift_schedule: ScheduleExpression = Field(
        default="rate(1 day)",
        description="With capture on: how often captured requests are checked for drift against "
        "the training data's baseline.",
    )
    drift_alarm_score: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.2, description="Alarm when the share of drifted input features reaches this."
    )

    _bounds = model_validator(mode="after")(instances_in_order)


class ServerlessEndpoint(SageMakerServingBase):
    """A SageMaker Serverless Inference endpoint: CPU, pay per request, scales to zero.

    What serverless endpoints refuse (GPUs, data capture, network isolation, several
    variants, …: infra/restrictions.json) has no key here, and the program never sets it."""

    mode: Literal["serverless"] = Field(
        description="`serverless`: CPU, memory-sized, billed per request (dev)."
    )
    serverless_memory_mb: Literal[1024, 2048, 3072, 4096, 5120, 6144] = Field(
        default=2048, description="Serverless memory (also sets its vCPUs)."
    )
    serverless_max_concurrency: Annotated[int, Field(ge=1, le=200)] = Field(
        default=5, description="Concurrent invocations before throttling."
    )

    @model_validator(mode="after")
    def _documented_limits(self) -> ServerlessEndpoint:
        _refuse(
            restrictions.check_serverless_endpoint(
                memory_mb=self.serverless_memory_mb,
                max_concurrency=self.serverless_max_concurrency,
            )
        )
        return self


class AsyncEndpoint(SageMakerServingBase):
    """A SageMaker asynchronous endpoint: requests queue in S3, results land in the artifacts
    bucket, SNS says when each is done or failed, and the instances scale to zero when idle."""

    mode: Literal["async"] = Field(
        description="`async`: queued requests up to 1 GB and an hour each, results in S3."
    )
    instance_type: EndpointInstanceType = Field(
        default="ml.g5.xlarge", description="An ml.* ProductionVariantInstanceType."
    )
    min_instances: Annotated[int, Field(ge=0, le=100)] = Field(
        default=0, description="Autoscaling floor; 0 scales to zero when the queue is empty."
    )
    max_instances: Annotated[int, Field(ge=1, le=100)] = Field(
        default=2, description="Autoscaling ceiling."
    )
    target_backlog_per_instance: Annotated[int, Field(ge=1, le=10000)] = Field(
        default=5, description="Target tracking: queued requests per instance."
    )
    max_concurrent_invocations_per_instance: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=4, description="Requests each instance works on at once."
    )

    _bounds = model_validator(mode="after")(instances_in_order)


class EksServing(ServingBase):
    """A Deployment, Service and PDB on one of the cluster's node pools, autoscaled by an HPA
    (minInstances 1 or more) or, from zero, by KEDA's HTTP add-on (minInstances 0)."""

    plane: Literal["eks"] = Field(description="`eks`: a Deployment on the cluster.")
    pool: str = Field(
        description="The mlplatform:gpuPools or mlplatform:cpuPools entry whose nodes serve."
    )
    min_instances: Annotated[int, Field(ge=0, le=100)] = Field(
        default=1,
        description="Replicas kept at least; 0 scales to zero when idle (KEDA's HTTP add-on "
        "holds the first request until a replica is ready, minutes when a GPU node must start).",
    )
    max_instances: Annotated[int, Field(ge=1, le=100)] = Field(
        default=2, description="Replicas the autoscaler may scale to."
    )
    target_cpu_utilization: Annotated[int, Field(ge=10, le=100)] = Field(
        default=70,
        description="HPA target (minInstances 1 or more): average CPU utilisation of the "
        "replicas (%).",
    )
    target_concurrent_requests: Annotated[int, Field(ge=1, le=10000)] = Field(
        default=10,
        description="Scale-from-zero target (minInstances 0): requests in flight per replica.",
    )
    gpus_per_replica: Annotated[int, Field(ge=0, le=8)] = Field(
        default=1, description="`nvidia.com/gpu` per replica."
    )
    cpus: Annotated[float, Field(gt=0, le=192)] = Field(
        default=1, description="CPU cores requested per replica."
    )
    memory_gib: Annotated[int, Field(ge=1, le=2048)] = Field(
        default=4, description="Memory requested and limited per replica (GiB)."
    )

    @property
    def memory(self) -> str:
        return f"{self.memory_gib}Gi"

    _bounds = model_validator(mode="after")(instances_in_order)


Serving = Annotated[
    Annotated[SageMakerEndpoint, Tag("sagemaker-instances")]
    | Annotated[ServerlessEndpoint, Tag("sagemaker-serverless")]
    | Annotated[AsyncEndpoint, Tag("sagemaker-async")]
    | Annotated[EksServing, Tag("eks")],
    Discriminator(
        _serving_kind,
        custom_error_type="plane",
        custom_error_message="plane must be sagemaker or eks; on sagemaker, mode must be instances, serverless or async",
    ),
]
# Union member tags appear in pydantic's error locations; the stack file has no such key.
UNION_TAGS = frozenset(
    {"sagemaker", "sagemaker-instances", "sagemaker-serverless", "sagemaker-async", "eks"}
)


class BatchTransform(Section):
    """SageMaker Batch Transform for a model: a pipeline that scores an S3 prefix, started on a
    schedule or by `mlplatform batch`."""

    instance_type: str = Field(default="ml.m5.xlarge", description="An ml.* TransformInstanceType.")
    instance_count: Annotated[int, Field(ge=1, le=100)] = Field(
        default=1, description="Instances the input files are spread over."
    )
    input: Channel = Field(
        default_factory=Channel,
        description="What to score: a prefix of the datasets bucket (default "
        "`<model>/batch/input/`) or an external URI; `mlplatform batch --input` overrides it.",
    )
    content_type: Literal["application/jsonlines", "text/csv", "application/json"] = Field(
        default="application/jsonlines", description="Format of the input records."
    )
    split_type: Literal["Line", "None"] = Field(
        default="Line", description="`Line`: one record per line; `None`: one request per file."
    )
    max_payload_mb: Annotated[int, Field(ge=1, le=100)] = Field(
        default=6, description="Largest request SageMaker sends (MB)."
    )
    max_concurrent_transforms: Annotated[int, Field(ge=1, le=100)] = Field(
        default=4, description="Requests in flight per instance."
    )
    schedule: ScheduleExpression | None = Field(
        default=None, description="EventBridge Scheduler expression; none: on demand only."
    )
    runs_per_month: Annotated[int, Field(ge=0, le=10000)] | None = Field(
        default=None,
        description="Expected runs a month for the cost estimate (default: from "
        "the schedule, else the environment's policy config).",
    )
    hours_per_run: Annotated[float, Field(gt=0, le=72)] = Field(
        default=1.0, description="Expected duration of one run for the cost estimate (hours)."
    )

    @field_validator("instance_type")
    @classmethod
    def _sagemaker_type(cls, value: str) -> str:
        return check_sagemaker_instance_type(value, "TransformInstanceType")

    @model_validator(mode="after")
    def _payload_limit(self) -> BatchTransform:
        # The same documented limit the policy pack checks (infra/restrictions.json).
        _refuse(
            restrictions.check_batch_transform(
                max_concurrent_transforms=self.max_concurrent_transforms,
                max_payload_mb=self.max_payload_mb,
            )
        )
        return self


class Model(Section):
    """One model of the stack: which model directory, and where it trains and serves."""

    name: str = Field(
        description="Lower-case letters, digits and -, 2-32 characters; the model directory "
        "`models/<name>/` unless `path` says otherwise."
    )
    path: str | None = Field(
        default=None,
        description="The model's directory relative to the project root (holds model.yaml); "
        "default `models/<name>`.",
    )
    training: Training = Field(default_factory=SageMakerTraining, description="Training settings.")
    serving: Serving = Field(default_factory=SageMakerEndpoint, description="Serving settings.")
    batch: BatchTransform | None = Field(
        default=None, description="Batch Transform over S3 data (on SageMaker, any serving plane)."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _MODEL_NAME.match(value):
            raise ValueError("must be 2-32 lower-case letters, digits or -, starting with a letter")
        return value

    @property
    def directory(self) -> Path:
        """The model's directory (absolute)."""
        return PROJECT_ROOT / (self.path or f"models/{self.name}")

    @property
    def manifest(self) -> ModelManifest:
        """The model's manifest, read and checked (cached per file content)."""
        return load_model_manifest(self.directory)
