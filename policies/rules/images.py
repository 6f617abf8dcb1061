"""Registry and image rules: immutable, scanned repositories; images pinned by digest or tag."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from policies.rules import Rule
from policies.rules.props import as_dict, container_images

ECR = "aws:ecr/repository:Repository"


def ecr_immutable_tags(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    if resource_type == ECR and props.get("imageTagMutability", "MUTABLE") not in (
        "IMMUTABLE",
        "IMMUTABLE_WITH_EXCLUSION",
    ):
        yield f"repository tags are mutable (imageTagMutability {props.get('imageTagMutability', 'MUTABLE')!r}); use IMMUTABLE"


def ecr_scan_on_push(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    if resource_type == ECR and not as_dict(props.get("imageScanningConfiguration")).get(
        "scanOnPush"
    ):
        yield "images are not scanned on push (imageScanningConfiguration.scanOnPush)"


def image_tag(reference: str) -> str | None:
    """The tag of an image reference, `sha256:…` for a digest, None when there is neither."""
    if "@" in reference:
        return reference.rsplit("@", 1)[1]
    last = reference.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else None


def images_pinned(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    forbidden = set(config.get("forbiddenTags", ["latest"]))
    for reference in container_images(resource_type, props):
        tag = image_tag(reference)
        if tag is None or tag in forbidden:
            yield f"image {reference!r} is not pinned: use a digest (@sha256:…) or a content-derived tag, never {sorted(forbidden)} or no tag"


RULES = [
    Rule(
        "ecr-immutable-tags", "ECR repositories have immutable tags.", "medium", ecr_immutable_tags
    ),
    Rule("ecr-scan-on-push", "ECR repositories scan images on push.", "medium", ecr_scan_on_push),
    Rule(
        "images-pinned",
        "Images are referenced by digest or content tag, never `latest`.",
        "high",
        images_pinned,
        config_schema={
            "forbiddenTags": {"type": "array", "items": {"type": "string"}, "default": ["latest"]}
        },
    ),
]
