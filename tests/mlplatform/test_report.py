"""The preview in the CLI and as a PR comment: deterministic, complete, failing on violations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from infra.stackfile import STACKS_DIR
from mlplatform import readme as readme_file
from mlplatform.cli import main
from mlplatform.cost import GROUPS
from mlplatform.report import (
    README_END,
    README_START,
    SUMMARY_END,
    SUMMARY_START,
    marker,
    plan_summary,
    preview,
    readme_example,
    shipped_preview,
)

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


def test_readme_shows_the_current_dev_pr_comment():
    readme = README.read_text()
    assert README_START in readme and README_END in readme
    shown = readme[
        readme.index(README_START) + len(README_START) : readme.index(README_END)
    ].strip()
    # The shipped dev stack, as `python -m mlplatform.report` renders it.
    assert shown == readme_example().strip(), (
        "README.md's example PR comment is stale: run `python -m mlplatform.report`"
    )


def test_readme_shows_the_shipped_dev_stacks_current_plan_summary():
    shown = readme_file.block(README, SUMMARY_START, SUMMARY_END)
    expected = plan_summary(shipped_preview("dev").plan)
    assert expected.startswith("```\nSummary for stack 'dev' (stacks/Pulumi.dev.yaml): ")
    assert shown == expected, "README.md's plan summary is stale: run `python -m mlplatform.report`"


def test_pr_comment_says_what_the_stack_costs_idle_and_charts_where_money_goes(plan_of):
    checked = preview(plan_of("dev"))
    text, est = checked.markdown(), checked.estimate
    assert f"**Idle (nothing running): ${est.monthly_min:,.2f}/month." in text
    chart = text[text.index("pie showData") : text.index("```", text.index("pie showData"))]
    slices = {line.split('"')[1]: float(line.rsplit(":", 1)[1]) for line in chart.splitlines()[2:]}
    assert list(slices) == [g for g in GROUPS if g in slices] and "runs" in slices
    assert sum(slices.values()) == pytest.approx(est.monthly_expected(checked.scale_out), abs=0.05)
    assert text == preview(plan_of("dev")).markdown()  # deterministic


def test_pr_comment_prices_each_network_choice_with_what_it_is_for(plan_of):
    text = preview(plan_of("prod")).markdown()
    section = text[text.index("Network choices") : text.index("Assumed usage")]
    assert "| NAT gateways | `natGateways: perZone`: 3 | outbound internet" in section
    assert "| interface endpoints | `privateEndpoints: true`: 7 |" in section
    assert "| flow logs | always: 1 | a record of every connection" in section


def test_pr_comment_and_text_list_every_assumption_a_figure_rests_on(plan_of, capsys):
    checked = preview(plan_of("dev"))
    assumption = (
        "digits training: 20 runs a month assumed (dev policy default; set training.runsPerMonth)"
    )
    assert f"- {assumption}" in checked.markdown()
    fixtures = Path(__file__).resolve().parents[1] / "stacks"
    assert main(["plan", "--stack", "dev", "--stacks-dir", str(fixtures), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Idle (nothing running): $" in out and f"  - {assumption}" in out
    assert "IDLE/MONTH" in out and "EXPECTED" in out


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
