"""What the stack gets for audit and isolation: access logs, log groups under the stack key,
flow logs, scoped Pod Identity roles, and default-deny network policies that are enforced."""

from __future__ import annotations

import json

import pytest

from infra.components.eks_serving import PORT as SERVING_CONTAINER_PORT
from infra.components.network_policies import SERVING_PORT
from infra.components.storage import stack_log_groups
from mlplatform.plan import Plan

BUCKET = "aws:s3/bucket:Bucket"
LOGGING = "aws:s3/bucketLogging:BucketLogging"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def _child(plan: Plan, parent, type_token: str):
    (child,) = [r for r in plan.children(parent) if r.type == type_token]
    return child


def _log_bucket(plan: Plan):
    return plan.get(BUCKET, f"mlplatform-{plan.stack}-access-logs")


def test_every_data_bucket_logs_its_requests_into_the_access_log_bucket(plan: Plan):
    log_bucket = _log_bucket(plan)
    logged = {r.inputs["bucket"]: r.inputs for r in plan.of_type(LOGGING)}
    for bucket in plan.of_type(BUCKET):
        if bucket is log_bucket:
            assert bucket.outputs["bucket"] not in logged, "the log bucket must not log itself"
            continue
        logging = logged[bucket.outputs["bucket"]]
        assert logging["targetBucket"] == log_bucket.outputs["bucket"]
        assert logging["targetPrefix"] == bucket.name.rsplit("-", 1)[-1] + "/"


def test_the_access_log_bucket_uses_sse_s3_as_s3_log_delivery_requires(plan: Plan):
    sse = _child(
        plan,
        _log_bucket(plan),
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    )
    assert sse.inputs["rules"] == [
        {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}
    ]


def test_only_s3_log_delivery_for_this_accounts_buckets_may_write_access_logs(plan: Plan):
    log_bucket = _log_bucket(plan)
    policy = json.loads(
        _child(plan, log_bucket, "aws:s3/bucketPolicy:BucketPolicy").inputs["policy"]
    )
    (grant,) = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    sources = {b.outputs["arn"] for b in plan.of_type(BUCKET) if b is not log_bucket}
    assert grant["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert grant["Action"] == "s3:PutObject"
    assert set(grant["Condition"]["ArnLike"]["aws:SourceArn"]) == sources
    assert grant["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}


def test_the_key_lets_cloudwatch_logs_encrypt_only_the_stacks_log_groups(plan: Plan):
    (key,) = plan.of_type("aws:kms/key:Key")
    statements = json.loads(key.inputs["policy"])["Statement"]
    (logs,) = [s for s in statements if s["Principal"].get("Service", "").startswith("logs.")]
    assert logs["Principal"]["Service"] == f"logs.{plan.config.region}.amazonaws.com"
    groups = stack_log_groups(f"mlplatform-{plan.stack}").values()
    assert logs["Condition"] == {
        "ArnEquals": {
            "kms:EncryptionContext:aws:logs:arn": [
                f"arn:aws:logs:{plan.config.region}:123456789012:log-group:{g}" for g in groups
            ]
        }
    }


def test_every_log_group_aws_writes_for_the_stack_is_declared_under_the_stack_key(plan: Plan):
    # EKS's control plane, the VPC flow logs and the Container Insights agent each create their
    # group on first write, unencrypted and kept forever, unless the stack declares it first.
    (key,) = plan.of_type("aws:kms/key:Key")
    declared = {g.inputs["name"]: g for g in plan.of_type("aws:cloudwatch/logGroup:LogGroup")}
    expected = stack_log_groups(f"mlplatform-{plan.stack}")
    wanted = {"flow-logs"} | ({"eks", "container-insights"} if plan.config.eks else set())
    for purpose in wanted:
        group = declared[expected[purpose]]
        assert group.inputs["kmsKeyId"] == key.outputs["arn"], purpose
        assert group.inputs["retentionInDays"] > 0, purpose
    if plan.config.eks:
        (agent,) = [
            a
            for a in plan.of_type("aws:eks/addon:Addon")
            if a.inputs["addonName"] == "amazon-cloudwatch-observability"
        ]
        insights = declared[expected["container-insights"]]
        assert insights.urn in agent.depends_on, "the group exists before the agent writes"


def test_the_vpc_cni_enforces_network_policies(plan: Plan):
    (cni,) = [a for a in plan.of_type("aws:eks/addon:Addon") if a.inputs["addonName"] == "vpc-cni"]
    assert json.loads(cni.inputs["configurationValues"]) == {"enableNetworkPolicy": "true"}


def test_pod_identity_roles_of_the_platform_admit_only_their_service_account(plan: Plan):
    cluster_arn = f"arn:aws:eks:{plan.config.region}:123456789012:cluster/mlplatform-{plan.stack}"
    expected = {
        "vpc-cni": "aws-node",
        "ebs-csi": "ebs-csi-controller-sa",
        "s3-csi": "s3-csi-driver-sa",
        "cluster-autoscaler": "cluster-autoscaler",
    }
    for suffix, account in expected.items():
        role = plan.get("aws:iam/role:Role", f"mlplatform-{plan.stack}-{suffix}")
        (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        assert statement["Action"] == ["sts:AssumeRole", "sts:TagSession"]
        assert statement["Condition"] == {
            "StringEquals": {
                "aws:RequestTag/eks-cluster-arn": cluster_arn,
                "aws:RequestTag/kubernetes-namespace": "kube-system",
                "aws:RequestTag/kubernetes-service-account": account,
            }
        }


def _policies(plan: Plan, namespace: str) -> dict[str, dict]:
    return {
        p.inputs["metadata"]["name"]: p.inputs["spec"]
        for p in plan.of_type(NETWORK_POLICY)
        if p.inputs["metadata"]["namespace"] == namespace
    }


@pytest.mark.parametrize("namespace", ["training", "serving"])
def test_workload_namespaces_deny_by_default_and_allow_dns_aws_and_credentials(
    plan: Plan, namespace: str
):
    policies = _policies(plan, namespace)
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    (dns,) = policies["allow-dns"]["egress"]
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert {p["port"] for p in dns["ports"]} == {53}
    https, credentials = policies["allow-aws-apis"]["egress"]
    assert https["ports"] == [{"protocol": "TCP", "port": 443}]
    assert credentials["to"] == [{"ipBlock": {"cidr": "169.254.170.23/32"}}]


def test_serving_takes_requests_from_the_cluster_on_the_servers_port_only(plan: Plan):
    assert SERVING_PORT == SERVING_CONTAINER_PORT
    policies = _policies(plan, "serving")
    (ingress,) = policies["allow-serving-ingress"]["ingress"]
    assert ingress == {
        "from": [{"namespaceSelector": {}}],
        "ports": [{"protocol": "TCP", "port": SERVING_PORT}],
    }
    assert "allow-training-peers" not in policies


def test_training_pods_reach_each_other_for_torchrun_and_nccl(plan: Plan):
    peers = _policies(plan, "training")["allow-training-peers"]
    assert peers["ingress"] == [{"from": [{"podSelector": {}}]}]
    assert peers["egress"] == [{"to": [{"podSelector": {}}]}]
    assert "allow-serving-ingress" not in _policies(plan, "training")
