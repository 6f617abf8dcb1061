"""``python -m training prepare|train``: the image's entry point (``docker run IMAGE train``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from pathlib import Path

from training.config import HyperparameterError, UserError, parse_config, read_hyperparameters
from training.environment import (
    RunEnvironment,
    launch_command,
    launch_environment,
    resolve,
    write_failure,
)


def _prepare(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training prepare", description="Write a prepared dataset and its manifest."
    )
    parser.add_argument("--out", type=Path, required=True, help="directory to write")
    parser.add_argument("--dataset", choices=("digits", "synthetic"), default="digits")
    parser.add_argument("--samples", type=int, default=8192, help="synthetic: images in total")
    parser.add_argument("--image-size", type=int, default=16, help="synthetic: height and width")
    parser.add_argument("--channels", type=int, default=1, help="synthetic: image channels")
    parser.add_argument("--classes", type=int, default=10, help="synthetic: number of classes")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from training.data import prepare_digits, prepare_synthetic  # numpy and torch: only now

    if args.dataset == "digits":
        manifest = prepare_digits(args.out, args.test_fraction, args.seed)
    else:
        manifest = prepare_synthetic(
            args.out,
            args.samples,
            args.image_size,
            args.channels,
            args.classes,
            args.test_fraction,
            args.seed,
        )
    print(
        f"prepared {manifest['name']} in {args.out}: {manifest['splits']}, "
        f"sha256 {manifest['sha256']}"
    )
    return 0


def _split_hyperparameters(rest: list[str]) -> dict[str, str]:
    """``--key value`` / ``--key=value`` pairs: how the SageMaker toolkit and people pass them."""
    values: dict[str, str] = {}
    i = 0
    while i < len(rest):
        arg = rest[i]
        if not arg.startswith("--") or arg == "--":
            raise HyperparameterError(
                f"unexpected argument {arg!r}; hyperparameters are given as --name value"
            )
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
            i += 1
        elif i + 1 < len(rest):
            key, value = arg[2:], rest[i + 1]
            i += 2
        else:
            raise HyperparameterError(f"hyperparameter {arg} has no value")
        values[key] = value
    return values


def _train(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training train",
        description="Train the reference model. Any --<hyperparameter> VALUE overrides "
        "SageMaker's hyperparameters.json (see training.config.TrainConfig).",
    )
    for name in ("data-dir", "model-dir", "checkpoint-dir", "output-dir"):
        parser.add_argument(f"--{name}")
    args, rest = parser.parse_known_args(argv)
    run: RunEnvironment | None = None
    try:
        run = resolve(args.data_dir, args.model_dir, args.checkpoint_dir, args.output_dir)
        file_values = {}
        if run.hyperparameters_file:
            file_values = read_hyperparameters(str(run.hyperparameters_file))
            parse_config(file_values, source=str(run.hyperparameters_file))
        cli_values = _split_hyperparameters(rest)
        cfg = parse_config(
            {**file_values, **cli_values}, source="the command line" if cli_values else ""
        )
        command = launch_command(run, argv)
        if command:
            print("launching " + " ".join(command), flush=True)
            os.execve(command[0], command, launch_environment(run))
        from training.train import train  # torch is imported only once the arguments are good

        return train(run, cfg)
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"
        if isinstance(err, UserError):
            print(f"error: {err}", file=sys.stderr)
        else:
            traceback.print_exc()
        if run is not None:
            write_failure(run, reason)
        return 1


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``prepare`` or ``train``."""
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    commands = {"prepare": _prepare, "train": _train}
    if not argv or argv[0] not in commands:
        print(
            "usage: python -m training {prepare,train} [options]  (--help on each)", file=sys.stderr
        )
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
