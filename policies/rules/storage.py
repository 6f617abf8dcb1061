"""Storage rules: every bucket is encrypted with the stack's key, private, TLS-only, versioned
and access-logged.

In pulumi-aws 7 these settings are separate resources that name their bucket, so the rules are
stack rules: a bucket with no such companion is as much a violation as one with a weak setting.
The bucket that receives server access logs is the one documented exception to SSE-KMS: S3 log
delivery supports SSE-S3 only there (`infra/restrictions.json`, s3-log-target-sse-s3).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from infra import restrictions
from policies.rules import Rule, StackFacts, StackResource
from policies.rules.props import as_dict, as_list, json_doc

BUCKET = "aws:s3/bucket:Bucket"
LOGGING = ("aws:s3/bucketLogging:BucketLogging", "aws:s3/bucketLoggingV2:BucketLoggingV2")
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


def _ids(bucket: StackResource) -> set[Any]:
    return {bucket.props.get("bucket"), bucket.props.get("id")} - {None}


def log_targets(resources: Sequence[StackResource]) -> set[Any]:
    """Names of the buckets that receive server access logs."""
    return {r.props.get("targetBucket") for r in resources if r.type in LOGGING} - {None}


def bucket_kms_encryption(
    resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
) -> Iterable[tuple[str, str | None]]:
    targets = log_targets(resources)
    row = restrictions.table()["s3-log-target-sse-s3"]
    for bucket, parts in _buckets(resources, "sse"):
        rules = [as_dict(rule) for part in parts for rule in as_list(part.props.get("rules"))]
        defaults = [as_dict(rule.get("applyServerSideEncryptionByDefault")) for rule in rules]
        if _ids(bucket) & targets:
            if not defaults or any(d.get("sseAlgorithm") != "AES256" for d in defaults):
                yield (
                    f"bucket {bucket.name!r} receives server access logs, which S3 delivers only "
                    f"into SSE-S3 (sseAlgorithm AES256) buckets [{row.id}: {row.source}]",
                    bucket.urn,
                )
            continue
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


def bucket_access_logging(
    resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
) -> Iterable[tuple[str, str | None]]:
    logging = [r.props for r in resources if r.type in LOGGING]
    for bucket in (r for r in resources if r.type == BUCKET):
        ids = _ids(bucket)
        mine = [p for p in logging if p.get("bucket") in ids]
        if any(p.get("targetBucket") in ids for p in mine):
            yield f"bucket {bucket.name!r} logs into itself, which loops", bucket.urn
        elif not mine and not any(
            p.get("targetBucket") in ids and p.get("bucket") not in ids for p in logging
        ):
            # The log bucket itself is exempt: logging it would need yet another bucket.
            yield (
                f"bucket {bucket.name!r} has no server access logging: add an "
                "aws.s3.BucketLogging into the stack's access-log bucket",
                bucket.urn,
            )


RULES = [
    Rule(
        "s3-bucket-kms-encryption",
        "Buckets are encrypted with the stack's customer-managed KMS key (access-log targets: SSE-S3, as S3 requires).",
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
        "s3-access-logging",
        "Buckets log their requests (server access logs) into a separate log bucket.",
        "medium",
        bucket_access_logging,
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
