"""Operating a deployed stack: `mlplatform train | status | approve | publish | invoke`.

Names follow the program's convention (`mlplatform-<stack>-<model>` for pipelines, package
groups and endpoints; the model's name for Kubernetes objects), so a command needs only the
stack file. AWS calls go through boto3 with adaptive retries (throttling is retried with
client-side rate limiting); Kubernetes calls through the official client and your kubeconfig.
Errors come out as one line that says what was refused and why.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.config import PROJECT, Model, StackConfig
from infra.stackfile import STACKS_DIR, load_stack_file, stack_file

TERMINAL = {"Succeeded", "Failed", "Stopped"}
TRAINER = ("trainer.kubeflow.org", "v1alpha1", "trainjobs")
DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
}
THROTTLED = {"Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException"}
# scikit-learn's first digits image (a 0), scaled to 0..1 as training.data prepares it.
SAMPLE = {
    "inputs": [
        [
            [
                [v / 16 for v in row]
                for row in (
                    (0, 0, 5, 13, 9, 1, 0, 0),
                    (0, 0, 13, 15, 10, 15, 5, 0),
                    (0, 3, 15, 2, 0, 11, 8, 0),
                    (0, 4, 12, 0, 0, 8, 8, 0),
                    (0, 5, 8, 0, 0, 9, 8, 0),
                    (0, 4, 11, 0, 1, 12, 7, 0),
                    (0, 2, 14, 5, 10, 12, 0, 0),
                    (0, 0, 6, 13, 10, 0, 0, 0),
                )
            ]
        ]
    ]
}


class OperationError(Exception):
    """A failed operation, explained in one line."""


def aws_client(service: str, region: str, attempts: int | None = None) -> Any:
    """A boto3 client that retries throttling and transient errors with adaptive back-off
    (5 attempts in all unless AWS_MAX_ATTEMPTS says otherwise)."""
    import boto3
    from botocore.config import Config

    total = attempts or int(os.environ.get("AWS_MAX_ATTEMPTS", "5"))
    retries = Config(
        retries={"mode": "adaptive", "total_max_attempts": total},
        connect_timeout=5,
        read_timeout=70,
    )
    return boto3.client(service, region_name=region, config=retries)


def explain(error: Exception, doing: str) -> OperationError:
    """Turn a botocore error into a message for people."""
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(error, NoCredentialsError):
        return OperationError(
            f"{doing}: no AWS credentials (set AWS_PROFILE or run `aws sso login`)"
        )
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "")
        operation = error.operation_name
        if code in DENIED:
            return OperationError(f"{doing}: AWS denied {operation} ({code}): {message}")
        if code in THROTTLED:
            return OperationError(
                f"{doing}: AWS kept throttling {operation} after retries; try again later"
            )
        return OperationError(f"{doing}: {operation} failed ({code}): {message}")
    return OperationError(f"{doing}: {type(error).__name__}: {error}")


def call(doing: str, fn: Any, **kwargs: Any) -> Any:
    """One AWS call; every botocore failure becomes an OperationError."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(**kwargs)
    except (BotoCoreError, ClientError) as error:
        raise explain(error, doing) from None


def target(args: argparse.Namespace) -> tuple[StackConfig, Model, str]:
    """The stack's config, the chosen model and its AWS resource name."""
    config, _ = load_stack_file(stack_file(args.stack, Path(args.stacks_dir)))
    for model in config.models:
        if model.name == args.model:
            return config, model, f"{PROJECT}-{args.stack}-{model.name}"
    known = ", ".join(m.name for m in config.models) or "none"
    raise OperationError(f"stack {args.stack} has no model {args.model!r} (models: {known})")


def kubernetes_api(args: argparse.Namespace) -> Any:
    """The Kubernetes API client for the stack's cluster, from a kubeconfig."""
    from kubernetes import client, config

    config.load_kube_config(config_file=args.kubeconfig, context=args.context)
    return client.ApiClient()


# --- train ------------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    config, model, name = target(args)
    if model.training.plane == "eks":
        from kubernetes import client

        from infra.components.eks_operator import train_job

        job_name = f"{model.name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        api = client.CustomObjectsApi(kubernetes_api(args))
        group, version, plural = TRAINER
        api.create_namespaced_custom_object(
            group, version, "training", plural, train_job(model.name, "training", job_name)
        )
        print(f"started TrainJob training/{job_name} from runtime {model.name}")
        return 0
    if any("=" not in p for p in args.param):
        raise OperationError("--param takes NAME=VALUE, e.g. --param TrainingInstanceCount=2")
    parameters = [{"Name": k, "Value": v} for k, v in (p.split("=", 1) for p in args.param)]
    sagemaker = aws_client("sagemaker", config.region)
    started = call(
        f"starting pipeline {name}",
        sagemaker.start_pipeline_execution,
        PipelineName=name,
        PipelineParameters=parameters,
        ClientRequestToken=str(uuid.uuid4()),
    )
    arn = started["PipelineExecutionArn"]
    print(f"started {arn}")
    return follow(sagemaker, arn, args.interval) if args.wait else 0


