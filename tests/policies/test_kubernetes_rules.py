"""Kubernetes workload rules: every pod template, wherever it is nested, runs hardened."""

from __future__ import annotations

import copy

import pytest

from policies.rules.kubernetes import pod_specs

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
RUNTIME = "kubernetes:trainer.kubeflow.org/v1alpha1:TrainingRuntime"
CRONJOB = "kubernetes:batch/v1:CronJob"

HARDENED = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def _container(name: str, **overrides) -> dict:
    return {
        "name": name,
        "image": "x@sha256:abc",
        "securityContext": dict(HARDENED),
        "resources": {"limits": {"memory": "1Gi"}},
        **overrides,
    }


def _pod(**overrides) -> dict:
    return {
        "serviceAccountName": "digits",
        "automountServiceAccountToken": False,
        "initContainers": [_container("fetch")],
        "containers": [_container("server")],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
        **overrides,
    }


def deployment(pod: dict) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "digits", "namespace": "serving"},
        "spec": {"template": {"spec": pod}},
    }


def runtime(pod: dict) -> dict:
    job = {"template": {"spec": {"template": {"spec": pod}}}}
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainingRuntime",
        "metadata": {"name": "digits", "namespace": "training"},
        "spec": {"template": {"spec": {"replicatedJobs": [{"name": "node", **job}]}}},
    }


def cronjob(pod: dict) -> dict:
    return {
        "kind": "CronJob",
        "metadata": {"name": "sweep", "namespace": "training"},
        "spec": {"jobTemplate": {"spec": {"template": {"spec": pod}}}},
    }


SHAPES = [(DEPLOYMENT, deployment), (RUNTIME, runtime), (CRONJOB, cronjob)]


def test_pod_templates_are_found_at_every_depth():
    assert [p for p, _ in pod_specs(runtime(_pod())["spec"], ".spec")] == [
        ".spec.template.spec.replicatedJobs[0].template.spec.template.spec"
    ]
    assert [p for p, _ in pod_specs(cronjob(_pod())["spec"], ".spec")] == [
        ".spec.jobTemplate.spec.template.spec"
    ]


@pytest.mark.parametrize(("type_", "shape"), SHAPES, ids=["deployment", "runtime", "cronjob"])
def test_a_hardened_pod_passes_every_workload_rule(check, type_, shape):
    for rule in (
        "k8s-no-host-access",
        "k8s-non-root",
        "k8s-no-privilege-escalation",
        "k8s-read-only-root-fs",
        "k8s-memory-limits",
    ):
        assert check(rule, type_, shape(_pod())) == [], rule


def _weaken_container(pod: dict, which: str, **security) -> dict:
    pod = copy.deepcopy(pod)
    target = pod["initContainers"][0] if which == "init" else pod["containers"][0]
    target["securityContext"].update(security)
    return pod


@pytest.mark.parametrize(("type_", "shape"), SHAPES, ids=["deployment", "runtime", "cronjob"])
@pytest.mark.parametrize(
    ("rule", "change", "expect"),
    [
        ("k8s-no-host-access", {"privileged": True}, "privileged"),
        ("k8s-non-root", {"runAsUser": 0}, "UID 0"),
        ("k8s-non-root", {"runAsNonRoot": None}, "runAsNonRoot"),
        (
            "k8s-no-privilege-escalation",
            {"allowPrivilegeEscalation": True},
            "allowPrivilegeEscalation",
        ),
        ("k8s-no-privilege-escalation", {"capabilities": {"drop": ["NET_RAW"]}}, "drop: [ALL]"),
        ("k8s-read-only-root-fs", {"readOnlyRootFilesystem": False}, "readOnlyRootFilesystem"),
    ],
)
def test_a_weakened_init_container_is_caught_in_every_workload_shape(
    check, type_, shape, rule, change, expect
):
    [message] = check(rule, type_, shape(_weaken_container(_pod(), "init", **change)))
    assert expect in message and "initContainers[fetch]" in message


def test_host_namespaces_and_host_paths_are_caught(check):
    found = check(
        "k8s-no-host-access",
        DEPLOYMENT,
        deployment(_pod(hostNetwork=True, volumes=[{"name": "root", "hostPath": {"path": "/"}}])),
    )
    assert any("hostNetwork" in m for m in found) and any("hostPath" in m for m in found)


def test_a_pod_level_run_as_non_root_covers_its_containers(check):
    pod = _pod(securityContext={"runAsNonRoot": True})
    for c in pod["initContainers"] + pod["containers"]:
        del c["securityContext"]["runAsNonRoot"]
    assert check("k8s-non-root", DEPLOYMENT, deployment(pod)) == []


def test_a_sidecar_without_a_memory_limit_is_caught(check):
    sidecar = _container(
        "sync", restartPolicy="Always", resources={"requests": {"memory": "256Mi"}}
    )
    pod = _pod(initContainers=[_container("fetch"), sidecar])
    [message] = check("k8s-memory-limits", RUNTIME, runtime(pod))
    assert "initContainers[sync]" in message


def test_helm_releases_are_out_of_reach_and_not_checked(check):
    release = {"values": {"spec": {"containers": [{"name": "x"}]}}}
    assert check("k8s-memory-limits", "kubernetes:helm.sh/v3:Release", release) == []


def _objects(resource, pod: dict, account_mounts=None):
    account = {"metadata": {"name": "digits", "namespace": "serving"}}
    if account_mounts is not None:
        account["automountServiceAccountToken"] = account_mounts
    return [
        resource("kubernetes:core/v1:ServiceAccount", "sa", **account),
        resource(DEPLOYMENT, "server", **deployment(pod)),
    ]


def test_pods_that_mount_an_api_token_are_caught_unless_allow_listed(check_stack, resource):
    mounts = _pod()
    del mounts["automountServiceAccountToken"]
    [message] = check_stack("k8s-service-account-token", _objects(resource, mounts))
    assert "serving/digits" in message and "automountServiceAccountToken" in message
    allowed = [{"namespace": "serving", "serviceAccount": "digits", "reason": "reads ConfigMaps"}]
    assert (
        check_stack("k8s-service-account-token", _objects(resource, mounts), allowToken=allowed)
        == []
    )


def test_a_service_account_that_does_not_mount_covers_its_pods(check_stack, resource):
    unset = _pod()
    del unset["automountServiceAccountToken"]
    assert (
        check_stack("k8s-service-account-token", _objects(resource, unset, account_mounts=False))
        == []
    )
    # ...but the pod's own setting wins over the account's.
    assert check_stack(
        "k8s-service-account-token",
        _objects(resource, _pod(automountServiceAccountToken=True), account_mounts=False),
    )
