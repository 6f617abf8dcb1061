"""The Kubernetes layer: schema-valid objects, GPU quotas, priorities and pinned GPU software."""

from __future__ import annotations

import json
import warnings

import kubernetes_validate
import pytest

from infra.components.kubernetes_layer import AUTOSCALER_IMAGE_TAGS, AUTOSCALER_SERVICE_ACCOUNT
from infra.config import KUBERNETES_VERSIONS
from mlplatform.plan import Plan, PlannedResource

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def declared_objects(plan: Plan) -> list[PlannedResource]:
    """Every Kubernetes object the program declares itself (Helm releases render their own)."""
    return [
        r for r in plan.resources if r.type.startswith("kubernetes:") and r.type != HELM_RELEASE
    ]


def manifest(resource: PlannedResource) -> dict:
    """The object as `kubectl apply` would send it: apiVersion and kind from the type token."""
    _, group_version, kind = resource.type.split(":")
    api_version = group_version.removeprefix("core/")
    body = {k: v for k, v in resource.inputs.items() if k not in ("apiVersion", "kind")}
    assert resource.inputs.get("apiVersion", api_version) == api_version
    assert resource.inputs.get("kind", kind) == kind
    return {"apiVersion": api_version, "kind": kind, **body}


def release(plan: Plan, chart: str) -> PlannedResource:
    (found,) = [r for r in plan.of_type(HELM_RELEASE) if r.inputs["chart"] == chart]
    return found


def is_custom_resource(resource: PlannedResource) -> bool:
    """A kind from a CRD (e.g. trainer.kubeflow.org): Kubernetes' own schemas do not cover it."""
    group = resource.type.split(":")[1].rsplit("/", 1)[0]
    return "." in group and not group.endswith(".k8s.io")


def schema_version(cluster_version: str) -> str:
    """The cluster's version if kubernetes-validate ships its schemas, else the closest it has."""
    shipped = sorted({".".join(v.split(".")[:2]) for v in kubernetes_validate.utils.all_versions()})
    if cluster_version in shipped:
        return cluster_version
    minor = int(cluster_version.split(".")[1])
    closest = min(shipped, key=lambda v: abs(int(v.split(".")[1]) - minor))
    warnings.warn(f"no schemas for Kubernetes {cluster_version}; using {closest}", stacklevel=2)
    return closest


