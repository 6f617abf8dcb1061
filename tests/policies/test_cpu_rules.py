"""CPU node pool guardrails: families an environment lists (none unless listed), nodes per pool
and vCPUs per stack, on hand-built inputs and on what the program declares for a CPU pool."""

from __future__ import annotations

from policies.offline import check_plan, mandatory

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
CPU_POOL = {
    "name": "prep",
    "instanceTypes": ["m7i.2xlarge", "m6i.2xlarge"],  # 8 vCPUs, 32 GiB each
    "minSize": 0,
    "maxSize": 3,
}


def _group(instance: str, max_size: int, **labels: str) -> dict:
    return {
        "instanceTypes": [instance],
        "capacityType": "ON_DEMAND",
        "scalingConfig": {"minSize": 0, "maxSize": max_size, "desiredSize": 0},
        "labels": {"mlplatform.io/pool": "prep", **labels},
    }


def test_a_cpu_pool_family_outside_the_list_is_refused(check):
    [message] = check(
        "cpu-pool-allowed-families", NODE_GROUP, _group("x2iedn.xlarge", 2), allowedFamilies=["m7i"]
    )
    assert "x2iedn.xlarge" in message and "x2iedn" in message
    assert (
        check(
            "cpu-pool-allowed-families",
            NODE_GROUP,
            _group("m7i.xlarge", 2),
            allowedFamilies=["m7i"],
        )
        == []
    )


def test_no_cpu_pool_is_allowed_where_none_is_listed(check):
    [message] = check("cpu-pool-allowed-families", NODE_GROUP, _group("m7i.xlarge", 2))
    assert "allows no CPU pools" in message


def test_gpu_pools_and_the_system_nodes_are_not_cpu_pools(check):
    assert check("cpu-pool-allowed-families", NODE_GROUP, _group("g5.xlarge", 2)) == []
    system = _group("m6i.large", 3, **{"mlplatform.io/node-role": "system"})
    assert check("cpu-pool-allowed-families", NODE_GROUP, system) == []
    assert (
        check("cpu-pool-max-nodes", NODE_GROUP, {**system, "scalingConfig": {"maxSize": 50}}) == []
    )


def test_a_cpu_pool_cannot_grow_past_its_node_limit(check):
    [message] = check("cpu-pool-max-nodes", NODE_GROUP, _group("m7i.xlarge", 6), maxNodesPerPool=4)
    assert "6 nodes" in message and "limit per pool is 4" in message
    assert check("cpu-pool-max-nodes", NODE_GROUP, _group("m7i.xlarge", 4), maxNodesPerPool=4) == []


def test_the_stacks_cpu_pools_stay_under_a_vcpu_limit(check_stack, resource):
    pools = [
        resource(NODE_GROUP, "a", **_group("m7i.2xlarge", 3)),  # 3 x 8
        resource(NODE_GROUP, "b", **_group("c7i.xlarge", 2)),  # 2 x 4
        resource(NODE_GROUP, "gpu", **_group("g5.xlarge", 4)),  # not a CPU pool
    ]
    [message] = check_stack("cpu-pool-max-vcpus-per-stack", pools, maxVcpusPerStack=31)
    assert "32 vCPUs" in message and "a: 24" in message and "gpu" not in message
    assert check_stack("cpu-pool-max-vcpus-per-stack", pools, maxVcpusPerStack=32) == []


def _cpu_findings(plan) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for v in mandatory(check_plan(plan)):
        if v.policy.startswith("cpu-pool-"):
            found.setdefault(v.policy, []).append(f"{v.resource}: {v.message}")
    return found


def test_prod_refuses_the_cpu_pool_the_program_declares(plan_variant):
    found = _cpu_findings(plan_variant("prod", {"mlplatform:cpuPools": [CPU_POOL]}))
    [message] = found["cpu-pool-allowed-families"]
    assert message.startswith("mlplatform-variant-prep: ") and "allows no CPU pools" in message


def test_dev_takes_a_small_cpu_pool_and_refuses_a_big_one(plan_variant):
    assert _cpu_findings(plan_variant("dev", {"mlplatform:cpuPools": [CPU_POOL]})) == {}
    big = {**CPU_POOL, "maxSize": 5}
    found = _cpu_findings(plan_variant("dev", {"mlplatform:cpuPools": [big]}))
    assert "5 nodes" in found["cpu-pool-max-nodes"][0]
    assert "40 vCPUs" in found["cpu-pool-max-vcpus-per-stack"][0]
