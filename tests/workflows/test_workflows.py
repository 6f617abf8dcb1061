"""The GitHub workflows lint clean (actionlint + shellcheck) and wire the PR flow as documented."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from mlplatform.report import marker

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent  # actionlint and shellcheck come from the dev extra's wheels
STACKS_MATRIX = "${{ fromJSON(needs.stacks.outputs.stacks) }}"


def _lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [str(BIN / "actionlint"), "-no-color", *map(str, paths)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _load(name: str) -> dict:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads `on` as true
    return document


def test_workflows_pass_actionlint_with_shellcheck():
    result = _lint(*sorted(WORKFLOWS.glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
        "      - uses: actions/checkout@v5\n        with:\n          fetch-dept: 0\n"
    )
    result = _lint(broken)
    assert result.returncode != 0
    assert "potentially untrusted" in result.stdout and "fetch-dept" in result.stdout


def test_every_workflow_starts_from_read_only_permissions():
    for path in WORKFLOWS.glob("*.yml"):
        assert yaml.safe_load(path.read_text())["permissions"] == {"contents": "read"}, path.name


def test_preview_checks_every_stack_offline_and_updates_one_comment_per_stack():
    jobs = _load("preview.yml")["jobs"]
    offline = jobs["offline"]
    assert offline["needs"] == "stacks"
    assert offline["strategy"]["matrix"]["stack"] == STACKS_MATRIX
    run = "\n".join(step.get("run", "") for step in offline["steps"])
    assert 'mlplatform plan --stack "$STACK" --format markdown' in run
    script = next(s for s in offline["steps"] if "github-script" in s.get("uses", ""))["with"][
        "script"
    ]
    # The script finds the comment by the marker the report writes on its first line.
    assert "<!-- mlplatform-preview:${process.env.STACK} -->" in script
    assert marker("dev") == "<!-- mlplatform-preview:dev -->"
    assert "updateComment" in script and "createComment" in script


def test_pulumi_preview_runs_only_with_credentials_and_with_the_stacks_policy_config():
    jobs = _load("preview.yml")["jobs"]
    pulumi = jobs["pulumi"]
    assert pulumi["needs"] == ["stacks", "credentials"] and "configured == 'true'" in pulumi["if"]
    assert pulumi["strategy"]["matrix"]["stack"] == STACKS_MATRIX
    steps = pulumi["steps"]
    install = next(
        i for i, s in enumerate(steps) if "policies/requirements.txt" in s.get("run", "")
    )
    action = next(i for i, s in enumerate(steps) if s.get("uses", "").startswith("pulumi/actions@"))
    assert install < action, "the policy pack's venv must exist before pulumi runs it"
    assert steps[action]["with"]["policyPacks"] == "policies"
    policy = next(s for s in steps if s.get("id") == "policy")
    assert "mlplatform policy-config" in policy["run"] and steps.index(policy) < action
    assert steps[action]["with"]["policyPackConfigs"] == "${{ steps.policy.outputs.config }}"


def test_deploy_rolls_out_dev_then_staging_then_prod_through_environments():
    deploy = _load("deploy.yml")
    assert deploy["on"]["push"]["branches"] == ["main"]
    jobs = deploy["jobs"]
    assert [jobs[j]["with"]["stack"] for j in ("dev", "staging", "prod")] == [
        "dev",
        "staging",
        "prod",
    ]
    assert (jobs["staging"]["needs"], jobs["prod"]["needs"]) == ("dev", "staging")
    up = _load("deploy-stack.yml")["jobs"]["up"]
    assert up["environment"] == "${{ inputs.stack }}"
    uses = [s.get("uses", "") for s in up["steps"]]
    assert any(u.startswith("aws-actions/configure-aws-credentials@") for u in uses)
    action = next(s for s in up["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert action["with"]["command"] == "up"
    assert action["with"]["policyPackConfigs"] == "${{ steps.policy.outputs.config }}"
    check = next(s for s in up["steps"] if "mlplatform plan" in s.get("run", ""))
    assert "set -o pipefail" in check["run"], "tee would hide a failing check and deploy anyway"
    assert up["steps"].index(check) < up["steps"].index(action)
