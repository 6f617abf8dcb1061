"""`mlplatform train` and `mlplatform status`: start a training run and follow it, on either
plane (a SageMaker pipeline execution, or a Kubeflow Trainer TrainJob on EKS). `status` exits
1 when the run failed, so scripts and CI can gate on it."""

from __future__ import annotations

import argparse
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mlplatform.operations.aws import OperationError, aws_client, call, explain
from mlplatform.operations.kube import TRAINJOBS, custom_objects
from mlplatform.operations.outputs import Target, target

PIPELINE_DONE = {"Succeeded", "Failed", "Stopped"}
# TrainJob conditions that end a run, and whether it succeeded (Kubeflow Trainer v2).
TRAINJOB_DONE = {"Complete": True, "Failed": False}


def cmd_train(args: argparse.Namespace) -> int:
    chosen = target(args)
    if chosen.model.training.plane == "eks":
        return _start_train_job(args, chosen)
    if any("=" not in p for p in args.param):
        raise OperationError("--param takes NAME=VALUE, e.g. --param TrainingInstanceCount=2")
    name = chosen.outputs().name("pipelineNames", chosen.model.name, what="the training pipeline")
    parameters = [{"Name": k, "Value": v} for k, v in (p.split("=", 1) for p in args.param)]
    sagemaker = aws_client("sagemaker", chosen.config.region)
    started = call(
        f"starting pipeline {name}",
        sagemaker.start_pipeline_execution,
        PipelineName=name,
        PipelineParameters=parameters,
        ClientRequestToken=str(uuid.uuid4()),
    )
    arn = started["PipelineExecutionArn"]
    print(f"started {arn}")
    if not args.wait:
        return 0
    return follow(lambda: describe(sagemaker, arn), PIPELINE_DONE, args.interval)


def cmd_status(args: argparse.Namespace) -> int:
    """Print the latest run's state; exit 0 unless it failed (or, following, did not succeed)."""
    chosen = target(args)
    if chosen.model.training.plane == "eks":
        namespace = _namespace(chosen)
        api = custom_objects(args)

        def once() -> str:
            return train_job_state(api, namespace, chosen.model.name)

        if args.follow:
            return follow(once, {f"{kind}=True" for kind in TRAINJOB_DONE}, args.interval)
        return 1 if once() == "Failed=True" else 0
    sagemaker = aws_client("sagemaker", chosen.config.region)
    if args.execution:
        arn = args.execution
    else:
        name = chosen.outputs().name(
            "pipelineNames", chosen.model.name, what="the training pipeline"
        )
        arn = latest_execution(sagemaker, name)
    if args.follow:
        return follow(lambda: describe(sagemaker, arn), PIPELINE_DONE, args.interval)
    return 1 if describe(sagemaker, arn) == "Failed" else 0


def follow(check: Callable[[], str], done: set[str], interval: float) -> int:
    """Check until the state is final; 0 for success (Succeeded, Complete=True), else 1."""
    while (state := check()) not in done:
        time.sleep(interval)
    return 0 if state in ("Succeeded", "Complete=True") else 1


# --- SageMaker plane ---------------------------------------------------------------------------


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


# --- EKS plane ---------------------------------------------------------------------------------


def _namespace(chosen: Target) -> str:
    return chosen.outputs().name("kubernetesNamespaces", "training", what="the training namespace")


def _start_train_job(args: argparse.Namespace, chosen: Target) -> int:
    from infra.components.eks_operator import train_job

    namespace = _namespace(chosen)
    job_name = f"{chosen.model.name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    group, version, plural = TRAINJOBS
    custom_objects(args).create_namespaced_custom_object(
        group, version, namespace, plural, train_job(chosen.model.name, namespace, job_name)
    )
    print(f"started TrainJob {namespace}/{job_name} from runtime {chosen.model.name}")
    return 0


# What each step of a run (a replicated job of the runtime's JobSet) is, for a failure's report.
STEPS = {
    "prepare": "the model's prepare entry point or the upload of its channels",
    "node": "training",
    "evaluate": "evaluation and registration: below the threshold, not evaluable, or refused by AWS",
}


def failed_step(job: dict[str, Any]) -> str | None:
    """The replicated job (prepare, node, evaluate) a failed TrainJob failed in: the one JobSet
    names in its Failed condition (`… (first failed job: <trainjob>-<step>-<index>)`), else the
    first with failed Jobs in the TrainJob's jobsStatus."""
    status = job.get("status", {})
    prefix = f"{job['metadata']['name']}-"
    for c in status.get("conditions", []):
        found = re.search(r"first failed job: (\S+?)\)?$", c.get("message") or "")
        if c["type"] == "Failed" and c["status"] == "True" and found:
            name = found.group(1).removeprefix(prefix)
            return re.sub(r"-\d+$", "", name)
    return next((j["name"] for j in status.get("jobsStatus", []) if j.get("failed")), None)


def train_job_state(api: Any, namespace: str, model: str) -> str:
    """Print the newest TrainJob's conditions (and, when it failed, the step it failed in);
    return its final condition (`Failed=True`, `Complete=True`) or the whole list while it
    runs."""
    group, version, plural = TRAINJOBS
    listed: Any = api.list_namespaced_custom_object(
        group, version, namespace, plural, label_selector=f"mlplatform.io/model={model}"
    )
    jobs: list[dict[str, Any]] = listed["items"]
    if not jobs:
        raise OperationError(f"no TrainJobs of {model} in namespace {namespace}")
    job = max(jobs, key=lambda j: str(j["metadata"].get("creationTimestamp", "")))
    conditions: list[dict[str, Any]] = job.get("status", {}).get("conditions", [])
    state = ", ".join(f"{c['type']}={c['status']}" for c in conditions) or "no conditions yet"
    failed = next((c for c in conditions if c["type"] == "Failed" and c["status"] == "True"), None)
    why = f" ({failed.get('message') or failed.get('reason')})" if failed else ""
    print(f"{namespace}/{job['metadata']['name']}: {state}{why}")
    step = failed_step(job) if failed else None
    if step:
        selector = (
            f"jobset.sigs.k8s.io/jobset-name={job['metadata']['name']},"
            f"jobset.sigs.k8s.io/replicatedjob-name={step}"
        )
        print(f"  failed step: {step} ({STEPS.get(step, 'a step of the runtime')})")
        print(
            f"  why, in the pods' termination messages: kubectl -n {namespace} describe pods -l {selector}"
        )
    final = [
        f"{c['type']}=True"
        for c in conditions
        if c["type"] in TRAINJOB_DONE and c["status"] == "True"
    ]
    return final[0] if final else state
