"""VPC flow logs: all traffic to a log group under the stack key, written by a role only this
account's flow logs can assume.

The Network declares them when its context carries the stack key. `infra/program.py` builds the
network before storage today, so these tests declare Storage then Network directly, in the order
the program must adopt, under the offline plan's mocks, and run the policy rules over the result.
"""

from __future__ import annotations

import copy
import json

from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings
from pulumi.runtime.stack import run_in_stack

from infra.components.network import Network, NetworkArgs
from infra.components.storage import Storage, StorageArgs, stack_log_groups
from infra.config import PROJECT
from infra.context import StackContext
from infra.stackfile import STACKS_DIR, load_stack_file
from mlplatform.mocks import ACCOUNT_ID, PlanMocks
from mlplatform.plan import Plan, RecordingMonitor, _run_isolated
from policies.offline import check_plan

STACK = "dev"


def _declare_network_after_storage() -> Plan:
    config, raw = load_stack_file(STACKS_DIR / f"Pulumi.{STACK}.yaml")

    def build() -> None:
        context = StackContext(
            stack=STACK,
            environment=config.environment,
            account_id=ACCOUNT_ID,
            partition="aws",
            region=config.region,
        )
        name = context.prefix
        storage = Storage(name, StorageArgs(settings=config.storage, context=context))
        keyed = context.with_storage(storage.kms_key_arn, storage.bucket_names, storage.bucket_arns)
        Network(name, NetworkArgs(settings=config.network, context=keyed))

    def run() -> Plan:
        monitor = RecordingMonitor(PlanMocks(region=config.region, stack=STACK))
        settings.configure(
            pulumi_mocks.MockSettings(
                monitor=monitor,
                monitor_features=set(monitor.GetDeploymentInfo(None).supportedFeatures),
                engine=pulumi_mocks.MockEngine(None),
                project=PROJECT,
                stack=STACK,
                dry_run=False,
                organization="organization",
                callbacks=None,
            )
        )
        pulumi_mocks._sync_await(run_in_stack(build))
        return Plan(STACK, raw.source, config, monitor.registrations, {})

    return _run_isolated(run)


_plan: list[Plan] = []


def network_plan() -> Plan:
    if not _plan:
        _plan.append(_declare_network_after_storage())
    return _plan[0]


def test_the_vpc_logs_all_its_traffic_to_a_log_group_under_the_stack_key():
    plan = network_plan()
    (vpc,) = plan.of_type("aws:ec2/vpc:Vpc")
    (flow_log,) = plan.of_type("aws:ec2/flowLog:FlowLog")
    (group,) = plan.of_type("aws:cloudwatch/logGroup:LogGroup")
    (key,) = plan.of_type("aws:kms/key:Key")
    assert flow_log.inputs["vpcId"] == vpc.outputs["id"]
    assert flow_log.inputs["trafficType"] == "ALL"
    assert flow_log.inputs["logDestinationType"] == "cloud-watch-logs"
    assert group.inputs["kmsKeyId"] == key.outputs["arn"]
    assert group.inputs["name"] == stack_log_groups(f"mlplatform-{STACK}")["flow-logs"]


def test_only_this_accounts_flow_logs_may_assume_the_writer_role():
    plan = network_plan()
    role = plan.get("aws:iam/role:Role", f"mlplatform-{STACK}-flow-logs")
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
        "ArnLike": {"aws:SourceArn": f"arn:aws:ec2:us-east-1:{ACCOUNT_ID}:vpc-flow-log/*"},
    }


def test_the_writer_role_may_write_only_its_own_log_group():
    plan = network_plan()
    (policy,) = plan.of_type("aws:iam/rolePolicy:RolePolicy")
    resources = {r for s in json.loads(policy.inputs["policy"])["Statement"] for r in s["Resource"]}
    group = stack_log_groups(f"mlplatform-{STACK}")["flow-logs"]
    arn = f"arn:aws:logs:us-east-1:{ACCOUNT_ID}:log-group:{group}"
    assert resources == {arn, f"{arn}:*", f"arn:aws:logs:us-east-1:{ACCOUNT_ID}:log-group:*"}


def test_network_and_storage_together_pass_every_network_trust_and_encryption_policy():
    relevant = {
        "vpc-flow-logs",
        "stack-key-encryption",
        "kms-log-group-grant",
        "iam-trust-source-account",
        "iam-trust-source-arn",
        "iam-no-service-wildcard",
        "sg-no-public-ingress",
        "subnet-no-public-ip",
        "s3-bucket-kms-encryption",
        "s3-access-logging",
    }
    found = [f"{v.policy}: {v.message}" for v in check_plan(network_plan()) if v.policy in relevant]
    assert found == []


def test_a_flow_log_that_stops_or_narrows_is_caught():
    plan = copy.deepcopy(network_plan())
    (flow_log,) = plan.of_type("aws:ec2/flowLog:FlowLog")
    flow_log.inputs["trafficType"] = flow_log.outputs["trafficType"] = "REJECT"
    assert [v.policy for v in check_plan(plan) if v.policy == "vpc-flow-logs"] == ["vpc-flow-logs"]
    plan.resources.remove(flow_log)
    assert [v.policy for v in check_plan(plan) if v.policy == "vpc-flow-logs"] == ["vpc-flow-logs"]


def test_a_flow_log_role_bound_to_the_wrong_source_arn_is_caught():
    plan = copy.deepcopy(network_plan())
    role = plan.get("aws:iam/role:Role", f"mlplatform-{STACK}-flow-logs")
    for props in (role.inputs, role.outputs):
        doc = json.loads(props["assumeRolePolicy"])
        doc["Statement"][0]["Condition"]["ArnLike"]["aws:SourceArn"] = (
            "arn:aws:ec2:us-east-1:123456789012:vpc/*"
        )
        props["assumeRolePolicy"] = json.dumps(doc)
    [message] = [v.message for v in check_plan(plan) if v.policy == "iam-trust-source-arn"]
    assert "vpc-flow-log/" in message and "would fail" in message
