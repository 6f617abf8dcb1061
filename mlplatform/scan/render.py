"""Render an offline plan in formats an independent scanner reads.

checkov reads Terraform plans, Kubernetes manifests and Dockerfiles, not Pulumi plans. pulumi-aws
is bridged from the Terraform AWS provider, so every pulumi-aws resource *is* a Terraform resource
under another name: `aws:s3/bucket:Bucket` is `aws_s3_bucket`, its `serverSideEncryption...`
inputs are the same attributes in camelCase. The mapping lives in pulumi-aws's bridge metadata
(`provider/cmd/pulumi-resource-aws/bridge-metadata.json`, `renames`), which ships inside the
provider binary and in no Python package, so it is restated here: the general rule plus the
exceptions our plans use. A type not covered is reported, never guessed silently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from mlplatform.plan import SECRET, UNKNOWN, Plan, PlannedResource

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Modules whose Terraform types carry no module prefix (aws_vpc, not aws_ec2_vpc).
_UNPREFIXED_MODULES = {"ec2"}
# Types whose Terraform name differs from the general rule (bridge metadata `renames.resources`).
TERRAFORM_TYPES = {
    "aws:autoscaling/tag:Tag": "aws_autoscaling_group_tag",
    "aws:s3/bucketV2:BucketV2": "aws_s3_bucket",
}
# Attributes Pulumi pluralises where Terraform names a repeated block in the singular
# (bridge metadata `renames.renamedProperties`), for the types our plans declare.
TERRAFORM_ATTRIBUTES = {
    "aws_s3_bucket_server_side_encryption_configuration": {"rules": "rule"},
    "aws_s3_bucket_lifecycle_configuration": {"rules": "rule"},
    "aws_ecr_repository": {
        "encryptionConfigurations": "encryption_configuration",
        "imageTagMutabilityExclusionFilters": "image_tag_mutability_exclusion_filter",
    },
    "aws_eks_node_group": {"taints": "taint"},
    "aws_eks_addon": {"podIdentityAssociations": "pod_identity_association"},
    "aws_budgets_budget": {"notifications": "notification", "costFilters": "cost_filter"},
    "aws_route_table": {"routes": "route"},
    "aws_iam_role": {"inlinePolicies": "inline_policy"},
    "aws_sagemaker_model": {"containers": "container"},
}
# Terraform map attributes: nested objects that stay objects (everything else is a block).
_MAP_ATTRIBUTES = {"tags", "tags_all", "labels", "dimensions", "variables", "environment"}
# Outputs other resources refer to: a reference becomes an expression, as in a fresh plan.
_REFERENCED_OUTPUTS = ("arn", "id", "keyId", "bucket", "name")


def snake(name: str) -> str:
    """`mapPublicIpOnLaunch` -> `map_public_ip_on_launch`."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def terraform_type(token: str) -> str | None:
    """The Terraform resource type a pulumi-aws token wraps; None for non-AWS tokens."""
    if token in TERRAFORM_TYPES:
        return TERRAFORM_TYPES[token]
    if not token.startswith("aws:") or token.count(":") != 2:
        return None
    module, name = token.split(":")[1].split("/")
    prefix = "" if module in _UNPREFIXED_MODULES else f"{module}_"
    return f"aws_{prefix}{snake(name)}"


def _known(value: Any) -> bool:
    return value not in (UNKNOWN, SECRET) and value is not None


def _attributes(tf_type: str | None, props: Mapping[str, Any], top: bool = True) -> dict[str, Any]:
    """Pulumi inputs as Terraform attributes: snake_case, blocks as lists of objects."""
    renames = TERRAFORM_ATTRIBUTES.get(tf_type or "", {}) if top else {}
    out: dict[str, Any] = {}
    for key, value in props.items():
        if key.startswith("__") or not _known(value):
            continue
        name = renames.get(key, snake(key))
        if isinstance(value, Mapping):
            out[name] = (
                dict(value) if name in _MAP_ATTRIBUTES else [_attributes(None, value, False)]
            )
        elif isinstance(value, list) and any(isinstance(v, Mapping) for v in value):
            out[name] = [_attributes(None, v, False) for v in value if isinstance(v, Mapping)]
        elif isinstance(value, list):
            out[name] = [v for v in value if _known(v)]
        else:
            out[name] = value
    return out


def _address_names(resources: Iterable[PlannedResource]) -> dict[str, str]:
    """A Terraform resource name per URN: the logical name, made unique within its type."""
    names: dict[str, str] = {}
    taken: set[tuple[str, str]] = set()
    for r in resources:
        base = re.sub(r"[^A-Za-z0-9_-]", "_", r.name)
        name, n = base, 1
        while (r.type, name) in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add((r.type, name))
        names[r.urn] = name
    return names


