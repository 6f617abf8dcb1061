"""`mlplatform invoke`: one request to a model's endpoint (SageMaker) or Service (EKS): the
model's example request from its manifest (`serve.example`), or `--input FILE`.

An asynchronous endpoint takes only InvokeEndpointAsync: the request goes to the model's async
prefix in the artifacts bucket (which its hosting role reads), the endpoint queues it, and the
command waits for the result (or the failure) it writes back, up to `--timeout` seconds. An EKS
model that scales to zero is reached through KEDA's interceptor, which routes by the model
header (infra/components/http_scaler.py) and holds the request while a replica starts."""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from infra.components.http_scaler import MODEL_HEADER
from infra.data_layout import DataLayout
from mlplatform.example import ExampleRequest, example_request, request_from_file
from mlplatform.operations.aws import OperationError, aws_client, call
from mlplatform.operations.kube import api_client
from mlplatform.operations.outputs import Target, target


def request_for(args: argparse.Namespace, chosen: Target) -> ExampleRequest:
    """`--input FILE` (as `--content-type`, default the manifest's first), else the example."""
    manifest = chosen.model.manifest
    content_type = args.content_type or manifest.serve.content_types[0]
    if args.input is None:
        return example_request(chosen.model.directory, manifest)
    path = Path(args.input)
    if not path.is_file():
        raise OperationError(f"--input {path}: no such file")
    return request_from_file(path, content_type)


def cmd_invoke(args: argparse.Namespace) -> int:
    chosen = target(args)
    model = chosen.model
    request = request_for(args, chosen)
    outputs = chosen.outputs()
    if model.serving.plane == "eks":
        service = outputs.name("kubernetesServices", model.name, what="the model's Service")
        namespace = outputs.name("kubernetesNamespaces", "serving", what="the serving namespace")
        try:
            body = json.loads(request.body) if request.is_json else request.body.decode()
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise OperationError(f"{request.source}: not {request.content_type}: {error}") from None
        # Through the API server's service proxy: no load balancer or port-forward needed.
        answer = api_client(args).call_api(
            f"/api/v1/namespaces/{namespace}/services/{service}:http/proxy/invocations",
            "POST",
            header_params={
                "Content-Type": request.content_type,
                "Accept": "application/json",
                # KEDA's interceptor (scale to zero) routes by it; the replicas ignore it.
                MODEL_HEADER: model.name,
            },
            body=body,
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _preload_content=False,
        )
        print(answer.data.decode())
        return 0
    endpoint = outputs.name("endpointNames", model.name, what="the endpoint")
    runtime = aws_client("sagemaker-runtime", chosen.config.region)
    if getattr(model.serving, "mode", None) == "async":
        return _invoke_async(args, chosen, request, endpoint, runtime)
    answer = call(
        f"invoking endpoint {endpoint}",
        runtime.invoke_endpoint,
        EndpointName=endpoint,
        ContentType=request.content_type,
        Accept="application/json",
        Body=request.body,
    )
    print(answer["Body"].read().decode())
    return 0


def _s3_location(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _invoke_async(
    args: argparse.Namespace, chosen: Target, request: ExampleRequest, endpoint: str, runtime: Any
) -> int:
    """Upload the request, queue it, and wait for the result or the failure the endpoint
    writes (exit 0 / 1); with --timeout 0, print where they will appear and return."""
    region = chosen.config.region
    bucket = chosen.outputs().name("bucketNames", "artifacts", what="the artifacts bucket")
    key = f"{DataLayout.of(chosen.model).async_prefix}requests/{uuid.uuid4().hex}"
    s3 = aws_client("s3", region)
    call(
        f"uploading the request to s3://{bucket}/{key}",
        s3.put_object,
        Bucket=bucket,
        Key=key,
        Body=request.body,
        ContentType=request.content_type,
    )
    queued = call(
        f"queueing the request on asynchronous endpoint {endpoint}",
        runtime.invoke_endpoint_async,
        EndpointName=endpoint,
        InputLocation=f"s3://{bucket}/{key}",
        ContentType=request.content_type,
        Accept="application/json",
    )
    output, failure = queued["OutputLocation"], queued.get("FailureLocation")
    print(f"queued {queued['InferenceId']}: result at {output}", file=sys.stderr)
    if args.timeout <= 0:
        print(output)
        return 0
    deadline = time.monotonic() + args.timeout
    while True:
        for location, ok in ((output, True), (failure, False)):
            if not location:
                continue
            body = _read_if_there(s3, location)
            if body is not None:
                print(body.decode(errors="replace"), file=sys.stdout if ok else sys.stderr)
                return 0 if ok else 1
        if time.monotonic() >= deadline:
            raise OperationError(
                f"no result at {output} after {args.timeout:g} s; the request stays queued "
                "(an endpoint at zero instances starts one first: minutes)"
            )
        time.sleep(args.interval)


def _read_if_there(s3: Any, uri: str) -> bytes | None:
    from botocore.exceptions import ClientError

    bucket, key = _s3_location(uri)
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise OperationError(f"reading {uri}: {error}") from None
