"""Trust rules: service roles bound to this account in the form each service sends, Pod
Identity roles bound to their service account."""

from __future__ import annotations

import json

ACCOUNT = "123456789012"
ROLE = "aws:iam/role:Role"
SAGEMAKER = "sagemaker.amazonaws.com"


def _trust(service: str, condition: dict | None = None, actions=("sts:AssumeRole",)) -> str:
    statement = {"Effect": "Allow", "Principal": {"Service": service}, "Action": list(actions)}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _role(resource, name: str, trust: str):
    return resource(ROLE, name, arn=f"arn:aws:iam::{ACCOUNT}:role/{name}", assumeRolePolicy=trust)


def _endpoint_model(resource, role_name: str):
    return resource(
        "aws:sagemaker/model:Model",
        "m",
        executionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/{role_name}",
    )


def test_a_service_role_bound_to_no_account_is_caught(check_stack, resource):
    [message] = check_stack("iam-trust-source-account", [_role(resource, "r", _trust(SAGEMAKER))])
    assert "any account" in message and f"aws:SourceAccount {ACCOUNT}" in message


def test_a_source_account_naming_another_account_is_caught(check_stack, resource):
    other = _trust(SAGEMAKER, {"StringEquals": {"aws:SourceAccount": "111111111111"}})
    found = check_stack("iam-trust-source-account", [_role(resource, "r", other)])
    assert any("111111111111" in m and ACCOUNT in m for m in found)


def test_source_account_or_an_account_bound_source_arn_pass(check_stack, resource):
    by_account = _trust(SAGEMAKER, {"StringEquals": {"aws:SourceAccount": ACCOUNT}})
    by_arn = _trust(
        SAGEMAKER, {"ArnLike": {"aws:SourceArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:*"}}
    )
    for trust in (by_account, by_arn):
        assert check_stack("iam-trust-source-account", [_role(resource, "r", trust)]) == []


def test_unsettled_services_need_no_condition_and_get_none(check_stack, resource):
    plain = _role(resource, "node", _trust("ec2.amazonaws.com"))
    assert check_stack("iam-trust-source-account", [plain]) == []
    conditioned = _role(
        resource,
        "node",
        _trust("eks.amazonaws.com", {"StringEquals": {"aws:SourceAccount": ACCOUNT}}),
    )
    [message] = check_stack("iam-trust-source-account", [conditioned])
    assert "not documented to send" in message


def test_a_service_missing_from_the_table_is_caught(check_stack, resource):
    [message] = check_stack(
        "iam-trust-source-account", [_role(resource, "r", _trust("lambda.amazonaws.com"))]
    )
    assert "infra/restrictions.json" in message


def test_an_endpoint_role_without_source_arn_is_told_the_exact_inference_form(
    check_stack, resource
):
    trust = _trust(SAGEMAKER, {"StringEquals": {"aws:SourceAccount": ACCOUNT}})
    [message] = check_stack(
        "iam-trust-source-arn", [_role(resource, "exec", trust), _endpoint_model(resource, "exec")]
    )
    assert f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:*" in message and "inference" in message


def test_an_endpoint_role_scoped_to_an_endpoint_arn_is_caught(check_stack, resource):
    # SageMaker sends arn:...:* for inference: an endpoint ARN never matches it.
    endpoint_arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/digits"
    trust = _trust(SAGEMAKER, {"ArnLike": {"aws:SourceArn": endpoint_arn}})
    [message] = check_stack(
        "iam-trust-source-arn", [_role(resource, "exec", trust), _endpoint_model(resource, "exec")]
    )
    assert "would fail" in message and "inference" in message


def test_a_training_only_form_breaks_a_role_that_also_serves(check_stack, resource):
    training = _trust(
        SAGEMAKER,
        {"ArnLike": {"aws:SourceArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:training-job/*"}},
    )
    definition = json.dumps(
        {
            "Steps": [
                {"Type": "Training", "Arguments": {"RoleArn": f"arn:aws:iam::{ACCOUNT}:role/exec"}}
            ]
        }
    )
    pipeline = resource(
        "aws:sagemaker/pipeline:Pipeline",
        "p",
        pipelineDefinition=definition,
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/pipe",
        arn=f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:pipeline/p",
    )
    role = _role(resource, "exec", training)
    assert check_stack("iam-trust-source-arn", [role, pipeline]) == []
    found = check_stack("iam-trust-source-arn", [role, pipeline, _endpoint_model(resource, "exec")])
    assert len(found) == 1 and "inference" in found[0]
    account_wide = _trust(
        SAGEMAKER, {"ArnLike": {"aws:SourceArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:*"}}
    )
    shared = _role(resource, "exec", account_wide)
    assert (
        check_stack("iam-trust-source-arn", [shared, pipeline, _endpoint_model(resource, "exec")])
        == []
    )


