"""`mlplatform plan` as a person reads it: progress while it works, resources as a tree under
their components, a count that says what it counts; the program and stack files found where
Pulumi.yaml says; ESC environments planned offline."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from infra.stackfile import pulumi_project
from mlplatform import terminal
from mlplatform.cli import main
from mlplatform.plan import plan_stack
from mlplatform.report import preview
from mlplatform.variants import write_variant


def test_the_tree_puts_every_resource_under_its_component(plan_of):
    plan = plan_of("dev")
    lines = terminal.plan_text(plan).splitlines()
    assert lines[0] == "Stack dev  (tests/stacks/Pulumi.dev.yaml)"
    network = next(
        i for i, line in enumerate(lines) if "mlplatform:network:Network  mlplatform-dev" in line
    )
    vpc = next(i for i, line in enumerate(lines) if "aws:ec2/vpc:Vpc  mlplatform-dev" in line)
    assert lines[network].startswith("├── ") and lines[vpc].startswith("│   ├── "), (
        "the VPC is one level under the Network component"
    )
    assert vpc > network and "cidrBlock=10.10.0.0/16" in lines[vpc]
    for r in plan.resources:
        assert f"{r.type}  {r.name}" in "\n".join(lines), (r.type, r.name)


def test_the_count_says_components_are_counted_as_resources(plan_of):
    plan = plan_of("dev")
    components = sum(not r.custom for r in plan.resources)
    text = terminal.counts(plan)
    assert text.startswith(f"{len(plan.resources)} resources: ")
    assert text.endswith(f" + {components} components")
    assert "1 provider" in text and "aws, " in text


def test_table_output_has_tree_summary_policies_cost_and_no_progress_when_piped(capsys):
    assert main(["plan", "--stack", "dev"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("Stack dev  (stacks/Pulumi.dev.yaml)\n")
    for text in ("Summary for stack 'dev'", "Policies: no violations.", "Cost estimate", "TOTAL"):
        assert text in captured.out
    assert captured.err == "", "stderr is not a terminal here: no spinner"
    assert not any(line != line.rstrip() for line in captured.out.splitlines())


def test_progress_names_each_phase_and_counts_resources_as_they_come(tmp_path):
    heard: list[str] = []
    path = write_variant(tmp_path, "dev", {})
    preview(plan_stack(path, "dev", progress=heard.append), progress=heard.append)
    assert heard[0] == f"validating {path}"
    counted = [m for m in heard if m.startswith("running the program")]
    assert counted[:2] == [
        "running the program (1 resource so far)",
        "running the program (2 resources so far)",
    ]
    assert len(counted) > 100
    assert heard[-2:] == ["estimating cost", "checking policies"]


def _run_in_terminal(argv: list[str], cwd: Path) -> tuple[int, bytes, bytes]:
    """Run the CLI with stderr on a pseudo-terminal, as at a person's terminal; returns the exit
    code, stdout and what reached the terminal."""
    reader, writer = pty.openpty()
    seen: list[bytes] = []

    def drain() -> None:  # read as it comes, so the child never blocks on a full terminal
        with contextlib.suppress(OSError):  # EIO once the child's end is closed
            while chunk := os.read(reader, 65536):
                seen.append(chunk)

    thread = threading.Thread(target=drain)
    thread.start()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlplatform", *argv],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=writer,
        )
        os.close(writer)
        out, _ = process.communicate(timeout=300)
    finally:
        thread.join(timeout=30)
        os.close(reader)
    return process.returncode, out, b"".join(seen)


@pytest.mark.parametrize("quiet", [False, True], ids=["terminal", "quiet"])
def test_at_a_terminal_progress_goes_to_stderr_unless_quiet(quiet):
    root = pulumi_project().root
    code, out, terminal_text = _run_in_terminal(
        ["plan", "--stack", "dev", "--json", *(["--quiet"] * quiet)], root
    )
    assert code == 0
    assert json.loads(out)["stack"] == "dev", "stdout stays clean JSON"
    if quiet:
        assert terminal_text == b""
    else:
        assert b"validating stacks/Pulumi.dev.yaml" in terminal_text
        assert b"resources so far)" in terminal_text and b"checking policies" in terminal_text


def test_a_stack_importing_esc_environments_plans_offline(tmp_path, plan_of, capsys, stack_variant):
    path = stack_variant("dev", {}, name="esc")
    document = yaml.safe_load(path.read_text())
    document["environment"] = ["myorg/aws-dev", "myorg/ml-secrets"]
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    plan = plan_stack(path, "dev")
    assert plan.environments == ["myorg/aws-dev", "myorg/ml-secrets"]
    assert sorted(r.urn for r in plan.resources) == sorted(r.urn for r in plan_of("dev").resources)
    assert main(["plan", "--stack", "esc", "--stacks-dir", str(tmp_path)]) == 0
    assert (
        "Imports Pulumi ESC environments myorg/aws-dev, myorg/ml-secrets" in capsys.readouterr().out
    )


def test_pulumi_project_defaults_are_pulumis(tmp_path):
    assert pulumi_project(tmp_path).main == tmp_path / "__main__.py"
    assert pulumi_project(tmp_path).stacks_dir == tmp_path
    (tmp_path / "Pulumi.yaml").write_text("name: x\nruntime: python\nmain: src/\n")
    (tmp_path / "src").mkdir()
    assert pulumi_project(tmp_path).main == tmp_path / "src" / "__main__.py"


def test_the_plan_runs_the_main_and_reads_the_stack_dir_that_pulumi_yaml_names(project_copy):
    # A project whose entry point and stack folder are not the defaults of this repository.
    (project_copy / "stacks").rename(project_copy / "environments")
    (project_copy / "app.py").write_text(
        '"""Entry point named by Pulumi.yaml."""\n'
        "import pulumi\n\n"
        "import infra.__main__  # noqa: F401  (declares the stack)\n\n"
        'pulumi.export("entry", "app.py")\n'
    )
    project = yaml.safe_load((project_copy / "Pulumi.yaml").read_text())
    project.update({"main": "app.py", "stackConfigDir": "environments"})
    (project_copy / "Pulumi.yaml").write_text(yaml.safe_dump(project))
    done = subprocess.run(
        [sys.executable, "-m", "mlplatform", "plan", "--stack", "qa", "--json"],
        cwd=project_copy,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["source"] == "environments/Pulumi.qa.yaml"
    assert result["outputs"]["entry"] == "app.py"
    assert result["outputs"]["pipelineNames"] == {"digits": "mlplatform-qa-digits"}


def test_sagemaker_arns_take_the_forms_aws_gives_them(plan_of):
    # IAM resources and trust conditions are built from these ARNs: a mock that answered with a
    # made-up form would let a policy scoped to the wrong resource pass offline.
    plan = plan_of("prod")
    forms = {
        "aws:sagemaker/endpoint:Endpoint": "endpoint",
        "aws:sagemaker/endpointConfiguration:EndpointConfiguration": "endpoint-config",
        "aws:sagemaker/model:Model": "model",
        "aws:sagemaker/pipeline:Pipeline": "pipeline",
        "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer": "mlflow-tracking-server",
    }
    seen = set()
    for resource in plan.resources:
        if resource.type in forms:
            seen.add(resource.type)
            arn = resource.outputs["arn"]
            prefix = f"arn:aws:sagemaker:{plan.config.region}:"
            assert arn.startswith(prefix), arn
            assert re.fullmatch(
                rf"\d{{12}}:{forms[resource.type]}/[a-z0-9-]+", arn[len(prefix) :]
            ), arn
    assert seen == set(forms), f"the prod-like stack no longer declares {set(forms) - seen}"
    # Training roles may log to that server, and to nothing else.
    server = next(r for r in plan.resources if r.type.endswith("MlflowTrackingServer"))
    grants = [
        statement
        for r in plan.resources
        if r.type == "aws:iam/rolePolicy:RolePolicy"
        for statement in json.loads(r.inputs["policy"])["Statement"]
        if any(a.startswith("sagemaker-mlflow:") for a in _as_list(statement["Action"]))
    ]
    assert grants and all(s["Resource"] == server.outputs["arn"] for s in grants), grants


def _as_list(value):
    return value if isinstance(value, list) else [value]


def test_a_plan_lists_its_resources_in_one_order_every_run_parents_first(tmp_path):
    # The mock runtime records resources as their inputs resolve, which varies from run to run;
    # `plan --json`, the checks and the cost must not.
    path = Path(__file__).resolve().parents[1] / "stacks" / "Pulumi.staging.yaml"
    first, again = plan_stack(path, "staging"), plan_stack(path, "staging")
    assert [r.urn for r in first.resources] == [r.urn for r in again.resources]
    seen: set[str] = set()
    urns = {r.urn for r in first.resources}
    for r in first.resources:
        assert r.parent not in urns or r.parent in seen, f"{r.name} listed before its parent"
        seen.add(r.urn)
