"""IAM rules: no admin-level AWS managed policy anywhere, no service-wide wildcard grants.

They hold for whatever code path declares the policy: inline role, user and group policies,
managed policies, attachments, and resource policies on buckets, keys, topics and queues.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from policies.rules import Rule
from policies.rules.conditions import (
    KEY_POLICY_TYPES,
    actions,
    policy_documents,
    statements,
)
from policies.rules.props import as_dict, as_list, known

# AWS managed policies that grant administrator-level or privilege-escalation power: the
# "common permission" and job-function policies that reach across services or into IAM
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_job-functions.html) and the
# IAM/Organizations full-access policies (a principal with them can grant itself anything).
ADMIN_MANAGED_POLICIES = [
    "AdministratorAccess",
    "PowerUserAccess",
    "IAMFullAccess",
    "job-function/SystemAdministrator",
    "job-function/NetworkAdministrator",
    "job-function/DatabaseAdministrator",
    "job-function/DataScientist",
    "AWSOrganizationsFullAccess",
    "AdministratorAccess-Amplify",
    "AdministratorAccess-AWSElasticBeanstalk",
]
_ATTACHMENTS = {
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "policyArn",
    "aws:iam/userPolicyAttachment:UserPolicyAttachment": "policyArn",
    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment": "policyArn",
    "aws:iam/policyAttachment:PolicyAttachment": "policyArn",
    "aws:iam/role:Role": "managedPolicyArns",
    "aws:iam/rolePolicyAttachmentsExclusive:RolePolicyAttachmentsExclusive": "policyArns",
    "aws:iam/userPolicyAttachmentsExclusive:UserPolicyAttachmentsExclusive": "policyArns",
    "aws:iam/groupPolicyAttachmentsExclusive:GroupPolicyAttachmentsExclusive": "policyArns",
}


def _aws_managed_name(arn: str) -> str | None:
    """`AdministratorAccess` for `arn:aws:iam::aws:policy/AdministratorAccess`."""
    marker = ":iam::aws:policy/"
    return arn.split(marker, 1)[1] if marker in arn else None


def no_admin_managed_policy(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    key = _ATTACHMENTS.get(resource_type)
    if key is None:
        return
    forbidden = set(config.get("forbiddenPolicies", ADMIN_MANAGED_POLICIES))
    for arn in as_list(props.get(key)):
        name = _aws_managed_name(arn) if isinstance(arn, str) and known(arn) else None
        if name in forbidden:
            yield (
                f"{key} attaches the AWS managed policy {name!r}, which grants admin-level "
                "access; write a policy with the actions and resources this principal needs"
            )


def _service_wide(action: str) -> bool:
    """`*` or `<service>:*`: every action of every service, or of one service."""
    return action == "*" or (action.endswith(":*") and action.count(":") == 1)


def _key_admin_statement(statement: Mapping[str, Any]) -> bool:
    """The default key policy's statement: the account root gets `kms:*` so IAM policies can
    manage the key (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html);
    without it nobody could administer the key."""
    principal = as_dict(statement.get("Principal")).get("AWS")
    roots = [p for p in as_list(principal) if isinstance(p, str) and p.endswith(":root")]
    return bool(roots) and len(roots) == len(as_list(principal)) and actions(statement) == ["kms:*"]


def no_service_wildcard(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    key_policy = resource_type in KEY_POLICY_TYPES
    for where, document in policy_documents(resource_type, props):
        for i, statement in enumerate(statements(document)):
            if statement.get("Effect") != "Allow":
                continue
            sid = statement.get("Sid") or f"#{i}"
            wide = [a for a in actions(statement) if _service_wide(a)]
            if wide and not (key_policy and _key_admin_statement(statement)):
                yield (
                    f"{where} statement {sid} allows {wide}: every action of a service; list "
                    "the actions the principal uses"
                )
            negated = [k for k in ("NotAction", "NotResource") if k in statement]
            # Key policies may use NotAction/NotResource in Allow (AWS's own key policy
            # templates do); elsewhere an Allow with them grants everything not listed.
            if negated and not key_policy:
                yield (
                    f"{where} statement {sid} allows with {' and '.join(negated)}: that grants "
                    "everything not listed; name what is allowed with Action and Resource"
                )


RULES = [
    Rule(
        "iam-no-admin-managed-policy",
        "No admin-level AWS managed policy is attached to any role, user or group.",
        "critical",
        no_admin_managed_policy,
        config_schema={
            "forbiddenPolicies": {
                "type": "array",
                "items": {"type": "string"},
                "default": ADMIN_MANAGED_POLICIES,
                "description": "AWS managed policy names (after arn:aws:iam::aws:policy/).",
            }
        },
    ),
    Rule(
        "iam-no-service-wildcard",
        "No policy allows `*` or `<service>:*`, or allows with NotAction/NotResource (key policies excepted).",
        "high",
        no_service_wildcard,
    ),
]
