"""Storage billed while idle: S3 buckets (assumed sizes per environment) and ECR repositories
(sized from what they keep: one base image plus each kept build)."""

from __future__ import annotations

from mlplatform.cost.lines import Pricing, mapping
from policies.rules import StackResource
from policies.rules import props as p

IMAGE = "docker-build:index:Image"
LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
PURPOSES = {
    "datasets": "training data",
    "artifacts": "models, reports, captured requests",
    "checkpoints": "training checkpoints (they expire)",
    "access-logs": "S3 access logs of the other buckets",
}


def bucket(r: StackResource, c: Pricing) -> None:
    sizes = mapping(c.usage["bucketGb"])
    role = max((k for k in sizes if r.name.endswith(f"-{k}")), key=len, default="other")
    gb = float(sizes.get(role, 1))
    purpose = PURPOSES.get(role, "bucket")
    c.add(
        r, "S3 bucket", "storage", f"{purpose}: {gb:g} GB", gb * c.service("s3StandardPerGbMonth")
    )
    listed = ", ".join(f"{k} {v:g} GB" for k, v in sizes.items())
    c.assume(f"S3 buckets hold {listed} ({c.usage.source('bucketGb')})")


def _frameworks(c: Pricing) -> dict[str, str]:
    """The framework of the image each repository holds, by repository name."""
    out: dict[str, str] = {}
    for image in c.of_type(IMAGE):
        framework = str(mapping(image.props.get("buildArgs")).get("FRAMEWORK") or "other")
        for tag in p.as_list(image.props.get("tags")):
            repository = str(tag).split("/", 1)[-1].rsplit(":", 1)[0]
            out[repository] = framework
    return out


def _kept(c: Pricing) -> dict[str, int]:
    """How many images each repository's lifecycle policy keeps, by repository name."""
    out: dict[str, int] = {}
    for policy in c.of_type(LIFECYCLE):
        document = p.json_doc(policy.props.get("policy"))
        for rule in map(p.as_dict, p.as_list(mapping(document).get("rules"))):
            selection = p.as_dict(rule.get("selection"))
            if selection.get("countType") == "imageCountMoreThan":
                out[str(policy.props.get("repository"))] = int(selection.get("countNumber") or 0)
    return out


def repository(r: StackResource, c: Pricing) -> None:
    name = str(r.props.get("name"))
    framework = c.once("frameworks", lambda: _frameworks(c)).get(name, "other")
    kept = c.once("kept", lambda: _kept(c)).get(name)
    per_build = c.prices.assumptions["imageGbPerBuild"]
    base = c.prices.image_gb.get(framework, c.prices.image_gb.get("other", 0.0))
    if kept is None:
        # Without a lifecycle rule a repository keeps every build: price a year of weekly ones.
        kept = 52
    gb = base + kept * per_build
    detail = f"{framework} image {base:g} GB + {kept} kept builds x {per_build:g} GB"
    c.add(r, "ECR repository", "storage", detail, gb * c.service("ecrStoragePerGbMonth"))
    c.assume(
        "ECR repositories hold one base image plus each kept build "
        "(mlplatform:registry.keepTaggedImages; image sizes per framework in the price table)"
    )
