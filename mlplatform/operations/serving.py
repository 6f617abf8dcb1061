"""`mlplatform invoke`: one request to a model's endpoint (SageMaker) or Service (EKS)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mlplatform.operations.aws import aws_client, call
from mlplatform.operations.kube import api_client
from mlplatform.operations.outputs import target

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


def cmd_invoke(args: argparse.Namespace) -> int:
    chosen = target(args)
    model = chosen.model
    body = Path(args.input).read_bytes() if args.input else json.dumps(SAMPLE).encode()
    outputs = chosen.outputs()
    if model.serving.plane == "eks":
        service = outputs.name("kubernetesServices", model.name, what="the model's Service")
        namespace = outputs.name("kubernetesNamespaces", "serving", what="the serving namespace")
        # Through the API server's service proxy: no load balancer or port-forward needed.
        answer = api_client(args).call_api(
            f"/api/v1/namespaces/{namespace}/services/{service}:http/proxy/invocations",
            "POST",
            header_params={"Content-Type": "application/json", "Accept": "application/json"},
            body=json.loads(body),
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
        ContentType="application/json",
        Accept="application/json",
        Body=body,
    )
    print(answer["Body"].read().decode())
    return 0
