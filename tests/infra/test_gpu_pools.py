"""GPU node pools: everything that must agree with the instance type is derived and wired."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import instances
from infra.components.gpu_pools import NODE_TEMPLATE, pool_template
from infra.config import GpuPool, StackConfigError
from infra.stackfile import load_stack_file
from mlplatform.plan import Plan

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ASG_TAG = "aws:autoscaling/tag:Tag"
RESERVATION = "cr-0123456789abcdef0"


def gpu_groups(plan: Plan) -> dict[str, object]:
    """Node groups of GPU pools, by pool name."""
    return {
        r.inputs["labels"]["mlplatform.io/pool"]: r
        for r in plan.of_type(NODE_GROUP)
        if "mlplatform.io/pool" in r.inputs.get("labels", {})
    }


def launch_template_of(plan: Plan, group) -> dict:
    (template,) = [
        r
        for r in plan.of_type(LAUNCH_TEMPLATE)
        if r.outputs["id"] == group.inputs["launchTemplate"]["id"]
    ]
    return template.inputs


def asg_tags(plan: Plan, group) -> dict[str, str]:
    return {
        r.inputs["tag"]["key"]: r.inputs["tag"]["value"]
        for r in plan.children(group)
        if r.type == ASG_TAG
    }


@pytest.mark.parametrize(
    ("instance_type", "ami_family", "ami_type"),
    [
        ("g5.xlarge", "al2023", "AL2023_x86_64_NVIDIA"),
        ("p5.48xlarge", "al2023", "AL2023_x86_64_NVIDIA"),
        ("g5g.xlarge", "al2023", "AL2023_ARM_64_NVIDIA"),
        ("g6e.xlarge", "bottlerocket", "BOTTLEROCKET_x86_64_NVIDIA"),
        ("g5g.2xlarge", "bottlerocket", "BOTTLEROCKET_ARM_64_NVIDIA"),
    ],
)
def test_ami_type_follows_the_instance_family(
    instance_type: str, ami_family: str, ami_type: str
) -> None:
    pool = GpuPool(name="pool", instance_types=[instance_type], max_size=1, ami_family=ami_family)
    assert pool_template(pool).ami_type == ami_type


def test_shipped_pools_get_the_nvidia_ami_of_their_architecture(plan: Plan) -> None:
    for name, group in gpu_groups(plan).items():
        arch = instances.facts(group.inputs["instanceTypes"][0]).architecture
        assert group.inputs["amiType"] == (
            "AL2023_x86_64_NVIDIA" if arch == "x86_64" else "AL2023_ARM_64_NVIDIA"
        ), name


def test_every_gpu_pool_has_the_gpu_taint_labels_and_matching_autoscaler_tags(plan: Plan) -> None:
    groups = gpu_groups(plan)
    assert set(groups) == {p.name for p in plan.config.gpu_pools}
    for pool in plan.config.gpu_pools:
        group = groups[pool.name]
        model, count, memory = instances.gpu_info(pool.instance_types[0])
        labels = group.inputs["labels"]
        assert group.inputs["taints"] == [
            {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}
        ]
        assert labels["mlplatform.io/pool"] == pool.name
        assert labels["mlplatform.io/gpu-model"] == model.lower().replace(" ", "-")
        assert labels["mlplatform.io/gpu-count"] == str(count)
        assert labels["mlplatform.io/gpu-memory-gib"] == str(memory // 1024)
        assert labels["nvidia.com/gpu.present"] == "true"
        expected = {f"{NODE_TEMPLATE}/label/{k}": v for k, v in labels.items()}
        expected[f"{NODE_TEMPLATE}/taint/nvidia.com/gpu"] = "true:NoSchedule"
        expected[f"{NODE_TEMPLATE}/resources/nvidia.com/gpu"] = str(count)
        if pool.efa:
            expected[f"{NODE_TEMPLATE}/resources/vpc.amazonaws.com/efa"] = str(
                instances.facts(pool.instance_types[0]).efa_interfaces
            )
        assert asg_tags(plan, group) == expected, pool.name


def test_autoscaler_tags_go_on_the_node_groups_own_autoscaling_group(plan: Plan) -> None:
    for group in gpu_groups(plan).values():
        asg = group.outputs["resources"][0]["autoscalingGroups"][0]["name"]
        tags = [r for r in plan.children(group) if r.type == ASG_TAG]
        assert tags and {t.inputs["autoscalingGroupName"] for t in tags} == {asg}
        assert not any(t.inputs["tag"]["propagateAtLaunch"] for t in tags)


def test_gpu_pools_in_dev_are_spot_and_scale_to_zero(plan_of) -> None:
    groups = gpu_groups(plan_of("dev"))
    assert groups
    for name, group in groups.items():
        assert group.inputs["scalingConfig"]["minSize"] == 0, name
        assert group.inputs["scalingConfig"]["desiredSize"] == 0, name
        assert group.inputs["capacityType"] == "SPOT", name


def test_prod_serves_on_demand_and_trains_on_spot(plan_of) -> None:
    groups = gpu_groups(plan_of("prod"))
    assert groups["serving"].inputs["capacityType"] == "ON_DEMAND"
    assert groups["serving"].inputs["scalingConfig"]["minSize"] >= 1
    assert groups["training"].inputs["capacityType"] == "SPOT"


def test_desired_size_is_left_to_the_autoscaler(plan: Plan) -> None:
    for group in plan.of_type(NODE_GROUP):
        assert group.ignore_changes == ["scalingConfig.desiredSize"], group.name


def test_gpu_pool_volumes_have_the_configured_size(plan: Plan) -> None:
    groups = gpu_groups(plan)
    for pool in plan.config.gpu_pools:
        volumes = launch_template_of(plan, groups[pool.name])["blockDeviceMappings"]
        assert [v["ebs"]["volumeSize"] for v in volumes] == [pool.disk_size_gib]


def test_efa_pool_sits_in_one_zone_in_a_cluster_placement_group(plan_of) -> None:
    plan = plan_of("prod")
    group = gpu_groups(plan)["training"]
    template = launch_template_of(plan, group)
    (placement,) = [
        r
        for r in plan.children(
            plan.get("mlplatform:gpu_pools:GpuNodePool", "mlplatform-prod-training")
        )
        if r.type == "aws:ec2/placementGroup:PlacementGroup"
    ]
    assert placement.inputs["strategy"] == "cluster"
    assert template["placement"]["groupName"] == placement.outputs["name"]
    assert len(group.inputs["subnetIds"]) == 1
    interfaces = template["networkInterfaces"]
    assert [i["interfaceType"] for i in interfaces] == ["efa"] + ["efa-only"] * (
        len(interfaces) - 1
    )
    assert len(interfaces) == instances.facts("p4d.24xlarge").efa_interfaces
    assert group.inputs["labels"]["vpc.amazonaws.com/efa.present"] == "true"


def test_capacity_block_pool_launches_into_its_reservation(plan_variant) -> None:
    pool = {
        "name": "reserved",
        "instanceTypes": ["p5.48xlarge"],
        "maxSize": 2,
        "capacityType": "capacityBlock",
        "capacityReservationId": RESERVATION,
    }
    plan = plan_variant("dev", {"mlplatform:gpuPools": [pool]})
    group = gpu_groups(plan)["reserved"]
    template = launch_template_of(plan, group)
    assert group.inputs["capacityType"] == "CAPACITY_BLOCK"
    assert "instanceTypes" not in group.inputs
    assert template["instanceType"] == "p5.48xlarge"
    assert template["instanceMarketOptions"] == {"marketType": "capacity-block"}
    assert template["capacityReservationSpecification"] == {
        "capacityReservationTarget": {"capacityReservationId": RESERVATION}
    }


def test_bottlerocket_pool_encrypts_both_its_os_and_data_volumes(plan_variant) -> None:
    pool = {
        "name": "br",
        "instanceTypes": ["g6.xlarge"],
        "maxSize": 1,
        "amiFamily": "bottlerocket",
        "diskSizeGib": 150,
    }
    plan = plan_variant("dev", {"mlplatform:gpuPools": [pool]})
    group = gpu_groups(plan)["br"]
    volumes = {
        m["deviceName"]: m["ebs"] for m in launch_template_of(plan, group)["blockDeviceMappings"]
    }
    assert group.inputs["amiType"] == "BOTTLEROCKET_x86_64_NVIDIA"
    assert volumes["/dev/xvdb"]["volumeSize"] == 150
    assert all(v["encrypted"] == "true" for v in volumes.values())


BAD_POOLS = [
    (
        "non-gpu-type",
        {"instanceTypes": ["m5.large"]},
        "mlplatform:gpuPools[0].instanceTypes[0] = 'm5.large'",
        "not a GPU instance type",
    ),
    (
        "fractional-gpu",
        {"instanceTypes": ["g6f.large"]},
        "mlplatform:gpuPools[0].instanceTypes[0] = 'g6f.large'",
        "whole GPUs",
    ),
    (
        "mixed-gpus",
        {"instanceTypes": ["g5.xlarge", "g5.12xlarge"]},
        "mlplatform:gpuPools[0].instanceTypes = ",
        "split them into pools",
    ),
    (
        "min-over-max",
        {"minSize": 3, "maxSize": 2},
        "mlplatform:gpuPools[0].maxSize = 2",
        "maxSize must be >= minSize (3)",
    ),
    (
        "unknown-capacity",
        {"capacityType": "reserved"},
        "mlplatform:gpuPools[0].capacityType = 'reserved'",
        "'onDemand', 'spot' or 'capacityBlock'",
    ),
    (
        "efa-unsupported",
        {"efa": True},
        "mlplatform:gpuPools[0].efa = True",
        "EFA is not supported by g6.xlarge",
    ),
    (
        "block-without-reservation",
        {"capacityType": "capacityBlock"},
        "mlplatform:gpuPools[0].capacityType = 'capacityBlock'",
        "capacityReservationId",
    ),
    (
        "spot-with-reservation",
        {"capacityType": "spot", "capacityReservationId": RESERVATION},
        "mlplatform:gpuPools[0].capacityType = 'spot'",
        "capacityReservationId",
    ),
    (
        "bad-reservation-id",
        {"capacityReservationId": "cr-123"},
        "mlplatform:gpuPools[0].capacityReservationId = 'cr-123'",
        "17 hex digits",
    ),
    (
        "reserved-label",
        {"labels": {"nvidia.com/gpu.product": "x"}},
        "mlplatform:gpuPools[0].labels = ",
        "set by the platform",
    ),
]


@pytest.mark.parametrize(("case", "change", "key", "why"), BAD_POOLS, ids=[c[0] for c in BAD_POOLS])
def test_bad_pool_specs_fail_with_a_message_naming_the_key(
    tmp_path: Path, case: str, change: dict, key: str, why: str, stack_variant
) -> None:
    pool = {"name": "bad", "instanceTypes": ["g6.xlarge"], "maxSize": 2, **change}
    path = stack_variant("dev", {"mlplatform:gpuPools": [pool]})
    with pytest.raises(StackConfigError) as error:
        load_stack_file(path)
    message = str(error.value)
    assert key in message and why in message, message
    assert "(1 problem)" in message, message


def test_a_stack_without_gpu_pools_plans_the_cluster_alone(plan_variant) -> None:
    plan = plan_variant("dev", {"mlplatform:gpuPools": []})
    assert not gpu_groups(plan) and not plan.of_type(ASG_TAG)
    assert plan.outputs["gpuPools"] == {}
    assert len(plan.of_type(NODE_GROUP)) == 1


def test_pool_names_are_unique(tmp_path: Path, stack_variant) -> None:
    pool = {"name": "twin", "instanceTypes": ["g6.xlarge"], "maxSize": 1}
    path = stack_variant("dev", {"mlplatform:gpuPools": [pool, pool]})
    with pytest.raises(StackConfigError, match=r"mlplatform:gpuPools = .*repeated: twin"):
        load_stack_file(path)
