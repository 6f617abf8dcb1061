"""`mlplatform`: the platform's command line: offline plan and checks, local demo, operating commands."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from infra.config import StackConfigError
from infra.stackfile import STACKS_DIR, stack_file
from mlplatform.operations import register as register_operations


def _key_inputs(inputs: dict) -> str:
    """The few inputs that identify a resource in a table row."""
    keys = (
        "name",
        "instanceTypes",
        "instanceType",
        "cidrBlock",
        "availabilityZone",
        "serviceName",
        "bucket",
        "chart",
        "kind",
    )
    shown = [f"{k}={inputs[k]}" for k in keys if k in inputs and inputs[k] not in (None, "", [])]
    text = ", ".join(shown)
    return text if len(text) <= 70 else text[:67] + "..."


def render_table(plan) -> str:
    """A readable listing: one row per resource, then a count per type."""
    rows = [("TYPE", "NAME", "KEY INPUTS")]
    rows += [
        (r.type, r.name, _key_inputs(r.inputs))
        for r in plan.resources
        if r.custom or r.type.startswith("mlplatform:")
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"{t:<{widths[0]}}  {n:<{widths[1]}}  {k}".rstrip() for t, n, k in rows]
    counts = Counter(r.type for r in plan.resources)
    lines += [
        "",
        f"Summary for stack '{plan.stack}' ({plan.source}): {len(plan.resources)} resources",
    ]
    lines += [f"  {count:>4}  {kind}" for kind, count in sorted(counts.items())]
    return "\n".join(lines)


def cmd_plan(args: argparse.Namespace) -> int:
    from mlplatform.plan import plan_stack
    from mlplatform.report import preview

    plan = plan_stack(stack_file(args.stack, Path(args.stacks_dir)), args.stack)
    base = json.loads(Path(args.base).read_text()) if args.base else None
    checked = preview(plan, base)
    output = "json" if args.json else args.format
    if output == "json":
        json.dump({**plan.to_json(), **checked.to_json()}, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    elif output == "markdown":
        sys.stdout.write(checked.markdown())
    else:
        print(render_table(plan))
        print()
        print(checked.text())
    # A mandatory policy violation fails the check (and the pull request's status).
    return 1 if checked.blocking else 0


def cmd_prices_refresh(args: argparse.Namespace) -> int:
    from mlplatform.prices.refresh import refresh_file

    changed = refresh_file(args.region)
    print(f"updated {len(changed)} prices in mlplatform/prices/{args.region}.json")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from mlplatform.demo import run_demo

    return run_demo(Path(args.workdir), stack=args.stack, epochs=args.epochs, sample=args.sample)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlplatform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    plan = sub.add_parser(
        "plan", help="run the Pulumi program for a stack offline and list its resources"
    )
    plan.add_argument(
        "--stack", default="dev", help="stack name: stacks/Pulumi.<stack>.yaml (default: dev)"
    )
    plan.add_argument("--stacks-dir", default=str(STACKS_DIR), help="folder of stack files")
    plan.add_argument(
        "--format",
        choices=("table", "json", "markdown"),
        default="table",
        help="table (terminal), json (resources, outputs, violations, cost) or markdown (the PR "
        "comment); every format runs the policy rules and the cost estimate",
    )
    plan.add_argument("--json", action="store_true", help="same as --format json")
    plan.add_argument(
        "--base",
        metavar="FILE",
        help="`plan --json` output of the base branch: the markdown then lists what changes",
    )
    plan.set_defaults(func=cmd_plan)
    prices = sub.add_parser("prices", help="the price table behind the cost estimate")
    prices_sub = prices.add_subparsers(dest="prices_command", required=True)
    refresh = prices_sub.add_parser(
        "refresh", help="update instance prices from the AWS Price List API (needs credentials)"
    )
    refresh.add_argument("--region", default="us-east-1", help="region of the table to refresh")
    refresh.set_defaults(func=cmd_prices_refresh)
    demo = sub.add_parser(
        "demo",
        help="the whole loop locally: offline plan, prepare data, train, serve, predict",
    )
    demo.add_argument(
        "--workdir", default=".mlplatform/demo", help="where data, checkpoints and the model go"
    )
    demo.add_argument("--stack", default="dev", help="stack to plan (default: dev)")
    demo.add_argument("--epochs", type=int, help="override the training epochs")
    demo.add_argument("--sample", type=int, default=0, help="which held-out image to predict")
    demo.set_defaults(func=cmd_demo)
    register_operations(sub)  # train, status, approve, invoke: mlplatform/operations.py
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StackConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
