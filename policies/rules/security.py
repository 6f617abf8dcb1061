"""Security rules: least privilege, hardened EKS and nodes, SageMaker on the stack key, tags."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from infra import restrictions
from policies.rules import Rule, StackFacts, StackResource
from policies.rules.props import (
    CLUSTER,
    ENDPOINT_CONFIG,
    INSTANCE,
    LAUNCH_TEMPLATE,
    NODE_GROUP,
    PIPELINE,
    SAGEMAKER_MODEL,
    as_dict,
    as_list,
    json_doc,
    known,
    local_storage,
    training_steps,
    truthy,
    variants,
)

# --- IAM ----------------------------------------------------------------------------------------

_POLICY_PROPS = {
    "aws:iam/policy:Policy": ("policy",),
    "aws:iam/rolePolicy:RolePolicy": ("policy",),
    "aws:iam/userPolicy:UserPolicy": ("policy",),
    "aws:iam/groupPolicy:GroupPolicy": ("policy",),
    "aws:iam/role:Role": ("inlinePolicies",),
}


def _is_star(value: Any) -> bool:
    return any(v in ("*", "*:*") for v in as_list(value))


def iam_no_admin(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    for key in _POLICY_PROPS.get(resource_type, ()):
        documents = [props.get(key)]
        if key == "inlinePolicies":
            documents = [as_dict(p).get("policy") for p in as_list(props.get(key))]
        for document in documents:
            doc = json_doc(document)
            if not isinstance(doc, Mapping):
                continue
            for statement in as_list(doc.get("Statement")):
                statement = as_dict(statement)
                if (
                    statement.get("Effect") == "Allow"
                    and _is_star(statement.get("Action"))
                    and _is_star(statement.get("Resource"))
                ):
                    sid = statement.get("Sid") or "(no Sid)"
                    yield f"statement {sid} allows every action on every resource (Action '*' on Resource '*'); list the actions and resources it needs"


# --- EKS and nodes ------------------------------------------------------------------------------


def eks_secrets_encryption(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    if resource_type != CLUSTER:
        return
    configs = [as_dict(c) for c in as_list(props.get("encryptionConfig"))]
    if not any(
        "secrets" in as_list(c.get("resources")) and as_dict(c.get("provider")).get("keyArn")
        for c in configs
    ):
        yield "Kubernetes secrets are not envelope-encrypted: set encryptionConfig {resources: [secrets], provider.keyArn: <stack KMS key>}"


def eks_logging(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    if resource_type != CLUSTER:
        return
    enabled = set(as_list(props.get("enabledClusterLogTypes")))
    missing = [t for t in config.get("requiredLogTypes", []) if t not in enabled]
    if missing:
        yield f"control-plane log types {missing} are not enabled (enabledClusterLogTypes)"


def eks_private_endpoint(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    if resource_type != CLUSTER:
        return
    vpc = as_dict(props.get("vpcConfig"))
    # AWS makes the endpoint public unless told otherwise.
    public = vpc.get("endpointPublicAccess", True)
    if not known(public) or public is False:
        return
    cidrs = as_list(vpc.get("publicAccessCidrs")) or ["0.0.0.0/0"]
    if config.get("allowPublicWithAllowList") and "0.0.0.0/0" not in cidrs:
        return
    yield f"the Kubernetes API endpoint is public (vpcConfig.endpointPublicAccess, open to {cidrs}); make it private (endpointPublicAccess: false, endpointPrivateAccess: true)"


def node_imdsv2(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    if resource_type in (LAUNCH_TEMPLATE, INSTANCE):
        tokens = as_dict(props.get("metadataOptions")).get("httpTokens")
        if tokens != "required":
            yield f"instance metadata allows IMDSv1 (metadataOptions.httpTokens is {tokens!r}, must be 'required')"
    elif resource_type == NODE_GROUP and not as_dict(props.get("launchTemplate")):
        yield "node group has no launch template, so IMDSv2 and volume encryption are not enforced on its nodes"


def node_encrypted_volumes(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    if resource_type == LAUNCH_TEMPLATE:
        volumes = [
            as_dict(as_dict(m).get("ebs")) for m in as_list(props.get("blockDeviceMappings"))
        ]
        if not volumes:
            yield "launch template declares no block devices, so the root volume's encryption is left to the AMI; add blockDeviceMappings with ebs.encrypted: 'true'"
        for device, ebs in zip(as_list(props.get("blockDeviceMappings")), volumes, strict=True):
            if ebs and not truthy(ebs.get("encrypted")):
                yield f"volume {as_dict(device).get('deviceName')!r} is not encrypted (ebs.encrypted must be 'true')"
    elif resource_type == INSTANCE and not truthy(
        as_dict(props.get("rootBlockDevice")).get("encrypted")
    ):
        yield "instance root volume is not encrypted (rootBlockDevice.encrypted)"


# --- SageMaker encryption with the stack key ----------------------------------------------------


# Why serverless variants are not asked for the key: a documented exception, not a skip.
SERVERLESS_NO_VOLUME = restrictions.table()["serverless-no-volume-key"]


def sagemaker_stack_key(
    resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
) -> Iterable[tuple[str, str | None]]:
    keys = {
        r.props.get(k)
        for r in resources
        if r.type == "aws:kms/key:Key"
        for k in ("arn", "keyId", "id")
    } - {None}
    for r in resources:
        if r.type == ENDPOINT_CONFIG:
            # Serverless variants have no ML storage volume (SERVERLESS_NO_VOLUME) and
            # instance-store volumes are encrypted by the instance's hardware: only EBS-backed
            # variants take the key.
            types = [
                v["instanceType"]
                for v in variants(r.props)
                if isinstance(v.get("instanceType"), str)
            ]
            ebs_backed = [
                v
                for v in variants(r.props)
                if not as_dict(v.get("serverlessConfig"))
                and isinstance(v.get("instanceType"), str)
                and not local_storage(v["instanceType"])
            ]
            if ebs_backed and r.props.get("kmsKeyArn") not in keys:
                yield (
                    f"endpoint configuration {r.name!r} does not encrypt the volumes of "
                    f"{[v['instanceType'] for v in ebs_backed]} with the stack's KMS key (kmsKeyArn)",
                    r.urn,
                )
            for problem in restrictions.check_endpoint_key(
                instance_types=types, kms_key=r.props.get("kmsKeyArn")
            ):
                yield f"endpoint configuration {r.name!r}: {problem}", r.urn
            capture = as_dict(r.props.get("dataCaptureConfig"))
            if capture and capture.get("kmsKeyId") not in keys:
                yield (
                    f"endpoint configuration {r.name!r} captures data without the stack's KMS key "
                    "(dataCaptureConfig.kmsKeyId)",
                    r.urn,
                )
        elif r.type == PIPELINE:
            for step in training_steps(r.props.get("pipelineDefinition")):
                where = f"pipeline {r.name!r} step {step.name!r}"
                if step.output_kms_key not in keys:
                    yield (
                        f"{where} does not encrypt its output with the stack's KMS key (OutputDataConfig.KmsKeyId)",
                        r.urn,
                    )
                local = step.instance_type is not None and local_storage(step.instance_type)
                if local:
                    for problem in restrictions.check_training_job(
                        spot=False,
                        max_runtime_s=None,
                        instance_type=step.instance_type,
                        volume_kms_key=step.volume_kms_key,
                    ):
                        yield f"{where}: {problem}", r.urn
                elif step.volume_kms_key not in keys:
                    yield (
                        f"{where} does not encrypt its volumes with the stack's KMS key (ResourceConfig.VolumeKmsKeyId)",
                        r.urn,
                    )


# --- Tags ---------------------------------------------------------------------------------------

# Types that cost money or hold data: they must carry tags even if the program forgot `tags`.
BILLABLE = {
    "aws:s3/bucket:Bucket",
    CLUSTER,
    NODE_GROUP,
    LAUNCH_TEMPLATE,
    INSTANCE,
    "aws:ecr/repository:Repository",
    ENDPOINT_CONFIG,
    PIPELINE,
    "aws:kms/key:Key",
    "aws:ec2/natGateway:NatGateway",
    "aws:ec2/vpc:Vpc",
    "aws:ec2/eip:Eip",
    "aws:ec2/vpcEndpoint:VpcEndpoint",
    "aws:sagemaker/endpoint:Endpoint",
    SAGEMAKER_MODEL,
    "aws:secretsmanager/secret:Secret",
}


def required_tags(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    if not resource_type.startswith("aws:"):
        return
    tags = props.get("tags")
    if tags is None and resource_type not in BILLABLE:
        return
    if tags is not None and not isinstance(tags, Mapping):
        return  # computed: only known at deploy time
    missing = [key for key in config.get("requiredTags", []) if not (tags or {}).get(key)]
    if missing:
        yield f"required tags {missing} are missing"


RULES = [
    Rule(
        "iam-no-admin-statement",
        "No IAM policy allows every action on every resource.",
        "critical",
        iam_no_admin,
    ),
    Rule(
        "eks-secrets-encryption",
        "EKS envelope-encrypts Kubernetes secrets with a KMS key.",
        "high",
        eks_secrets_encryption,
    ),
    Rule(
        "eks-control-plane-logging",
        "EKS control-plane logs go to CloudWatch.",
        "medium",
        eks_logging,
        config_schema={
            "requiredLogTypes": {
                "type": "array",
                "items": {"type": "string"},
                "default": ["api", "audit", "authenticator"],
            }
        },
    ),
    Rule(
        "eks-private-endpoint",
        "The Kubernetes API endpoint is private.",
        "high",
        eks_private_endpoint,
        enforcement="advisory",
        config_schema={
            "allowPublicWithAllowList": {
                "type": "boolean",
                "default": False,
                "description": "Accept a public endpoint restricted by publicAccessCidrs (not 0.0.0.0/0).",
            }
        },
    ),
    Rule(
        "node-imdsv2",
        "Nodes require IMDSv2 (session tokens) for instance metadata.",
        "high",
        node_imdsv2,
    ),
    Rule("node-encrypted-volumes", "Node volumes are encrypted.", "high", node_encrypted_volumes),
    Rule(
        "sagemaker-stack-key",
        "SageMaker endpoints and training encrypt with the stack's KMS key.",
        "high",
        sagemaker_stack_key,
        scope="stack",
    ),
    Rule(
        "required-tags",
        "AWS resources carry the cost-allocation tags.",
        "medium",
        required_tags,
        config_schema={
            "requiredTags": {
                "type": "array",
                "items": {"type": "string"},
                "default": ["project", "environment", "owner", "cost-center"],
            }
        },
    ),
]
