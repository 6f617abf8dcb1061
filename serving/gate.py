"""`python -m serving gate`: evaluate a training run's exported model on the held-out test
channel and register it only if the evaluator's objective meets the threshold (the EKS plane's
last step; the SageMaker pipeline does the same with its Evaluate, MeetsThreshold and Register
steps).

    python -m serving gate --export-dir EXPORT --test-dir TEST --work-dir WORK
        --metric accuracy --goal maximize [--threshold 0.95]
        --output-uri s3://ARTIFACTS/models/M/evaluated/RUN/
        --model-package-group GROUP --image SERVING_IMAGE --content-type application/json ...
        [--instance-type ml.g5.xlarge ...] [--description TEXT] [--token RUN]

1. Pack EXPORT (the model directory the run exported) as WORK/model.tar.gz, SageMaker's
   layout, and unpack that archive into WORK/model: what is evaluated is what is registered.
2. Run the platform's evaluator, `python -m serving evaluate`, on WORK/model and TEST, into
   WORK/evaluation.json. Nothing the training run wrote about itself (metrics.json) is read.
3. Compare `metrics.<metric>.value` of evaluation.json with the threshold as the pipeline's
   condition does: at least it when the goal is maximize, at most it when minimize.
4. Upload evaluation.json to OUTPUT_URI; if the model passed, upload model.tar.gz there and
   create a version in GROUP (CreateModelPackage, PendingManualApproval) serving it with IMAGE.

Exit status: 0 registered; 3 refused by the threshold; 2 nothing to evaluate or the evaluator
refused (both final: a retry would say the same); 1 an AWS call failed (worth a retry). The last
line says why, and goes to the container's termination message (TERMINATION_LOG, default
/dev/termination-log, when it exists) so `kubectl describe pod` and `mlplatform status` show it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXIT_REGISTERED = 0
EXIT_AWS = 1
EXIT_ERROR = 2
EXIT_REFUSED = 3
ARCHIVE = "model.tar.gz"
EVALUATION = "evaluation.json"
APPROVAL = "PendingManualApproval"


class GateError(Exception):
    """Nothing to evaluate, or the evaluator refused the model or the data: exit 2."""


@dataclass(frozen=True)
class Objective:
    """The manifest's objective: the evaluator metric, which way is better, the threshold."""

    metric: str
    goal: str = "maximize"
    threshold: float | None = None

    def passes(self, value: float) -> bool:
        """The pipeline's condition: GreaterThanOrEqualTo when maximizing, else
        LessThanOrEqualTo; no threshold registers every evaluated model, as there."""
        if self.threshold is None:
            return True
        return value >= self.threshold if self.goal == "maximize" else value <= self.threshold


@dataclass(frozen=True)
class Registration:
    """Where a passing model goes: its model package group and how SageMaker serves it."""

    group: str
    image: str
    content_types: Sequence[str]
    instance_types: Sequence[str] = field(default_factory=tuple)
    description: str = ""
    token: str = ""  # the run's name: a retried step never registers twice


def pack(export_dir: Path, archive: Path) -> None:
    """Every file of the exported model directory, paths relative to it (model.tar.gz as
    SageMaker writes it from /opt/ml/model)."""
    if not (export_dir / "model.json").is_file():
        raise GateError(
            f"{export_dir}: no model.json; the training run exported no model "
            "(it writes one with run.export before it ends)"
        )
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(export_dir.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(export_dir)), recursive=False)


def unpack(archive: Path, into: Path) -> None:
    """The archive's files, and nothing else, in `into`."""
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(into, filter="data")


