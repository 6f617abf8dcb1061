"""Trust rules: every role an AWS service assumes is bound to this account the way that service
documents it (confused-deputy prevention), and Pod Identity roles to their service account.

The per-service forms are data (`infra/restrictions.json`, `serviceTrust`, each with its page):
which `aws:SourceArn` a service sends for each use of a role. A role's uses come from the plan
(an endpoint's Model, a pipeline, a pipeline step, a schedule, a flow log naming the role), and
each rule asks what AWS would: does the trust admit the request the service really makes, and
does it refuse the same request from another account?
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from infra import restrictions
from policies.rules import Rule, StackFacts, StackResource
from policies.rules.conditions import (
    allows,
    condition_keys,
    condition_values,
    trust_statements,
    trusted_services,
)
from policies.rules.props import PIPELINE, SAGEMAKER_MODEL, SCHEDULE, as_dict, as_list, json_doc

ROLE = "aws:iam/role:Role"
POD_IDENTITY = "pods.eks.amazonaws.com"
SOURCE_KEYS = {"aws:sourcearn", "aws:sourceaccount"}
FOREIGN_ACCOUNT = "999999999999"
_STEP_USAGE = {"Training": "training", "Tuning": "training", "Processing": "processing"}

Usage = tuple[str, str, Mapping[str, str]]  # (service, usage, ARN template names)


def _arn_parts(arn: Any) -> tuple[str, str] | None:
    """(partition, account) of an ARN, or None when unknown."""
    parts = arn.split(":") if isinstance(arn, str) else []
    return (parts[1], parts[4]) if len(parts) >= 6 and parts[4] else None


def _step_roles(definition: Any) -> Iterator[tuple[str, str]]:
    """(role ARN, usage) for each step of a pipeline definition that names a role."""
    doc = json_doc(definition)
    for step in as_list(doc.get("Steps")) if isinstance(doc, Mapping) else []:
        step = as_dict(step)
        args = as_dict(step.get("Arguments"))
        if step.get("Type") == "Tuning":
            args = as_dict(args.get("TrainingJobDefinition"))
        usage = _STEP_USAGE.get(str(step.get("Type")))
        if usage and isinstance(args.get("RoleArn"), str):
            yield args["RoleArn"], usage


def role_usages(resources: Sequence[StackResource]) -> dict[str, list[Usage]]:
    """What each role ARN is used for, from the resources that name it."""
    found: dict[str, list[Usage]] = {}

    def add(arn: Any, service: str, usage: str, **names: str) -> None:
        if isinstance(arn, str):
            found.setdefault(arn, []).append((service, usage, names))

    sagemaker = "sagemaker.amazonaws.com"
    for r in resources:
        if r.type == SAGEMAKER_MODEL:
            add(r.props.get("executionRoleArn"), sagemaker, "inference")
        elif r.type == PIPELINE:
            arn = r.props.get("arn")
            name = arn.rsplit("pipeline/", 1)[-1] if isinstance(arn, str) else None
            name = name or str(r.props.get("pipelineName", "")).lower()
            add(r.props.get("roleArn"), sagemaker, "pipeline", pipeline=name)
            for role_arn, usage in _step_roles(r.props.get("pipelineDefinition")):
                add(role_arn, sagemaker, usage)
        elif r.type == SCHEDULE:
            group = r.props.get("groupName") or "default"
            add(
                as_dict(r.props.get("target")).get("roleArn"),
                "scheduler.amazonaws.com",
                "schedule",
                group=group,
            )
        elif r.type == "aws:ec2/flowLog:FlowLog":
            add(r.props.get("iamRoleArn"), "vpc-flow-logs.amazonaws.com", "flow-log")
        elif r.type == "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer":
            add(r.props.get("roleArn"), sagemaker, "mlflow-tracking-server")
    return found


def _roles(resources: Sequence[StackResource]) -> Iterator[tuple[StackResource, Any, str, str]]:
    """(role, trust policy, partition, account) for each role whose ARN is known."""
    for r in resources:
        parts = _arn_parts(r.props.get("arn")) if r.type == ROLE else None
        if parts:
            yield r, r.props.get("assumeRolePolicy"), parts[0], parts[1]


def _context(
    service: str, usage: str, names: Mapping[str, str], partition: str, region: str, account: str
) -> dict[str, str]:
    arn = restrictions.source_arn(
        service, usage, "sends", partition=partition, region=region, account=account, **names
    )
    # A use whose form AWS does not document: the request is known to carry only the account.
    return (
        {"aws:SourceAccount": account}
        if arn is None
        else {"aws:SourceArn": arn, "aws:SourceAccount": account}
    )


def _usages_of(role: StackResource, service: str, used: dict[str, list[Usage]]) -> list[Usage]:
    """The role's uses by `service` in the plan, else every use the service documents."""
    mine = [u for u in used.get(role.props["arn"], []) if u[0] == service]
    documented = restrictions.service_trust()[service].get("usages", {})
    return mine or [(service, usage, {}) for usage in documented]


