"""Reading IAM policy documents: statements, principals, actions, and condition evaluation.

The trust rules ask "would AWS let this service assume the role with *this* request context?"
(a source ARN in our account, the same in another account, a Pod Identity session's tags).
That needs IAM's condition semantics for the few operators trust policies use; no maintained
Python library evaluates IAM conditions (policy_sentry and parliament parse and lint, they do
not evaluate), so the subset is written here: String/Arn Equals/Like with their Not, IfExists
and ForAnyValue forms. Keys outside the request context are treated as IAM does: absent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from policies.rules.props import as_dict, as_list, json_doc

# A role can be assumed with any of these actions on its trust.
ASSUME_ACTIONS = {"sts:assumerole", "sts:*", "*"}


def statements(document: Any) -> list[Mapping[str, Any]]:
    """The statements of a policy document (JSON string or object); [] when unknown."""
    doc = json_doc(document)
    if not isinstance(doc, Mapping):
        return []
    return [as_dict(s) for s in as_list(doc.get("Statement"))]


def actions(statement: Mapping[str, Any], key: str = "Action") -> list[str]:
    return [a for a in as_list(statement.get(key)) if isinstance(a, str)]


def service_principals(statement: Mapping[str, Any]) -> list[str]:
    principal = statement.get("Principal")
    if not isinstance(principal, Mapping):
        return []
    return [s for s in as_list(principal.get("Service")) if isinstance(s, str)]


def trust_statements(document: Any, service: str) -> list[Mapping[str, Any]]:
    """Allow statements of a trust policy that let `service` assume the role."""
    return [
        s
        for s in statements(document)
        if s.get("Effect") == "Allow"
        and service in service_principals(s)
        and any(a.lower() in ASSUME_ACTIONS for a in actions(s))
    ]


def trusted_services(document: Any) -> set[str]:
    return {
        service
        for s in statements(document)
        if s.get("Effect") == "Allow"
        for service in service_principals(s)
    }


def condition_keys(statement: Mapping[str, Any]) -> set[str]:
    """Condition keys of a statement, lower-cased (IAM keys are case-insensitive)."""
    return {
        key.lower()
        for block in as_dict(statement.get("Condition")).values()
        for key in as_dict(block)
    }


def condition_values(statement: Mapping[str, Any], key: str) -> list[tuple[str, str]]:
    """(operator, value) pairs that a statement's condition gives `key`."""
    found = []
    for operator, block in as_dict(statement.get("Condition")).items():
        for k, values in as_dict(block).items():
            if k.lower() == key.lower():
                found += [(operator, v) for v in as_list(values) if isinstance(v, str)]
    return found


def _glob(pattern: str, value: str, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


def _arn_like(pattern: str, value: str) -> bool:
    # Each of the six colon-separated parts is matched on its own (the resource keeps colons).
    parts, values = pattern.split(":", 5), value.split(":", 5)
    return len(parts) == len(values) and all(
        _glob(p, v) for p, v in zip(parts, values, strict=True)
    )


def _matches(operator: str, pattern: str, value: str) -> bool:
    if operator == "StringEquals":
        return pattern == value
    if operator == "StringEqualsIgnoreCase":
        return pattern.lower() == value.lower()
    if operator == "StringLike":
        return _glob(pattern, value)
    if operator in ("ArnEquals", "ArnLike"):
        return _arn_like(pattern, value)
    raise ValueError(operator)


_BASE_OPERATORS = ("StringEqualsIgnoreCase", "StringEquals", "StringLike", "ArnEquals", "ArnLike")


def _parse(operator: str) -> tuple[str, bool, bool] | None:
    """(base operator, negated, if-exists) for the operators evaluated here, else None."""
    name = operator.split(":", 1)[-1]  # ForAnyValue:/ForAllValues: on single-valued keys
    if_exists = name.endswith("IfExists")
    name = name.removesuffix("IfExists")
    negated = "Not" in name
    name = name.replace("Not", "")
    return (name, negated, if_exists) if name in _BASE_OPERATORS else None


def condition_allows(
    statement: Mapping[str, Any], context: Mapping[str, str], keys: set[str] | None = None
) -> bool:
    """Whether a statement's condition holds for a request `context` (key -> value). Only
    keys in `keys` (lower-case; all when None) are evaluated: the others are assumed to hold,
    so a rule about source keys is not thrown off by an unrelated condition."""
    lowered = {k.lower(): v for k, v in context.items()}
    for operator, block in as_dict(statement.get("Condition")).items():
        parsed = _parse(operator)
        for key, patterns in as_dict(block).items():
            if keys is not None and key.lower() not in keys:
                continue
            if parsed is None:
                return False  # an operator this evaluator does not know: assume it fails
            base, negated, if_exists = parsed
            value = lowered.get(key.lower())
            if value is None:
                if not (if_exists or negated):
                    return False
                continue
            hit = any(_matches(base, p, value) for p in as_list(patterns) if isinstance(p, str))
            if hit == negated:
                return False
    return True


def allows(
    document: Any, service: str, context: Mapping[str, str], keys: set[str] | None = None
) -> bool:
    """Whether a trust policy lets `service` assume the role in `context` (no Deny matching)."""
    allowed = any(condition_allows(s, context, keys) for s in trust_statements(document, service))
    denied = any(
        s.get("Effect") == "Deny"
        and service in service_principals(s)
        and condition_allows(s, context, keys)
        for s in statements(document)
    )
    return allowed and not denied


def policy_documents(resource_type: str, props: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(where, document) for every permission policy a resource carries inline."""
    if resource_type in _POLICY_PROPS:
        for key in _POLICY_PROPS[resource_type]:
            if key == "inlinePolicies":
                for i, inline in enumerate(as_list(props.get(key))):
                    yield f"inlinePolicies[{i}]", as_dict(inline).get("policy")
            elif props.get(key) is not None:
                yield key, props.get(key)


# Resource types and the inputs holding a policy document (identity or resource policy).
_POLICY_PROPS = {
    "aws:iam/policy:Policy": ("policy",),
    "aws:iam/rolePolicy:RolePolicy": ("policy",),
    "aws:iam/userPolicy:UserPolicy": ("policy",),
    "aws:iam/groupPolicy:GroupPolicy": ("policy",),
    "aws:iam/role:Role": ("inlinePolicies",),
    "aws:s3/bucketPolicy:BucketPolicy": ("policy",),
    "aws:kms/key:Key": ("policy",),
    "aws:kms/keyPolicy:KeyPolicy": ("policy",),
    "aws:ecr/repositoryPolicy:RepositoryPolicy": ("policy",),
    "aws:sns/topicPolicy:TopicPolicy": ("policy",),
    "aws:sns/topic:Topic": ("policy",),
    "aws:sqs/queuePolicy:QueuePolicy": ("policy",),
    "aws:secretsmanager/secretPolicy:SecretPolicy": ("policy",),
}
KEY_POLICY_TYPES = {"aws:kms/key:Key", "aws:kms/keyPolicy:KeyPolicy"}