def terraform_plan(plan: Plan) -> dict[str, Any]:
    """The plan as `terraform show -json` would print it for a stack being created."""
    aws = [r for r in plan.resources if r.custom and terraform_type(r.type)]
    names = _address_names(aws)
    address = {r.urn: f"{terraform_type(r.type)}.{names[r.urn]}" for r in aws}
    # A value that is another resource's id or ARN is unknown until that resource exists: a
    # fresh Terraform plan shows it as a reference, which is how checkov links resources.
    produced: dict[Any, str] = {}
    # ARNs and ids first: a name (e.g. the cluster's) may also be another resource's name.
    for output in _REFERENCED_OUTPUTS:
        for r in aws:
            value = r.outputs.get(output)
            if isinstance(value, str) and _known(value) and value not in produced:
                produced[value] = f"{address[r.urn]}.{snake(output)}"
    planned, changes, configured = [], [], []
    for r in aws:
        tf_type = terraform_type(r.type)
        values = _attributes(tf_type, r.inputs)
        expressions: dict[str, Any] = {}
        own = address[r.urn] + "."
        for key, value in list(values.items()):
            items = value if isinstance(value, list) else [value]
            refs = [produced[v] for v in items if isinstance(v, str) and v in produced]
            if items and len(refs) == len(items) and not any(r.startswith(own) for r in refs):
                del values[key]
                expressions[key] = {
                    "references": [x for ref in refs for x in (ref, ref.rsplit(".", 1)[0])]
                }
        entry = {
            "address": address[r.urn],
            "mode": "managed",
            "type": tf_type,
            "name": names[r.urn],
            "provider_name": "registry.terraform.io/hashicorp/aws",
            "values": values,
        }
        planned.append(entry)
        changes.append(
            {
                **{k: entry[k] for k in ("address", "mode", "type", "name", "provider_name")},
                "change": {"actions": ["create"], "before": None, "after": values},
            }
        )
        configured.append(
            {
                "address": address[r.urn],
                "mode": "managed",
                "type": tf_type,
                "name": names[r.urn],
                "expressions": expressions,
            }
        )
    return {
        "format_version": "1.2",
        "terraform_version": "1.9.0",
        "planned_values": {"root_module": {"resources": planned}},
        "resource_changes": changes,
        "configuration": {"root_module": {"resources": configured}},
    }


def kubernetes_manifests(plan: Plan) -> list[dict[str, Any]]:
    """Every Kubernetes object the program declares, as the manifest kubectl would apply.
    Helm releases render their charts only on the cluster, so they are out of reach here."""
    manifests = []
    for r in plan.resources:
        if not (r.custom and r.type.startswith("kubernetes:")) or "helm.sh" in r.type:
            continue
        if r.type.startswith("pulumi:providers"):
            continue
        manifests.append({k: v for k, v in r.inputs.items() if not k.startswith("__")})
    return manifests


def unmapped_types(plan: Plan) -> list[str]:
    """Custom resource types the render leaves out (not AWS, not Kubernetes objects)."""
    return sorted(
        {
            r.type
            for r in plan.resources
            if r.custom
            and terraform_type(r.type) is None
            and not r.type.startswith(("kubernetes:", "pulumi:providers:"))
        }
    )


def dockerfiles(plan: Plan) -> list[str]:
    """The Dockerfiles the stack builds its images from (relative to the project)."""
    return sorted(
        {
            str(r.inputs["dockerfile"]["location"])
            for r in plan.of_type("docker-build:index:Image")
            if isinstance(r.inputs.get("dockerfile"), dict)
        }
    )


def render(plan: Plan, out: Path) -> dict[str, Path]:
    """Write `<out>/terraform/plan.json`, `<out>/kubernetes/*.yaml` and copies of the
    Dockerfiles; returns the paths by framework."""
    (out / "terraform").mkdir(parents=True, exist_ok=True)
    (out / "kubernetes").mkdir(parents=True, exist_ok=True)
    (out / "dockerfile").mkdir(parents=True, exist_ok=True)
    tf = out / "terraform" / "plan.json"
    tf.write_text(json.dumps(terraform_plan(plan), indent=1, sort_keys=True))
    for i, manifest in enumerate(kubernetes_manifests(plan)):
        meta = manifest.get("metadata") or {}
        name = f"{i:03d}-{manifest.get('kind', 'object')}-{meta.get('name', 'unnamed')}.yaml"
        (out / "kubernetes" / name).write_text(yaml.safe_dump(manifest, sort_keys=False))
    for dockerfile in dockerfiles(plan):
        # checkov knows a Dockerfile by its file name: keep it, one folder per image.
        target = out / "dockerfile" / dockerfile
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((PROJECT_ROOT / dockerfile).read_text())
    return {
        "terraform_plan": tf,
        "kubernetes": out / "kubernetes",
        "dockerfile": out / "dockerfile",
    }
