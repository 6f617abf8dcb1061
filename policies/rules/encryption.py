"""Encryption rules: data at rest is under the stack's KMS key, or under what a documented AWS
restriction leaves (`infra/restrictions.json`), named in the rule, never skipped silently.

Covered here: CloudWatch log groups, Secrets Manager secrets, SNS topics, ECR repositories,
EKS secrets, EBS volumes and node launch templates; SageMaker endpoints, data capture and
training volumes are `sagemaker-stack-key`, buckets the `s3-*` rules. A log group under the
key also needs the key policy to let CloudWatch Logs use it for that group (and only that).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from infra import restrictions
from policies.rules import Rule, StackFacts, StackResource
from policies.rules.conditions import actions, condition_allows, service_principals, statements
from policies.rules.props import CLUSTER, LAUNCH_TEMPLATE, NODE_GROUP, as_dict, as_list, truthy

KEY = "aws:kms/key:Key"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
LOGS_CONTEXT_KEY = "kms:encryptioncontext:aws:logs:arn"


def stack_keys(resources: Sequence[StackResource]) -> set[str]:
    """Every way the plan names one of the stack's own KMS keys (ARN, key id)."""
    return {
        str(r.props.get(k)) for r in resources if r.type == KEY for k in ("arn", "keyId", "id")
    } - {"None"}


def _key_fields(r: StackResource) -> list[tuple[str, Any]]:
    """(field, key) of every key reference an encrypting resource carries."""
    p = r.props
    if r.type in (LOG_GROUP, "aws:secretsmanager/secret:Secret", "aws:ebs/volume:Volume"):
        return [("kmsKeyId", p.get("kmsKeyId"))]
    if r.type == "aws:sns/topic:Topic":
        return [("kmsMasterKeyId", p.get("kmsMasterKeyId"))]
    if r.type == "aws:ecr/repository:Repository":
        configs = [as_dict(c) for c in as_list(p.get("encryptionConfigurations"))]
        return [("encryptionConfigurations.kmsKey", c.get("kmsKey")) for c in configs] or [
            ("encryptionConfigurations", None)
        ]
    if r.type == CLUSTER:
        configs = [as_dict(c) for c in as_list(p.get("encryptionConfig"))]
        return [
            ("encryptionConfig.provider.keyArn", as_dict(c.get("provider")).get("keyArn"))
            for c in configs
        ] or [("encryptionConfig", None)]
    return []


def _node_templates(resources: Sequence[StackResource]) -> set[Any]:
    return {
        as_dict(r.props.get("launchTemplate")).get("id") for r in resources if r.type == NODE_GROUP
    }


def stack_key_encryption(
    resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
) -> Iterable[tuple[str, str | None]]:
    keys = stack_keys(resources)
    node_row = restrictions.table()["node-volumes-account-key"]
    node_templates = _node_templates(resources)
    for r in resources:
        for field, key in _key_fields(r):
            if key not in keys:
                yield (
                    f"{r.type.rsplit(':', 1)[-1]} {r.name!r} is not encrypted with the stack's "
                    f"KMS key ({field} is {key!r}); set it to the stack key's ARN",
                    r.urn,
                )
        if r.type == LAUNCH_TEMPLATE:
            for device in as_list(r.props.get("blockDeviceMappings")):
                ebs = as_dict(as_dict(device).get("ebs"))
                if not ebs or ebs.get("kmsKeyId") in keys:
                    continue
                if r.props.get("id") in node_templates and truthy(ebs.get("encrypted")):
                    continue  # the account's EBS key, as node_row documents
                yield (
                    f"launch template {r.name!r} volume {as_dict(device).get('deviceName')!r} is "
                    "neither under the stack key nor an encrypted node volume "
                    f"[{node_row.id}: {node_row.source}]",
                    r.urn,
                )


def _log_group_arn(name: str, key_arn: str, region: str) -> str:
    partition, account = key_arn.split(":")[1], key_arn.split(":")[4]
    return f"arn:{partition}:logs:{region}:{account}:log-group:{name}"


def _logs_grants(policy: Any, region: str) -> list[Mapping[str, Any]]:
    service = f"logs.{region}.amazonaws.com"
    return [
        s
        for s in statements(policy)
        if s.get("Effect") == "Allow"
        and service in service_principals(s)
        and any(a in ("kms:*", "kms:GenerateDataKey*", "kms:GenerateDataKey") for a in actions(s))
    ]


def log_group_key_grant(
    resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
) -> Iterable[tuple[str, str | None]]:
    row = restrictions.table()["logs-kms-key-policy"]
    keys = {r.props.get("arn"): r for r in resources if r.type == KEY}
    for key in keys.values():
        for grant in _logs_grants(key.props.get("policy"), facts.region):
            foreign = _log_group_arn("/not/this/stack", str(key.props.get("arn")), facts.region)
            if condition_allows(
                grant, {"kms:EncryptionContext:aws:logs:arn": foreign}, {LOGS_CONTEXT_KEY}
            ):
                yield (
                    f"key {key.name!r} lets CloudWatch Logs use it for any log group: scope the "
                    f"grant with kms:EncryptionContext:aws:logs:arn to the stack's log groups "
                    f"[{row.id}: {row.source}]",
                    key.urn,
                )
    for group in (r for r in resources if r.type == LOG_GROUP):
        key = keys.get(group.props.get("kmsKeyId"))
        name = group.props.get("name")
        if key is None or not isinstance(name, str):
            continue
        arn = _log_group_arn(name, str(key.props.get("arn")), facts.region)
        grants = _logs_grants(key.props.get("policy"), facts.region)
        context = {"kms:EncryptionContext:aws:logs:arn": arn}
        if not any(condition_allows(g, context, {LOGS_CONTEXT_KEY}) for g in grants):
            yield (
                f"log group {name!r} is under key {key.name!r}, whose policy does not let "
                f"logs.{facts.region}.amazonaws.com use it for {arn}: creating the group "
                f"fails [{row.id}: {row.source}]",
                group.urn,
            )


RULES = [
    Rule(
        "stack-key-encryption",
        "Log groups, secrets, topics, repositories, EKS secrets and volumes are encrypted with the stack's KMS key (or a documented exception).",
        "high",
        stack_key_encryption,
        scope="stack",
    ),
    Rule(
        "kms-log-group-grant",
        "A key that encrypts log groups lets CloudWatch Logs use it for those groups only.",
        "high",
        log_group_key_grant,
        scope="stack",
    ),
]
