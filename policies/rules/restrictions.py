"""Planned resources against the AWS restrictions table (`infra/restrictions.py`): so the offline
plan never passes what `pulumi up` would have AWS refuse.

The checks are the table's own `check_*` functions, which the stack schema calls too; this rule
only reads their inputs off the planned resources. The key rows (volume keys on instance-store
types, serverless volumes) are checked where keys are: `sagemaker-stack-key`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from infra import restrictions
from infra.restrictions import Problem
from policies.rules import Rule, StackFacts, StackResource
from policies.rules.conditions import service_principals, statements
from policies.rules.props import (
    ENDPOINT_CONFIG,
    PIPELINE,
    SAGEMAKER_MODEL,
    as_dict,
    as_list,
    training_steps,
    transform_steps,
    variants,
)

ECR = "aws:ecr/repository:Repository"
ROLE = "aws:iam/role:Role"


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def serverless_problems(
    config: StackResource, models: Mapping[Any, Mapping[str, Any]]
) -> list[Problem]:
    """What the restrictions table says about one endpoint configuration's serverless variant
    (none when it has no serverless variant)."""
    all_variants = variants(config.props)
    serverless = [v for v in all_variants if as_dict(v.get("serverlessConfig"))]
    if not serverless:
        return []
    variant = serverless[0]
    settings = as_dict(variant.get("serverlessConfig"))
    model = models.get(variant.get("modelName"), {})
    container = as_dict(model.get("primaryContainer"))
    capture = as_dict(config.props.get("dataCaptureConfig"))
    return restrictions.check_serverless_endpoint(
        memory_mb=_int(settings.get("memorySizeInMb")),
        max_concurrency=_int(settings.get("maxConcurrency")),
        provisioned_concurrency=_int(settings.get("provisionedConcurrency")),
        network_isolation=model.get("enableNetworkIsolation") is True,
        vpc=bool(as_dict(model.get("vpcConfig"))),
        data_capture=bool(capture) and capture.get("enableCapture") is not False,
        variant_count=len(all_variants),
        gpu=bool(variant.get("instanceType") or variant.get("acceleratorType")),
        model_package=container.get("modelPackageName"),
        multi_model=container.get("mode") == "MultiModel",
        containers=max(1, len(as_list(model.get("containers")))),
        private_registry=as_dict(container.get("imageConfig")).get("repositoryAccessMode") == "Vpc",
    )


def _problems(resources: Sequence[StackResource]) -> Iterator[tuple[StackResource, str, Problem]]:
    models = {r.props.get("name"): r.props for r in resources if r.type == SAGEMAKER_MODEL}
    for r in resources:
        if r.type == ENDPOINT_CONFIG:
            for problem in serverless_problems(r, models):
                yield r, "endpoint configuration", problem
            if as_dict(r.props.get("asyncInferenceConfig")):
                found = restrictions.check_async_endpoint(
                    serverless=any(as_dict(v.get("serverlessConfig")) for v in variants(r.props)),
                    variant_count=len(variants(r.props)),
                )
                yield from ((r, "endpoint configuration", p) for p in found)
        elif r.type == PIPELINE:
            definition = r.props.get("pipelineDefinition")
            for step in training_steps(definition):
                for problem in restrictions.check_training_job(
                    spot=step.spot,
                    max_runtime_s=step.max_runtime_s,
                    max_wait_s=step.max_wait_s,
                    checkpoint_uri=step.checkpoint_uri,
                    parallel_trials=step.parallel_jobs,
                ):
                    yield r, f"pipeline step {step.name!r} of", problem
            for name, args in transform_steps(definition):
                for problem in restrictions.check_batch_transform(
                    max_concurrent_transforms=_int(args.get("MaxConcurrentTransforms")),
                    max_payload_mb=_int(args.get("MaxPayloadInMB")),
                ):
                    yield r, f"pipeline step {name!r} of", problem
        elif r.type == ECR:
            filters = [
                as_dict(f) for f in as_list(r.props.get("imageTagMutabilityExclusionFilters"))
            ]
            for problem in restrictions.check_ecr_exclusion_filters(
                r.props.get("imageTagMutability"), filters
            ):
                yield r, "repository", problem
        elif r.type == ROLE:
            pod_identity = [
                s
                for s in statements(r.props.get("assumeRolePolicy"))
                if s.get("Effect") == "Allow" and "pods.eks.amazonaws.com" in service_principals(s)
            ]
            for problem in restrictions.check_pod_identity_trust(pod_identity):
                yield r, "role", problem


def feature_restrictions(
    resources: Sequence[StackResource], config: Mapping[str, Any], facts: StackFacts
) -> Iterable[tuple[str, str | None]]:
    for resource, kind, problem in _problems(resources):
        yield f"{kind} {resource.name!r}: {problem}", resource.urn


RULES = [
    Rule(
        "aws-feature-restrictions",
        "Planned resources respect documented AWS restrictions (infra/restrictions.json): what AWS would refuse at deploy time.",
        "high",
        feature_restrictions,
        scope="stack",
    ),
]
