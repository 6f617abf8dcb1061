"""AWS feature restrictions as data: what a service refuses, the page that says so, a check.

The rows live in `restrictions.json`; each `check_*` function below tests plain values against
the rows it names. Two callers use the same functions: the stack schema, at validation time,
with the values of a stack file, and the policy rule `aws-feature-restrictions`, with the values
of planned resources, so the offline plan never passes what `pulumi up` would fail. Only the
standard library and the instance facts table are imported: the policy pack's venv runs this.

The `serviceTrust` section states, per AWS service principal, which `aws:SourceArn` the service
sends for each use of a role (confused-deputy prevention), or why the docs leave it open.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from infra import instances

DATA = Path(__file__).with_name("restrictions.json")


@dataclass(frozen=True)
class Restriction:
    """One documented restriction: what it applies to, the rule, where AWS says so."""

    id: str
    applies_to: str
    rule: str
    source: str
    params: Mapping[str, Any]


@dataclass(frozen=True)
class Problem:
    """A value that breaks a restriction: which one, what is wrong, the page to read."""

    restriction: str
    message: str
    source: str

    def __str__(self) -> str:
        return f"{self.message} [{self.restriction}: {self.source}]"


@cache
def _data() -> dict[str, Any]:
    return json.loads(DATA.read_text())


@cache
def table() -> dict[str, Restriction]:
    """Every restriction by id, in the file's order."""
    rows = {}
    for row in _data()["restrictions"]:
        params = {k: v for k, v in row.items() if k not in ("id", "appliesTo", "rule", "source")}
        rows[row["id"]] = Restriction(
            row["id"], row["appliesTo"], row["rule"], row["source"], params
        )
    return rows


def service_trust() -> dict[str, Mapping[str, Any]]:
    """Per service principal: `settled`, `source`, and the `usages` it assumes roles for."""
    return _data()["serviceTrust"]


def source_arn(service: str, usage: str, form: str = "recommended", **names: str) -> str | None:
    """An `aws:SourceArn` of `service` for `usage`, filled in: `form` "sends" is what the service
    puts in the request, "recommended" what a trust policy should match; None where AWS
    documents no form for that use."""
    template = service_trust()[service]["usages"][usage][form]
    if template is None:
        return None
    return template.format(**{"name": "example", "pipeline": "*", "group": "default", **names})


def _problem(row_id: str, message: str) -> Problem:
    return Problem(row_id, message, table()[row_id].source)


# --- SageMaker endpoints -------------------------------------------------------------------------


def check_serverless_endpoint(
    *,
    memory_mb: int | None,
    max_concurrency: int | None,
    provisioned_concurrency: int | None = None,
    network_isolation: bool = False,
    vpc: bool = False,
    data_capture: bool = False,
    variant_count: int = 1,
    gpu: bool = False,
    model_package: str | None = None,
    multi_model: bool = False,
    containers: int = 1,
    private_registry: bool = False,
) -> list[Problem]:
    """Problems of one serverless endpoint (variant, its endpoint configuration and Model)."""
    found: list[Problem] = []
    if network_isolation:
        found.append(
            _problem(
                "serverless-network-isolation",
                "a serverless endpoint's Model sets enableNetworkIsolation: true, which "
                "SageMaker refuses; drop it (or serve from instances)",
            )
        )
    if vpc:
        found.append(_problem("serverless-vpc", "a serverless endpoint's Model has a vpcConfig"))
    if data_capture:
        found.append(_problem("serverless-data-capture", "a serverless endpoint captures data"))
    if gpu:
        found.append(
            _problem("serverless-gpu", "a serverless variant names an instance or accelerator")
        )
    if variant_count != 1:
        found.append(
            _problem(
                "serverless-single-variant",
                f"a serverless endpoint configuration has {variant_count} variants; it takes one",
            )
        )
    if model_package and ":aws-marketplace:" in model_package:
        found.append(
            _problem(
                "serverless-marketplace",
                f"a serverless endpoint serves Marketplace model package {model_package!r}",
            )
        )
    if multi_model or containers > 1 or private_registry:
        found.append(
            _problem(
                "serverless-model-shape",
                "a serverless endpoint's Model is multi-model, a pipeline of "
                f"{containers} containers, or pulls from a private registry",
            )
        )
    allowed = table()["serverless-memory"].params["allowed"]
    if memory_mb is not None and memory_mb not in allowed:
        found.append(
            _problem(
                "serverless-memory",
                f"serverless memory {memory_mb} MB is not one of {allowed}",
            )
        )
    limits = table()["serverless-concurrency"].params
    low, high = limits["min"], limits["max"]
    if max_concurrency is not None and not low <= max_concurrency <= high:
        found.append(
            _problem(
                "serverless-concurrency",
                f"serverless MaxConcurrency {max_concurrency} is outside {low}-{high}",
            )
        )
    if provisioned_concurrency is not None and (
        not low <= provisioned_concurrency <= high
        or (max_concurrency is not None and provisioned_concurrency > max_concurrency)
    ):
        found.append(
            _problem(
                "serverless-concurrency",
                f"serverless ProvisionedConcurrency {provisioned_concurrency} must be "
                f"{low}-{high} and not above MaxConcurrency {max_concurrency}",
            )
        )
    return found


def check_async_endpoint(*, serverless: bool, variant_count: int) -> list[Problem]:
    """Problems of an endpoint configuration with asynchronous inference."""
    found = []
    if serverless:
        found.append(
            _problem("async-instance-only", "an asynchronous endpoint has a serverless variant")
        )
    if variant_count != 1:
        found.append(
            _problem(
                "async-single-variant",
                f"an asynchronous endpoint configuration has {variant_count} variants; it takes one",
            )
        )
    return found


