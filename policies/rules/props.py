"""Reading resource properties the way a rule must: `.get()`, unknowns tolerated, JSON parsed.

Under the engine, a value not known during preview raises `UnknownValueError` when read (the SDK
turns that into an advisory "can't run policy during preview"); in the offline plan such a value
is the string "[computed]". Either way a rule must not crash, so the helpers here return None for
what they cannot know and rules skip it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infra import instances

UNKNOWN = "[computed]"
SECRET = "[secret]"

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
CLUSTER = "aws:eks/cluster:Cluster"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
INSTANCE = "aws:ec2/instance:Instance"
ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
SAGEMAKER_MODEL = "aws:sagemaker/model:Model"
PIPELINE = "aws:sagemaker/pipeline:Pipeline"
SCALING_TARGET = "aws:appautoscaling/target:Target"
SCHEDULE = "aws:scheduler/schedule:Schedule"
IMAGE = "docker-build:index:Image"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"


def known(value: Any) -> bool:
    """False for values the plan cannot know yet (computed, or masked secrets)."""
    return value is not None and value not in (UNKNOWN, SECRET)


def as_dict(value: Any) -> Mapping[str, Any]:
    """A nested object, or an empty one (providers send single blocks as dicts or 1-lists)."""
    if _is_seq(value) and value and isinstance(value[0], Mapping):
        return value[0]
    return value if isinstance(value, Mapping) else {}


def _is_seq(value: Any) -> bool:
    # The engine hands props over as read-only proxies: Sequence and Mapping, not list and dict.
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def as_list(value: Any) -> list[Any]:
    if _is_seq(value):
        return list(value)
    return [] if value is None else [value]


def truthy(value: Any) -> bool:
    """Booleans that some providers send as strings (launch template `encrypted: "true"`)."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def json_doc(value: Any) -> Any:
    """A JSON document given as a string or already parsed; None when unknown or invalid."""
    if isinstance(value, Mapping) or _is_seq(value):
        return value
    if not isinstance(value, str) or not known(value):
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def family(instance_type: str) -> str:
    """`g5` for `g5.xlarge` and for SageMaker's `ml.g5.xlarge`."""
    return instance_type.removeprefix("ml.").split(".", 1)[0]


def local_storage(instance_type: str) -> bool:
    """Whether an EC2 or `ml.` type has instance-store volumes, per the instance facts table
    (`infra/instances.py`). SageMaker refuses a volume KMS key on those types: the instance's
    hardware encrypts the disks.

    A type the table lacks (or a computed value) counts as EBS-backed, so the rule asks for the
    stack's key: the safe side for a security rule. The program never plans such a type (its
    config check rejects SageMaker types without instance facts).
    """
    try:
        return instances.has_instance_storage(instance_type)
    except instances.UnknownInstanceType:
        return False


def ec2_type(instance_type: str) -> str:
    """The EC2 type behind a SageMaker `ml.*` type (same hardware, used for GPU facts)."""
    return instance_type.removeprefix("ml.")


# --- SageMaker pipeline definitions -------------------------------------------------------------


@dataclass(frozen=True)
class TrainingStep:
    """A training (or tuning) step of a SageMaker pipeline definition, parameters resolved."""

    name: str
    instance_type: str | None
    instance_count: int
    max_runtime_s: int | None
    spot: bool
    parallel_jobs: int
    total_jobs: int
    image: str | None
    volume_kms_key: str | None
    output_kms_key: str | None
    max_wait_s: int | None = None
    checkpoint_uri: str | None = None


def _resolve(value: Any, parameters: Mapping[str, Any]) -> Any:
    """Replace `{"Get": "Parameters.X"}` by X's default value."""
    if isinstance(value, Mapping) and isinstance(value.get("Get"), str):
        ref = value["Get"]
        if ref.startswith("Parameters."):
            return parameters.get(ref.removeprefix("Parameters."))
        return None
    return value


