"""CPU node pools: labels without a GPU taint, autoscaler templates with the nodes' CPUs and
memory (so a pool at zero can be woken), and their node group and launch template planned."""

from __future__ import annotations

import pytest

from infra import instances
from infra.components.node_groups import NODE_TEMPLATE
from infra.config import StackConfigError
from infra.stackfile import load_stack_file
from mlplatform.plan import Plan, plan_stack
from mlplatform.variants import write_variant
from tests.conftest import FIXTURE_STACKS_DIR

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ASG_TAG = "aws:autoscaling/tag:Tag"
PREP = {
    "name": "prep",
    "instanceTypes": ["m7i.2xlarge", "m6i.2xlarge"],
    "capacityType": "spot",
    "minSize": 0,
    "maxSize": 3,
    "diskSizeGib": 80,
    "labels": {"team": "data"},
}


@pytest.fixture(scope="module")
def with_cpu_pool(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    path = write_variant(
        tmp_path_factory.mktemp("cpu"),
        "dev",
        {"mlplatform:cpuPools": [PREP]},
        "cpu",
        stacks_dir=FIXTURE_STACKS_DIR,
    )
    return plan_stack(path, "cpu")


def prep_group(plan: Plan):
    return plan.get(NODE_GROUP, "mlplatform-cpu-prep")


def test_a_cpu_pool_is_a_labelled_node_group_without_the_gpu_taint(with_cpu_pool: Plan):
    group = prep_group(with_cpu_pool).inputs
    assert group["instanceTypes"] == PREP["instanceTypes"]
    assert group["amiType"] == "AL2023_x86_64_STANDARD"
    assert group["capacityType"] == "SPOT"
    assert group["scalingConfig"] == {"minSize": 0, "maxSize": 3, "desiredSize": 0}
    assert not group.get("taints")
    assert group["labels"] == {
        "mlplatform.io/pool": "prep",
        "mlplatform.io/node-kind": "cpu",
        "mlplatform.io/capacity-type": "spot",
        "mlplatform.io/ami-family": "al2023",
        "team": "data",
    }
    assert not any(k.startswith("nvidia.com/") for k in group["labels"])


def test_the_autoscaler_template_carries_the_nodes_cpus_memory_and_disk(with_cpu_pool: Plan):
    group = prep_group(with_cpu_pool)
    tags = {
        r.inputs["tag"]["key"]: r.inputs["tag"]["value"]
        for r in with_cpu_pool.children(group)
        if r.type == ASG_TAG
    }
    facts = instances.facts("m7i.2xlarge")
    assert tags[f"{NODE_TEMPLATE}/resources/cpu"] == str(facts.vcpus) == "8"
    assert tags[f"{NODE_TEMPLATE}/resources/memory"] == f"{facts.memory_mib}Mi"
    assert tags[f"{NODE_TEMPLATE}/resources/ephemeral-storage"] == "80Gi"
    for key, value in group.inputs["labels"].items():
        assert tags[f"{NODE_TEMPLATE}/label/{key}"] == value
    assert not [k for k in tags if "/taint/" in k or "nvidia.com/gpu" in k]
    asg = group.outputs["resources"][0]["autoscalingGroups"][0]["name"]
    assert {
        r.inputs["autoscalingGroupName"] for r in with_cpu_pool.children(group) if r.type == ASG_TAG
    } == {asg}


def test_the_cpu_pool_has_an_imdsv2_launch_template_with_an_encrypted_volume(with_cpu_pool: Plan):
    group = prep_group(with_cpu_pool)
    (template,) = [
        r.inputs
        for r in with_cpu_pool.of_type(LAUNCH_TEMPLATE)
        if r.outputs["id"] == group.inputs["launchTemplate"]["id"]
    ]
    assert template["metadataOptions"]["httpTokens"] == "required"
    [volume] = [m["ebs"] for m in template["blockDeviceMappings"]]
    assert volume["volumeSize"] == 80 and volume["encrypted"] == "true"
    assert group.ignore_changes == ["scalingConfig.desiredSize"]


def test_the_stack_outputs_how_pods_land_on_the_cpu_pool(with_cpu_pool: Plan):
    assert with_cpu_pool.outputs["cpuPools"]["prep"] == {
        "nodeSelector": {"mlplatform.io/pool": "prep"},
        "vcpusPerNode": 8,
        "memoryMibPerNode": instances.facts("m7i.2xlarge").memory_mib,
        "instanceTypes": PREP["instanceTypes"],
    }
    assert "prep" not in with_cpu_pool.outputs["gpuPools"]


@pytest.mark.parametrize(
    ("pool", "why"),
    [
        ({**PREP, "instanceTypes": ["g5.xlarge"]}, "has GPUs; put it in mlplatform:gpuPools"),
        (
            {**PREP, "instanceTypes": ["m7i.2xlarge", "m7i.4xlarge"]},
            "must share vCPUs, memory and architecture",
        ),
        ({**PREP, "minSize": 4}, "maxSize must be >= minSize"),
    ],
    ids=["gpu-type", "mixed-shapes", "min-over-max"],
)
def test_bad_cpu_pools_fail_with_a_message_naming_the_key(stack_variant, pool: dict, why: str):
    path = stack_variant("dev", {"mlplatform:cpuPools": [pool]})
    with pytest.raises(StackConfigError) as error:
        load_stack_file(path)
    assert "mlplatform:cpuPools[0]" in str(error.value) and why in str(error.value)