def check_endpoint_key(*, instance_types: Sequence[str], kms_key: str | None) -> list[Problem]:
    """An endpoint configuration's KmsKeyId against its variants' instance storage."""
    local = [t for t in instance_types if _has_instance_storage(t)]
    if kms_key and local:
        return [
            _problem(
                "endpoint-key-instance-store",
                f"kmsKeyArn is set but {local} have local NVMe storage; SageMaker refuses the "
                "configuration: drop the key for these types",
            )
        ]
    return []


# --- SageMaker training --------------------------------------------------------------------------


def check_training_job(
    *,
    spot: bool,
    max_runtime_s: int | None,
    max_wait_s: int | None = None,
    checkpoint_uri: str | None = None,
    instance_type: str | None = None,
    volume_kms_key: str | None = None,
    parallel_trials: int = 1,
) -> list[Problem]:
    """Problems of one training job definition (a pipeline step, a tuning job's template).

    Trials of a tuning job that run side by side from one definition would share one
    checkpoint prefix (AWS documents no per-trial path), so one could resume another's
    weights: there a reclaimed trial restarts instead, and no checkpoint is the safe choice.
    """
    found = []
    limit = table()["training-max-runtime"].params["max"]
    if max_runtime_s is not None and max_runtime_s > limit:
        found.append(
            _problem(
                "training-max-runtime",
                f"MaxRuntimeInSeconds {max_runtime_s} is above the 28-day limit of {limit}",
            )
        )
    if spot and (max_wait_s is None or (max_runtime_s is not None and max_wait_s < max_runtime_s)):
        found.append(
            _problem(
                "spot-max-wait",
                f"managed spot needs MaxWaitTimeInSeconds ({max_wait_s}) at or above "
                f"MaxRuntimeInSeconds ({max_runtime_s})",
            )
        )
    if spot and not checkpoint_uri and parallel_trials == 1:
        found.append(
            _problem(
                "spot-checkpoints",
                "managed spot without CheckpointConfig.S3Uri: a reclaim restarts from scratch",
            )
        )
    if volume_kms_key and instance_type and _has_instance_storage(instance_type):
        found.append(
            _problem(
                "volume-key-instance-store",
                f"ResourceConfig.VolumeKmsKeyId is set on {instance_type}, which has local NVMe "
                "storage; SageMaker refuses it: drop the key for this type",
            )
        )
    return found


def check_batch_transform(
    *, max_concurrent_transforms: int | None, max_payload_mb: int | None
) -> list[Problem]:
    """A transform job's payload size against its concurrency."""
    limit = table()["batch-transform-payload"].params["max"]
    payload = max_payload_mb if max_payload_mb is not None else 6  # the API's default
    concurrent = max_concurrent_transforms or 1
    if payload > limit or concurrent * payload > limit:
        return [
            _problem(
                "batch-transform-payload",
                f"MaxConcurrentTransforms {concurrent} x MaxPayloadInMB {payload} = "
                f"{concurrent * payload} MB, above {limit} MB",
            )
        ]
    return []


def _has_instance_storage(instance_type: str) -> bool:
    try:
        return instances.has_instance_storage(instance_type)
    except instances.UnknownInstanceType:
        return False


# --- ECR and Pod Identity ------------------------------------------------------------------------


def check_ecr_exclusion_filters(
    mutability: str | None, filters: Sequence[Mapping[str, Any]]
) -> list[Problem]:
    """Tag-mutability exclusion filters: given with the right mutability, 1-5, WILDCARD, valid."""
    row = table()["ecr-exclusion-filter"]
    found = []
    with_exclusion = (mutability or "").endswith("_WITH_EXCLUSION")
    if with_exclusion and not row.params["min"] <= len(filters) <= row.params["max"]:
        found.append(
            _problem(
                row.id,
                f"{mutability} needs {row.params['min']}-{row.params['max']} exclusion filters, "
                f"{len(filters)} given",
            )
        )
    if filters and not with_exclusion:
        found.append(
            _problem(row.id, f"exclusion filters are given but imageTagMutability is {mutability}")
        )
    for f in filters:
        value, kind = f.get("filter"), f.get("filterType", f.get("filter_type"))
        if (
            kind != "WILDCARD"
            or not isinstance(value, str)
            or not re.match(row.params["pattern"], value)
        ):
            found.append(
                _problem(
                    row.id,
                    f"exclusion filter {value!r} ({kind}) must be a WILDCARD matching "
                    f"{row.params['pattern']}",
                )
            )
    return found


def check_pod_identity_trust(statements: Sequence[Mapping[str, Any]]) -> list[Problem]:
    """Statements that trust `pods.eks.amazonaws.com`: both actions, no aws:SourceArn."""
    found = []
    for statement in statements:
        actions = statement.get("Action")
        actions = {actions} if isinstance(actions, str) else set(actions or ())
        if not ({"sts:AssumeRole", "sts:TagSession"} <= actions or actions & {"sts:*", "*"}):
            found.append(
                _problem(
                    "pod-identity-trust-actions",
                    f"the Pod Identity trust allows {sorted(actions)}; it needs "
                    "sts:AssumeRole and sts:TagSession",
                )
            )
        keys = {k.lower() for block in (statement.get("Condition") or {}).values() for k in block}
        if "aws:sourcearn" in keys:
            found.append(
                _problem(
                    "pod-identity-no-source-arn",
                    "the Pod Identity trust conditions on aws:SourceArn; scope it with "
                    "aws:RequestTag/eks-cluster-arn, kubernetes-namespace and "
                    "kubernetes-service-account instead",
                )
            )
    return found
