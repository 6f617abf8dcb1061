"""The preview in the CLI and as a PR comment: deterministic, complete, failing on violations."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from infra.stackfile import STACKS_DIR
from mlplatform.cli import main
from mlplatform.report import README_END, README_START, marker, preview

README = Path(__file__).resolve().parents[2] / "README.md"


def _over_budget_stack(directory: Path) -> None:
    document = yaml.safe_load((STACKS_DIR / "Pulumi.dev.yaml").read_text())
    document["config"]["mlplatform:budget"] = {"monthlyUsd": 50}
    (directory / "Pulumi.tight.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def test_pr_comment_has_marker_verdict_cost_violations_resources_and_diagram(plan):
    text = preview(plan).markdown()
    assert text.splitlines()[0] == marker(plan.stack) == f"<!-- mlplatform-preview:{plan.stack} -->"
    for heading in (
        "#### Monthly cost vs budget",
        "#### Policy violations",
        "#### Resources",
        "#### Components",
    ):
        assert heading in text
    assert "| **budget** (`mlplatform:budget.monthlyUsd`) |" in text
    assert f"${plan.config.budget.monthly_usd:,.2f}" in text
    assert "```mermaid" in text and 'stack(["stack ' in text
    # Every component appears in the diagram with an edge from its parent.
    components = [r for r in plan.resources if not r.custom]
    assert text.count(" --> ") == len(components)


def test_cli_markdown_is_byte_identical_across_independent_plans(plan_of, capsys):
    fixtures = Path(__file__).resolve().parents[1] / "stacks"
    assert (
        main(["plan", "--stack", "dev", "--stacks-dir", str(fixtures), "--format", "markdown"]) == 0
    )
    assert capsys.readouterr().out == preview(plan_of("dev")).markdown()


def test_a_mandatory_violation_fails_the_check_in_every_format(tmp_path, capsys):
    _over_budget_stack(tmp_path)
    args = ["plan", "--stack", "tight", "--stacks-dir", str(tmp_path)]
    assert main([*args, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    mandatory = [v["policy"] for v in report["violations"] if v["enforcement"] == "mandatory"]
    assert mandatory == ["monthly-budget"]
    assert report["cost"]["budgetMonthlyUsd"] == 50 and report["resources"]
    assert main([*args, "--format", "table"]) == 1
    out = capsys.readouterr().out
    assert "HIGH" in out and "[mandatory] monthly-budget" in out and "TOTAL" in out
    assert "cannot merge" in out


def test_readme_shows_the_current_dev_pr_comment(plan_of):
    readme = README.read_text()
    assert README_START in readme and README_END in readme
    shown = readme[
        readme.index(README_START) + len(README_START) : readme.index(README_END)
    ].strip()
    assert shown == preview(plan_of("dev")).markdown().strip(), (
        "README.md's example PR comment is stale: run `python -m mlplatform.report`"
    )


def _base_json(plan) -> dict:
    return json.loads(json.dumps({**plan.to_json(), **preview(plan).to_json()}))


def test_an_unchanged_stack_shows_no_changes_against_its_base(plan_of, plan_variant):
    text = preview(plan_variant("dev", {}, name="dev"), _base_json(plan_of("dev"))).markdown()
    assert "0 to add, 0 to change, 0 to remove. Monthly cost +0.00 USD" in text


def test_a_grown_pool_and_a_new_pool_are_listed_with_the_cost_they_add(plan_of, plan_variant):
    pools = yaml.safe_load((STACKS_DIR / "Pulumi.dev.yaml").read_text())["config"][
        "mlplatform:gpuPools"
    ]
    pools[0]["maxSize"] += 2
    pools.append(
        {
            "name": "extra",
            "instanceTypes": ["g6.xlarge"],
            "capacityType": "spot",
            "minSize": 0,
            "maxSize": 1,
        }
    )
    text = preview(
        plan_variant("dev", {"mlplatform:gpuPools": pools}, name="dev"), _base_json(plan_of("dev"))
    ).markdown()
    section = text[text.index("#### Changes") : text.index("#### Monthly cost")]
    assert (
        f"| ~ | `aws:eks/nodeGroup:NodeGroup` | mlplatform-dev-{pools[0]['name']} | `scalingConfig` |"
        in section
    )
    assert "| + | `aws:eks/nodeGroup:NodeGroup` | mlplatform-dev-extra |" in section
    assert "+0.00 USD at minimum scale" in section and "USD at maximum" in section
    assert "at maximum" in section and "+0.00 USD at maximum" not in section


def test_a_region_without_a_price_table_fails_the_budget_policy_but_still_renders(plan_variant):
    checked = preview(plan_variant("dev", {"aws:region": "eu-west-1"}))
    [violation] = checked.blocking
    assert (
        violation.policy == "monthly-budget"
        and "mlplatform/prices/eu-west-1.json" in violation.message
    )
    assert "mlplatform prices refresh --region eu-west-1" in checked.markdown()
