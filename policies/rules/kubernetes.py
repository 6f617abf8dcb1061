"""Kubernetes workload rules: every pod template the program declares runs hardened.

A pod template is found wherever it sits: a Deployment's `spec.template.spec`, a Job's, a
CronJob's, or deep inside a CRD such as Kubeflow Trainer's TrainingRuntime
(`spec.template.spec.replicatedJobs[].template.spec.template.spec`), so a new workload kind is
covered without a rule change. Init containers and native sidecars are containers too. Helm
releases render their pods on the cluster, out of reach of a plan: they are not checked here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from policies.rules import Rule, StackFacts, StackResource
from policies.rules.props import as_dict, as_list

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def pod_specs(value: Any, path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(path, pod spec) of every pod template in a Kubernetes object: any mapping that holds
    a list of containers."""
    if isinstance(value, Mapping):
        if any(isinstance(c, Mapping) for c in as_list(value.get("containers"))):
            yield path or ".", value
            return
        for key, item in value.items():
            yield from pod_specs(item, f"{path}.{key}")
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        for i, item in enumerate(value):
            yield from pod_specs(item, f"{path}[{i}]")


def containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(`initContainers[name]`-style label, container) of every container of a pod spec."""
    for key in CONTAINER_LISTS:
        for c in as_list(spec.get(key)):
            c = as_dict(c)
            yield f"{key}[{c.get('name', '?')}]", c


def _where(resource_type: str, props: Mapping[str, Any], path: str, label: str = "") -> str:
    meta = as_dict(props.get("metadata"))
    kind = props.get("kind") or resource_type.rsplit(":", 1)[-1]
    name = (
        f"{meta.get('namespace')}/{meta.get('name')}" if meta.get("namespace") else meta.get("name")
    )
    return f"{kind} {name} {path}" + (f" {label}" if label else "")


def _security(spec: Mapping[str, Any], container: Mapping[str, Any], key: str) -> Any:
    """A container's securityContext field, falling back to the pod's where Kubernetes does."""
    value = as_dict(container.get("securityContext")).get(key)
    if value is None and key in ("runAsNonRoot", "runAsUser"):
        value = as_dict(spec.get("securityContext")).get(key)
    return value


def _each_container(
    resource_type: str, props: Mapping[str, Any]
) -> Iterator[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    if not resource_type.startswith("kubernetes:") or "helm.sh" in resource_type:
        return
    for path, spec in pod_specs(props.get("spec"), ".spec"):
        for label, container in containers(spec):
            yield _where(resource_type, props, path, label), spec, container


def no_host_access(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    if not resource_type.startswith("kubernetes:") or "helm.sh" in resource_type:
        return
    for path, spec in pod_specs(props.get("spec"), ".spec"):
        shared = [k for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k) is True]
        if shared:
            yield f"{_where(resource_type, props, path)} shares the node's {shared}; set them false"
        host_paths = [
            v.get("name") for v in map(as_dict, as_list(spec.get("volumes"))) if "hostPath" in v
        ]
        if host_paths:
            yield f"{_where(resource_type, props, path)} mounts node directories (hostPath {host_paths}); use emptyDir or a volume claim"
    for where, _spec, c in _each_container(resource_type, props):
        if as_dict(c.get("securityContext")).get("privileged") is True:
            yield f"{where} is privileged; drop securityContext.privileged"


def non_root(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    for where, spec, c in _each_container(resource_type, props):
        if _security(spec, c, "runAsUser") == 0:
            yield f"{where} runs as UID 0; run as the image's unprivileged user"
        elif _security(spec, c, "runAsNonRoot") is not True:
            yield f"{where} may run as root: set securityContext.runAsNonRoot: true (pod or container)"


def no_privilege_escalation(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    for where, _spec, c in _each_container(resource_type, props):
        security = as_dict(c.get("securityContext"))
        if security.get("allowPrivilegeEscalation") is not False:
            yield f"{where} does not set securityContext.allowPrivilegeEscalation: false"
        dropped = {
            str(x).upper() for x in as_list(as_dict(security.get("capabilities")).get("drop"))
        }
        if "ALL" not in dropped:
            yield f"{where} keeps Linux capabilities: set securityContext.capabilities.drop: [ALL]"


def read_only_root(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    for where, _spec, c in _each_container(resource_type, props):
        if as_dict(c.get("securityContext")).get("readOnlyRootFilesystem") is not True:
            yield (
                f"{where} can write its root filesystem: set securityContext."
                "readOnlyRootFilesystem: true and mount emptyDir volumes where it writes "
                "(/tmp, caches)"
            )


def memory_limits(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    for where, _spec, c in _each_container(resource_type, props):
        if not as_dict(as_dict(c.get("resources")).get("limits")).get("memory"):
            yield f"{where} has no memory limit: set resources.limits.memory (a leak then kills the pod, not the node)"


def service_account_token(
    resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
) -> Iterable[tuple[str, str | None]]:
    allowed = {(a.get("namespace"), a.get("serviceAccount")) for a in config.get("allowToken", [])}
    accounts = {}
    for r in resources:
        meta = as_dict(r.props.get("metadata"))
        if r.type == "kubernetes:core/v1:ServiceAccount":
            accounts[(meta.get("namespace"), meta.get("name"))] = r.props
    for r in resources:
        if not r.type.startswith("kubernetes:") or "helm.sh" in r.type:
            continue
        namespace = as_dict(r.props.get("metadata")).get("namespace")
        for path, spec in pod_specs(r.props.get("spec"), ".spec"):
            account = spec.get("serviceAccountName") or "default"
            if (namespace, account) in allowed:
                continue
            mounted = spec.get("automountServiceAccountToken")
            if mounted is None:  # the service account's setting applies
                mounted = as_dict(accounts.get((namespace, account))).get(
                    "automountServiceAccountToken"
                )
            if mounted is not False:
                yield (
                    f"{_where(r.type, r.props, path)} mounts a Kubernetes API token for "
                    f"{namespace}/{account}: set automountServiceAccountToken: false (EKS Pod "
                    "Identity brings AWS credentials through its own volume), or list the "
                    "account under allowToken with the reason it calls the API",
                    r.urn,
                )


RULES = [
    Rule(
        "k8s-no-host-access",
        "Pods share nothing with the node: no privileged containers, host namespaces or hostPath volumes.",
        "critical",
        no_host_access,
    ),
    Rule("k8s-non-root", "Every container runs as a non-root user.", "high", non_root),
    Rule(
        "k8s-no-privilege-escalation",
        "Containers cannot gain privileges: allowPrivilegeEscalation false, all capabilities dropped.",
        "high",
        no_privilege_escalation,
    ),
    Rule(
        "k8s-read-only-root-fs",
        "Containers have read-only root filesystems and write only to declared volumes.",
        "medium",
        read_only_root,
    ),
    Rule(
        "k8s-memory-limits",
        "Every container, init containers and sidecars included, has a memory limit.",
        "medium",
        memory_limits,
    ),
    Rule(
        "k8s-service-account-token",
        "Pods mount no Kubernetes API token unless allow-listed with a reason.",
        "medium",
        service_account_token,
        scope="stack",
        config_schema={
            "allowToken": {
                "type": "array",
                "default": [],
                "items": {
                    "type": "object",
                    "properties": {
                        "namespace": {"type": "string"},
                        "serviceAccount": {"type": "string"},
                        "reason": {"type": "string"},
                    },
                    "required": ["namespace", "serviceAccount", "reason"],
                },
            }
        },
    ),
]