def test_every_declared_kubernetes_object_is_valid_for_the_cluster_version(plan: Plan) -> None:
    # kubernetes-validate 1.37.0 ships schemas for 1.30-1.37: every version the stack schema
    # allows (infra.config.KUBERNETES_VERSIONS) is checked against its own schemas.
    version = schema_version(plan.config.cluster.version)
    objects = [r for r in declared_objects(plan) if not is_custom_resource(r)]
    kinds = {r.type.rsplit(":", 1)[-1] for r in objects}
    assert kinds >= {"Namespace", "ResourceQuota", "PriorityClass"}
    for resource in objects:
        try:
            kubernetes_validate.validate(manifest(resource), version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{resource.type} {resource.name}: {error.message} at {list(error.path)}")


def test_every_allowed_cluster_version_has_its_own_schemas() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [schema_version(v) for v in KUBERNETES_VERSIONS] == list(KUBERNETES_VERSIONS)


def test_schema_validation_catches_a_misspelt_field() -> None:
    bad = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "x"},
        "spec": {"hardd": {}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.34", strict=True)


def test_every_kubernetes_resource_goes_through_the_cluster_provider(plan: Plan) -> None:
    (provider,) = plan.of_type("pulumi:providers:kubernetes")
    for resource in plan.resources:
        if resource.type.startswith("kubernetes:"):
            assert resource.provider and resource.provider.startswith(provider.urn + "::"), (
                resource.name
            )


def test_gpu_quota_of_each_namespace_matches_the_stack_file(plan: Plan) -> None:
    quotas = {
        r.inputs["metadata"]["namespace"]: r.inputs["spec"]["hard"]
        for r in plan.of_type("kubernetes:core/v1:ResourceQuota")
    }
    expected = plan.config.cluster.gpu_quota
    assert quotas == {
        "training": {"requests.nvidia.com/gpu": str(expected.training)},
        "serving": {"requests.nvidia.com/gpu": str(expected.serving)},
    }


def test_workload_namespaces_exist(plan: Plan) -> None:
    names = {r.inputs["metadata"]["name"] for r in plan.of_type("kubernetes:core/v1:Namespace")}
    assert names == {"training", "serving"}
    assert plan.outputs["kubernetesNamespaces"] == {"training": "training", "serving": "serving"}


def test_serving_outranks_training_and_neither_is_the_default(plan: Plan) -> None:
    classes = {
        r.inputs["metadata"]["name"]: r.inputs
        for r in plan.of_type("kubernetes:scheduling.k8s.io/v1:PriorityClass")
    }
    names = plan.outputs["priorityClassNames"]
    assert classes[names["serving"]]["value"] > classes[names["training"]]["value"]
    assert not any(c["globalDefault"] for c in classes.values())


def test_helm_charts_are_pinned_to_a_version_and_repository(plan: Plan) -> None:
    for chart in plan.of_type(HELM_RELEASE):
        assert chart.inputs["version"][:1] in "v0123456789", chart.name
        repo = (
            chart.inputs["chart"]
            if chart.inputs["chart"].startswith("oci://")
            else chart.inputs["repositoryOpts"]["repo"]
        )
        assert repo.startswith(("https://", "oci://")), chart.name


def test_device_plugin_runs_only_on_al2023_gpu_nodes(plan: Plan) -> None:
    values = release(plan, "nvidia-device-plugin").inputs["values"]
    assert values["nodeSelector"] == {
        "nvidia.com/gpu.present": "true",
        "mlplatform.io/ami-family": "al2023",
    }
    assert values["tolerations"] == [GPU_TOLERATION]
    terms = values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [
        {
            "matchExpressions": [
                {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}
            ]
        }
    ]


def test_no_dcgm_exporter_of_our_own_runs_beside_the_observability_addons(plan: Plan) -> None:
    # Two exporters would both hold the GPUs' DCGM host engine and publish every metric twice:
    # GPU metrics come from the CloudWatch Observability add-on's exporter (test_observability).
    charts = {r.inputs["chart"] for r in plan.of_type(HELM_RELEASE)}
    assert not {c for c in charts if "dcgm" in c}
    addons = {r.inputs["addonName"] for r in plan.of_type("aws:eks/addon:Addon")}
    assert "amazon-cloudwatch-observability" in addons


def test_gpu_node_labels_select_the_gpu_daemonsets(plan: Plan) -> None:
    """The daemonsets' selectors must hold on every GPU pool's nodes, or GPUs stay invisible."""
    plugin = release(plan, "nvidia-device-plugin").inputs["values"]["nodeSelector"]
    for group in plan.of_type("aws:eks/nodeGroup:NodeGroup"):
        labels = group.inputs["labels"]
        if (
            labels.get("nvidia.com/gpu.present") == "true"
            and labels["mlplatform.io/ami-family"] == "al2023"
        ):
            assert plugin.items() <= labels.items(), group.name


def test_cluster_autoscaler_matches_the_cluster_and_runs_as_its_pod_identity(plan: Plan) -> None:
    values = release(plan, "cluster-autoscaler").inputs["values"]
    cluster_name = plan.outputs["clusterName"]
    assert values["autoDiscovery"] == {"clusterName": cluster_name}
    assert values["image"]["tag"] == AUTOSCALER_IMAGE_TAGS[plan.config.cluster.version]
    assert values["image"]["tag"].startswith(f"v{plan.config.cluster.version}.")
    assert values["nodeSelector"] == {"mlplatform.io/node-role": "system"}
    assert values["rbac"]["serviceAccount"]["name"] == AUTOSCALER_SERVICE_ACCOUNT
    (association,) = [
        r
        for r in plan.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
        if r.inputs["serviceAccount"] == AUTOSCALER_SERVICE_ACCOUNT
    ]
    assert (
        association.inputs["namespace"] == release(plan, "cluster-autoscaler").inputs["namespace"]
    )


def test_cluster_autoscaler_may_resize_only_this_clusters_node_groups(plan: Plan) -> None:
    role = plan.get("aws:iam/role:Role", f"mlplatform-{plan.stack}-cluster-autoscaler")
    (policy,) = [
        json.loads(r.inputs["policy"])
        for r in plan.children(role)
        if r.type == "aws:iam/rolePolicy:RolePolicy"
    ]
    (scale,) = [s for s in policy["Statement"] if "autoscaling:SetDesiredCapacity" in s["Action"]]
    assert scale["Condition"] == {
        "StringEquals": {
            f"aws:ResourceTag/k8s.io/cluster-autoscaler/{plan.outputs['clusterName']}": "owned"
        }
    }


def test_efa_device_plugin_is_installed_only_where_a_pool_has_efa(plan: Plan) -> None:
    charts = {r.inputs["chart"] for r in plan.of_type(HELM_RELEASE)}
    assert ("aws-efa-k8s-device-plugin" in charts) == any(p.efa for p in plan.config.gpu_pools)
