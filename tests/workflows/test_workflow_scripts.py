"""The workflows' `run:` scripts, run as GitHub runs them, in a copy of the project with a stack
file added: the new stack is listed, planned and given its environment's policy config with no
workflow edit; the base branch is planned with whichever CLI it has."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

SHIM = '#!/bin/sh\nexec {python} {args} "$@"\n'


def _workflow(root: Path, name: str) -> dict:
    return yaml.safe_load((root / ".github" / "workflows" / name).read_text())


def _step(job: dict, name_part: str) -> dict:
    return next(s for s in job["steps"] if name_part in s.get("name", ""))


class Runner:
    """Runs steps as a GitHub runner does: `bash -e`, step `env:`, and the files behind
    GITHUB_OUTPUT, GITHUB_ENV and GITHUB_STEP_SUMMARY."""

    def __init__(self, root: Path):
        self.root = root
        self.files = {
            name: root / f".{name.lower()}"
            for name in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY")
        }
        for path in self.files.values():
            path.write_text("")

    def run(self, step: dict, **env: str) -> subprocess.CompletedProcess[str]:
        script = step["run"]
        assert "${{" not in script, "expressions in scripts are injection risks: use env:"
        environment = {**os.environ, **{k: str(v) for k, v in self.files.items()}, **env}
        environment.pop("PYTHONPATH", None)  # like CI: the project is what the venv imports
        return subprocess.run(
            ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", script],
            cwd=self.root,
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def read(self, name: str) -> dict[str, str]:
        lines = self.files[name].read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)


@pytest.fixture
def project(project_copy: Path) -> Path:
    """The project copy with a new stack, `sandbox` (dev's shape, staging's policies), and a
    `.venv/bin` whose `python` and `mlplatform` run this interpreter on the copy."""
    document = yaml.safe_load((project_copy / "stacks" / "Pulumi.dev.yaml").read_text())
    document["config"]["mlplatform:environment"] = "staging"
    (project_copy / "stacks" / "Pulumi.sandbox.yaml").write_text(yaml.safe_dump(document))
    bin_dir = project_copy / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, args in (("python", ""), ("mlplatform", "-m mlplatform")):
        (bin_dir / name).write_text(SHIM.format(python=sys.executable, args=args))
        (bin_dir / name).chmod(0o755)
    return project_copy


def test_the_stack_list_includes_a_new_stack_file(project):
    runner = Runner(project)
    job = _workflow(project, "preview.yml")["jobs"]["stacks"]
    done = runner.run(_step(job, "List the stack files"))
    assert done.returncode == 0, done.stderr
    assert json.loads(runner.read("GITHUB_OUTPUT")["stacks"]) == [
        "dev",
        "prod",
        "qa",
        "sandbox",
        "staging",
    ]


def test_the_stack_list_follows_stack_config_dir(project):
    (project / "stacks").rename(project / "environments")
    pulumi_yaml = project / "Pulumi.yaml"
    pulumi_yaml.write_text(
        pulumi_yaml.read_text().replace("stackConfigDir: stacks", 'stackConfigDir: "environments"')
    )
    runner = Runner(project)
    done = runner.run(_step(_workflow(project, "preview.yml")["jobs"]["stacks"], "List"))
    assert done.returncode == 0, done.stderr
    assert "sandbox" in json.loads(runner.read("GITHUB_OUTPUT")["stacks"])


def test_a_new_stack_is_planned_and_checked_with_its_environments_policy_config(project):
    runner = Runner(project)
    jobs = _workflow(project, "preview.yml")["jobs"]
    # The base branch predates the stack: no list of changes, and no failure.
    shutil.copytree(project, project / ".base", ignore=shutil.ignore_patterns(".venv", ".base"))
    (project / ".base" / "stacks" / "Pulumi.sandbox.yaml").unlink()
    base = runner.run(_step(jobs["offline"], "Plan the base branch"), STACK="sandbox")
    assert base.returncode == 0, base.stderr
    assert "BASE_ARGS" not in runner.read("GITHUB_ENV")
    check = runner.run(
        _step(jobs["offline"], "Plan, check policies"), STACK="sandbox", BASE_ARGS=""
    )
    assert check.returncode == 0, check.stderr
    assert runner.read("GITHUB_OUTPUT")["exit-code"] == "0"
    report = (project / "preview.md").read_text()
    assert report.startswith("<!-- mlplatform-preview:sandbox -->")
    assert report in runner.files["GITHUB_STEP_SUMMARY"].read_text()
    policy = runner.run(_step(jobs["pulumi"], "policy config"), STACK="sandbox")
    assert policy.returncode == 0, policy.stderr
    assert runner.read("GITHUB_OUTPUT")["config"] == "policies/config.staging.json"
    up = _workflow(project, "deploy-stack.yml")["jobs"]["up"]
    assert runner.run(_step(up, "policy config"), STACK="qa").returncode == 0
    assert runner.read("GITHUB_OUTPUT")["config"] == "policies/config.staging.json"


@pytest.mark.parametrize("base_cli", ["mlplatform", "infra.cli"])
def test_the_base_branch_is_planned_with_the_cli_it_has(project, base_cli):
    """Bases from before the tool moved out of infra/ had `python -m infra.cli`."""
    base = project / ".base"
    (base / "infra").mkdir(parents=True)
    (base / "infra" / "__init__.py").write_text("")
    package = "mlplatform" if base_cli == "mlplatform" else "infra"
    (base / package).mkdir(exist_ok=True)
    (base / package / "__init__.py").write_text("")
    # A stand-in for the base's CLI: prints the arguments it got as its plan.
    (base / package / "cli.py").write_text(
        "import json, sys\n"
        "print(json.dumps({'resources': [], 'argv': sys.argv[1:], 'cli': __spec__.name}))\n"
    )
    runner = Runner(project)
    step = _step(_workflow(project, "preview.yml")["jobs"]["offline"], "Plan the base branch")
    done = runner.run(step, STACK="dev")
    assert done.returncode == 0, done.stderr
    assert runner.read("GITHUB_ENV") == {"BASE_ARGS": "--base base.json"}
    planned = json.loads((project / "base.json").read_text())
    assert planned["argv"] == ["plan", "--stack", "dev", "--json"]
    assert planned["cli"] == ("mlplatform.cli" if base_cli == "mlplatform" else "infra.cli")
