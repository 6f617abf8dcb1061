"""Registry and image rules on hand-built inputs (ECR repositories, models, pods, builds, pipelines)."""

from __future__ import annotations

import json

import pytest

ECR = "aws:ecr/repository:Repository"


def test_ecr_tags_default_to_mutable_and_scan_is_off_unless_set(check):
    assert check("ecr-immutable-tags", ECR, {})
    assert (
        check("ecr-immutable-tags", ECR, {"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION"}) == []
    )
    assert check("ecr-scan-on-push", ECR, {"imageScanningConfiguration": {"scanOnPush": False}})
    assert (
        check("ecr-scan-on-push", ECR, {"imageScanningConfiguration": {"scanOnPush": True}}) == []
    )


@pytest.mark.parametrize(
    ("resource_type", "props"),
    [
        (
            "aws:sagemaker/model:Model",
            {"primaryContainer": {"image": "123.dkr.ecr.us-east-1.amazonaws.com/serving:latest"}},
        ),
        (
            "aws:sagemaker/model:Model",
            {"primaryContainer": {"image": "123.dkr.ecr.us-east-1.amazonaws.com/serving"}},
        ),
        (
            "kubernetes:apps/v1:Deployment",
            {
                "spec": {
                    "template": {"spec": {"containers": [{"name": "s", "image": "nginx:latest"}]}}
                }
            },
        ),
        ("docker-build:index:Image", {"tags": ["localhost:5000/serving:latest"]}),
        (
            "aws:sagemaker/pipeline:Pipeline",
            {
                "pipelineDefinition": json.dumps(
                    {
                        "Steps": [
                            {
                                "Name": "Train",
                                "Type": "Training",
                                "Arguments": {
                                    "AlgorithmSpecification": {"TrainingImage": "repo/train:latest"}
                                },
                            }
                        ]
                    }
                )
            },
        ),
    ],
)
def test_images_by_latest_or_without_tag_are_caught(check, resource_type, props):
    assert check("images-pinned", resource_type, props)


def test_images_by_digest_or_content_tag_pass_and_registry_ports_are_not_tags(check):
    model = {"primaryContainer": {"image": "localhost:5000/serving@sha256:" + "a" * 64}}
    assert check("images-pinned", "aws:sagemaker/model:Model", model) == []
    assert (
        check(
            "images-pinned",
            "docker-build:index:Image",
            {"tags": ["localhost:5000/serving:ctx-0123abcd"]},
        )
        == []
    )