# --- status -----------------------------------------------------------------------------------


def latest_execution(sagemaker: Any, name: str) -> str:
    found = call(
        f"listing executions of {name}",
        sagemaker.list_pipeline_executions,
        PipelineName=name,
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    )["PipelineExecutionSummaries"]
    if not found:
        raise OperationError(
            f"pipeline {name} has no executions yet; start one with `mlplatform train`"
        )
    return found[0]["PipelineExecutionArn"]


def describe(sagemaker: Any, arn: str) -> str:
    """Print one status line (and the steps, when SageMaker lists them); return the status."""
    from botocore.exceptions import BotoCoreError, ClientError

    execution = call(
        "describing the execution", sagemaker.describe_pipeline_execution, PipelineExecutionArn=arn
    )
    status = execution["PipelineExecutionStatus"]
    reason = execution.get("FailureReason")
    print(f"{arn}: {status}" + (f" ({reason})" if reason else ""))
    try:
        # Step details are extra: one quick retry, so a failing listing never stalls the status.
        details = aws_client("sagemaker", sagemaker.meta.region_name, attempts=2)
        steps = details.list_pipeline_execution_steps(
            PipelineExecutionArn=arn, SortOrder="Ascending"
        )
    except (BotoCoreError, ClientError) as error:
        print(f"  steps unavailable: {explain(error, 'listing steps')}")
        return status
    for step in steps.get("PipelineExecutionSteps", []):
        why = f" ({step['FailureReason']})" if step.get("FailureReason") else ""
        print(f"  {step['StepName']}: {step['StepStatus']}{why}")
    return status


def follow(sagemaker: Any, arn: str, interval: float) -> int:
    while (status := describe(sagemaker, arn)) not in TERMINAL:
        time.sleep(interval)
    return 0 if status == "Succeeded" else 1


def cmd_status(args: argparse.Namespace) -> int:
    config, model, name = target(args)
    if model.training.plane == "eks":
        from kubernetes import client

        api = client.CustomObjectsApi(kubernetes_api(args))
        group, version, plural = TRAINER
        jobs = api.list_namespaced_custom_object(
            group, version, "training", plural, label_selector=f"mlplatform.io/model={model.name}"
        )["items"]
        if not jobs:
            raise OperationError(f"no TrainJobs of {model.name} in namespace training")
        job = max(jobs, key=lambda j: j["metadata"].get("creationTimestamp", ""))
        conditions = job.get("status", {}).get("conditions", [])
        state = ", ".join(f"{c['type']}={c['status']}" for c in conditions) or "no conditions yet"
        print(f"training/{job['metadata']['name']}: {state}")
        return 0
    sagemaker = aws_client("sagemaker", config.region)
    arn = args.execution or latest_execution(sagemaker, name)
    if args.follow:
        return follow(sagemaker, arn, args.interval)
    return 0 if describe(sagemaker, arn) != "Failed" else 1


# --- approve ----------------------------------------------------------------------------------


def cmd_approve(args: argparse.Namespace) -> int:
    config, model, group = target(args)
    if model.training.plane != "sagemaker":
        raise OperationError(
            f"{model.name} trains on {model.training.plane}; only SageMaker registers versions"
        )
    sagemaker = aws_client("sagemaker", config.region)
    packages = call(
        f"listing versions in {group}",
        sagemaker.list_model_packages,
        ModelPackageGroupName=group,
        SortBy="CreationTime",
        SortOrder="Descending",
    )["ModelPackageSummaryList"]
    if args.version:
        chosen = [p for p in packages if p.get("ModelPackageVersion") == args.version]
    else:
        chosen = [p for p in packages if p.get("ModelApprovalStatus") == "PendingManualApproval"][
            :1
        ]
    if not chosen:
        what = f"version {args.version}" if args.version else "a version pending approval"
        raise OperationError(f"{group} has no {what}")
    package = chosen[0]
    call(
        f"approving {package['ModelPackageArn']}",
        sagemaker.update_model_package,
        ModelPackageArn=package["ModelPackageArn"],
        ModelApprovalStatus="Approved",
        ApprovalDescription=args.note,
    )
    version = package.get("ModelPackageVersion")
    print(f"approved {package['ModelPackageArn']}")
    print(
        f"to serve it: set serving.modelPackageVersion: {version} for {model.name} in "
        f"stacks/Pulumi.{args.stack}.yaml, then `pulumi up --stack {args.stack}`"
    )
    return 0


