"""EKS workloads: Kubernetes objects valid against the API schema (and the Trainer CRDs), GPU
placement, spot-safe training, and serving that rolls out without losing capacity."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from infra.components.eks_operator import TRAINER_VERSION, train_job
from mlplatform.plan import Plan

SCHEMAS = Path(__file__).parent / "schemas"
RUNTIME = "kubernetes:trainer.kubeflow.org/v1alpha1:TrainingRuntime"


def crd_schema(kind: str) -> dict:
    """The CRD's openAPIV3Schema, as shipped in the Trainer release the stack installs."""
    with gzip.open(SCHEMAS / f"trainer-v{TRAINER_VERSION}-{kind}.json.gz") as f:
        return json.loads(f.read())["schema"]


def unknown_fields(value: Any, schema: dict, path: str = "") -> list[str]:
    """Fields the CRD does not declare (the API server would silently prune them)."""
    if isinstance(value, dict) and "properties" in schema:
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return []
        found = [f"{path}.{k}" for k in value if k not in schema["properties"]]
        for key, item in value.items():
            if key in schema["properties"]:
                found += unknown_fields(item, schema["properties"][key], f"{path}.{key}")
        return found
    if isinstance(value, list) and "items" in schema:
        return [
            f
            for i, item in enumerate(value)
            for f in unknown_fields(item, schema["items"], f"{path}[{i}]")
        ]
    return []


def check_against_crd(obj: dict, kind: str) -> None:
    schema = crd_schema(kind)
    body = {
        k: v for k, v in obj.items() if k != "metadata"
    }  # metadata is ObjectMeta, not in the CRD
    jsonschema.validate(
        body,
        {
            **schema,
            "properties": {k: v for k, v in schema["properties"].items() if k != "metadata"},
        },
    )
    assert unknown_fields(body, schema) == []


def workloads(plan: Plan) -> list:
    mine = ("mlplatform:eks:EksTrainingRuntime", "mlplatform:eks:EksModelServer")
    parents = {r.urn for r in plan.resources if r.type in mine}
    return [r for r in plan.resources if r.parent in parents and r.type.startswith("kubernetes:")]


def by_kind(plan: Plan, kind: str, model: str | None = None) -> list[dict]:
    """Kubernetes objects of a kind, optionally only those of one model's component."""
    parents = {
        r.urn
        for r in plan.resources
        if r.type.startswith("mlplatform:eks:") and (model is None or r.name.endswith(f"-{model}"))
    }
    return [
        r.inputs
        for r in workloads(plan)
        if r.inputs.get("kind") == kind and (model is None or r.parent in parents)
    ]


@pytest.fixture
def staging(plan_of) -> Plan:
    return plan_of("staging")


def test_kubernetes_objects_validate_strictly_against_the_clusters_api(staging: Plan):
    version = staging.config.cluster.version
    objects = [r for r in workloads(staging) if r.type != RUNTIME]
    kinds = {r.inputs["kind"] for r in objects}
    assert kinds == {
        "ServiceAccount",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    for resource in objects:
        kubernetes_validate.validate(resource.inputs, f"{version}.0", strict=True)


def test_the_strict_validation_rejects_a_misspelt_field():
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "x"},
                "spec": {"selectr": {}},
            },
            "1.34.0",
            strict=True,
        )


def test_the_training_runtimes_match_the_operators_crd(staging: Plan):
    for runtime in by_kind(staging, "TrainingRuntime"):
        check_against_crd(runtime, "trainingruntime")
        kubernetes_validate.validate(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "probe"},
                "spec": {
                    "selector": {"matchLabels": {"a": "b"}},
                    "template": {**pod_template(runtime), "metadata": {"labels": {"a": "b"}}},
                },
            },
            f"{staging.config.cluster.version}.0",
            strict=True,
        )


def test_a_train_job_for_the_runtime_matches_the_operators_crd():
    job = train_job("digits-eks", "training", "digits-eks-20260101-000000")
    check_against_crd(job, "trainjob")
    assert job["spec"]["runtimeRef"] == {
        "name": "digits-eks",
        "apiGroup": "trainer.kubeflow.org",
        "kind": "TrainingRuntime",
    }
    with pytest.raises(jsonschema.ValidationError):
        check_against_crd({**job, "spec": {}}, "trainjob")


def pod_template(runtime: dict) -> dict:
    (node,) = runtime["spec"]["template"]["spec"]["replicatedJobs"]
    return node["template"]["spec"]["template"]


