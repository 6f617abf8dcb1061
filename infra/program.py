"""The Pulumi program: validated config in, components wired in DESIGN.md's order, outputs out."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.components.iam import ExecutionRoleArgs, SageMakerExecutionRole
from infra.components.network import Network, NetworkArgs
from infra.components.registry import Registry, RegistryArgs
from infra.components.secrets import StackSecrets, StackSecretsArgs
from infra.components.storage import Storage, StorageArgs
from infra.config import PROJECT, StackConfig
from infra.stackfile import load_for_program
from infra.tagging import register_stack_tags


def build(config: StackConfig, stack: str) -> dict[str, object]:
    """Declare every resource of a stack; returns the stack outputs."""
    register_stack_tags(config.resource_tags(stack))
    name = f"{PROJECT}-{stack}"
    identity = aws.get_caller_identity()
    partition = aws.get_partition().partition

    network = Network(
        name,
        NetworkArgs(
            cidr=config.network.cidr,
            az_count=config.network.az_count,
            nat_per_zone=config.network.nat_gateways == "perZone",
            private_endpoints=config.network.private_endpoints,
            region=config.region,
        ),
    )
    storage = Storage(
        name,
        StorageArgs(
            account_id=identity.account_id,
            partition=partition,
            checkpoint_expiration_days=config.storage.checkpoint_expiration_days,
            noncurrent_version_expiration_days=config.storage.noncurrent_version_expiration_days,
            abort_incomplete_multipart_days=config.storage.abort_incomplete_multipart_days,
            protect=config.storage.protect,
            force_destroy=config.storage.force_destroy,
            kms_deletion_window_days=config.storage.kms_deletion_window_days,
        ),
    )
    registry = Registry(
        name,
        RegistryArgs(
            kms_key_arn=storage.kms_key_arn,
            keep_tagged_images=config.registry.keep_tagged_images,
            untagged_expiration_days=config.registry.untagged_expiration_days,
            force_delete=config.storage.force_destroy,
        ),
    )
    secrets = StackSecrets(
        name,
        StackSecretsArgs(
            values=config.secrets, kms_key_arn=storage.kms_key_arn, prefix=f"{PROJECT}/{stack}"
        ),
    )
    role = SageMakerExecutionRole(
        f"{name}-sagemaker",
        ExecutionRoleArgs(
            account_id=identity.account_id,
            partition=partition,
            region=config.region,
            bucket_arns=storage.bucket_arns,
            kms_key_arn=storage.kms_key_arn,
            repository_arns=registry.repository_arns,
            secret_arns=list(secrets.arns.values()),
        ),
    )

    return {
        "vpcId": network.vpc_id,
        "privateSubnetIds": network.private_subnet_ids,
        "kmsKeyArn": storage.kms_key_arn,
        "bucketNames": storage.bucket_names,
        "repositoryUrls": registry.repository_urls,
        "sagemakerExecutionRoleArn": role.role_arn,
    }


def main() -> None:
    """Entry point used by `pulumi up` and by the offline plan."""
    stack = pulumi.get_stack()
    config = load_for_program(stack)
    for key, value in build(config, stack).items():
        pulumi.export(key, value)
