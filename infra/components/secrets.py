"""Stack secrets (e.g. a Hugging Face token) in Secrets Manager, under the stack's key."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.config import PROJECT
from infra.context import StackContext


@dataclass(frozen=True)
class StackSecretsArgs:
    """Secret values by name (already decrypted by the engine) and the stack whose key
    encrypts them; names are `mlplatform/<stack>/<name>`."""

    values: dict[str, str]
    context: StackContext


class StackSecrets(pulumi.ComponentResource):
    """One Secrets Manager secret per named value; values stay secret in Pulumi state."""

    arns: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: StackSecretsArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("mlplatform:secrets:StackSecrets", name, None, opts)
        self.arns = {}
        for key, value in sorted(args.values.items()):
            secret = aws.secretsmanager.Secret(
                f"{name}-{key}",
                name=f"{PROJECT}/{args.context.stack}/{key}",
                kms_key_id=args.context.kms_key_arn,
                recovery_window_in_days=7,
                opts=pulumi.ResourceOptions(parent=self),
            )
            aws.secretsmanager.SecretVersion(
                f"{name}-{key}",
                secret_id=secret.id,
                secret_string=pulumi.Output.secret(value),
                opts=pulumi.ResourceOptions(parent=secret),
            )
            self.arns[key] = secret.arn
        self.register_outputs({"secretArns": self.arns})
