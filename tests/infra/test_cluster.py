"""The EKS cluster: private placement, API auth, encrypted secrets, logging, add-ons and roles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.config import StackConfigError
from infra.stackfile import load_stack_file
from mlplatform.plan import Plan
from mlplatform.terminal import plan_text

CLUSTER = "aws:eks/cluster:Cluster"
ADDON = "aws:eks/addon:Addon"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"


def the_cluster(plan: Plan):
    (cluster,) = plan.of_type(CLUSTER)
    return cluster


def role_policies(plan: Plan, role_name: str) -> list[dict]:
    """Inline policy documents of a role, found through the plan's parent links."""
    role = plan.get("aws:iam/role:Role", role_name)
    return [
        json.loads(r.inputs["policy"])
        for r in plan.children(role)
        if r.type == "aws:iam/rolePolicy:RolePolicy"
    ]


def test_offline_plan_shows_cluster_pools_addons_and_kubernetes_objects(plan: Plan) -> None:
    table = plan_text(plan)
    for type_token in (
        CLUSTER,
        NODE_GROUP,
        ADDON,
        "aws:autoscaling/tag:Tag",
        "kubernetes:helm.sh/v3:Release",
        "kubernetes:core/v1:Namespace",
        "kubernetes:core/v1:ResourceQuota",
        "kubernetes:scheduling.k8s.io/v1:PriorityClass",
    ):
        assert plan.of_type(type_token), type_token
        assert type_token in table, type_token
    for pool in plan.config.gpu_pools:
        assert f"mlplatform-{plan.stack}-{pool.name} " in table, pool.name


def test_cluster_runs_in_the_private_subnets(plan: Plan) -> None:
    assert the_cluster(plan).inputs["vpcConfig"]["subnetIds"] == plan.outputs["privateSubnetIds"]


def test_cluster_authenticates_through_access_entries_only(plan: Plan) -> None:
    assert the_cluster(plan).inputs["accessConfig"]["authenticationMode"] == "API"


def test_secrets_are_envelope_encrypted_with_the_stack_key(plan: Plan) -> None:
    encryption = the_cluster(plan).inputs["encryptionConfig"]
    assert encryption == {
        "resources": ["secrets"],
        "provider": {"keyArn": plan.outputs["kmsKeyArn"]},
    }
    statement = role_policies(plan, f"mlplatform-{plan.stack}-control-plane")[0]["Statement"][0]
    assert statement["Resource"] == [plan.outputs["kmsKeyArn"]]


def test_control_plane_logs_go_to_a_log_group_with_the_configured_retention(plan: Plan) -> None:
    cluster = the_cluster(plan)
    settings = plan.config.cluster
    assert cluster.inputs["enabledClusterLogTypes"] == settings.log_types
    (group,) = [
        r
        for r in plan.of_type("aws:cloudwatch/logGroup:LogGroup")
        if r.inputs["name"] == f"/aws/eks/{cluster.inputs['name']}/cluster"
    ]
    assert group.inputs["retentionInDays"] == settings.log_retention_days
    assert group.urn in cluster.depends_on


def test_prod_api_endpoint_is_private(plan_of) -> None:
    vpc_config = the_cluster(plan_of("prod")).inputs["vpcConfig"]
    assert vpc_config["endpointPublicAccess"] is False
    assert vpc_config["endpointPrivateAccess"] is True
    assert "publicAccessCidrs" not in vpc_config


def test_a_public_endpoint_admits_only_the_allow_list(plan_of) -> None:
    plan = plan_of("dev")
    vpc_config = the_cluster(plan).inputs["vpcConfig"]
    assert vpc_config["endpointPublicAccess"] is True
    assert vpc_config["publicAccessCidrs"] == plan.config.cluster.public_access_cidrs
    assert "0.0.0.0/0" not in vpc_config["publicAccessCidrs"]


def test_prod_cluster_is_protected_from_deletion(plan_of) -> None:
    cluster = the_cluster(plan_of("prod"))
    assert cluster.protect and cluster.inputs["deletionProtection"] is True


def test_system_nodes_are_a_small_on_demand_cpu_group(plan: Plan) -> None:
    system = plan.get(NODE_GROUP, f"mlplatform-{plan.stack}-system")
    settings = plan.config.cluster.system_nodes
    assert system.inputs["capacityType"] == "ON_DEMAND"
    assert system.inputs["amiType"] == "AL2023_x86_64_STANDARD"
    assert system.inputs["instanceTypes"] == [settings.instance_type]
    assert system.inputs["scalingConfig"]["minSize"] == settings.min_size
    assert "taints" not in system.inputs


def test_every_node_group_requires_imdsv2_and_encrypts_its_volumes(plan: Plan) -> None:
    templates = {r.outputs["id"]: r for r in plan.of_type(LAUNCH_TEMPLATE)}
    groups = plan.of_type(NODE_GROUP)
    assert len(groups) == 1 + len(plan.config.gpu_pools) + len(plan.config.cpu_pools)
    for group in groups:
        template = templates[group.inputs["launchTemplate"]["id"]].inputs
        assert template["metadataOptions"]["httpTokens"] == "required", group.name
        assert template["metadataOptions"]["httpPutResponseHopLimit"] == 1, group.name
        volumes = [m["ebs"] for m in template["blockDeviceMappings"]]
        assert volumes and all(v["encrypted"] == "true" for v in volumes), group.name


