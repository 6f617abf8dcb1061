"""What runs all month or scales: EKS (control plane, its logs, node pools), SageMaker endpoints
and the MLflow tracking server."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from infra import instances
from mlplatform.cost.lines import Pricing, per_month
from policies.rules import StackResource
from policies.rules import props as p

# The node label a pool's nodes carry and a workload selects (infra/components/gpu_pools.py);
# not imported from there: the policy pack must not load the program's components.
POOL_LABEL = "mlplatform.io/pool"
GPU = "nvidia.com/gpu"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"


def cluster(r: StackResource, c: Pricing) -> None:
    c.add(
        r,
        "EKS control plane",
        "cluster",
        "per cluster",
        c.service("eksControlPlaneHourly") * c.hours,
    )
    logs = [str(t) for t in p.as_list(r.props.get("enabledClusterLogTypes"))]
    if logs:
        gb = float(c.usage["controlPlaneLogGbPerMonth"])
        c.add(
            r,
            "control-plane logs",
            "cluster",
            f"{', '.join(logs)} to CloudWatch Logs, {gb:g} GB a month",
            gb * c.service("cloudwatchLogsIngestionPerGb"),
        )
        c.assume(
            f"EKS control-plane logs: {gb:g} GB a month ingested ({c.usage.source('controlPlaneLogGbPerMonth')})"
        )


def _quantity(value: Any) -> float:
    """A Kubernetes quantity (`1`, `500m`); 0 for what the plan cannot know."""
    text = str(value or "0")
    try:
        return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        return 0.0


def _demand(template: Mapping[str, Any]) -> tuple[float, float]:
    """GPUs and CPUs one replica of a pod template asks for."""
    gpus = cpus = 0.0
    for container in map(p.as_dict, p.as_list(template.get("containers"))):
        resources = p.as_dict(container.get("resources"))
        requests, limits = p.as_dict(resources.get("requests")), p.as_dict(resources.get("limits"))
        gpus += _quantity(requests.get(GPU) or limits.get(GPU))
        cpus += _quantity(requests.get("cpu"))
    return gpus, cpus


def pinned_replicas(c: Pricing) -> dict[str, list[tuple[str, int, float, float]]]:
    """Per pool: (workload, minimum replicas, GPUs and CPUs each) of the Deployments that select
    it. The floor is the HPA's minReplicas, a KEDA ScaledObject's minReplicaCount (0 scales to
    zero), else the Deployment's replicas."""
    floors: dict[tuple[str, str], int] = {}
    for r in c.of_type(p.HPA) + c.of_type(SCALED_OBJECT):
        spec, meta = p.as_dict(r.props.get("spec")), p.as_dict(r.props.get("metadata"))
        target = str(p.as_dict(spec.get("scaleTargetRef")).get("name"))
        floor = spec.get("minReplicas", spec.get("minReplicaCount", 1 if r.type == p.HPA else 0))
        floors[(str(meta.get("namespace")), target)] = int(_quantity(floor))
    out: dict[str, list[tuple[str, int, float, float]]] = {}
    for r in c.of_type(p.DEPLOYMENT):
        spec, meta = p.as_dict(r.props.get("spec")), p.as_dict(r.props.get("metadata"))
        template = p.as_dict(p.as_dict(spec.get("template")).get("spec"))
        pool = p.as_dict(template.get("nodeSelector")).get(POOL_LABEL)
        name = str(meta.get("name"))
        low = floors.get(
            (str(meta.get("namespace")), name), int(_quantity(spec.get("replicas", 1)))
        )
        if pool and low > 0:
            out.setdefault(str(pool), []).append((name, low, *_demand(template)))
    return out


