"""checkov as a second opinion: the render it reads, and every finding fixed or explained.

The scan runs checkov from its own venv (`.venv-scan`, created from scanners/requirements.txt
on first use: PyPI is the only network it needs), over the offline plans of the shipped stacks
rendered as a Terraform plan, Kubernetes manifests and the Dockerfiles.
"""

from __future__ import annotations

import json
import re

from mlplatform.scan import checkov
from mlplatform.scan.render import (
    kubernetes_manifests,
    render,
    terraform_plan,
    terraform_type,
    unmapped_types,
)

STACKS = ("dev", "staging", "prod")


def test_pulumi_aws_tokens_map_to_the_terraform_types_they_wrap():
    assert terraform_type("aws:s3/bucket:Bucket") == "aws_s3_bucket"
    assert terraform_type("aws:ec2/securityGroup:SecurityGroup") == "aws_security_group"
    assert (
        terraform_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
        == "aws_eks_pod_identity_association"
    )
    assert (
        terraform_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        == "aws_vpc_security_group_ingress_rule"
    )
    assert terraform_type("aws:autoscaling/tag:Tag") == "aws_autoscaling_group_tag"
    assert terraform_type("kubernetes:apps/v1:Deployment") is None


def test_every_planned_resource_is_rendered_except_images(plan):
    # docker-build images have no Terraform counterpart; their Dockerfiles are scanned instead.
    assert unmapped_types(plan) == ["docker-build:index:Image"]


def test_inputs_become_terraform_attributes_and_references(plan_of):
    tf = terraform_plan(plan_of("dev"))
    resources = {r["address"]: r for r in tf["planned_values"]["root_module"]["resources"]}
    sse = resources["aws_s3_bucket_server_side_encryption_configuration.mlplatform-dev-datasets"]
    # Pulumi's `rules` is Terraform's repeated `rule` block; nested objects are blocks (lists).
    [rule] = sse["values"]["rule"]
    assert rule["apply_server_side_encryption_by_default"][0]["sse_algorithm"] == "aws:kms"
    # The bucket and key come from other resources: a fresh plan shows them as references.
    config = {r["address"]: r for r in tf["configuration"]["root_module"]["resources"]}
    refs = config[sse["address"]]["expressions"]["bucket"]["references"]
    assert refs == [
        "aws_s3_bucket.mlplatform-dev-datasets.id",
        "aws_s3_bucket.mlplatform-dev-datasets",
    ]
    assert "bucket" not in sse["values"]
    tags = resources["aws_vpc.mlplatform-dev"]["values"]["tags"]
    assert isinstance(tags, dict) and tags["stack"] == "dev"  # maps stay maps


def test_kubernetes_objects_are_rendered_as_manifests_without_helm_releases(plan_of):
    kinds = {m["kind"] for m in kubernetes_manifests(plan_of("staging"))}
    assert {"Deployment", "NetworkPolicy", "TrainingRuntime", "Namespace"} <= kinds
    assert "Release" not in kinds


def test_the_scanner_is_pinned_in_its_own_requirements_file():
    lines = [
        line
        for line in checkov.REQUIREMENTS.read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "checkov==3.3.30"
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[^=\s]+", line) for line in lines), lines
    # The reason it has a venv of its own: its boto3 is not the project's.
    assert "boto3==1.35.49" in lines


def test_every_suppression_says_why():
    suppressions = checkov.load_suppressions()
    assert suppressions and all(len(s.why) > 40 for s in suppressions)


def test_every_checkov_finding_is_fixed_or_explained_and_no_explanation_is_stale(plan_of, tmp_path):
    for stack in STACKS:
        render(plan_of(stack), tmp_path / stack)
    findings = checkov.run(tmp_path)
    assert {f.stack for f in findings} <= set(STACKS)
    unexplained, unused = checkov.explain(findings, checkov.load_suppressions())
    assert [str(f) for f in unexplained] == [], (
        "fix these or explain them in scanners/suppressions.yaml"
    )
    assert unused == [], "these suppressions explain nothing any more: remove them"
    # What was explained, per stack, for the record (pytest -rP shows it).
    print(json.dumps({s: sum(f.stack == s for f in findings) for s in STACKS}))
