"""Registry and image rules: immutable, scanned repositories; images pinned by digest or tag."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from policies.rules import Rule
from policies.rules.props import as_dict, as_list, container_images, known

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


def glob_can_match(pattern: str, alphabets: list[set[str]]) -> bool:
    """Whether an ECR wildcard filter (`*` matches any run of characters, everything else
    itself) matches some tag whose i-th character is drawn from `alphabets[i]`.

    fnmatch answers this for one tag; a filter must not match *any* deploy tag, so this walks
    the filter against the tag's shape instead (dynamic programming over both positions)."""
    reachable = {0}  # positions in the tag reached after consuming the filter so far
    for char in pattern:
        if char == "*":
            reachable = set(range(min(reachable), len(alphabets) + 1)) if reachable else set()
        else:
            reachable = {i + 1 for i in reachable if i < len(alphabets) and char in alphabets[i]}
    return len(alphabets) in reachable


def deploy_tag_shape(config: Mapping[str, Any]) -> list[set[str]]:
    """Per character, what a deploy tag may hold: the prefix, then the content hash."""
    prefix = config.get("deployTagPrefix", "ctx-")
    hash_chars = set(config.get("deployTagAlphabet", "0123456789abcdef"))
    return [{c} for c in prefix] + [hash_chars] * int(config.get("deployTagHashLength", 16))


def exclusions_spare_deploy_tags(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterable[str]:
    if resource_type != ECR:
        return
    shape = deploy_tag_shape(config)
    example = config.get("deployTagPrefix", "ctx-") + "0" * int(
        config.get("deployTagHashLength", 16)
    )
    for f in as_list(props.get("imageTagMutabilityExclusionFilters")):
        pattern = as_dict(f).get("filter")
        if isinstance(pattern, str) and known(pattern) and glob_can_match(pattern, shape):
            yield (
                f"tag-mutability exclusion filter {pattern!r} matches the content tags "
                f"deployments use (e.g. {example!r}): such a tag could be overwritten under a "
                "running endpoint; narrow the filter (e.g. 'buildcache*')"
            )


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
        "ecr-exclusions-spare-deploy-tags",
        "Tag-mutability exclusion filters can never match the content tags deployments use.",
        "high",
        exclusions_spare_deploy_tags,
        config_schema={
            "deployTagPrefix": {"type": "string", "default": "ctx-"},
            "deployTagAlphabet": {"type": "string", "default": "0123456789abcdef"},
            "deployTagHashLength": {"type": "integer", "default": 16},
        },
    ),
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
