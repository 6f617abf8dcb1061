"""IAM for the EKS cluster: trust policies, Pod Identity roles, policies scoped per add-on."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws


def managed_policy(partition: str, name: str) -> str:
    return f"arn:{partition}:iam::aws:policy/{name}"


def service_trust(service: str, *, tag_session: bool = False) -> str:
    actions = ["sts:AssumeRole", "sts:TagSession"] if tag_session else ["sts:AssumeRole"]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": actions}
            ],
        }
    )


def pod_identity_role(
    name: str,
    *,
    description: str,
    policy: pulumi.Input[str] | None = None,
    managed_policy_arns: Sequence[str] = (),
    parent: pulumi.Resource,
) -> aws.iam.Role:
    """An IAM role that EKS Pod Identity hands to one service account (trust: pods.eks)."""
    role = aws.iam.Role(
        name,
        description=description,
        # Pod Identity tags the session with cluster, namespace and service account.
        assume_role_policy=service_trust("pods.eks.amazonaws.com", tag_session=True),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    child = pulumi.ResourceOptions(parent=role)
    if policy is not None:
        aws.iam.RolePolicy(name, role=role.id, policy=policy, opts=child)
    for arn in managed_policy_arns:
        aws.iam.RolePolicyAttachment(
            f"{name}-{arn.rsplit('/', 1)[-1]}", role=role.name, policy_arn=arn, opts=child
        )
    return role


def s3_csi_policy(bucket_arn: str, kms_key_arn: str) -> str:
    """Mountpoint for S3 reads the datasets bucket, nothing else, and writes nothing."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ListDatasets",
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket"],
                    "Resource": [bucket_arn],
                },
                {
                    "Sid": "ReadDatasets",
                    "Effect": "Allow",
                    "Action": ["s3:GetObject"],
                    "Resource": [f"{bucket_arn}/*"],
                },
                {
                    "Sid": "DecryptDatasets",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt"],
                    "Resource": [kms_key_arn],
                },
            ],
        }
    )


def ebs_csi_key_policy(kms_key_arn: str) -> str:
    """Lets the EBS CSI driver create volumes encrypted with the stack key."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "UseStackKeyForVolumes",
                    "Effect": "Allow",
                    "Action": [
                        "kms:Encrypt",
                        "kms:Decrypt",
                        "kms:ReEncrypt*",
                        "kms:GenerateDataKey*",
                        "kms:DescribeKey",
                    ],
                    "Resource": [kms_key_arn],
                },
                {
                    "Sid": "GrantStackKeyToEbs",
                    "Effect": "Allow",
                    "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
                    "Resource": [kms_key_arn],
                    "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
                },
            ],
        }
    )


def cluster_key_policy(kms_key_arn: str) -> str:
    """What the control plane needs on the stack key for envelope encryption of secrets."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "EncryptSecrets",
                    "Effect": "Allow",
                    "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"],
                    "Resource": [kms_key_arn],
                }
            ],
        }
    )
