"""A bad stack file stops the program before any resource, with one message naming the file,
the key path, the value given and what is allowed; no traceback reaches the user."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from infra.config import StackConfigError
from mlplatform.cli import main
from mlplatform.plan import plan_stack

# (case id, overrides to the dev stack, key path the message must name, other expected text)
MALFORMED = [
    (
        "wrong-type",
        {"mlplatform:network": {"azCount": "two"}},
        "mlplatform:network.azCount",
        "valid integer",
    ),
    (
        "unknown-key",
        {"mlplatform:network": {"natGateway": "single"}},
        "mlplatform:network.natGateway",
        "unknown key",
    ),
    (
        "unknown-section",
        {"mlplatform:netwrok": {"cidr": "10.0.0.0/16"}},
        "mlplatform:netwrok",
        "unknown key",
    ),
    ("unknown-aws-key", {"aws:regoin": "us-east-1"}, "aws:regoin", "did you mean aws:region"),
    (
        "bad-cidr",
        {"mlplatform:network": {"cidr": "10.0.0.0/33"}},
        "mlplatform:network.cidr",
        "not a valid IPv4 CIDR",
    ),
    (
        "public-cidr",
        {"mlplatform:network": {"cidr": "8.8.0.0/16"}},
        "mlplatform:network.cidr",
        "private",
    ),
    (
        "missing-required",
        {"mlplatform:tags": {"owner": None}},
        "mlplatform:tags.owner",
        "(missing)",
    ),
    (
        "negative-days",
        {"mlplatform:storage": {"checkpointExpirationDays": -5}},
        "mlplatform:storage.checkpointExpirationDays",
        "greater than or equal to 1",
    ),
    ("bad-region", {"aws:region": "us-east-9"}, "aws:region", "unknown AWS region"),
    (
        "bad-environment",
        {"mlplatform:environment": "production"},
        "mlplatform:environment",
        "'dev', 'staging' or 'prod'",
    ),
    (
        "contradiction",
        {"mlplatform:storage": {"protect": True, "forceDestroy": True}},
        "mlplatform:storage",
        "contradicts",
    ),
    (
        "bad-email",
        {"mlplatform:alerts": {"emails": ["oncall"]}},
        "mlplatform:alerts.emails",
        "not an email",
    ),
    (
        "negative-budget",
        {"mlplatform:budget": {"monthlyUsd": -1}},
        "mlplatform:budget.monthlyUsd",
        "greater than 0",
    ),
    (
        "reserved-tag",
        {"mlplatform:tags": {"extra": {"aws:owner": "x"}}},
        "mlplatform:tags.extra",
        "not start 'aws:'",
    ),
    (
        "bad-nat-layout",
        {"mlplatform:network": {"natGateways": "many"}},
        "mlplatform:network.natGateways",
        "'single', 'perZone' or 'none'",
    ),
    (
        "too-few-zones",
        {"mlplatform:network": {"azCount": 1}},
        "mlplatform:network.azCount",
        "greater than or equal to 2",
    ),
]


@pytest.mark.parametrize(
    ("case", "overrides", "key", "expected"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_malformed_stack_file_fails_with_file_key_and_reason(
    tmp_path, capsys, case, overrides, key, expected, stack_variant
):
    stack_variant("dev", overrides, name=case)
    code = main(["plan", "--stack", case, "--stacks-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"Pulumi.{case}.yaml:" in err
    assert key in err
    assert expected in err
    assert "Traceback" not in err


def test_error_names_the_line_of_the_bad_key(tmp_path, stack_variant):
    path = stack_variant("dev", {"mlplatform:network": {"cidr": "10.0.0.0/33"}})
    line = next(
        i for i, text in enumerate(path.read_text().splitlines(), 1) if "10.0.0.0/33" in text
    )
    with pytest.raises(
        StackConfigError,
        match=rf"Pulumi.variant.yaml:{line}: mlplatform:network.cidr = '10.0.0.0/33'",
    ):
        plan_stack(path)


def test_every_problem_is_reported_at_once(tmp_path, stack_variant):
    path = stack_variant("dev", {"aws:region": "mars-1", "mlplatform:network": {"azCount": 9}})
    with pytest.raises(StackConfigError, match=r"2 problems") as error:
        plan_stack(path)
    assert "aws:region" in str(error.value) and "mlplatform:network.azCount" in str(error.value)


def test_misspelt_instance_type_suggests_the_real_one():
    from infra.config import check_ec2_instance_type

    with pytest.raises(ValueError, match=r"did you mean g5\.xlarge"):
        check_ec2_instance_type("g5.xlarg")


def test_sagemaker_type_without_instance_facts_is_refused(tmp_path, stack_variant):
    # ml.p3.2xlarge is a valid TrainingInstanceType, but the facts table (moto's AWS data) lacks
    # p3.2xlarge, so whether its volume may take the stack's KMS key is unknown.
    training = {"instanceType": "ml.p3.2xlarge"}
    path = stack_variant("dev", {"mlplatform:models": [{"name": "digits", "training": training}]})
    with pytest.raises(
        StackConfigError, match=r"models\[0\]\.training.*no instance facts for p3\.2xlarge"
    ):
        plan_stack(path)


def test_invalid_yaml_is_reported_without_traceback(tmp_path, capsys):
    (tmp_path / "Pulumi.broken.yaml").write_text("config:\n  aws:region: [us-east-1\n")
    assert main(["plan", "--stack", "broken", "--stacks-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Pulumi.broken.yaml: not valid YAML" in err and "Traceback" not in err


def test_unknown_stack_lists_the_stacks_that_exist(capsys, tmp_path):
    for stack in ("dev", "prod"):
        (tmp_path / f"Pulumi.{stack}.yaml").write_text("config: {}\n")
    assert main(["plan", "--stack", "qa", "--stacks-dir", str(tmp_path)]) == 2
    assert "stacks in" in (err := capsys.readouterr().err)
    assert "Pulumi.dev.yaml, Pulumi.prod.yaml" in err


def test_secret_values_never_appear_in_error_messages(tmp_path, stack_variant):
    path = stack_variant("dev", {"mlplatform:secrets": {"bad name!": "hunter2-token"}})
    with pytest.raises(StackConfigError) as error:
        plan_stack(path)
    assert "mlplatform:secrets" in str(error.value)
    assert "hunter2-token" not in str(error.value)


def test_console_script_prints_one_message_and_exits_2(tmp_path, stack_variant):
    stack_variant("dev", {"mlplatform:storage": {"kmsDeletionWindowDays": 3}}, name="bad")
    script = Path(sys.executable).parent / "mlplatform"
    result = subprocess.run(
        [str(script), "plan", "--stack", "bad", "--stacks-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "mlplatform:storage.kmsDeletionWindowDays = 3" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_an_unknown_key_suggests_the_near_one_and_lists_the_allowed_keys(stack_variant):
    path = stack_variant("dev", {"mlplatform:network": {"natGateway": "single"}})
    with pytest.raises(StackConfigError) as error:
        plan_stack(path)
    assert (
        "mlplatform:network.natGateway = 'single': unknown key; did you mean natGateways? "
        "Allowed: azCount, cidr, natGateways, privateEndpoints"
    ) in str(error.value)


def test_a_key_of_the_other_plane_says_which_plane_it_belongs_to(stack_variant):
    training = {"plane": "sagemaker", "pool": "l4"}
    path = stack_variant("dev", {"mlplatform:models": [{"name": "digits", "training": training}]})
    with pytest.raises(
        StackConfigError, match=r"training.pool = 'l4': unknown key; it applies to plane: eks only"
    ):
        plan_stack(path)
