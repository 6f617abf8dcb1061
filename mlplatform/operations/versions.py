"""Model versions: `mlplatform approve` a registered one, `mlplatform publish` a local one as
what endpoints without a `modelPackageVersion` serve."""

from __future__ import annotations

import argparse
import io
import json
import tarfile
from pathlib import Path

from infra.stackfile import display_path
from mlplatform.operations.aws import OperationError, aws_client, call
from mlplatform.operations.outputs import target


def cmd_approve(args: argparse.Namespace) -> int:
    chosen = target(args)
    model = chosen.model
    # Either plane registers gated versions in the model's group (a pipeline's Register step,
    # an EKS run's evaluate job).
    group = chosen.outputs().name("modelPackageGroups", model.name, what="the model package group")
    sagemaker = aws_client("sagemaker", chosen.config.region)
    packages = call(
        f"listing versions in {group}",
        sagemaker.list_model_packages,
        ModelPackageGroupName=group,
        SortBy="CreationTime",
        SortOrder="Descending",
    )["ModelPackageSummaryList"]
    if args.version:
        chosen_packages = [p for p in packages if p.get("ModelPackageVersion") == args.version]
    else:
        pending = [p for p in packages if p.get("ModelApprovalStatus") == "PendingManualApproval"]
        chosen_packages = pending[:1]
    if not chosen_packages:
        what = f"version {args.version}" if args.version else "a version pending approval"
        raise OperationError(f"{group} has no {what}")
    package = chosen_packages[0]
    call(
        f"approving {package['ModelPackageArn']}",
        sagemaker.update_model_package,
        ModelPackageArn=package["ModelPackageArn"],
        ModelApprovalStatus="Approved",
        ApprovalDescription=args.note,
    )
    version = package.get("ModelPackageVersion")
    print(f"approved {package['ModelPackageArn']}")
    if model.serving.plane == "eks":
        print(
            f"{model.name} serves on EKS from models/{model.name}/model.tar.gz in the artifacts "
            "bucket: copy the version's ModelDataUrl there (`aws sagemaker "
            "describe-model-package` shows it), then restart the Deployment"
        )
        return 0
    print(
        f"to serve it: set serving.modelPackageVersion: {version} for {model.name} in "
        f"{display_path(chosen.path)}, then `pulumi up --stack {args.stack}`"
    )
    return 0


def exported_model(model_dir: Path, name: str) -> None:
    """Refuse a folder that holds no exported model, or another model's export."""
    spec_path = model_dir / "model.json"
    if not spec_path.is_file():
        raise OperationError(
            f"{model_dir} holds no exported model (model.json); train one first, e.g. "
            f"`mlplatform run --model {name}` exports to .mlplatform/run/{name}/model"
        )
    try:
        spec = json.loads(spec_path.read_text())
    except json.JSONDecodeError as error:
        raise OperationError(f"{spec_path}: not JSON ({error})") from None
    exported = spec.get("name") if isinstance(spec, dict) else None
    if exported not in (None, name):
        raise OperationError(f"{spec_path}: an export of model {exported!r}, not of {name!r}")


def cmd_publish(args: argparse.Namespace) -> int:
    chosen = target(args)
    model_dir = Path(args.model_dir)
    exported_model(model_dir, chosen.model.manifest.name)
    bucket = args.bucket or chosen.outputs().name(
        "bucketNames", "artifacts", what="the artifacts bucket", hint=", or pass --bucket"
    )
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            if path.is_file():
                tar.add(path, arcname=path.name)
    key = f"models/{chosen.model.name}/model.tar.gz"
    s3 = aws_client("s3", chosen.config.region)
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
