"""Container registry: one ECR repository per image the stack builds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import config
from infra.context import StackContext

# Build-cache manifests are rewritten on every build, so only they may be overwritten.
CACHE_TAG_PATTERN = "buildcache*"


@dataclass(frozen=True)
class RegistryArgs:
    """The `mlplatform:registry` section, the stack, and which repositories to create."""

    settings: config.Registry
    context: StackContext
    images: Sequence[str]  # repository names under `<stack prefix>/`, e.g. "digits/training"
    force_delete: bool = False


def lifecycle_policy(keep_tagged: int, untagged_days: int) -> str:
    """Expire untagged layers after some days and keep only the newest tagged images."""
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": "expire untagged images",
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": untagged_days,
                    },
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": 2,
                    "description": f"keep the newest {keep_tagged} images",
                    "selection": {
                        "tagStatus": "any",
                        "countType": "imageCountMoreThan",
                        "countNumber": keep_tagged,
                    },
                    "action": {"type": "expire"},
                },
            ]
        }
    )


class Registry(pulumi.ComponentResource):
    """ECR repositories with immutable tags, scan on push, KMS encryption and a lifecycle."""

    repositories: dict[str, aws.ecr.Repository]

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:registry:Registry", name, None, opts)
        self.repositories = {}
        settings = args.settings
        for image in args.images:
            repo = aws.ecr.Repository(
                f"{name}-{image.replace('/', '-')}",
                name=f"{name}/{image}",
                image_tag_mutability="IMMUTABLE_WITH_EXCLUSION",
                image_tag_mutability_exclusion_filters=[
                    {"filter": CACHE_TAG_PATTERN, "filter_type": "WILDCARD"}
                ],
                image_scanning_configuration={"scan_on_push": True},
                encryption_configurations=[
                    {"encryption_type": "KMS", "kms_key": args.context.kms_key_arn}
                ],
                force_delete=args.force_delete,
                opts=pulumi.ResourceOptions(parent=self),
            )
            aws.ecr.LifecyclePolicy(
                f"{name}-{image.replace('/', '-')}",
                repository=repo.name,
                policy=lifecycle_policy(
                    settings.keep_tagged_images, settings.untagged_expiration_days
                ),
                opts=pulumi.ResourceOptions(parent=repo),
            )
            self.repositories[image] = repo
        self.repository_urls = {k: r.repository_url for k, r in self.repositories.items()}
        self.repository_arns = {k: r.arn for k, r in self.repositories.items()}
        self.register_outputs({"repositoryUrls": self.repository_urls})
