"""IAM rules: admin-level managed policies and service-wide wildcards, wherever declared."""

from __future__ import annotations

import json

import pytest

ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"


@pytest.mark.parametrize(
    ("type_", "props"),
    [
        ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", {"policyArn": ADMIN}),
        (
            "aws:iam/policyAttachment:PolicyAttachment",
            {"policyArn": "arn:aws:iam::aws:policy/PowerUserAccess"},
        ),
        (
            "aws:iam/userPolicyAttachment:UserPolicyAttachment",
            {"policyArn": "arn:aws:iam::aws:policy/IAMFullAccess"},
        ),
        ("aws:iam/groupPolicyAttachment:GroupPolicyAttachment", {"policyArn": ADMIN}),
        (
            "aws:iam/role:Role",
            {"managedPolicyArns": ["arn:aws-cn:iam::aws:policy/job-function/SystemAdministrator"]},
        ),
        (
            "aws:iam/rolePolicyAttachmentsExclusive:RolePolicyAttachmentsExclusive",
            {"policyArns": [ADMIN]},
        ),
    ],
    ids=["role", "policy-attachment", "user", "group", "role-managed-arns", "exclusive"],
)
def test_admin_level_managed_policies_are_caught_wherever_attached(check, type_, props):
    [message] = check("iam-no-admin-managed-policy", type_, props)
    assert "admin-level" in message


def test_scoped_managed_policies_and_customer_policies_pass(check):
    attach = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
    assert (
        check(
            "iam-no-admin-managed-policy",
            attach,
            {"policyArn": "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy"},
        )
        == []
    )
    # A customer policy that happens to share the name is not AWS's AdministratorAccess.
    assert (
        check(
            "iam-no-admin-managed-policy",
            attach,
            {"policyArn": "arn:aws:iam::123456789012:policy/AdministratorAccess"},
        )
        == []
    )
    assert check("iam-no-admin-managed-policy", attach, {"policyArn": "[computed]"}) == []


def _doc(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.mark.parametrize(
    ("type_", "key"),
    [
        ("aws:iam/rolePolicy:RolePolicy", "policy"),
        ("aws:iam/policy:Policy", "policy"),
        ("aws:s3/bucketPolicy:BucketPolicy", "policy"),
        ("aws:kms/key:Key", "policy"),
    ],
)
def test_service_wide_wildcards_are_caught_in_every_policy_kind(check, type_, key):
    grant = {
        "Sid": "Wide",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::1:role/r"},
        "Action": ["s3:GetObject", "s3:*"],
        "Resource": "*",
    }
    [message] = check("iam-no-service-wildcard", type_, {key: _doc(grant)})
    assert "Wide" in message and "s3:*" in message


def test_inline_role_policies_are_read_too(check):
    props = {
        "inlinePolicies": [
            {"name": "x", "policy": _doc({"Effect": "Allow", "Action": "iam:*", "Resource": "*"})}
        ]
    }
    [message] = check("iam-no-service-wildcard", "aws:iam/role:Role", props)
    assert "inlinePolicies[0]" in message


def test_not_action_allows_are_caught_outside_key_policies(check):
    everything_but = {"Effect": "Allow", "NotAction": ["iam:*"], "Resource": "*"}
    assert check(
        "iam-no-service-wildcard", "aws:iam/rolePolicy:RolePolicy", {"policy": _doc(everything_but)}
    )
    assert (
        check("iam-no-service-wildcard", "aws:kms/key:Key", {"policy": _doc(everything_but)}) == []
    )


def test_the_default_key_policy_statement_for_the_account_root_passes(check):
    root = {
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    assert check("iam-no-service-wildcard", "aws:kms/key:Key", {"policy": _doc(root)}) == []
    # The same grant to a role is a service-wide wildcard like any other.
    role = {**root, "Principal": {"AWS": "arn:aws:iam::123456789012:role/ops"}}
    assert check("iam-no-service-wildcard", "aws:kms/key:Key", {"policy": _doc(role)})


def test_prefix_wildcards_and_denies_pass(check):
    narrow = {"Effect": "Allow", "Action": ["kms:GenerateDataKey*", "s3:Get*"], "Resource": "*"}
    deny = {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*"}
    assert (
        check(
            "iam-no-service-wildcard",
            "aws:s3/bucketPolicy:BucketPolicy",
            {"policy": _doc(narrow, deny)},
        )
        == []
    )