def test_multi_node_torchrun_on_the_training_pool_with_gpus_and_no_eviction(staging: Plan):
    model = next(m for m in staging.config.models if m.name == "digits-eks")
    (runtime,) = by_kind(staging, "TrainingRuntime", "digits-eks")
    # Trainer's torch policy injects the PET_* rendezvous variables torchrun reads.
    assert runtime["spec"]["mlPolicy"] == {"numNodes": model.training.instance_count, "torch": {}}
    template = pod_template(runtime)
    assert template["metadata"]["annotations"] == {
        "karpenter.sh/do-not-disrupt": "true",
        "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
    }
    spec = template["spec"]
    pool = staging.outputs["gpuPools"][model.training.pool]
    assert spec["nodeSelector"] == pool["nodeSelector"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    (node,) = spec["containers"]
    # The model's own entry point from its manifest, in its own image.
    assert node["command"] == ["torchrun", "/opt/ml/code/train.py"]
    assert node["image"] == staging.outputs["imageRefs"]["digits-eks"]["training"]
    gpus = str(model.training.gpus_per_instance)
    assert (
        node["resources"]["limits"] == {"memory": model.training.memory, "nvidia.com/gpu": gpus}
        and node["resources"]["requests"]["nvidia.com/gpu"] == gpus
    )
    assert spec["priorityClassName"] == "mlplatform-training"


def test_a_model_without_torchrun_runs_one_python_process_per_node(staging: Plan):
    (runtime,) = by_kind(staging, "TrainingRuntime", "breast-cancer")
    assert runtime["spec"]["mlPolicy"] == {"numNodes": 1}
    (node,) = pod_template(runtime)["spec"]["containers"]
    assert node["command"] == ["python", "/opt/ml/code/train.py"]
    assert node["resources"]["limits"] == {"memory": "16Gi"}, "no GPU; memory limited"


def test_runs_get_the_sagemaker_contract_so_one_script_runs_on_both_planes(staging: Plan):
    (runtime,) = by_kind(staging, "TrainingRuntime", "digits-eks")
    (node,) = pod_template(runtime)["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in node["env"]}
    assert json.loads(env["SM_HPS"]) == {"epochs": 12}
    assert json.loads(env["SM_CHANNELS"]) == ["train"]
    assert env["SM_CHANNEL_TRAIN"] == "/data/train"
    assert env["SM_MODEL_DIR"] == "/model" and env["CHECKPOINT_DIR"] == "/checkpoints"


def test_training_reads_its_channels_through_the_s3_csi_driver_and_checkpoints_to_s3(
    staging: Plan,
):
    buckets = staging.outputs["bucketNames"]
    (pv,) = by_kind(staging, "PersistentVolume", "digits-eks")
    assert pv["spec"]["csi"]["driver"] == "s3.csi.aws.com"
    assert pv["spec"]["csi"]["volumeAttributes"] == {"bucketName": buckets["datasets"]}
    assert {"read-only", "prefix digits-eks/train/"} <= set(pv["spec"]["mountOptions"])
    (pvc,) = by_kind(staging, "PersistentVolumeClaim", "digits-eks")
    assert pvc["spec"]["volumeName"] == pv["metadata"]["name"]
    spec = pod_template(by_kind(staging, "TrainingRuntime", "digits-eks")[0])["spec"]
    assert {
        "name": "channel-train",
        "persistentVolumeClaim": {"claimName": pvc["metadata"]["name"], "readOnly": True},
    } in spec["volumes"]
    mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
    assert mounts["/data/train"]["readOnly"] is True
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert env["CHECKPOINT_URI"] == f"s3://{buckets['checkpoints']}/digits-eks/$(TRAIN_JOB_NAME)"
    init = {c["name"]: c for c in spec["initContainers"]}
    assert init["sync-to-s3"]["restartPolicy"] == "Always", (
        "a native sidecar keeps syncing while training runs"
    )
    assert "/checkpoints" in init["restore-checkpoints"]["command"][-1], "a restarted run resumes"


def test_pods_reach_only_their_models_prefixes_through_pod_identity(staging: Plan):
    associations = {
        r.inputs["serviceAccount"]: r.inputs
        for r in staging.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    }
    assert associations["digits-eks-training"]["namespace"] == "training"
    assert associations["digits-eks-serving"]["namespace"] == "serving"
    policy = json.loads(
        staging.get(
            "aws:iam/rolePolicy:RolePolicy", "mlplatform-staging-digits-eks-training"
        ).inputs["policy"]
    )
    resources = {s["Sid"]: s["Resource"] for s in policy["Statement"]}
    assert resources["Checkpoints"].endswith(
        f"{staging.outputs['bucketNames']['checkpoints']}/digits-eks/*"
    )


def test_serving_rolls_out_without_losing_ready_replicas_and_scales_within_bounds(staging: Plan):
    model = next(m for m in staging.config.models if m.name == "digits-eks")
    (deployment,) = by_kind(staging, "Deployment", "digits-eks")
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    spec = deployment["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == staging.outputs["gpuPools"][model.serving.pool]["nodeSelector"]
    (server,) = spec["containers"]
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert server["resources"]["limits"] == {
        "memory": model.serving.memory,
        "nvidia.com/gpu": str(model.serving.gpus_per_replica),
    }
    (hpa,) = by_kind(staging, "HorizontalPodAutoscaler", "digits-eks")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (
        model.serving.min_instances,
        model.serving.max_instances,
    )
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    (pdb,) = by_kind(staging, "PodDisruptionBudget", "digits-eks")
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]


def test_the_training_operator_is_pinned_and_installed_only_where_a_model_trains_on_eks(
    staging: Plan, plan_of
):
    (release,) = [
        r.inputs
        for r in staging.of_type("kubernetes:helm.sh/v3:Release")
        if r.inputs["name"] == "kubeflow-trainer"
    ]
    assert release["chart"] == "oci://ghcr.io/kubeflow/charts/kubeflow-trainer"
    assert release["version"] == TRAINER_VERSION
    operator = staging.get("kubernetes:helm.sh/v3:Release", "mlplatform-staging-kubeflow-trainer")
    runtimes = [r for r in workloads(staging) if r.type == RUNTIME]
    assert len(runtimes) == 2, "one operator for every model that trains on the cluster"
    for runtime in runtimes:
        assert operator.urn in runtime.depends_on, "the CRD must exist first"
    assert not [
        r
        for r in plan_of("dev").of_type("kubernetes:helm.sh/v3:Release")
        if r.inputs["name"] == "kubeflow-trainer"
    ]


def test_an_eks_model_must_name_an_existing_pool_with_enough_gpus(plan_variant):
    from infra.config import StackConfigError

    with pytest.raises(
        StackConfigError,
        match=r"pool 'h100' is not in mlplatform:gpuPools or mlplatform:cpuPools \(serving, training\)",
    ):
        plan_variant(
            "staging",
            {"mlplatform:models": [{"name": "x1", "training": {"plane": "eks", "pool": "h100"}}]},
        )
    with pytest.raises(StackConfigError, match="asks 8 GPUs but pool serving nodes have 1"):
        plan_variant(
            "staging",
            {
                "mlplatform:models": [
                    {
                        "name": "x1",
                        "serving": {"plane": "eks", "pool": "serving", "gpusPerReplica": 8},
                    }
                ]
            },
        )
    with pytest.raises(
        StackConfigError, match=r"2 nodes x 4 GPUs exceed the training namespace's GPU quota \(4"
    ):
        plan_variant(
            "staging",
            {
                "mlplatform:cluster": {"gpuQuota": {"training": 4}},
                "mlplatform:models": [
                    {
                        "name": "x1",
                        "training": {
                            "plane": "eks",
                            "pool": "training",
                            "instanceCount": 2,
                            "gpusPerInstance": 4,
                        },
                    }
                ],
            },
        )


def test_a_keras_model_served_on_eks_runs_tf_serving_unprivileged(plan_variant):
    # The Keras reference model asks for TF Serving (model.yaml serve.runtime); on the cluster
    # that is TensorFlow's own server image of the model's TensorFlow release, not our server.
    staging_models = [
        {
            "name": "mnist-keras",
            "training": {"plane": "sagemaker", "instanceType": "ml.m5.xlarge"},
            "serving": {"plane": "eks", "pool": "serving", "gpusPerReplica": 1},
        }
    ]
    plan = plan_variant("staging", {"mlplatform:models": staging_models})
    (deployment,) = by_kind(plan, "Deployment", "mnist-keras")
    spec = deployment["spec"]["template"]["spec"]
    (server,) = spec["containers"]
    manifest = plan.config.models[0].manifest
    assert server["image"] == f"tensorflow/serving:{manifest.image.serving.dlc.version}-gpu"
    assert server["command"] == ["tensorflow_model_server"]
    assert "--model_base_path=/opt/ml/model/saved_model" in server["args"]
    assert "--rest_api_port=8080" in server["args"]
    assert server["readinessProbe"]["httpGet"]["path"] == "/v1/models/saved_model"
    assert (
        server["securityContext"]["runAsNonRoot"]
        and server["securityContext"]["readOnlyRootFilesystem"]
    )
    # TF Serving's image has no python: the model's platform image unpacks the archive.
    unpack = next(c for c in spec["initContainers"] if c["name"] == "unpack-model")
    assert unpack["image"] == plan.outputs["imageRefs"]["mnist-keras"]["platform"]
    # What the API server would accept, strictly.
    version = plan.config.eks.version
    kubernetes_validate.validate(deployment, f"{version}.0", strict=True)
