"""CPU node pool guardrails, as the GPU ones: which instance families an environment allows for
CPU pools (none unless listed), how far one pool may grow, and the vCPUs all of them may reach.

A CPU pool is an EKS node group whose instance types have no GPUs, other than the cluster's
system node group (`mlplatform.io/node-role: system`, sized by `mlplatform:cluster.systemNodes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from infra import instances
from policies.rules import Rule, StackFacts, StackResource
from policies.rules.props import NODE_GROUP, as_dict, as_list, family, known

SYSTEM_ROLE = ("mlplatform.io/node-role", "system")


def cpu_pool_types(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """The instance types of a CPU pool; empty for anything else (GPU pools, the system node
    group, other resources, types the plan does not know yet)."""
    if resource_type != NODE_GROUP:
        return []
    labels = as_dict(props.get("labels"))
    if labels.get(SYSTEM_ROLE[0]) == SYSTEM_ROLE[1]:
        return []
    types = [t for t in as_list(props.get("instanceTypes")) if isinstance(t, str) and known(t)]
    if not types or any(instances.gpu_info(t) for t in types):
        return []
    return types


def _max_size(props: Mapping[str, Any]) -> int:
    size = as_dict(props.get("scalingConfig")).get("maxSize")
    return int(size) if isinstance(size, int | float) else 0


def pool_vcpus(props: Mapping[str, Any], types: Sequence[str]) -> int:
    """vCPUs of a pool at its maximum size (its largest listed type on every node)."""
    return _max_size(props) * max((instances.vcpus(t) or 0 for t in types), default=0)


def allowed_cpu_families(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    types = cpu_pool_types(resource_type, props)
    allowed = list(config.get("allowedFamilies", []))
    if types and not allowed:
        yield (
            f"CPU node pool of {types} is refused: this environment allows no CPU pools "
            "(cpu-pool-allowed-families.allowedFamilies is empty); list the family in the "
            "environment's policy config or remove the pool"
        )
        return
    for instance_type in types:
        if family(instance_type) not in allowed:
            yield (
                f"CPU instance type {instance_type!r} (family {family(instance_type)}) is not "
                f"allowed for CPU pools in this environment; allowed families: {allowed}"
            )


def max_nodes_per_pool(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    if not cpu_pool_types(resource_type, props):
        return
    limit = config.get("maxNodesPerPool", 0)
    if _max_size(props) > limit:
        yield (
            f"CPU node pool can grow to {_max_size(props)} nodes (scalingConfig.maxSize); "
            f"the limit per pool is {limit}"
        )


def max_vcpus_per_stack(
    resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
) -> Iterable[tuple[str, str | None]]:
    limit = config.get("maxVcpusPerStack", 0)
    pools = [
        (r.name, pool_vcpus(r.props, types))
        for r in resources
        if (types := cpu_pool_types(r.type, r.props))
    ]
    total = sum(n for _, n in pools)
    if total > limit:
        detail = ", ".join(f"{name}: {n}" for name, n in pools)
        yield (
            f"the stack's CPU pools can use {total} vCPUs at full scale ({detail}); "
            f"the limit is {limit}",
            None,
        )


_INT = {"type": "integer", "minimum": 0}
RULES = [
    Rule(
        "cpu-pool-allowed-families",
        "CPU node pools use instance families this environment lists (none unless listed).",
        "high",
        allowed_cpu_families,
        config_schema={
            "allowedFamilies": {"type": "array", "items": {"type": "string"}, "default": []}
        },
    ),
    Rule(
        "cpu-pool-max-nodes",
        "A CPU node pool cannot grow past a node limit.",
        "medium",
        max_nodes_per_pool,
        config_schema={"maxNodesPerPool": {**_INT, "default": 4}},
    ),
    Rule(
        "cpu-pool-max-vcpus-per-stack",
        "The stack's CPU node pools stay under a vCPU limit at full scale.",
        "medium",
        max_vcpus_per_stack,
        scope="stack",
        config_schema={"maxVcpusPerStack": {**_INT, "default": 32}},
    ),
]
