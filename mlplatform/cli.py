"""`mlplatform`: the platform's command line: offline plan and checks, the stack schema, the
local loop for any model (run, demo), model scaffolding (new-model), operating commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from infra.config import StackConfigError
from infra.stackfile import STACKS_DIR, stack_file
from mlplatform.operations import register as register_operations


def cmd_plan(args: argparse.Namespace) -> int:
    from mlplatform import collector
    from mlplatform.progress import spinner

    output = "json" if args.json else args.format
    base = json.loads(Path(args.base).read_text()) if args.base else None
    with collector.paused(freeze=args.process_exits):
        with spinner(quiet=args.quiet) as say:
            from mlplatform.plan import plan_stack
            from mlplatform.report import preview

            path = stack_file(args.stack, Path(args.stacks_dir))
            plan = plan_stack(path, args.stack, progress=say)
            checked = preview(plan, base, progress=say)
        # The spinner is gone before anything reaches the terminal.
        if output == "json":
            json.dump({**plan.to_json(), **checked.to_json()}, sys.stdout, indent=2, sort_keys=True)
            sys.stdout.write("\n")
        elif output == "markdown":
            sys.stdout.write(checked.markdown())
        else:
            from mlplatform import terminal

            terminal.print_plan(checked, terminal.console())
    # A mandatory policy violation fails the check (and the pull request's status).
    return 1 if checked.blocking else 0


def cmd_schema(args: argparse.Namespace) -> int:
    from mlplatform import schema

    sys.stdout.write(schema.reference() if args.reference else schema.document_text())
    return 0


def cmd_policy_config(args: argparse.Namespace) -> int:
    from mlplatform.stacks import policy_config

    found = policy_config(stack_file(args.stack, Path(args.stacks_dir)))
    if found is None:
        print(
            f"stack {args.stack}: no policy config file; the pack's defaults apply", file=sys.stderr
        )
    else:
        print(found)
    return 0


def cmd_prices_refresh(args: argparse.Namespace) -> int:
    from mlplatform.prices.refresh import refresh_file

    changed = refresh_file(args.region)
    print(f"updated {len(changed)} prices in mlplatform/prices/{args.region}.json")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from mlplatform.demo import run_demo
    from mlplatform.local_model import RunError

    try:
        return run_demo(
            Path(args.workdir), stack=args.stack, epochs=args.epochs, sample=args.sample
        )
    except RunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def cmd_run(args: argparse.Namespace) -> int:
    from mlplatform.local_model import RunError, find_model
    from mlplatform.run import run_model

    try:
        model = find_model(args.model, args.stack, args.epochs, Path(args.stacks_dir))
        workdir = Path(args.workdir or f".mlplatform/run/{args.model}")
        run_model(model, workdir, sample=args.sample, fresh=args.fresh)
    except RunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def cmd_new_model(args: argparse.Namespace) -> int:
    from mlplatform.scaffold import ScaffoldError, new_model, next_steps

    directory = Path(args.dir) if args.dir else None
    try:
        target = new_model(args.name, args.framework, args.task, directory)
    except ScaffoldError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    made = ", ".join(str(p.relative_to(target)) for p in sorted(target.rglob("*")) if p.is_file())
    print(f"created {target}/ ({args.framework}, {args.task}): {made}")
    print(next_steps(target, args.name))
    return 0


def _add_new_model(sub: argparse._SubParsersAction) -> None:
    from mlplatform.scaffold import FRAMEWORKS, TASKS

    new = sub.add_parser(
        "new-model",
        help="scaffold models/<name>/: a small model that trains, exports, serves and passes "
        "its own tests as generated",
    )
    new.add_argument("name", help="the model's name: lower-case letters, digits and -")
    new.add_argument("--framework", required=True, choices=FRAMEWORKS)
    new.add_argument("--task", default="classification", choices=TASKS)
    new.add_argument(
        "--dir",
        default=None,
        help="where the model directory goes (default: the project's models/)",
    )
    new.set_defaults(func=cmd_new_model)


def _add_run(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser(
        "run",
        help="the local loop for any model: prepare, train, export, evaluate, serve, predict",
    )
    run.add_argument("--model", required=True, help="a model in models/ (its directory name)")
    run.add_argument(
        "--stack",
        default=None,
        help="train with this stack's hyperparameters for the model (default: dev's, if it has "
        "the model; else model.yaml's defaults)",
    )
    run.add_argument("--stacks-dir", default=str(STACKS_DIR), help="folder of stack files")
    run.add_argument(
        "--workdir",
        default=None,
        help="where data, checkpoints and the model go (default: .mlplatform/run/<model>)",
    )
    run.add_argument("--epochs", type=int, help="override the epochs hyperparameter")
    run.add_argument("--sample", type=int, default=None, help="also predict held-out test sample K")
    run.add_argument(
        "--fresh", action="store_true", help="start over: remove the workdir (and checkpoints)"
    )
    run.set_defaults(func=cmd_run)


def _add_plan(sub: argparse._SubParsersAction) -> None:
    plan = sub.add_parser(
        "plan", help="run the Pulumi program for a stack offline, check policies, estimate cost"
    )
    plan.add_argument(
        "--stack", default="dev", help="stack name: Pulumi.<stack>.yaml (default: dev)"
    )
    plan.add_argument("--stacks-dir", default=str(STACKS_DIR), help="folder of stack files")
    plan.add_argument(
        "--format",
        choices=("table", "json", "markdown"),
        default="table",
        help="table (terminal: resources as a tree), json (resources, outputs, violations, cost) "
        "or markdown (the PR comment); every format runs the policy rules and the cost estimate",
    )
    plan.add_argument("--json", action="store_true", help="same as --format json")
    plan.add_argument(
        "--base",
        metavar="FILE",
        help="`plan --json` output of the base branch: the markdown then lists what changes",
    )
    plan.add_argument(
        "--quiet",
        action="store_true",
        help="no progress on stderr (none when it is not a terminal)",
    )
    plan.set_defaults(func=cmd_plan)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlplatform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_plan(sub)
    schema = sub.add_parser(
        "schema", help="print the stack file's JSON Schema (editors validate stack files with it)"
    )
    schema.add_argument(
        "--reference", action="store_true", help="print the README's stack reference table instead"
    )
    schema.set_defaults(func=cmd_schema)
    policy = sub.add_parser(
        "policy-config",
        help="print the policy pack config a stack is checked with (by its mlplatform:environment)",
    )
    policy.add_argument("--stack", required=True, help="stack name: Pulumi.<stack>.yaml")
    policy.add_argument("--stacks-dir", default=str(STACKS_DIR), help="folder of stack files")
    policy.set_defaults(func=cmd_policy_config)
    prices = sub.add_parser("prices", help="the price table behind the cost estimate")
    prices_sub = prices.add_subparsers(dest="prices_command", required=True)
    refresh = prices_sub.add_parser(
        "refresh", help="update instance prices from the AWS Price List API (needs credentials)"
    )
    refresh.add_argument("--region", default="us-east-1", help="region of the table to refresh")
    refresh.set_defaults(func=cmd_prices_refresh)
    _add_run(sub)
    _add_new_model(sub)
    demo = sub.add_parser(
        "demo",
        help="offline plan of a stack, then `run` its default model (the first of the stack's "
        "models): prepare, train, export, evaluate, serve, predict",
    )
    demo.add_argument(
        "--workdir", default=".mlplatform/demo", help="where data, checkpoints and the model go"
    )
    demo.add_argument(
        "--stack", default="dev", help="stack to plan and whose first model to run (default: dev)"
    )
    demo.add_argument("--epochs", type=int, help="override the training epochs")
    demo.add_argument(
        "--sample", type=int, default=None, help="also predict held-out test sample K"
    )
    demo.set_defaults(func=cmd_demo)
    register_operations(sub)  # train, status, approve, publish, invoke, batch: operations/
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; `argv` None means this process is the command (the console script)."""
    args = build_parser().parse_args(argv)
    # The process ends with the command: what a plan builds need not be garbage-collected.
    args.process_exits = argv is None
    try:
        return args.func(args)
    except StackConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