def evaluate(model_dir: Path, test_dir: Path, out: Path, variants: str = "all") -> dict[str, Any]:
    """evaluation.json, written by `python -m serving evaluate` in its own process (the model's
    code, if any, runs there, not in the process that decides)."""
    command = [
        sys.executable, "-m", "serving", "evaluate",
        "--model-dir", str(model_dir),
        "--data-dir", str(test_dir),
        "--out", str(out),
        "--variants", variants,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise GateError(f"the evaluator refused the model: {last.removeprefix('error: ')}")
    return json.loads(out.read_text())


def verdict(report: dict[str, Any], objective: Objective) -> tuple[bool, str]:
    """Whether the evaluation passes, and the one line that says so."""
    try:
        value = float(report["metrics"][objective.metric]["value"])
    except (KeyError, TypeError, ValueError) as exc:
        found = ", ".join(sorted(report.get("metrics", {}))) or "none"
        raise GateError(
            f"evaluation.json has no metrics.{objective.metric}.value (it has: {found})"
        ) from exc
    figure = f"{objective.metric} {value:.4f} on the held-out test channel"
    if objective.threshold is None:
        return True, f"{figure} (no threshold)"
    sign = ">=" if objective.goal == "maximize" else "<="
    if objective.passes(value):
        return True, f"{figure} {sign} {objective.threshold:g}"
    return False, f"{figure} misses the threshold ({sign} {objective.threshold:g})"


def model_package_request(
    registration: Registration, model_data_url: str, evaluation_uri: str
) -> dict[str, Any]:
    """CreateModelPackage arguments: a version awaiting approval, as the pipeline's Register
    step creates it (serving image, archive, supported types, the evaluation as its metrics)."""
    content_types = list(registration.content_types)
    inference: dict[str, Any] = {
        "Containers": [{"Image": registration.image, "ModelDataUrl": model_data_url}],
        "SupportedContentTypes": content_types,
        "SupportedResponseMIMETypes": content_types,
    }
    if registration.instance_types:
        inference["SupportedRealtimeInferenceInstanceTypes"] = list(registration.instance_types)
    request: dict[str, Any] = {
        "ModelPackageGroupName": registration.group,
        "InferenceSpecification": inference,
        "ModelApprovalStatus": APPROVAL,
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": evaluation_uri}
            }
        },
    }
    if registration.description:
        request["ModelPackageDescription"] = registration.description
    if registration.token:
        # At most 36 characters of [a-zA-Z0-9-]: a digest of the run, the same on every retry.
        request["ClientToken"] = hashlib.sha256(registration.token.encode()).hexdigest()[:32]
    return request


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def run(
    export_dir: Path,
    test_dir: Path,
    work_dir: Path,
    objective: Objective,
    output_uri: str,
    registration: Registration,
    variants: str = "all",
) -> tuple[int, str]:
    """Evaluate, decide, upload and register; (exit status, the line that says why)."""
    archive, model_dir = work_dir / ARCHIVE, work_dir / "model"
    pack(export_dir, archive)
    unpack(archive, model_dir)
    report = evaluate(model_dir, test_dir, work_dir / EVALUATION, variants)
    passed, why = verdict(report, objective)

    import boto3

    base = output_uri.rstrip("/") + "/"
    s3 = boto3.client("s3")
    evaluation_uri, model_uri = base + EVALUATION, base + ARCHIVE
    s3.upload_file(str(work_dir / EVALUATION), *_split(evaluation_uri))
    if not passed:
        return EXIT_REFUSED, f"not registered: {why}"
    s3.upload_file(str(archive), *_split(model_uri))
    request = model_package_request(registration, model_uri, evaluation_uri)
    arn = boto3.client("sagemaker").create_model_package(**request)["ModelPackageArn"]
    return EXIT_REGISTERED, f"registered {arn} ({APPROVAL}): {why}"


def _termination_log(line: str) -> None:
    """Kubernetes mounts the file a container's last words go to; elsewhere there is none."""
    path = Path(os.environ.get("TERMINATION_LOG", "/dev/termination-log"))
    if path.is_file():
        with contextlib.suppress(OSError):
            path.write_text(line + "\n")


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m serving gate", description=__doc__)
    p.add_argument("--export-dir", type=Path, required=True, help="the run's exported model")
    p.add_argument("--test-dir", type=Path, required=True, help="the held-out test channel")
    p.add_argument("--work-dir", type=Path, required=True, help="scratch space")
    p.add_argument("--metric", required=True, help="the evaluator metric the objective names")
    p.add_argument("--goal", choices=("maximize", "minimize"), default="maximize")
    p.add_argument("--threshold", type=float, help="none: register every evaluated model")
    p.add_argument("--output-uri", required=True, help="s3:// prefix for the archive and report")
    p.add_argument("--model-package-group", required=True)
    p.add_argument("--image", required=True, help="the serving image the version runs in")
    p.add_argument("--content-type", action="append", required=True, dest="content_types")
    p.add_argument("--instance-type", action="append", default=[], dest="instance_types")
    p.add_argument("--description", default="")
    p.add_argument("--token", default="", help="idempotency: the run's name")
    p.add_argument("--variants", default="all", help="what the evaluator scores")
    args = p.parse_args(argv)
    if not args.output_uri.startswith("s3://"):
        p.error("--output-uri must be an s3:// prefix")
    objective = Objective(args.metric, args.goal, args.threshold)
    registration = Registration(
        group=args.model_package_group,
        image=args.image,
        content_types=args.content_types,
        instance_types=args.instance_types,
        description=args.description,
        token=args.token,
    )
    try:
        status, line = run(
            args.export_dir,
            args.test_dir,
            args.work_dir,
            objective,
            args.output_uri,
            registration,
            args.variants,
        )
    except GateError as exc:
        status, line = EXIT_ERROR, f"not registered: {exc}"
    except Exception as exc:  # botocore's errors, S3 or SageMaker refusing: worth a retry
        status, line = EXIT_AWS, f"not registered: {type(exc).__name__}: {exc}"
    print(line, file=sys.stderr if status else sys.stdout)
    _termination_log(line)
    return status