def test_a_pipeline_role_takes_the_pipelines_execution_form(check_stack, resource):
    pipeline = resource(
        "aws:sagemaker/pipeline:Pipeline",
        "p",
        pipelineName="Train-Digits",
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/pipe",
        arn=f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:pipeline/train-digits",
    )
    good = _trust(
        SAGEMAKER,
        {
            "ArnLike": {
                "aws:SourceArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:pipeline/train-digits/*"
            }
        },
    )
    assert check_stack("iam-trust-source-arn", [_role(resource, "pipe", good), pipeline]) == []
    other = _trust(
        SAGEMAKER,
        {"ArnLike": {"aws:SourceArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:pipeline/other/*"}},
    )
    assert check_stack("iam-trust-source-arn", [_role(resource, "pipe", other), pipeline])


def test_a_scheduler_role_takes_a_schedule_group_arn(check_stack, resource):
    schedule = resource(
        "aws:scheduler/schedule:Schedule",
        "s",
        target={"roleArn": f"arn:aws:iam::{ACCOUNT}:role/sched"},
    )
    group = _trust(
        "scheduler.amazonaws.com",
        {
            "ArnEquals": {
                "aws:SourceArn": f"arn:aws:scheduler:us-east-1:{ACCOUNT}:schedule-group/default"
            }
        },
    )
    assert check_stack("iam-trust-source-arn", [_role(resource, "sched", group), schedule]) == []
    one_schedule = _trust(
        "scheduler.amazonaws.com",
        {
            "ArnEquals": {
                "aws:SourceArn": f"arn:aws:scheduler:us-east-1:{ACCOUNT}:schedule/default/retrain"
            }
        },
    )
    assert check_stack("iam-trust-source-arn", [_role(resource, "sched", one_schedule), schedule])


def _pod_role(resource, condition=None):
    return _role(
        resource,
        "pods",
        _trust("pods.eks.amazonaws.com", condition, ("sts:AssumeRole", "sts:TagSession")),
    )


def _association(resource, **overrides):
    props = {
        "clusterName": "c",
        "namespace": "serving",
        "serviceAccount": "digits",
        "roleArn": f"arn:aws:iam::{ACCOUNT}:role/pods",
        **overrides,
    }
    return resource("aws:eks/podIdentityAssociation:PodIdentityAssociation", "assoc", **props)


CLUSTER_ARN = f"arn:aws:eks:us-east-1:{ACCOUNT}:cluster/c"
SCOPED = {
    "StringEquals": {
        "aws:RequestTag/eks-cluster-arn": CLUSTER_ARN,
        "aws:RequestTag/kubernetes-namespace": "serving",
        "aws:RequestTag/kubernetes-service-account": "digits",
    }
}


def test_an_unscoped_pod_identity_role_is_caught(check_stack, resource):
    [message] = check_stack("iam-pod-identity-trust", [_pod_role(resource), _association(resource)])
    assert "not scoped" in message and "aws:RequestTag/kubernetes-service-account" in message


def test_a_scoped_role_passes_for_its_service_account_only(check_stack, resource):
    assert (
        check_stack("iam-pod-identity-trust", [_pod_role(resource, SCOPED), _association(resource)])
        == []
    )
    [message] = check_stack(
        "iam-pod-identity-trust",
        [_pod_role(resource, SCOPED), _association(resource, serviceAccount="other")],
    )
    assert "serving/other" in message and "no credentials" in message


def test_session_tags_switched_off_break_a_scoped_role(check_stack, resource):
    assoc = _association(resource, disableSessionTags=True)
    [message] = check_stack("iam-pod-identity-trust", [_pod_role(resource, SCOPED), assoc])
    assert "disables session tags" in message


def test_addon_associations_run_in_kube_system(check_stack, resource):
    kube_system = {
        "StringEquals": {
            **SCOPED["StringEquals"],
            "aws:RequestTag/kubernetes-namespace": "kube-system",
            "aws:RequestTag/kubernetes-service-account": "aws-node",
        }
    }
    addon = resource(
        "aws:eks/addon:Addon",
        "cni",
        clusterName="c",
        addonName="vpc-cni",
        podIdentityAssociations=[
            {"roleArn": f"arn:aws:iam::{ACCOUNT}:role/pods", "serviceAccount": "aws-node"}
        ],
    )
    assert check_stack("iam-pod-identity-trust", [_pod_role(resource, kube_system), addon]) == []
    assert check_stack("iam-pod-identity-trust", [_pod_role(resource, SCOPED), addon])