# --- invoke -----------------------------------------------------------------------------------


def cmd_invoke(args: argparse.Namespace) -> int:
    config, model, endpoint = target(args)
    body = Path(args.input).read_bytes() if args.input else json.dumps(SAMPLE).encode()
    if model.serving.plane == "eks":
        # Through the API server's service proxy: no load balancer or port-forward needed.
        answer = kubernetes_api(args).call_api(
            f"/api/v1/namespaces/serving/services/{model.name}:http/proxy/invocations",
            "POST",
            header_params={"Content-Type": "application/json", "Accept": "application/json"},
            body=json.loads(body),
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _preload_content=False,
        )
        print(answer.data.decode())
        return 0
    runtime = aws_client("sagemaker-runtime", config.region)
    answer = call(
        f"invoking endpoint {endpoint}",
        runtime.invoke_endpoint,
        EndpointName=endpoint,
        ContentType="application/json",
        Accept="application/json",
        Body=body,
    )
    print(answer["Body"].read().decode())
    return 0


# --- publish ----------------------------------------------------------------------------------


def artifacts_bucket(s3: Any, stack: str) -> str:
    """The stack's artifacts bucket (Pulumi autonames it `mlplatform-<stack>-artifacts-<suffix>`)."""
    prefix = f"{PROJECT}-{stack}-artifacts-"
    names = [b["Name"] for b in call("listing buckets", s3.list_buckets)["Buckets"]]
    found = [n for n in names if n.startswith(prefix)]
    if len(found) != 1:
        what = "no bucket" if not found else f"{len(found)} buckets ({', '.join(found)})"
        raise OperationError(f"found {what} named {prefix}*; pass --bucket")
    return found[0]


def cmd_publish(args: argparse.Namespace) -> int:
    import io
    import tarfile

    config, model, _ = target(args)
    model_dir = Path(args.model_dir)
    if not (model_dir / "model.json").is_file():
        raise OperationError(f"{model_dir} holds no exported model (model.json); train one first")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            if path.is_file():
                tar.add(path, arcname=path.name)
    s3 = aws_client("s3", config.region)
    bucket = args.bucket or artifacts_bucket(s3, args.stack)
    key = f"models/{model.name}/model.tar.gz"
    # The bucket's default encryption applies the stack key.
    call(
        f"uploading s3://{bucket}/{key}",
        s3.put_object,
        Bucket=bucket,
        Key=key,
        Body=archive.getvalue(),
    )
    print(
        f"published {model_dir} as s3://{bucket}/{key}; endpoints without modelPackageVersion serve it"
    )
    return 0


# --- wiring -----------------------------------------------------------------------------------


def _run(command: Any) -> Any:
    """Run a command; an OperationError (or a Kubernetes API error) becomes one stderr line."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except OperationError as error:
            print(f"error: {error}", file=sys.stderr)
            return 3
        except Exception as error:
            from kubernetes.client.exceptions import ApiException
            from kubernetes.config.config_exception import ConfigException

            if isinstance(error, ApiException):
                print(
                    f"error: Kubernetes API refused the request ({error.status} {error.reason})",
                    file=sys.stderr,
                )
                return 3
            if isinstance(error, ConfigException):
                print(
                    f"error: no usable kubeconfig ({error}); run `aws eks update-kubeconfig`",
                    file=sys.stderr,
                )
                return 3
            raise

    return run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add train, status, approve, publish and invoke to the `mlplatform` command line."""

    def add(name: str, help_text: str, command: Any) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(name, help=help_text)
        parser.add_argument("--stack", required=True, help="stack name: stacks/Pulumi.<stack>.yaml")
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
        parser.set_defaults(func=_run(command))
        return parser

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
    train.add_argument("--wait", action="store_true", help="follow the execution until it ends")
    train.add_argument("--interval", type=float, default=30.0, help="seconds between status checks")
    status = add("status", "show (or follow) the latest training run", cmd_status)
    status.add_argument(
        "--execution", default=None, help="pipeline execution ARN (default: the latest)"
    )
    status.add_argument("--follow", action="store_true", help="poll until the execution ends")
    status.add_argument(
        "--interval", type=float, default=30.0, help="seconds between status checks"
    )
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
        "--model-dir", required=True, help="exported model folder (model.json, model.pt)"
    )
    publish.add_argument("--bucket", default=None, help="artifacts bucket (default: found by name)")
    invoke = add("invoke", "send a sample to the model's endpoint and print the answer", cmd_invoke)
    invoke.add_argument(
        "--input", default=None, help="JSON request body file (default: a digits sample)"
    )
