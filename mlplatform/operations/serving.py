"""`mlplatform invoke`: one request to a model's endpoint (SageMaker) or Service (EKS): the
model's example request from its manifest (`serve.example`), or `--input FILE`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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
            header_params={"Content-Type": request.content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _preload_content=False,
        )
        print(answer.data.decode())
        return 0
    endpoint = outputs.name("endpointNames", model.name, what="the endpoint")
    runtime = aws_client("sagemaker-runtime", chosen.config.region)
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
