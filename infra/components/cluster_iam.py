"""IAM for the EKS cluster: trust policies, Pod Identity roles, policies scoped per add-on."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import restrictions

POD_IDENTITY = "pods.eks.amazonaws.com"


def managed_policy(partition: str, name: str) -> str:
    return f"arn:{partition}:iam::aws:policy/{name}"


def service_trust(
    service: str, *, tag_session: bool = False, condition: Mapping[str, Any] | None = None
) -> str:
    """A trust policy for one AWS service principal, with an optional condition block.

    EKS (cluster role) and EC2 (node role) get none: their pages document no source keys, and
    a condition on a key a service does not send leaves the role unassumable
    (infra/restrictions.json, `serviceTrust`)."""
    actions = ["sts:AssumeRole", "sts:TagSession"] if tag_session else ["sts:AssumeRole"]
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": actions,
    }
    if condition:
        statement["Condition"] = dict(condition)
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def flow_logs_trust(partition: str, region: str, account: str) -> str:
    """VPC Flow Logs may assume the role only for this account's flow logs (confused deputy)."""
    service = "vpc-flow-logs.amazonaws.com"
    return service_trust(
        service,
        condition={
            "StringEquals": {"aws:SourceAccount": account},
            "ArnLike": {
                "aws:SourceArn": restrictions.source_arn(
                    service, "flow-log", partition=partition, region=region, account=account
                )
            },
        },
    )


@dataclass(frozen=True)
class PodIdentityScope:
    """The one service account (in one namespace of one cluster) a Pod Identity role is for;
    each part may be an output of another resource (a namespace, the cluster)."""

    cluster_arn: pulumi.Input[str]
    namespace: pulumi.Input[str]
    service_account: pulumi.Input[str]


def pod_identity_trust(cluster_arn: str, namespace: str, service_account: str) -> str:
    """Trust pods.eks, scoped by the session tags EKS sets on every Pod Identity session, so
    no other cluster, namespace or service account can be handed this role. No aws:SourceArn:
    it is undocumented for Pod Identity and broke a credential path in a reported case."""
    return service_trust(
        POD_IDENTITY,
        tag_session=True,
        condition={
            "StringEquals": {
                "aws:RequestTag/eks-cluster-arn": cluster_arn,
                "aws:RequestTag/kubernetes-namespace": namespace,
                "aws:RequestTag/kubernetes-service-account": service_account,
            }
        },
    )


def pod_identity_role(
    name: str,
    *,
    description: str,
    policy: pulumi.Input[str] | None = None,
    managed_policy_arns: Sequence[str] = (),
    parent: pulumi.Resource,
    scope: PodIdentityScope | None = None,
) -> aws.iam.Role:
    """An IAM role that EKS Pod Identity hands to one service account (trust: pods.eks).

    With a `scope`, only that service account can receive it; without one the trust is
    unscoped, which the iam-pod-identity-trust policy reports (callers should pass a scope)."""
    trust: pulumi.Input[str] = service_trust(POD_IDENTITY, tag_session=True)
    if scope is not None:
        trust = pulumi.Output.all(scope.cluster_arn, scope.namespace, scope.service_account).apply(
            lambda v: pod_identity_trust(v[0], v[1], v[2])
        )
    role = aws.iam.Role(
        name,
        description=description,
        assume_role_policy=trust,
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
