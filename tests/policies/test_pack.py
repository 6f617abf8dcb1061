"""The CrossGuard pack: it builds and serves, its files agree with the project, its config is valid."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import grpc
import jsonschema
import pytest
import yaml

from policies.offline import effective
from policies.pack import policies, stack_facts
from policies.rules import all_rules

POLICIES = Path(__file__).resolve().parents[2] / "policies"
ROOT = POLICIES.parent


def test_pack_main_builds_serves_and_answers_analyze_calls_when_started_like_the_engine(tmp_path):
    # `pulumi preview --policy-pack policies` runs `python -u -m pulumi.policy <engine> <dir>`.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    # What the engine passes the policy process about the stack: its name and its config.
    env["PULUMI_STACK"] = "dev"
    env["PULUMI_CONFIG"] = json.dumps(
        {
            "mlplatform:environment": "dev",
            "aws:region": "us-east-1",
            "mlplatform:budget": '{"monthlyUsd": 100}',
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(POLICIES)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # PolicyPack starts the analyzer's gRPC server, prints its port, then blocks serving it.
        first_line = process.stdout.readline().strip()
        assert first_line.isdigit(), (
            f"no port printed; stderr: {process.stderr.read() if process.poll() is not None else ''}"
        )
        assert process.poll() is None, "the pack exited instead of serving"
        _analyze_over_grpc(int(first_line))
    finally:
        process.terminate()
        process.wait(timeout=10)


def _analyze_over_grpc(port: int) -> None:
    """Ask the served pack what the engine would: its policies, then a verdict on a resource."""
    from google.protobuf import empty_pb2, struct_pb2
    from pulumi.runtime import proto
    from pulumi.runtime.proto import analyzer_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = analyzer_pb2_grpc.AnalyzerStub(channel)
        info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=10)
        assert [p.name for p in info.policies] == [r.name for r in all_rules()]
        properties = struct_pb2.Struct()
        tags = {"project": "mlplatform", "environment": "dev", "owner": "o", "cost-center": "c"}
        properties.update(
            {
                "imageTagMutability": "MUTABLE",
                "imageScanningConfiguration": {"scanOnPush": True},
                "tags": tags,
            }
        )
        response = stub.Analyze(
            proto.AnalyzeRequest(
                type="aws:ecr/repository:Repository",
                properties=properties,
                urn="urn:pulumi:dev::mlplatform::aws:ecr/repository:Repository::r",
                name="r",
            ),
            timeout=10,
        )
        assert {d.policyName for d in response.diagnostics} == {"ecr-immutable-tags"}
        # A stack policy over the engine's resource list: the budget from the stack's config.
        pool = struct_pb2.Struct()
        pool.update(
            {
                "instanceTypes": ["g5.xlarge"],
                "capacityType": "ON_DEMAND",
                "scalingConfig": {"minSize": 1, "maxSize": 1},
            }
        )
        stack = stub.AnalyzeStack(
            proto.AnalyzeStackRequest(
                resources=[
                    proto.AnalyzerResource(
                        type="aws:eks/nodeGroup:NodeGroup",
                        properties=pool,
                        urn="urn:pulumi:dev::mlplatform::aws:eks/nodeGroup:NodeGroup::gpu",
                        name="gpu",
                    )
                ]
            ),
            timeout=10,
        )
        [budget] = stack.diagnostics
        assert (
            budget.policyName == "monthly-budget" and "over the budget of $100.00" in budget.message
        )


def test_pack_has_one_policy_per_rule_with_valid_names():
    names = [p.name for p in policies()]
    assert names == [r.name for r in all_rules()]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z0-9-]{1,100}", n) and n != "all" for n in names)


def test_every_rules_check_has_the_shape_its_scope_says():
    # The adapters call a rule through check_resource or check_stack, chosen by its scope.
    shapes = {
        "resource": ["resource_type", "props", "config"],
        "stack": ["resources", "config", "facts"],
    }
    wrong = [
        r.name
        for r in all_rules()
        if list(inspect.signature(r.check).parameters) != shapes[r.scope]
    ]
    assert wrong == []


def test_every_rule_has_a_positive_match_test():
    # Pitfall 7.7: a rule on a stale resource shape silently stops matching; each needs a test
    # that sees it fire.
    tests = "\n".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    missing = [r.name for r in all_rules() if f'"{r.name}"' not in tests]
    assert missing == []


def test_policy_project_file_pins_the_python_venv():
    project = yaml.safe_load((POLICIES / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    # The CLI does not default a local pack's venv; without this it runs on whatever python3 is on PATH.
    assert project["runtime"]["options"]["virtualenv"] == "venv"
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])


def test_pack_requirements_use_the_projects_pins():
    pins = {}
    for line in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        name, version = line.split("==")
        pins[name] = version
    required = [
        line.split("#")[0].strip()
        for line in (POLICIES / "requirements.txt").read_text().splitlines()
    ]
    required = [line for line in required if line]
    assert required, "requirements.txt lists nothing"
    for line in required:
        name, version = line.split("==")
        assert pins.get(name) == version, (
            f"{name}: pack pins {version}, pyproject pins {pins.get(name)}"
        )


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_policy_config_files_name_real_policies_and_match_their_schemas(environment):
    config = json.loads((POLICIES / f"config.{environment}.json").read_text())
    rules = {r.name: r for r in all_rules()}
    for key, value in config.items():
        if key == "all":
            assert value in ("advisory", "mandatory", "disabled")
            continue
        assert key in rules, f"config.{environment}.json: no policy named {key!r}"
        params = (
            {k: v for k, v in value.items() if k != "enforcementLevel"}
            if isinstance(value, dict)
            else {}
        )
        schema = {
            "type": "object",
            "properties": dict(rules[key].config_schema),
            "additionalProperties": False,
        }
        jsonschema.validate(params, schema)


def test_prod_is_stricter_than_dev_where_it_matters():
    dev, prod = (json.loads((POLICIES / f"config.{e}.json").read_text()) for e in ("dev", "prod"))
    rules = {r.name: r for r in all_rules()}
    assert effective(rules["eks-private-endpoint"], prod) == (
        "mandatory",
        {"allowPublicWithAllowList": False},
    )
    assert effective(rules["eks-private-endpoint"], dev)[0] == "advisory"
    assert effective(rules["training-spot-required"], dev) == ("mandatory", {"allGpuPools": True})
    assert "p5" in effective(rules["gpu-allowed-families"], prod)[1]["allowedFamilies"]
    assert "p5" not in effective(rules["gpu-allowed-families"], dev)[1]["allowedFamilies"]


def test_stack_policies_read_budget_and_environment_from_the_stack_config(monkeypatch):
    # The engine hands the stack's config to the policy process as PULUMI_CONFIG.
    config = {
        "mlplatform:environment": "prod",
        "aws:region": "eu-west-1",
        "mlplatform:budget": json.dumps({"monthlyUsd": 1234}),
    }
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(config))
    monkeypatch.setenv("PULUMI_STACK", "prod")
    facts = stack_facts()
    assert (facts.stack, facts.environment, facts.region, facts.budget_monthly_usd) == (
        "prod",
        "prod",
        "eu-west-1",
        1234,
    )


def test_pack_imports_nothing_its_own_requirements_do_not_install():
    # policies/venv gets only policies/requirements.txt; the rules must not pull in the program's
    # heavier dependencies (providers, pydantic, boto3). `infra.instances` is allowed (the GPU and
    # volume-key rules read its facts table): it needs only the standard library and imports
    # moto, a dev dependency, only to regenerate the table.
    code = (
        "import sys, policies.pack; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
        ).stdout.split()
    )
    heavy = {
        "pydantic",
        "boto3",
        "botocore",
        "pulumi_aws",
        "pulumi_kubernetes",
        "pulumi_docker_build",
        "kubernetes",
        "moto",
    }
    assert loaded & heavy == set()
