"""GPU and capacity guardrails: which GPUs an environment may use, how many, spot, serving bounds."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from infra.instances import gpu_info
from policies.rules import Rule, StackFacts, StackResource
from policies.rules.props import (
    ENDPOINT_CONFIG,
    HPA,
    LAUNCH_TEMPLATE,
    NODE_GROUP,
    PIPELINE,
    SCALING_TARGET,
    as_dict,
    as_list,
    ec2_type,
    family,
    known,
    training_steps,
    variants,
)

# KEDA's ScaledObject sizes EKS serving that scales from zero (infra/components/http_scaler.py).
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"


def gpus(instance_type: Any) -> int:
    """Whole GPUs of an EC2 or SageMaker instance type; 0 for CPU-only or unknown types."""
    if not isinstance(instance_type, str) or not known(instance_type):
        return 0
    info = gpu_info(ec2_type(instance_type))
    return info[1] if info else 0


def _is_gpu(instance_type: Any) -> bool:
    return (
        isinstance(instance_type, str)
        and known(instance_type)
        and gpu_info(ec2_type(instance_type)) is not None
    )


def instance_types(resource_type: str, props: Mapping[str, Any]) -> Iterator[str]:
    """Every instance type a resource can launch."""
    if resource_type == NODE_GROUP:
        yield from as_list(props.get("instanceTypes"))
    elif resource_type == LAUNCH_TEMPLATE and props.get("instanceType"):
        yield props["instanceType"]
    elif resource_type == ENDPOINT_CONFIG:
        yield from (v["instanceType"] for v in variants(props) if v.get("instanceType"))
    elif resource_type == PIPELINE:
        yield from (
            s.instance_type
            for s in training_steps(props.get("pipelineDefinition"))
            if s.instance_type
        )


def allowed_gpu_families(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    allowed = config.get("allowedFamilies", [])
    for instance_type in instance_types(resource_type, props):
        if _is_gpu(instance_type) and family(instance_type) not in allowed:
            yield f"GPU instance type {instance_type!r} (family {family(instance_type)}) is not allowed in this environment; allowed families: {allowed}"


def _max_size(props: Mapping[str, Any]) -> int:
    size = as_dict(props.get("scalingConfig")).get("maxSize")
    return int(size) if isinstance(size, int | float) else 0


def _pool_gpus(props: Mapping[str, Any]) -> int:
    return _max_size(props) * max((gpus(t) for t in as_list(props.get("instanceTypes"))), default=0)


def max_gpus_per_pool(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    if resource_type != NODE_GROUP:
        return
    limit = config.get("maxGpusPerPool", 0)
    total = _pool_gpus(props)
    if total > limit:
        yield f"node pool can grow to {total} GPUs (scalingConfig.maxSize {_max_size(props)} x {props.get('instanceTypes')}); the limit per pool is {limit}"


def _scaling_max(resources: Sequence[StackResource]) -> dict[str, int]:
    """Autoscaling maxCapacity by SageMaker endpoint name (`endpoint/<name>/variant/<v>`)."""
    out: dict[str, int] = {}
    for r in resources:
        resource_id = r.props.get("resourceId")
        if (
            r.type == SCALING_TARGET
            and isinstance(resource_id, str)
            and resource_id.startswith("endpoint/")
        ):
            out[resource_id.split("/")[1]] = int(r.props.get("maxCapacity") or 0)
    return out


def stack_gpus(resources: Sequence[StackResource]) -> list[tuple[str, int]]:
    """(resource name, GPUs at full scale) for every GPU consumer of the stack."""
    endpoint_max = _scaling_max(resources)
    config_to_endpoint = {
        r.props.get("endpointConfigName"): r.props.get("name")
        for r in resources
        if r.type == "aws:sagemaker/endpoint:Endpoint"
    }
    out: list[tuple[str, int]] = []
    for r in resources:
        if r.type == NODE_GROUP:
            out.append((r.name, _pool_gpus(r.props)))
        elif r.type == ENDPOINT_CONFIG:
            endpoint = config_to_endpoint.get(r.props.get("name"))
            scaled = endpoint_max.get(endpoint) if isinstance(endpoint, str) else None
            for v in variants(r.props):
                count = scaled or int(v.get("initialInstanceCount") or 0)
                out.append((r.name, count * gpus(v.get("instanceType"))))
        elif r.type == PIPELINE:
            for step in training_steps(r.props.get("pipelineDefinition")):
                out.append(
                    (r.name, step.parallel_jobs * step.instance_count * gpus(step.instance_type))
                )
    return [(name, n) for name, n in out if n]


def max_gpus_per_stack(
    resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
) -> Iterable[tuple[str, str | None]]:
    limit = config.get("maxGpusPerStack", 0)
    consumers = stack_gpus(resources)
    total = sum(n for _, n in consumers)
    if total > limit:
        detail = ", ".join(f"{name}: {n}" for name, n in consumers)
        yield f"the stack can use {total} GPUs at full scale ({detail}); the limit is {limit}", None


def _is_training_pool(props: Mapping[str, Any]) -> bool:
    return "training" in as_dict(props.get("labels")).values()


def training_spot(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    if resource_type == PIPELINE:
        for step in training_steps(props.get("pipelineDefinition")):
            if not step.spot:
                yield f"training step {step.name!r} runs on on-demand capacity; set EnableManagedSpotTraining (training.spot: true) with checkpoints"
    elif resource_type == NODE_GROUP:
        gpu_pool = any(_is_gpu(t) for t in as_list(props.get("instanceTypes")))
        applies = _is_training_pool(props) or (config.get("allGpuPools") and gpu_pool)
        if applies and props.get("capacityType", "ON_DEMAND") != "SPOT":
            yield f"GPU node pool uses {props.get('capacityType', 'ON_DEMAND')} capacity; training pools must use SPOT here"


def serving_bounds(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    most = config.get("maxServingInstances", 0)
    if resource_type == SCALING_TARGET and str(props.get("resourceId", "")).startswith("endpoint/"):
        if int(props.get("maxCapacity") or 0) > most:
            yield f"endpoint autoscaling may reach {props.get('maxCapacity')} instances (maxCapacity); the limit is {most}"
    elif resource_type == ENDPOINT_CONFIG:
        for v in variants(props):
            if int(v.get("initialInstanceCount") or 0) > most:
                yield f"variant {v.get('variantName')!r} starts {v.get('initialInstanceCount')} instances; the limit is {most}"
            concurrency = int(as_dict(v.get("serverlessConfig")).get("maxConcurrency") or 0)
            if concurrency > config.get("maxServerlessConcurrency", 0):
                yield f"variant {v.get('variantName')!r} allows {concurrency} concurrent serverless invocations; the limit is {config.get('maxServerlessConcurrency')}"
    elif resource_type == HPA:
        replicas = int(as_dict(props.get("spec")).get("maxReplicas") or 0)
        if replicas > most:
            yield f"HorizontalPodAutoscaler may reach {replicas} replicas (spec.maxReplicas); the limit is {most}"
    elif resource_type == SCALED_OBJECT:
        replicas = int(as_dict(props.get("spec")).get("maxReplicaCount") or 0)
        if replicas > most:
            yield f"ScaledObject may reach {replicas} replicas (spec.maxReplicaCount); the limit is {most}"


_INT = {"type": "integer", "minimum": 0}
RULES = [
    Rule(
        "gpu-allowed-families",
        "GPU instance types come from the families allowed in this environment.",
        "high",
        allowed_gpu_families,
        config_schema={
            "allowedFamilies": {
                "type": "array",
                "items": {"type": "string"},
                "default": ["g4dn", "g5", "g6", "g6e"],
            }
        },
    ),
    Rule(
        "gpu-max-per-pool",
        "A node pool cannot grow past a GPU limit.",
        "high",
        max_gpus_per_pool,
        config_schema={"maxGpusPerPool": {**_INT, "default": 8}},
    ),
    Rule(
        "gpu-max-per-stack",
        "The stack's GPUs at full scale stay under a limit.",
        "high",
        max_gpus_per_stack,
        scope="stack",
        config_schema={"maxGpusPerStack": {**_INT, "default": 16}},
    ),
    Rule(
        "training-spot-required",
        "Training runs on spot capacity, resuming from checkpoints.",
        "medium",
        training_spot,
        enforcement="advisory",
        config_schema={
            "allGpuPools": {
                "type": "boolean",
                "default": False,
                "description": "Every GPU node pool must be spot, not only training pools.",
            }
        },
    ),
    Rule(
        "serving-bounds",
        "Endpoints and serving replicas (HPA or KEDA) have an upper bound.",
        "medium",
        serving_bounds,
        config_schema={
            "maxServingInstances": {**_INT, "default": 4},
            "maxServerlessConcurrency": {**_INT, "default": 20},
        },
    ),
]