def _nodes_for(workloads: list[tuple[str, int, float, float]], instance_type: str) -> int:
    """Nodes the pool cannot scale below while these replicas must run."""
    facts = instances.facts(instance_type)
    if facts is None:
        return 0
    nodes = 0
    for _name, low, gpus, cpus in workloads:
        if gpus:
            per_node = int(facts.gpu_count // gpus) if facts.gpu_count else 0
        else:
            per_node = int(facts.vcpus // cpus) if cpus else low
        nodes += math.ceil(low / per_node) if per_node else 0
    return nodes


def node_pool(r: StackResource, c: Pricing) -> None:
    props = r.props
    types = [str(t) for t in p.as_list(props.get("instanceTypes"))] or ["t3.medium"]
    hourly = [h for h in map(c.hourly, types) if h is not None]
    if len(hourly) < len(types):
        return
    spot = props.get("capacityType") == "SPOT"
    factor = c.prices.assumptions["ec2SpotFactor"] if spot else 1
    scale = p.as_dict(props.get("scalingConfig"))
    low, high = int(scale.get("minSize") or 0), int(scale.get("maxSize") or 0)
    pool = p.as_dict(props.get("labels")).get(POOL_LABEL)
    pinned_by_pool = c.once("pinned", lambda: pinned_replicas(c))
    workloads = pinned_by_pool.get(str(pool), []) if pool else []
    pinned = min(_nodes_for(workloads, types[0]), high)
    kept = ""
    if pinned > low:
        replicas = sum(w[1] for w in workloads)
        names = ", ".join(sorted(w[0] for w in workloads))
        kept = f" ({pinned} kept up by {names}: {replicas} minimum replica{'s' * (replicas > 1)})"
        low = pinned
    template = p.as_dict(props.get("launchTemplate")).get("id")
    disk_gb = c.template_gb.get(str(template)) or int(
        props.get("diskSize") or c.prices.assumptions["nodeDiskGbDefault"]
    )
    disk = disk_gb * c.service("ebsGp3PerGbMonth")
    # The autoscaler may pick any listed type: cheapest at the floor, dearest at the top.
    capacity = "spot" if spot else "on-demand"
    c.add(
        r,
        "node pool",
        "compute",
        f"{'/'.join(types)} {capacity} x {low}..{high}{kept}, {disk_gb} GB gp3 each",
        (min(hourly) * factor * c.hours + disk) * low,
        (max(hourly) * factor * c.hours + disk) * high,
    )


def endpoint_config(r: StackResource, c: Pricing) -> None:
    bounds = c.scaling.get(c.endpoints.get(str(r.props.get("name")), ""), {})
    for v in p.variants(r.props):
        serverless = p.as_dict(v.get("serverlessConfig"))
        if serverless:
            gb = int(serverless.get("memorySizeInMb") or 1024) / 1024
            busy = float(c.usage["serverlessBusySecondsPerMonth"])
            cost = gb * busy * c.service("sagemakerServerlessPerGbSecond")
            detail = f"{gb:g} GB, {busy:,.0f} busy s a month; nothing while idle"
            c.add(r, "endpoint (serverless)", "compute", detail, 0, cost, scales=False)
            c.assume(
                f"Serverless endpoints: {busy:,.0f} busy seconds a month each ({c.usage.source('serverlessBusySecondsPerMonth')})"
            )
            continue
        hourly = c.hourly(v.get("instanceType"))
        if hourly is None:
            continue
        given = bounds.get("minCapacity")
        # The engine hands numbers over as floats (0.0), the offline plan as ints.
        known = isinstance(given, int | float)
        low = int(given) if known else int(v.get("initialInstanceCount") or 1)
        high = int(bounds.get("maxCapacity") or low)
        asynchronous = bool(p.as_dict(r.props.get("asyncInferenceConfig")))
        kind = "endpoint (async)" if asynchronous else "endpoint"
        idle = "; scales to zero when its queue is empty" if asynchronous and low == 0 else ""
        detail = f"{v.get('instanceType')} x {low}..{high}{idle}"
        c.add(r, kind, "compute", detail, hourly * c.hours * low, hourly * c.hours * high)


def tracking_server(r: StackResource, c: Pricing) -> None:
    size = str(r.props.get("trackingServerSize") or "Small")
    hourly = c.prices.mlflow_hourly.get(size)
    if hourly is None:
        c.out.unpriced.append(f"MLflow tracking server {size}")
        return
    detail = f"managed MLflow {size}: billed every hour it exists ({per_month(c.hours)} h)"
    c.add(r, "MLflow tracking server", "tracking", detail, hourly * c.hours)
