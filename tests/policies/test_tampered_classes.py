"""The class rules on the real program's plans, each weakened in one place the way a careless
change would: the rule must name the resource it catches. Every case edits what the program
really declares (same type tokens, property paths and names), so a rule that drifted from the
program's shapes fails here."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable

import pytest

from policies.offline import check_plan


def _edit(plan, type_: str, change: Callable[[dict], None], name: str | None = None):
    """A copy of `plan` whose first resource of `type_` by name (or the one named `name`) had
    `change` applied to its inputs and outputs; returns (plan, resource name)."""
    plan = copy.deepcopy(plan)
    # The plan's order is the order resources registered in, which outputs resolving in another
    # order can change: without a name, the first by name, so every run edits the same one.
    target = min(
        (r for r in plan.resources if r.type == type_ and (name is None or r.name == name)),
        key=lambda r: r.name,
    )
    change(target.inputs)
    change(target.outputs)
    return plan, target.name


def _drop(plan, type_: str, where: Callable[[dict], bool]):
    """A copy of `plan` without the resources of `type_` whose inputs match `where`."""
    plan = copy.deepcopy(plan)
    plan.resources = [r for r in plan.resources if not (r.type == type_ and where(r.inputs))]
    return plan


def _found(plan, policy: str) -> list[str]:
    return [f"{v.resource}: {v.message}" for v in check_plan(plan) if v.policy == policy]


def _policy_doc(key: str, edit: Callable[[dict], None]) -> Callable[[dict], None]:
    def change(props: dict) -> None:
        doc = json.loads(props[key])
        edit(doc)
        props[key] = json.dumps(doc)

    return change


def _runtime_pod(props: dict) -> dict:
    """The pod of a TrainingRuntime's node job (after its prepare job, before its evaluate)."""
    jobs = props["spec"]["template"]["spec"]["replicatedJobs"]
    (node,) = [j for j in jobs if j["name"] == "node"]
    return node["template"]["spec"]["template"]["spec"]


CASES = [
    # network exposure
    (
        "sg-no-public-ingress",
        "staging",
        "aws:ec2/securityGroup:SecurityGroup",
        None,
        lambda p: p["ingress"][0].update(cidrBlocks=["0.0.0.0/0"]),
    ),
    (
        "subnet-no-public-ip",
        "prod",
        "aws:ec2/subnet:Subnet",
        "mlplatform-prod-private-us-east-1b",
        lambda p: p.update(mapPublicIpOnLaunch=True),
    ),
    # IAM
    (
        "iam-no-admin-managed-policy",
        "dev",
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        None,
        lambda p: p.update(policyArn="arn:aws:iam::aws:policy/AdministratorAccess"),
    ),
    (
        "iam-no-service-wildcard",
        "dev",
        "aws:iam/rolePolicy:RolePolicy",
        "mlplatform-dev-s3-csi",
        _policy_doc("policy", lambda d: d["Statement"][1].update(Action="s3:*")),
    ),
    (
        "iam-no-service-wildcard",
        "prod",
        "aws:kms/key:Key",
        None,
        _policy_doc("policy", lambda d: d["Statement"][1].update(Action="kms:*")),
    ),
    (
        "iam-trust-source-account",
        "prod",
        "aws:iam/role:Role",
        "mlplatform-prod-digits-sagemaker-training",
        _policy_doc("assumeRolePolicy", lambda d: d["Statement"][0].pop("Condition")),
    ),
    (
        "iam-pod-identity-trust",
        "dev",
        "aws:iam/role:Role",
        "mlplatform-dev-vpc-cni",
        _policy_doc(
            "assumeRolePolicy",
            lambda d: d["Statement"][0]["Condition"]["StringEquals"].update(
                {"aws:RequestTag/kubernetes-namespace": "default"}
            ),
        ),
    ),
    # Kubernetes workloads (staging declares the EKS plane's Deployment and TrainingRuntime)
    (
        "k8s-no-host-access",
        "staging",
        "kubernetes:apps/v1:Deployment",
        None,
        lambda p: p["spec"]["template"]["spec"].update(hostNetwork=True),
    ),
    (
        "k8s-non-root",
        "staging",
        "kubernetes:trainer.kubeflow.org/v1alpha1:TrainingRuntime",
        None,
        lambda p: _runtime_pod(p)["initContainers"][1]["securityContext"].update(runAsUser=0),
    ),
    (
        "k8s-no-privilege-escalation",
        "staging",
        "kubernetes:apps/v1:Deployment",
        None,
        lambda p: p["spec"]["template"]["spec"]["initContainers"][0]["securityContext"].update(
            allowPrivilegeEscalation=True
        ),
    ),
    (
        "eks-network-policy-enforced",
        "prod",
        "aws:eks/addon:Addon",
        "mlplatform-prod-vpc-cni",
        lambda p: p.pop("configurationValues"),
    ),
    # encryption
    (
        "stack-key-encryption",
        "dev",
        "aws:cloudwatch/logGroup:LogGroup",
        None,
        lambda p: p.pop("kmsKeyId"),
    ),
    (
        "stack-key-encryption",
        "dev",
        "aws:secretsmanager/secret:Secret",
        None,
        lambda p: p.update(kmsKeyId="arn:aws:kms:us-east-1:999999999999:key/not-ours"),
    ),
    (
        "kms-log-group-grant",
        "staging",
        "aws:kms/key:Key",
        None,
        _policy_doc("policy", lambda d: d["Statement"][1].pop("Condition")),
    ),
    (
        "s3-bucket-kms-encryption",
        "prod",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "mlplatform-prod-access-logs",
        lambda p: p.update(
            rules=[
                {
                    "applyServerSideEncryptionByDefault": {
                        "sseAlgorithm": "aws:kms",
                        "kmsMasterKeyId": "k",
                    }
                }
            ]
        ),
    ),
    # registries and restrictions
    (
        "ecr-exclusions-spare-deploy-tags",
        "dev",
        "aws:ecr/repository:Repository",
        None,
        lambda p: p["imageTagMutabilityExclusionFilters"][0].update(filter="ctx-*"),
    ),
    (
        "aws-feature-restrictions",
        "prod",
        "aws:ecr/repository:Repository",
        None,
        lambda p: p["imageTagMutabilityExclusionFilters"][0].update(filter="cache/*"),
    ),
]


