"""Operating a deployed stack: `mlplatform train | status | approve | publish | invoke | batch`.

Resource names come from the stack's outputs (`outputs.py`): the deployed stack's through the
Pulumi CLI when it is on PATH, else the offline plan's. AWS calls go through boto3 with adaptive
retries (`aws.py`); Kubernetes calls through the official client and your kubeconfig (`kube.py`).
Errors come out as one line that says what was refused and why, with exit code 3.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from infra.stackfile import STACKS_DIR
from mlplatform.operations import kube
from mlplatform.operations.aws import OperationError
from mlplatform.operations.batch import cmd_batch
from mlplatform.operations.serving import cmd_invoke
from mlplatform.operations.training import cmd_status, cmd_train
from mlplatform.operations.versions import cmd_approve, cmd_publish

Command = Callable[[argparse.Namespace], int]
FAILED = 3


def _explained(command: Command) -> Command:
    """Run a command; an OperationError (or a Kubernetes API error) becomes one stderr line."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except OperationError as error:
            print(f"error: {error}", file=sys.stderr)
            return FAILED
        except Exception as error:
            explained = kube.explain(error)
            if explained is None:
                raise
            print(f"error: {explained}", file=sys.stderr)
            return FAILED

    return run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add train, status, approve, publish, invoke and batch to the `mlplatform` command line."""

    def add(name: str, help_text: str, command: Command) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(name, help=help_text)
        parser.add_argument("--stack", required=True, help="stack name: Pulumi.<stack>.yaml")
        parser.add_argument(
            "--model", required=True, help="model name from the stack's mlplatform:models"
        )
        parser.add_argument("--stacks-dir", default=str(STACKS_DIR), help="folder of stack files")
        parser.add_argument(
            "--kubeconfig",
            default=None,
            help="EKS plane: kubeconfig file (default: ~/.kube/config)",
        )
        parser.add_argument("--context", default=None, help="EKS plane: kubeconfig context")
        parser.set_defaults(func=_explained(command))
        return parser

    def add_polling(parser: argparse.ArgumentParser, flag: str, help_text: str) -> None:
        parser.add_argument(flag, action="store_true", help=help_text)
        parser.add_argument(
            "--interval", type=float, default=30.0, help="seconds between status checks"
        )

    train = add(
        "train", "start a training run (SageMaker pipeline execution or TrainJob)", cmd_train
    )
    train.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="pipeline parameter override",
    )
    add_polling(train, "--wait", "follow the execution until it ends")
    status = add(
        "status", "show (or follow) the latest training run; exits 1 if it failed", cmd_status
    )
    status.add_argument(
        "--execution", default=None, help="pipeline execution ARN (default: the latest)"
    )
    add_polling(status, "--follow", "poll until the run ends")
    approve = add("approve", "approve a registered model version", cmd_approve)
    approve.add_argument(
        "--version", type=int, default=None, help="version (default: the newest pending one)"
    )
    approve.add_argument(
        "--note", default="approved with mlplatform approve", help="approval description"
    )
    publish = add(
        "publish", "upload a locally trained model as the one endpoints serve", cmd_publish
    )
    publish.add_argument(
        "--model-dir",
        required=True,
        help="exported model folder (model.json and its artifacts), e.g. from `mlplatform run`",
    )
    publish.add_argument(
        "--bucket", default=None, help="artifacts bucket (default: the stack's bucketNames output)"
    )
    invoke = add("invoke", "send a sample to the model's endpoint and print the answer", cmd_invoke)
    invoke.add_argument(
        "--input",
        default=None,
        help="request body file (default: the model's example request, serve.example)",
    )
    invoke.add_argument(
        "--content-type",
        default=None,
        help="of --input (default: the first of the manifest's serve.contentTypes)",
    )
    invoke.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="asynchronous endpoints: seconds to wait for the result (0: queue and return)",
    )
    invoke.add_argument(
        "--interval", type=float, default=5.0, help="asynchronous endpoints: seconds between checks"
    )
    batch = add(
        "batch",
        "score an S3 prefix with the model's Batch Transform pipeline (mlplatform:models[].batch)",
        cmd_batch,
    )
    batch.add_argument(
        "--input", default=None, help="s3://bucket/prefix/ to score (default: the stack's input)"
    )
    add_polling(batch, "--wait", "follow the execution until it ends")
