"""``python -m training launch | prepare | schema``; ``train`` is ``launch`` (SageMaker runs
``docker run IMAGE train``). The independent evaluation of an exported model is the platform's
evaluator, ``python -m serving evaluate``, which loads each variant as the server does."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from training.errors import UserError

COMMANDS = ("launch", "train", "prepare", "schema")
USAGE = f"usage: python -m training {{{','.join(COMMANDS)}}} [options]  (--help on each)"


def _prepare(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training prepare",
        description="Run a model's prepare step: it writes the train and test channels.",
    )
    parser.add_argument("--model", type=Path, default=Path.cwd(), help="the model's directory")
    parser.add_argument("--out", type=Path, required=True, help="where the channels go")
    parser.add_argument("--input", type=Path, help="raw data the prepare step reads, if any")
    args, rest = parser.parse_known_args(argv)
    from training.manifest import load_manifest

    try:
        manifest, _ = load_manifest(args.model, check_name=False)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if manifest.prepare is None:
        print(f"error: {args.model} has no prepare step in model.yaml", file=sys.stderr)
        return 1
    command = manifest.prepare.argv(sys.executable)
    command += ["--out", str(args.out.resolve())]
    if args.input:
        command += ["--input", str(args.input.resolve())]
    model_dir = args.model.resolve()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(model_dir), env.get("PYTHONPATH")]))
    os.chdir(model_dir)
    os.execvpe(command[0], [*command, *rest], env)


def _schema(argv: list[str]) -> int:
    from training.manifest import ModelManifest

    schema = ModelManifest.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    print(json.dumps(schema, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Dispatch a command."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(USAGE, file=sys.stderr)
        return 2
    if argv[0] in ("launch", "train"):
        from training.launch import main as launch

        return launch(argv[1:])
    return {"prepare": _prepare, "schema": _schema}[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
