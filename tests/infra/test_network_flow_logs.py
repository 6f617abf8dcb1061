"""VPC flow logs: all traffic to a log group under the stack key, written by a role only this
account's flow logs can assume.

The Network declares them when its context carries the stack key, which `infra/program.py` gives
it by building storage first; these tests read the real program's plan and run the policy rules
over it.
"""

from __future__ import annotations

import copy
import json

from infra.components.storage import stack_log_groups
from mlplatform.mocks import ACCOUNT_ID
from mlplatform.plan import Plan
from policies.offline import check_plan
from tests.conftest import fixture_plan

STACK = "dev"
NAME = f"mlplatform-{STACK}-flow-logs"


def network_plan() -> Plan:
    return fixture_plan(STACK)


def test_the_vpc_logs_all_its_traffic_to_a_log_group_under_the_stack_key():
    plan = network_plan()
    (vpc,) = plan.of_type("aws:ec2/vpc:Vpc")
    (flow_log,) = plan.of_type("aws:ec2/flowLog:FlowLog")
    group = plan.get("aws:cloudwatch/logGroup:LogGroup", NAME)
    (key,) = plan.of_type("aws:kms/key:Key")
    assert flow_log.inputs["vpcId"] == vpc.outputs["id"]
    assert flow_log.inputs["trafficType"] == "ALL"
    assert flow_log.inputs["logDestinationType"] == "cloud-watch-logs"
    assert group.inputs["kmsKeyId"] == key.outputs["arn"]
    assert group.inputs["name"] == stack_log_groups(f"mlplatform-{STACK}")["flow-logs"]


def test_only_this_accounts_flow_logs_may_assume_the_writer_role():
    plan = network_plan()
    role = plan.get("aws:iam/role:Role", NAME)
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
        "ArnLike": {"aws:SourceArn": f"arn:aws:ec2:us-east-1:{ACCOUNT_ID}:vpc-flow-log/*"},
    }


def test_the_writer_role_may_write_only_its_own_log_group():
    plan = network_plan()
    policy = plan.get("aws:iam/rolePolicy:RolePolicy", NAME)
    resources = {r for s in json.loads(policy.inputs["policy"])["Statement"] for r in s["Resource"]}
    group = stack_log_groups(f"mlplatform-{STACK}")["flow-logs"]
    arn = f"arn:aws:logs:us-east-1:{ACCOUNT_ID}:log-group:{group}"
    assert resources == {arn, f"{arn}:*", f"arn:aws:logs:us-east-1:{ACCOUNT_ID}:log-group:*"}


def test_the_program_passes_every_network_trust_and_encryption_policy():
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
    role = plan.get("aws:iam/role:Role", NAME)
    for props in (role.inputs, role.outputs):
        doc = json.loads(props["assumeRolePolicy"])
        doc["Statement"][0]["Condition"]["ArnLike"]["aws:SourceArn"] = (
            "arn:aws:ec2:us-east-1:123456789012:vpc/*"
        )
        props["assumeRolePolicy"] = json.dumps(doc)
    [message] = [v.message for v in check_plan(plan) if v.policy == "iam-trust-source-arn"]
    assert "vpc-flow-log/" in message and "would fail" in message