def test_cluster_has_the_managed_addons_a_gpu_cluster_needs(plan: Plan) -> None:
    names = {r.inputs["addonName"] for r in plan.of_type(ADDON)}
    assert names == {
        "vpc-cni",
        "kube-proxy",
        "coredns",
        "eks-pod-identity-agent",
        "aws-ebs-csi-driver",
        "aws-mountpoint-s3-csi-driver",
        "amazon-cloudwatch-observability",
    }


def test_addons_that_call_aws_get_their_own_pod_identity_role(plan: Plan) -> None:
    associations = {
        r.inputs["addonName"]: r.inputs.get("podIdentityAssociations") for r in plan.of_type(ADDON)
    }
    assert {name for name, assoc in associations.items() if assoc} == {
        "vpc-cni",
        "aws-ebs-csi-driver",
        "aws-mountpoint-s3-csi-driver",
    }
    roles = [a[0]["roleArn"] for a in associations.values() if a]
    assert len(set(roles)) == 3, "each add-on has a role of its own"
    for role in plan.of_type("aws:iam/role:Role"):
        if role.outputs["arn"] in roles:
            trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
            assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}


def test_s3_csi_driver_may_only_read_the_datasets_bucket(plan: Plan) -> None:
    (policy,) = role_policies(plan, f"mlplatform-{plan.stack}-s3-csi")
    datasets = plan.get("aws:s3/bucket:Bucket", f"mlplatform-{plan.stack}-datasets").outputs["arn"]
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    resources = {r for s in policy["Statement"] for r in s["Resource"]}
    assert actions == {"s3:ListBucket", "s3:GetObject", "kms:Decrypt"}
    assert resources == {datasets, f"{datasets}/*", plan.outputs["kmsKeyArn"]}


def test_node_role_carries_no_cni_permissions(plan: Plan) -> None:
    node_role = plan.get("aws:iam/role:Role", f"mlplatform-{plan.stack}-node")
    attached = {r.inputs["policyArn"].rsplit("/", 1)[-1] for r in plan.children(node_role)}
    assert attached == {"AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly"}


def test_nodes_join_only_after_networking_and_credentials_addons(plan: Plan) -> None:
    first = {
        r.urn
        for r in plan.of_type(ADDON)
        if r.inputs["addonName"] in ("vpc-cni", "eks-pod-identity-agent")
    }
    for group in plan.of_type(NODE_GROUP):
        assert first <= set(group.depends_on), group.name


def test_kubernetes_provider_talks_to_this_cluster_with_aws_credentials(plan: Plan) -> None:
    (provider,) = plan.of_type("pulumi:providers:kubernetes")
    kubeconfig = json.loads(provider.inputs["kubeconfig"])
    cluster = the_cluster(plan)
    (entry,) = kubeconfig["clusters"]
    assert entry["cluster"]["server"] == cluster.outputs["endpoint"]
    assert (
        entry["cluster"]["certificate-authority-data"]
        == cluster.outputs["certificateAuthority"]["data"]
    )
    exec_ = kubeconfig["users"][0]["user"]["exec"]
    assert exec_["command"] == "aws"
    assert exec_["args"][:4] == ["eks", "get-token", "--cluster-name", cluster.inputs["name"]]


def test_admin_roles_get_cluster_admin_access_entries(plan_variant) -> None:
    admin = "arn:aws:iam::123456789012:role/platform-admins"
    plan = plan_variant("dev", {"mlplatform:cluster": {"adminRoleArns": [admin]}})
    (entry,) = plan.of_type("aws:eks/accessEntry:AccessEntry")
    (association,) = plan.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert entry.inputs["principalArn"] == association.inputs["principalArn"] == admin
    assert association.inputs["policyArn"].endswith("/AmazonEKSClusterAdminPolicy")
    assert association.inputs["accessScope"] == {"type": "cluster"}


@pytest.mark.parametrize(
    ("cluster", "key", "why"),
    [
        (
            {"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]},
            "mlplatform:cluster.publicAccessCidrs",
            "whole internet",
        ),
        (
            {"endpointPublicAccess": False, "publicAccessCidrs": ["198.51.100.0/24"]},
            "mlplatform:cluster.publicAccessCidrs",
            "endpointPublicAccess: true",
        ),
        ({"publicAccessCidrs": None}, "mlplatform:cluster", "needs publicAccessCidrs"),
        ({"version": "1.29"}, "mlplatform:cluster.version", "1.32, 1.33, 1.34, 1.35"),
        (
            {"systemNodes": {"minSize": 3, "maxSize": 2}},
            "mlplatform:cluster.systemNodes.maxSize",
            ">= minSize",
        ),
    ],
    ids=[
        "open-to-internet",
        "allow-list-on-private",
        "public-without-allow-list",
        "old-version",
        "system-min-over-max",
    ],
)
def test_bad_cluster_settings_name_the_key(
    tmp_path: Path, cluster: dict, key: str, why: str, stack_variant
) -> None:
    path = stack_variant("dev", {"mlplatform:cluster": cluster})
    with pytest.raises(StackConfigError) as error:
        load_stack_file(path)
    assert f"{key} = " in str(error.value)
    assert why in str(error.value)