@pytest.mark.parametrize(
    ("policy", "stack", "type_", "name", "change"),
    CASES,
    ids=[f"{c[0]}-{c[1]}-{c[2].rsplit(':', 1)[-1]}" for c in CASES],
)
def test_a_weakened_resource_of_the_real_program_is_caught(
    plan_of, policy, stack, type_, name, change
):
    before = _found(plan_of(stack), policy)
    plan, target = _edit(plan_of(stack), type_, change, name)
    after = _found(plan, policy)
    new = [m for m in after if m not in before]
    assert new, f"{policy} did not catch the weakened {type_} {target}"
    assert any(target in m for m in new), new


def test_a_node_group_moved_into_a_public_subnet_is_caught(plan_of):
    plan = plan_of("dev")
    public = next(
        s.outputs["id"] for s in plan.of_type("aws:ec2/subnet:Subnet") if "-public-" in s.name
    )
    weakened, name = _edit(
        plan, "aws:eks/nodeGroup:NodeGroup", lambda p: p["subnetIds"].append(public)
    )
    [message] = _found(weakened, "workloads-in-private-subnets")
    assert name in message and "public" in message


def test_a_workload_namespace_that_loses_its_default_deny_is_caught(plan_of):
    plan = _drop(
        plan_of("staging"),
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
        lambda p: p["metadata"] == {"name": "default-deny", "namespace": "serving"},
    )
    [message] = _found(plan, "k8s-default-deny")
    assert "'serving'" in message


def test_a_bucket_that_stops_logging_its_requests_is_caught(plan_of):
    plan = plan_of("prod")
    checkpoints = plan.get("aws:s3/bucket:Bucket", "mlplatform-prod-checkpoints").outputs["bucket"]
    [message] = _found(
        _drop(plan, "aws:s3/bucketLogging:BucketLogging", lambda p: p["bucket"] == checkpoints),
        "s3-access-logging",
    )
    assert "mlplatform-prod-checkpoints" in message


def test_a_spot_training_step_whose_wait_is_shorter_than_its_runtime_is_caught(plan_of):
    def shorten(props):
        doc = json.loads(props["pipelineDefinition"])
        train = next(s for s in doc["Steps"] if s["Type"] == "Training")
        train["Arguments"]["StoppingCondition"]["MaxWaitTimeInSeconds"] = 60
        props["pipelineDefinition"] = json.dumps(doc)

    plan, name = _edit(
        plan_of("prod"), "aws:sagemaker/pipeline:Pipeline", shorten, "mlplatform-prod-digits"
    )
    found = [m for m in _found(plan, "aws-feature-restrictions") if "spot-max-wait" in m]
    assert found and name in found[0]


def test_a_schedule_role_bound_to_one_schedule_instead_of_its_group_is_caught(plan_of):
    # The real schedule role is bound to its schedule group; one schedule is the wrong form.
    def one_schedule(props):
        doc = json.loads(props["assumeRolePolicy"])
        doc["Statement"][0]["Condition"]["ArnLike"] = {
            "aws:SourceArn": "arn:aws:scheduler:us-east-1:123456789012:schedule/default/retrain"
        }
        props["assumeRolePolicy"] = json.dumps(doc)

    plan = plan_of("prod")
    before = _found(plan, "iam-trust-source-arn")
    weakened, name = _edit(
        plan, "aws:iam/role:Role", one_schedule, "mlplatform-prod-digits-schedule"
    )
    new = [m for m in _found(weakened, "iam-trust-source-arn") if m not in before]
    assert len(new) == 1 and name in new[0] and "schedule-group/default" in new[0]


def _pods(props: dict) -> list[dict]:
    spec = props["spec"]["template"]["spec"]
    if "replicatedJobs" in spec:
        spec = spec["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    return [spec]


WORKLOADS = [
    "kubernetes:apps/v1:Deployment",
    "kubernetes:trainer.kubeflow.org/v1alpha1:TrainingRuntime",
]


@pytest.mark.parametrize("type_", WORKLOADS, ids=["deployment", "runtime"])
@pytest.mark.parametrize(
    ("policy", "weaken"),
    [
        (
            "k8s-read-only-root-fs",
            lambda pod: pod["containers"][0]["securityContext"].update(
                readOnlyRootFilesystem=False
            ),
        ),
        (
            "k8s-memory-limits",
            lambda pod: pod["initContainers"][0]["resources"]["limits"].pop("memory"),
        ),
        ("k8s-service-account-token", lambda pod: pod.pop("automountServiceAccountToken")),
    ],
)
def test_staging_workloads_pass_and_one_weakened_container_is_caught(
    plan_of, type_, policy, weaken
):
    # The real serving Deployment and TrainingRuntime pods hold the rule; take one thing away.
    plan = plan_of("staging")
    assert not any(type_.rsplit(":", 1)[-1] in m for m in _found(plan, policy))
    weakened, name = _edit(plan, type_, lambda p: weaken(_pods(p)[0]))
    found = _found(weakened, policy)
    assert len(found) == 1 and name in found[0]
