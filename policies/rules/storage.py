"""Storage rules: every bucket is encrypted with the stack's key, private, TLS-only and versioned.

In pulumi-aws 7 these settings are separate resources that name their bucket, so the rules are
stack rules: a bucket with no such companion is as much a violation as one with a weak setting.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from policies.rules import Rule, StackFacts, StackResource
from policies.rules.props import as_dict, as_list, json_doc

BUCKET = "aws:s3/bucket:Bucket"
_BUCKET_PARTS = {
    "sse": "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "block": "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "policy": "aws:s3/bucketPolicy:BucketPolicy",
    "versioning": "aws:s3/bucketVersioning:BucketVersioning",
}
_BLOCK_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def _buckets(
    resources: Sequence[StackResource], part: str
) -> Iterator[tuple[StackResource, list[StackResource]]]:
    """Each bucket with the companion resources (of one kind) that name it."""
    companions = [r for r in resources if r.type == _BUCKET_PARTS[part]]
    for bucket in (r for r in resources if r.type == BUCKET):
        ids = {bucket.props.get("bucket"), bucket.props.get("id")} - {None}
        yield bucket, [c for c in companions if c.props.get("bucket") in ids]


def bucket_kms_encryption(
    resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
) -> Iterable[tuple[str, str | None]]:
    for bucket, parts in _buckets(resources, "sse"):
        rules = [as_dict(rule) for part in parts for rule in as_list(part.props.get("rules"))]
        defaults = [as_dict(rule.get("applyServerSideEncryptionByDefault")) for rule in rules]
        if not any(
            d.get("sseAlgorithm") in ("aws:kms", "aws:kms:dsse") and d.get("kmsMasterKeyId")
            for d in defaults
        ):
            yield (
                f"bucket {bucket.name!r} is not encrypted with a customer-managed KMS key (SSE-KMS with kmsMasterKeyId)",
                bucket.urn,
            )


def bucket_public_access_block(
    resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
) -> Iterable[tuple[str, str | None]]:
    for bucket, parts in _buckets(resources, "block"):
        if not any(all(part.props.get(flag) is True for flag in _BLOCK_FLAGS) for part in parts):
            yield (
                f"bucket {bucket.name!r} lacks a public-access block with all four flags true ({', '.join(_BLOCK_FLAGS)})",
                bucket.urn,
            )


def _denies_insecure_transport(policy: Any) -> bool:
    doc = json_doc(policy)
    if not isinstance(doc, Mapping):
        return False
    for statement in as_list(doc.get("Statement")):
        statement = as_dict(statement)
        condition = as_dict(as_dict(statement.get("Condition")).get("Bool"))
        if (
            statement.get("Effect") == "Deny"
            and str(condition.get("aws:SecureTransport")).lower() == "false"
        ):
            return True
    return False


def bucket_tls_only(
    resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
) -> Iterable[tuple[str, str | None]]:
    for bucket, parts in _buckets(resources, "policy"):
        if not any(_denies_insecure_transport(part.props.get("policy")) for part in parts):
            yield (
                f"bucket {bucket.name!r} has no bucket policy denying requests with aws:SecureTransport=false",
                bucket.urn,
            )


def bucket_versioning(
    resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
) -> Iterable[tuple[str, str | None]]:
    for bucket, parts in _buckets(resources, "versioning"):
        if not any(
            as_dict(p.props.get("versioningConfiguration")).get("status") == "Enabled"
            for p in parts
        ):
            yield f"bucket {bucket.name!r} does not have versioning Enabled", bucket.urn


RULES = [
    Rule(
        "s3-bucket-kms-encryption",
        "Buckets are encrypted with the stack's customer-managed KMS key.",
        "high",
        bucket_kms_encryption,
        scope="stack",
    ),
    Rule(
        "s3-public-access-block",
        "Buckets block every form of public access.",
        "critical",
        bucket_public_access_block,
        scope="stack",
    ),
    Rule(
        "s3-tls-only",
        "Bucket policies deny requests that do not use TLS.",
        "high",
        bucket_tls_only,
        scope="stack",
    ),
    Rule(
        "s3-versioning",
        "Buckets keep object versions, so overwrites and deletes can be undone.",
        "medium",
        bucket_versioning,
        scope="stack",
    ),
]