def source_account(
    resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
) -> Iterable[tuple[str, str | None]]:
    table = restrictions.service_trust()
    used = role_usages(resources)
    for role, trust, partition, account in _roles(resources):
        for service in sorted(trusted_services(trust) - {POD_IDENTITY}):
            entry = table.get(service)
            where = f"role {role.name!r} trusts {service}"
            if entry is None:
                yield (
                    f"{where}, which infra/restrictions.json does not cover: add the "
                    "service's confused-deputy form (aws:SourceAccount/aws:SourceArn) with "
                    "the page that documents it",
                    role.urn,
                )
                continue
            statements = trust_statements(trust, service)
            if not entry["settled"]:
                keys = {k for s in statements for k in condition_keys(s)} & SOURCE_KEYS
                if keys:
                    yield (
                        f"{where} with a condition on {sorted(keys)}, which {service} is not "
                        f"documented to send; the role may become unassumable ({entry['source']})",
                        role.urn,
                    )
                continue
            for s in statements:
                for _, value in condition_values(s, "aws:SourceAccount"):
                    if value != account:
                        yield (
                            f"{where} for aws:SourceAccount {value}, not this stack's account "
                            f"{account}",
                            role.urn,
                        )
            foreign = [
                u
                for u in _usages_of(role, service, used)
                if allows(
                    trust,
                    service,
                    _context(*u, partition, facts.region, FOREIGN_ACCOUNT),
                    SOURCE_KEYS,
                )
            ]
            if foreign:
                yield (
                    f"{where} on behalf of any account: add StringEquals aws:SourceAccount "
                    f"{account} (confused-deputy prevention, {entry['source']})",
                    role.urn,
                )


def _recommended(usages: Sequence[Usage], partition: str, region: str, account: str) -> list[str]:
    names = {u for _, u, _ in usages}
    # One role for inference and jobs: only the account-wide form matches every use.
    if "inference" in names:
        usages = [u for u in usages if u[1] == "inference"]
    forms: set[str] = set()
    for s, u, n in usages:
        form = restrictions.source_arn(
            s, u, partition=partition, region=region, account=account, **n
        )
        # None: AWS documents no form for the use (the rule passes only documented uses here).
        if form is not None:
            forms.add(form)
    return sorted(forms)


def source_arn(
    resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
) -> Iterable[tuple[str, str | None]]:
    table = restrictions.service_trust()
    used = role_usages(resources)
    for role, trust, partition, account in _roles(resources):
        for service in sorted(trusted_services(trust) - {POD_IDENTITY}):
            entry = table.get(service)
            if entry is None or not entry["settled"]:
                continue  # iam-trust-source-account reports these
            usages = _usages_of(role, service, used)
            documented = entry.get("usages", {})
            # A use whose SourceArn form AWS does not document needs only aws:SourceAccount.
            usages = [u for u in usages if documented.get(u[1], {}).get("sends")]
            if not usages:
                continue
            where = f"role {role.name!r} trusts {service}"
            forms = _recommended(usages, partition, facts.region, account)
            statements = trust_statements(trust, service)
            if not any("aws:sourcearn" in condition_keys(s) for s in statements):
                yield (
                    f"{where} without aws:SourceArn; add ArnLike aws:SourceArn {forms} "
                    f"(the form {service} sends for {sorted({u for _, u, _ in usages})}: "
                    f"{entry['source']})",
                    role.urn,
                )
                continue
            for s_, usage, names in usages:
                context = _context(s_, usage, names, partition, facts.region, account)
                if not allows(trust, service, context, SOURCE_KEYS):
                    yield (
                        f"{where}, but its aws:SourceArn condition does not match "
                        f"{context['aws:SourceArn']}, which {service} sends for {usage}: "
                        f"that use would fail. Use {forms} ({entry['source']})",
                        role.urn,
                    )


