"""EKS workloads: Kubernetes objects valid against the API schema (and the Trainer CRDs), GPU
placement, spot-safe training, a run's steps (prepare, node, evaluate: the gate that alone
registers), and serving that rolls out without losing capacity."""

from __future__ import annotations

import gzip
import itertools
import json
import re
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
        # Every step's Job (its retries, pod failure policy and pod) as the cluster reads it.
        for job in replicated_jobs(runtime):
            kubernetes_validate.validate(
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": {"name": job["name"]},
                    "spec": job["template"]["spec"],
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


def replicated_jobs(runtime: dict) -> list[dict]:
    return runtime["spec"]["template"]["spec"]["replicatedJobs"]


def step(runtime: dict, name: str) -> dict:
    """The pod template of one replicated job (prepare, node, evaluate) of a runtime."""
    (job,) = [j for j in replicated_jobs(runtime) if j["name"] == name]
    return job["template"]["spec"]["template"]


def pod_template(runtime: dict) -> dict:
    return step(runtime, "node")


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
    # One volume per channel, and the held-out test channel's (for the evaluate job).
    pvs = {v["metadata"]["name"]: v for v in by_kind(staging, "PersistentVolume", "digits-eks")}
    assert set(pvs) == {f"mlplatform-staging-digits-eks-{c}" for c in ("train", "test")}
    pv = pvs["mlplatform-staging-digits-eks-train"]
    assert pv["spec"]["csi"]["driver"] == "s3.csi.aws.com"
    assert pv["spec"]["csi"]["volumeAttributes"] == {"bucketName": buckets["datasets"]}
    assert {"read-only", "prefix digits-eks/train/"} <= set(pv["spec"]["mountOptions"])
    (pvc,) = [
        c
        for c in by_kind(staging, "PersistentVolumeClaim", "digits-eks")
        if c["spec"]["volumeName"] == pv["metadata"]["name"]
    ]
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


def role_policy(plan: Plan, name: str) -> dict[str, dict]:
    """A role's inline policy statements by Sid."""
    policy = json.loads(plan.get("aws:iam/rolePolicy:RolePolicy", name).inputs["policy"])
    return {s["Sid"]: s for s in policy["Statement"]}


def test_pods_reach_only_their_models_prefixes_through_pod_identity(staging: Plan):
    associations = {
        r.inputs["serviceAccount"]: r.inputs
        for r in staging.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    }
    for account in ("prepare", "training", "evaluate"):
        assert associations[f"digits-eks-{account}"]["namespace"] == "training"
    assert associations["digits-eks-serving"]["namespace"] == "serving"
    buckets = staging.outputs["bucketNames"]
    node = role_policy(staging, "mlplatform-staging-digits-eks-training")
    assert node["Checkpoints"]["Resource"].endswith(f"{buckets['checkpoints']}/digits-eks/*")
    # Training code writes its run's export, and nothing that is graded or registered.
    assert node["Models"]["Resource"].endswith(f"{buckets['artifacts']}/models/digits-eks/eks/*")
    actions = [
        a
        for s in node.values()
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]
    assert not [a for a in actions if a.startswith("sagemaker:")]
    written = [
        r
        for s in node.values()
        if "s3:PutObject" in s["Action"]
        for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
    ]
    assert not [r for r in written if buckets["datasets"] in r or "/evaluated/" in r]


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


# --- a run's steps: prepare -> node -> evaluate (the gate) -------------------------------------

# JobSet's failure policy rule names (its CRD's documented pattern).
RULE_NAME = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")


def test_a_run_prepares_then_trains_then_evaluates_each_after_the_one_before_completed(
    staging: Plan,
):
    for runtime in by_kind(staging, "TrainingRuntime"):
        jobs = replicated_jobs(runtime)
        assert [j["name"] for j in jobs] == ["prepare", "node", "evaluate"]
        # JobSet's webhook: the first replicated job depends on nothing; the others name one
        # job before them (one item: what the DependsOn API supports).
        assert "dependsOn" not in jobs[0]
        for before, job in itertools.pairwise(jobs):
            assert job["dependsOn"] == [{"name": before["name"], "status": "Complete"}]
        # Trainer overrides (image, command, numNodes) reach the node job only.
        ancestors = [
            j["template"]
            .get("metadata", {})
            .get("labels", {})
            .get("trainer.kubeflow.org/trainjob-ancestor-step")
            for j in jobs
        ]
        assert ancestors == [None, "trainer", None]


def test_a_failed_prepare_or_evaluate_ends_the_run_and_only_node_failures_restart_it(
    staging: Plan,
):
    from serving.gate import EXIT_ERROR, EXIT_REFUSED

    for runtime in by_kind(staging, "TrainingRuntime"):
        policy = runtime["spec"]["template"]["spec"]["failurePolicy"]
        assert policy["maxRestarts"] == 5, "spot reclaims of nodes still restart and resume"
        rules = policy["rules"]
        assert [(r["action"], r["targetReplicatedJobs"]) for r in rules] == [
            ("FailJobSet", ["prepare"]),
            ("FailJobSet", ["evaluate"]),
        ]
        assert all(RULE_NAME.match(r["name"]) for r in rules)
        for name in ("prepare", "evaluate"):
            (job,) = [j for j in replicated_jobs(runtime) if j["name"] == name]
            spec = job["template"]["spec"]
            assert spec["backoffLimit"] == 2 and spec["activeDeadlineSeconds"] == 3600
            disruption, *final = spec["podFailurePolicy"]["rules"]
            assert disruption["action"] == "Ignore", "a reclaimed node does not count"
        (gate,) = final
        # The gate's verdicts a retry cannot change fail the Job at once.
        assert gate == {
            "action": "FailJob",
            "onExitCodes": {
                "containerName": "evaluate",
                "operator": "In",
                "values": [EXIT_ERROR, EXIT_REFUSED],
            },
        }


def test_prepare_runs_the_models_entry_point_into_the_prefixes_the_run_mounts(staging: Plan):
    model = next(m for m in staging.config.models if m.name == "digits-eks")
    runtime = by_kind(staging, "TrainingRuntime", "digits-eks")[0]
    spec = step(runtime, "prepare")["spec"]
    assert spec["serviceAccountName"] == "digits-eks-prepare"
    (prepare,) = spec["initContainers"]
    # The same command the SageMaker Processing step runs, in the same (platform) image.
    assert prepare["image"] == staging.outputs["imageRefs"]["digits-eks"]["platform"]
    assert prepare["command"] == ["python", "/opt/ml/code/prepare.py", "--out", "/prepared"]
    assert prepare["terminationMessagePolicy"] == "FallbackToLogsOnError"
    (upload,) = spec["containers"]
    script = upload["command"][-1]
    datasets = staging.outputs["bucketNames"]["datasets"]
    mounted = {
        pv["metadata"]["name"]: next(
            o for o in pv["spec"]["mountOptions"] if o.startswith("prefix")
        )
        for pv in by_kind(staging, "PersistentVolume", "digits-eks")
    }
    for channel in [*model.manifest.train.channels, "test"]:
        prefix = f"digits-eks/{channel}/"
        assert f"aws s3 sync /prepared/{channel} s3://{datasets}/{prefix} --delete" in script
        assert mounted[f"mlplatform-staging-digits-eks-{channel}"] == f"prefix {prefix}"
    assert "set -eu" in script and "prepare wrote no test channel" in script
    policy = role_policy(staging, "mlplatform-staging-digits-eks-prepare")
    assert sorted(policy["WritePreparedChannels"]["Resource"]) == sorted(
        f"arn:aws:s3:::{datasets}/digits-eks/{c}/*" for c in ("train", "test")
    )


def test_only_the_evaluate_job_sees_the_held_out_test_channel(staging: Plan):
    for runtime in by_kind(staging, "TrainingRuntime"):
        model = runtime["metadata"]["name"]
        node = step(runtime, "node")["spec"]
        claims = {
            v["persistentVolumeClaim"]["claimName"]
            for v in node["volumes"]
            if "persistentVolumeClaim" in v
        }
        assert f"{model}-test" not in claims
        for c in [*node["initContainers"], *node["containers"]]:
            assert not [
                m for m in c.get("volumeMounts", []) if m["mountPath"].startswith("/data/test")
            ]
            assert "SM_CHANNEL_TEST" not in {e["name"] for e in c.get("env", [])}
        evaluate = step(runtime, "evaluate")["spec"]
        (gate,) = evaluate["containers"]
        (mount,) = [m for m in gate["volumeMounts"] if m["mountPath"] == "/data/test"]
        assert mount["readOnly"] is True
        (volume,) = [v for v in evaluate["volumes"] if v["name"] == mount["name"]]
        assert volume["persistentVolumeClaim"] == {"claimName": f"{model}-test", "readOnly": True}
    (pv,) = [
        pv
        for pv in by_kind(staging, "PersistentVolume", "digits-eks")
        if pv["metadata"]["name"].endswith("-test")
    ]
    assert {"read-only", "prefix digits-eks/test/"} <= set(pv["spec"]["mountOptions"])


def test_the_gate_evaluates_what_the_nodes_exported_and_registers_in_the_models_group(
    staging: Plan,
):
    model = next(m for m in staging.config.models if m.name == "digits-eks")
    objective = model.manifest.train.objective
    runtime = by_kind(staging, "TrainingRuntime", "digits-eks")[0]
    buckets = staging.outputs["bucketNames"]
    group = staging.outputs["modelPackageGroups"]["digits-eks"]
    assert group == "mlplatform-staging-digits-eks"
    assert (
        staging.get("aws:sagemaker/modelPackageGroup:ModelPackageGroup", group).inputs[
            "modelPackageGroupName"
        ]
        == group
    )
    spec = step(runtime, "evaluate")["spec"]
    assert spec["serviceAccountName"] == "digits-eks-evaluate"
    (fetch,) = spec["initContainers"]
    node_env = {
        e["name"]: e.get("value") for e in pod_template(runtime)["spec"]["containers"][0]["env"]
    }
    fetch_env = {e["name"]: e.get("value") for e in fetch["env"]}
    assert fetch_env["MODEL_URI"] == node_env["MODEL_URI"], "what the nodes synced"
    assert fetch["command"][-1] == 'aws s3 sync "$MODEL_URI" /work/export --only-show-errors'
    (gate,) = spec["containers"]
    assert gate["image"] == staging.outputs["imageRefs"]["digits-eks"]["platform"]
    assert gate["terminationMessagePolicy"] == "FallbackToLogsOnError"
    command = gate["command"]
    assert command[:4] == ["python", "-m", "serving", "gate"]
    flags = dict(zip(command[4::2], command[5::2], strict=False))
    assert flags["--export-dir"] == "/work/export" and flags["--test-dir"] == "/data/test"
    assert (flags["--metric"], flags["--goal"], float(flags["--threshold"])) == (
        objective.metric,
        objective.goal,
        objective.threshold,
    )
    assert flags["--model-package-group"] == group
    assert flags["--image"] == staging.outputs["imageRefs"]["digits-eks"]["serving"]
    assert flags["--output-uri"] == (
        f"s3://{buckets['artifacts']}/models/digits-eks/evaluated/$(TRAIN_JOB_NAME)/"
    )
    env = {e["name"]: e.get("value") for e in gate["env"]}
    assert env["AWS_REGION"] == "us-east-1"
    policy = role_policy(staging, "mlplatform-staging-digits-eks-evaluate")
    assert policy["RegisterInOwnGroup"]["Action"] == ["sagemaker:CreateModelPackage"]
    assert policy["RegisterInOwnGroup"]["Resource"] == [
        f"arn:aws:sagemaker:us-east-1:123456789012:model-package-group/{group}",
        f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{group}/*",
    ]
    assert policy["ReadRunModels"]["Resource"].endswith("/models/digits-eks/eks/*")
    assert policy["WriteEvaluatedModels"]["Resource"].endswith("/models/digits-eks/evaluated/*")
    assert not [s for s in policy.values() if buckets["datasets"] in json.dumps(s)], (
        "the test channel comes through its read-only volume"
    )


def test_every_model_has_one_package_group_whichever_plane_trains_it(staging: Plan):
    groups = {
        r.inputs["modelPackageGroupName"]
        for r in staging.of_type("aws:sagemaker/modelPackageGroup:ModelPackageGroup")
    }
    assert groups == {f"mlplatform-staging-{m.name}" for m in staging.config.models}
    assert set(staging.outputs["modelPackageGroups"]) == {m.name for m in staging.config.models}


def test_raw_input_on_eks_is_fetched_for_prepare_with_read_access_to_it_alone(plan_variant):
    plan = plan_variant(
        "staging",
        {
            "mlplatform:models": [
                {
                    "name": "breast-cancer",
                    "training": {
                        "plane": "eks",
                        "pool": "training",
                        "gpusPerInstance": 0,
                        "rawData": {"prefix": "shared/bc/v3/"},
                    },
                    "serving": {"plane": "eks", "pool": "serving", "gpusPerReplica": 0},
                }
            ]
        },
    )
    runtime = by_kind(plan, "TrainingRuntime", "breast-cancer")[0]
    spec = step(runtime, "prepare")["spec"]
    fetch, prepare = spec["initContainers"]
    datasets = plan.outputs["bucketNames"]["datasets"]
    assert {e["name"]: e.get("value") for e in fetch["env"]}["RAW_URI"] == (
        f"s3://{datasets}/shared/bc/v3/"
    )
    assert prepare["command"][-4:] == ["--out", "/prepared", "--input", "/raw"]
    assert {"name": "raw", "mountPath": "/raw", "readOnly": True} in prepare["volumeMounts"]
    policy = role_policy(plan, "mlplatform-variant-breast-cancer-prepare")
    assert policy["ReadRawInput"]["Resource"] == f"arn:aws:s3:::{datasets}/shared/bc/v3/*"


def test_a_model_without_a_prepare_entry_point_trains_then_evaluates(plan_variant):
    import shutil

    from infra.config.models import PROJECT_ROOT

    copy = PROJECT_ROOT / "models" / "bc-noprep-test"
    shutil.copytree(PROJECT_ROOT / "models" / "breast-cancer", copy)
    try:
        manifest = (copy / "model.yaml").read_text()
        manifest = manifest.replace("name: breast-cancer\n", "name: bc-noprep-test\n")
        manifest = manifest.replace("prepare:\n  entryPoint: prepare.py\n", "")
        (copy / "model.yaml").write_text(manifest)
        plan = plan_variant(
            "staging",
            {
                "mlplatform:models": [
                    {
                        "name": "bc-noprep-test",
                        "training": {"plane": "eks", "pool": "training", "gpusPerInstance": 0},
                        "serving": {"plane": "eks", "pool": "serving", "gpusPerReplica": 0},
                    }
                ]
            },
        )
    finally:
        shutil.rmtree(copy)
    (runtime,) = by_kind(plan, "TrainingRuntime", "bc-noprep-test")
    check_against_crd(runtime, "trainingruntime")
    jobs = replicated_jobs(runtime)
    assert [j["name"] for j in jobs] == ["node", "evaluate"]
    assert "dependsOn" not in jobs[0], "JobSet refuses dependsOn on the first replicated job"
    rules = runtime["spec"]["template"]["spec"]["failurePolicy"]["rules"]
    assert [r["targetReplicatedJobs"] for r in rules] == [["evaluate"]]
    accounts = {
        r.inputs["serviceAccount"]
        for r in plan.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    }
    assert {"bc-noprep-test-training", "bc-noprep-test-evaluate"} <= accounts
    assert "bc-noprep-test-prepare" not in accounts


def test_the_gate_registers_the_same_request_members_as_the_pipelines_register_step(
    staging: Plan,
):
    from serving.gate import Registration, model_package_request

    pipeline = json.loads(
        staging.get("aws:sagemaker/pipeline:Pipeline", "mlplatform-staging-digits").inputs[
            "pipelineDefinition"
        ]
    )
    (condition,) = [s for s in pipeline["Steps"] if s["Type"] == "Condition"]
    (register,) = [s for s in condition["Arguments"]["IfSteps"] if s["Name"] == "Register"]
    arguments = register["Arguments"]
    gate = model_package_request(
        Registration(
            group="g",
            image="i",
            content_types=["application/json"],
            instance_types=["ml.g5.xlarge"],
            description="d",
            token="t",
        ),
        "s3://b/m/model.tar.gz",
        "s3://b/m/evaluation.json",
    )
    assert set(gate) - {"ClientToken"} == set(arguments)
    assert set(gate["InferenceSpecification"]) == set(arguments["InferenceSpecification"])
    assert (
        gate["ModelMetrics"]["ModelQuality"]["Statistics"]["ContentType"]
        == (arguments["ModelMetrics"]["ModelQuality"]["Statistics"]["ContentType"])
    )
