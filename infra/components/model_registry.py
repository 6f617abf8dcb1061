"""A model's registry: the SageMaker model package group its gated versions go to, whichever
plane trains it. The SageMaker pipeline's Register step and the EKS plane's evaluate job
register in the same group, under the same name, with the same permissions."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws


def model_package_group(
    name: str, model_name: str, parent: pulumi.Resource
) -> aws.sagemaker.ModelPackageGroup:
    """The group `name` (the model's resource name in the stack: `<stack prefix>-<model>`),
    declared under the component that registers in it."""
    return aws.sagemaker.ModelPackageGroup(
        name,
        model_package_group_name=name,
        model_package_group_description=f"Registered versions of {model_name}",
        opts=pulumi.ResourceOptions(parent=parent),
    )


def group_arns(sagemaker_arn: str, group: str) -> list[str]:
    """The group and its versions, as IAM resources (`sagemaker_arn`: arn:…:sagemaker:<region>:
    <account>). CreateModelPackage is authorised on both; a version's ARN spells the group in
    lower case (`model-package/<group>/<version>`), as the endpoints that serve one read it."""
    return [
        f"{sagemaker_arn}:model-package-group/{group}",
        f"{sagemaker_arn}:model-package/{group.lower()}/*",
    ]


def register_statement(sagemaker_arn: str, group: str, actions: list[str]) -> dict[str, Any]:
    """Register (and whatever else `actions` names) in the model's own group, nothing else."""
    return {
        "Sid": "RegisterInOwnGroup",
        "Effect": "Allow",
        "Action": actions,
        "Resource": group_arns(sagemaker_arn, group),
    }
