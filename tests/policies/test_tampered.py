"""Rules the stack schema cannot break (the components hard-wire the secure choice) are run on
the real program's plan with one resource weakened, to prove they match what the program
actually declares: same type tokens, same property paths."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable

import pytest

from policies.offline import check_plan


def _weaken(plan, type_: str, change: Callable[[dict], None], name: str | None = None):
    """A copy of `plan` in which `change` has edited the inputs and outputs of the first
    resource of `type_` by name (or the one named `name`)."""
    plan = copy.deepcopy(plan)
    # Without a name, the first by name: the same resource on every run.
    target = min(
        (r for r in plan.resources if r.type == type_ and (name is None or r.name == name)),
        key=lambda r: r.name,
    )
    change(target.inputs)
    change(target.outputs)
    return plan, target.name


def _messages(plan, policy: str) -> list[str]:
    return [f"{v.resource}: {v.message}" for v in check_plan(plan) if v.policy == policy]


def _admin(props):
    doc = json.loads(props["policy"])
    doc["Statement"].append({"Sid": "Oops", "Effect": "Allow", "Action": "*", "Resource": "*"})
    props["policy"] = json.dumps(doc)


def _aes256(props):
    props["rules"] = [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]


def _tls_allowed(props):
    props["policy"] = json.dumps({"Version": "2012-10-17", "Statement": []})


WEAKENINGS = [
    (
        "s3-bucket-kms-encryption",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        _aes256,
        "mlplatform-dev-datasets",  # the access-log bucket must use SSE-S3 (AES256)
    ),
    (
        "s3-public-access-block",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        lambda p: p.update(blockPublicPolicy=False),
    ),
    ("s3-tls-only", "aws:s3/bucketPolicy:BucketPolicy", _tls_allowed),
    (
        "s3-versioning",
        "aws:s3/bucketVersioning:BucketVersioning",
        lambda p: p.update(versioningConfiguration={"status": "Suspended"}),
    ),
    ("iam-no-admin-statement", "aws:iam/rolePolicy:RolePolicy", _admin),
    (
        "eks-secrets-encryption",
        "aws:eks/cluster:Cluster",
        lambda p: p.pop("encryptionConfig", None),
    ),
    (
        "eks-control-plane-logging",
        "aws:eks/cluster:Cluster",
        lambda p: p.update(enabledClusterLogTypes=["api"]),
    ),
    (
        "node-imdsv2",
        "aws:ec2/launchTemplate:LaunchTemplate",
        lambda p: p["metadataOptions"].update(httpTokens="optional"),
    ),
    (
        "node-encrypted-volumes",
        "aws:ec2/launchTemplate:LaunchTemplate",
        lambda p: p["blockDeviceMappings"][0]["ebs"].update(encrypted="false"),
    ),
    (
        "ecr-immutable-tags",
        "aws:ecr/repository:Repository",
        lambda p: p.update(imageTagMutability="MUTABLE"),
    ),
    (
        "ecr-scan-on-push",
        "aws:ecr/repository:Repository",
        lambda p: p.update(imageScanningConfiguration={"scanOnPush": False}),
    ),
    (
        "images-pinned",
        "aws:sagemaker/model:Model",
        lambda p: p["primaryContainer"].update(
            image="123456789012.dkr.ecr.us-east-1.amazonaws.com/mlplatform-dev/serving:latest"
        ),
    ),
    ("required-tags", "aws:ec2/vpc:Vpc", lambda p: p["tags"].pop("cost-center")),
]


@pytest.mark.parametrize("weakening", WEAKENINGS, ids=[w[0] for w in WEAKENINGS])
def test_weakening_a_resource_of_the_dev_program_is_caught(plan_of, weakening):
    policy, type_, change, *named = weakening
    plan, name = _weaken(plan_of("dev"), type_, change, *named)
    found = _messages(plan, policy)
    assert found, f"{policy} did not catch the weakened {type_} {name}"
    assert any(name in m or "bucket" in m for m in found)


def test_a_foreign_kms_key_on_an_ebs_backed_endpoint_is_caught(plan_of):
    def foreign(props):
        props["productionVariants"][0]["instanceType"] = "ml.m5.xlarge"
        props["kmsKeyArn"] = "arn:aws:kms:us-east-1:999999999999:key/not-ours"

    plan, name = _weaken(
        plan_of("prod"), "aws:sagemaker/endpointConfiguration:EndpointConfiguration", foreign
    )
    [message] = [m for m in _messages(plan, "sagemaker-stack-key") if "endpoint configuration" in m]
    assert name in message and "kmsKeyArn" in message


@pytest.mark.parametrize(
    "type_",
    ["kubernetes:apps/v1:Deployment", "kubernetes:trainer.kubeflow.org/v1alpha1:TrainingRuntime"],
)
def test_an_unpinned_image_in_the_staging_kubernetes_workloads_is_caught(plan_of, type_):
    def unpin(props):
        text = json.dumps(props)
        props.clear()
        props.update(
            json.loads(re.sub(r'"image": "([^"@]+?)(:[^"/]+)?"', r'"image": "\1:latest"', text))
        )

    plan, name = _weaken(plan_of("staging"), type_, unpin)
    found = _messages(plan, "images-pinned")
    assert any(name in m and ":latest" in m for m in found), found
