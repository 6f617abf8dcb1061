"""`mlplatform batch`: score an S3 prefix with a model's Batch Transform pipeline (the stack
output `batchPipelines[model]`), optionally on another input, and follow the run like `status`."""

from __future__ import annotations

import argparse
import uuid

from infra.stackfile import display_path
from mlplatform.operations.aws import OperationError, aws_client, call
from mlplatform.operations.outputs import target
from mlplatform.operations.training import PIPELINE_DONE, describe, follow

INPUT_PARAMETER = "InputUri"  # the batch pipeline's one parameter (infra/components/batch.py)


def cmd_batch(args: argparse.Namespace) -> int:
    chosen = target(args)
    model = chosen.model
    if model.batch is None:
        index = next(i for i, m in enumerate(chosen.config.models) if m is model)
        raise OperationError(
            f"{model.name} has no batch transform in stack {chosen.stack}: add "
            f"mlplatform:models[{index}].batch (instanceType, input, contentType) to "
            f"{display_path(chosen.path)} and run `pulumi up`"
        )
    if args.input is not None and not args.input.startswith("s3://"):
        raise OperationError(f"--input {args.input}: want an S3 prefix, s3://bucket/prefix/")
    name = chosen.outputs().name("batchPipelines", model.name, what="the batch pipeline")
    parameters = [{"Name": INPUT_PARAMETER, "Value": args.input}] if args.input else []
    sagemaker = aws_client("sagemaker", chosen.config.region)
    started = call(
        f"starting pipeline {name}",
        sagemaker.start_pipeline_execution,
        PipelineName=name,
        PipelineParameters=parameters,
        ClientRequestToken=str(uuid.uuid4()),
    )
    arn = started["PipelineExecutionArn"]
    scored = args.input or "the stack's batch input"
    print(f"started {arn} (scoring {scored}, {model.batch.content_type})")
    if not args.wait:
        return 0
    return follow(lambda: describe(sagemaker, arn), PIPELINE_DONE, args.interval)