def training_steps(definition: Any) -> Iterator[TrainingStep]:
    """The Training and Tuning steps of a pipeline definition (a JSON string or object)."""
    doc = json_doc(definition)
    if not isinstance(doc, Mapping):
        return
    # Only named parameters can be referenced (`Parameters.<Name>`).
    parameters = {
        name: p.get("DefaultValue")
        for p in as_list(doc.get("Parameters"))
        if isinstance(p, Mapping) and isinstance(name := p.get("Name"), str)
    }
    for step in as_list(doc.get("Steps")):
        if not isinstance(step, Mapping) or step.get("Type") not in ("Training", "Tuning"):
            continue
        args = as_dict(step.get("Arguments"))
        parallel = total = 1
        if step.get("Type") == "Tuning":
            limits = as_dict(
                as_dict(args.get("HyperParameterTuningJobConfig")).get("ResourceLimits")
            )
            total = int(_resolve(limits.get("MaxNumberOfTrainingJobs"), parameters) or 1)
            parallel = int(_resolve(limits.get("MaxParallelTrainingJobs"), parameters) or 1)
            args = as_dict(args.get("TrainingJobDefinition"))
        resources = as_dict(args.get("ResourceConfig"))
        stopping = as_dict(args.get("StoppingCondition"))
        runtime = _resolve(stopping.get("MaxRuntimeInSeconds"), parameters)
        wait = _resolve(stopping.get("MaxWaitTimeInSeconds"), parameters)
        checkpoint = _resolve(as_dict(args.get("CheckpointConfig")).get("S3Uri"), parameters)
        instance_type = _resolve(resources.get("InstanceType"), parameters)
        yield TrainingStep(
            name=str(step.get("Name", "")),
            instance_type=instance_type if isinstance(instance_type, str) else None,
            instance_count=int(_resolve(resources.get("InstanceCount"), parameters) or 1),
            max_runtime_s=int(runtime) if isinstance(runtime, int | float) else None,
            spot=truthy(_resolve(args.get("EnableManagedSpotTraining"), parameters)),
            parallel_jobs=parallel,
            total_jobs=total,
            image=_resolve(
                as_dict(args.get("AlgorithmSpecification")).get("TrainingImage"), parameters
            ),
            volume_kms_key=_resolve(resources.get("VolumeKmsKeyId"), parameters),
            output_kms_key=_resolve(
                as_dict(args.get("OutputDataConfig")).get("KmsKeyId"), parameters
            ),
            max_wait_s=int(wait) if isinstance(wait, int | float) else None,
            # A checkpoint URI built at run time (Join, execution id) is still a checkpoint.
            checkpoint_uri=checkpoint
            if isinstance(checkpoint, str)
            else ("[computed]" if checkpoint is not None else None),
        )


def transform_steps(definition: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(name, arguments) of the Transform steps of a pipeline definition."""
    doc = json_doc(definition)
    for step in as_list(doc.get("Steps")) if isinstance(doc, Mapping) else []:
        if isinstance(step, Mapping) and step.get("Type") == "Transform":
            yield str(step.get("Name", "")), as_dict(step.get("Arguments"))


# --- Endpoint variants -------------------------------------------------------------------------


def variants(endpoint_config: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Production and shadow variants of an endpoint configuration."""
    return [
        as_dict(v)
        for key in ("productionVariants", "shadowProductionVariants")
        for v in as_list(endpoint_config.get(key))
    ]


def container_images(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Every container image reference a resource runs (known values only)."""
    images: list[Any] = []
    if resource_type == SAGEMAKER_MODEL:
        images.append(as_dict(props.get("primaryContainer")).get("image"))
        images += [as_dict(c).get("image") for c in as_list(props.get("containers"))]
    elif resource_type == PIPELINE:
        images += [step.image for step in training_steps(props.get("pipelineDefinition"))]
    elif resource_type.startswith("kubernetes:"):
        images += list(_pod_images(props))
    elif resource_type == IMAGE:
        images += as_list(props.get("tags"))
    return [i for i in images if isinstance(i, str) and known(i)]


def _pod_images(value: Any) -> Iterator[Any]:
    """Images of every container list anywhere in a Kubernetes object (Deployments, Jobs,
    training-operator resources all nest pod templates at different depths)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key in ("containers", "initContainers"):
                yield from (as_dict(c).get("image") for c in as_list(item))
            else:
                yield from _pod_images(item)
    elif _is_seq(value):
        for item in value:
            yield from _pod_images(item)