def _associations(
    resources: Sequence[StackResource], region: str
) -> Iterator[tuple[str, str, str, str, bool, str]]:
    """(role ARN, cluster ARN, namespace, service account, session tags off, where) of every
    Pod Identity association, standalone or inside an EKS add-on (add-ons run in kube-system)."""
    clusters = {
        r.props.get("name"): r.props.get("arn")
        for r in resources
        if r.type == "aws:eks/cluster:Cluster"
    }
    for r in resources:
        if r.type == "aws:eks/podIdentityAssociation:PodIdentityAssociation":
            items = [(r.props, r.props.get("namespace"))]
        elif r.type == "aws:eks/addon:Addon":
            items = [
                (as_dict(a), "kube-system") for a in as_list(r.props.get("podIdentityAssociations"))
            ]
        else:
            continue
        cluster = r.props.get("clusterName")
        for item, namespace in items:
            role_arn = item.get("roleArn")
            parts = _arn_parts(role_arn)
            if not parts or not isinstance(role_arn, str) or not isinstance(cluster, str):
                continue
            cluster_arn = clusters.get(cluster) or (
                f"arn:{parts[0]}:eks:{region}:{parts[1]}:cluster/{cluster}"
            )
            yield (
                role_arn,
                cluster_arn,
                str(namespace),
                str(item.get("serviceAccount")),
                item.get("disableSessionTags") is True,
                r.name,
            )


def pod_identity_scoped(
    resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
) -> Iterable[tuple[str, str | None]]:
    tags = restrictions.service_trust()[POD_IDENTITY]["sessionTags"]
    keys = {f"aws:requesttag/{t}" for t in tags}
    associations = list(_associations(resources, facts.region))
    for role, trust, _partition, _account in _roles(resources):
        if POD_IDENTITY not in trusted_services(trust):
            continue
        statements = trust_statements(trust, POD_IDENTITY)
        if not any(keys <= condition_keys(s) for s in statements):
            yield (
                f"Pod Identity role {role.name!r} is not scoped: any service account an "
                "association names in any cluster could get it; add StringEquals on "
                f"{sorted(f'aws:RequestTag/{t}' for t in tags)} for its one service account",
                role.urn,
            )
            continue
        for role_arn, cluster_arn, namespace, account, tags_off, where in associations:
            if role_arn != role.props["arn"]:
                continue
            if tags_off:
                yield (
                    f"association {where!r} disables session tags, but role {role.name!r} is "
                    "scoped by them: its pods would get no credentials",
                    role.urn,
                )
                continue
            context = {
                "aws:RequestTag/eks-cluster-arn": cluster_arn,
                "aws:RequestTag/kubernetes-namespace": namespace,
                "aws:RequestTag/kubernetes-service-account": account,
            }
            if not allows(trust, POD_IDENTITY, context, keys):
                yield (
                    f"association {where!r} hands role {role.name!r} to {namespace}/{account} "
                    f"on {cluster_arn}, which the role's session-tag conditions do not admit: "
                    "its pods would get no credentials",
                    role.urn,
                )


RULES = [
    Rule(
        "iam-trust-source-account",
        "Roles assumed by AWS services are bound to this account (and trust only services whose form is documented).",
        "high",
        source_account,
        scope="stack",
    ),
    Rule(
        "iam-trust-source-arn",
        "Service roles carry aws:SourceArn in the exact form the service sends for each of their uses.",
        "medium",
        source_arn,
        scope="stack",
    ),
    Rule(
        "iam-pod-identity-trust",
        "Pod Identity roles are scoped by EKS session tags to the service account their associations name.",
        "high",
        pod_identity_scoped,
        scope="stack",
    ),
]
