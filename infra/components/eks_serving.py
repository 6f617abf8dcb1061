"""EKS serving plane: Deployment + Service + autoscaling + PodDisruptionBudget on a node pool,
with the model fetched from the artifacts bucket at start-up, and CloudWatch alarms on the
replicas (infra/components/eks_alarms.py) that notify the stack's alert topic.

Autoscaling is a HorizontalPodAutoscaler when `minInstances` is 1 or more; at 0 it is KEDA's
HTTP add-on (infra/components/http_scaler.py says why): the model's Service then leads to the
add-on's interceptor, which holds requests while the Deployment scales up from zero, and a
second Service (`<model>-backend`) selects the replicas themselves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.components.cluster import pod_identity_role
from infra.components.eks_alarms import ServingAlarmsArgs, serving_alarms
from infra.components.eks_training import (
    AWS_CLI_IMAGE,
    RUN_USER,
    EksTarget,
    resources,
    restricted_security_context,
)
from infra.components.http_scaler import (
    INTERCEPTOR_LABELS,
    INTERCEPTOR_PORT,
    HttpScaler,
)
from infra.config import EksServing
from infra.context import StackContext

# Kubernetes specs are written in the API's own camelCase, the form kubernetes-validate checks
# against the cluster's schemas and the provider accepts as-is; `cast` names the SDK type they
# stand for (its ArgsDicts spell keys in snake_case).

PORT = 8080
MODEL_DIR = "/opt/ml/model"
# TF Serving on Kubernetes runs the TensorFlow project's own image (Docker Hub
# `tensorflow/serving`, tagged by TensorFlow release, `-gpu` for CUDA builds;
# https://www.tensorflow.org/tfx/serving/docker): `tensorflow_model_server` only reads the
# model, so it runs as the unprivileged user on a read-only root filesystem. AWS's SageMaker
# TF Serving container (the SageMaker plane's choice) starts nginx and writes its configuration
# at start-up, which that filesystem refuses. The tag follows the model's declared TensorFlow
# version (model.yaml `image.serving.dlc.version`), never typed per model.
TF_SERVING_REPOSITORY = "tensorflow/serving"
# The model name TF Serving serves: the SavedModel's directory in the archive
# (training.export.keras writes saved_model/<version>/).
TF_SERVING_MODEL = "saved_model"
TF_SERVING_GRPC_PORT = 8500
UNPACK = "import tarfile; tarfile.open('/archive/model.tar.gz').extractall('/opt/ml/model', filter='data')"


@dataclass(frozen=True)
class EksServingArgs:
    """A model's EKS serving settings, the stack, and where its pods land."""

    model_name: str
    serving: EksServing
    context: StackContext
    target: EksTarget
    serving_image: pulumi.Input[str]
    model_data_key: str  # the model archive it serves, in the artifacts bucket
    runtime: str = "platform"  # platform (our server) | tensorflow-serving | image
    environment: Mapping[str, str] = field(default_factory=dict)
    alert_topic_arn: pulumi.Input[str] | None = None  # alarms notify it (none: no alarms)
    # The image that unpacks the archive (needs python); the serving image when None.
    unpack_image: pulumi.Input[str] | None = None
    scale_from_zero: HttpScaler | None = None  # KEDA's HTTP add-on, for minInstances 0


def serving_bucket_policy(model: str, artifacts_arn: str, kms_key_arn: str) -> str:
    """Serving pods read only their own model's artifacts."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ReadModel",
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": f"{artifacts_arn}/models/{model}/*",
                },
                {
                    "Sid": "StackKey",
                    "Effect": "Allow",
                    "Action": "kms:Decrypt",
                    "Resource": kms_key_arn,
                },
            ],
        }
    )


def tf_serving_image(version: str, gpu: bool) -> str:
    """The TF Serving image for a TensorFlow release, CUDA build for GPU replicas."""
    return f"{TF_SERVING_REPOSITORY}:{version}{'-gpu' if gpu else ''}"


def server_process(runtime: str) -> dict[str, list[str]]:
    """The server container's command and arguments for a serving runtime."""
    if runtime == "tensorflow-serving":
        return {
            "command": ["tensorflow_model_server"],
            "args": [
                f"--rest_api_port={PORT}",
                f"--port={TF_SERVING_GRPC_PORT}",
                f"--model_name={TF_SERVING_MODEL}",
                f"--model_base_path={MODEL_DIR}/{TF_SERVING_MODEL}",
            ],
        }
    # The platform image and a model's own image take SageMaker's `serve` argument.
    return {"args": ["serve"]}


def health_paths(runtime: str) -> tuple[str, str]:
    """(readiness, liveness) HTTP paths: our server answers the Open Inference Protocol's;
    TF Serving its model-status route (200 once the version is loaded); a model's own image
    the SageMaker contract's /ping."""
    if runtime == "platform":
        return "/v2/health/ready", "/v2/health/live"
    if runtime == "tensorflow-serving":
        status = f"/v1/models/{TF_SERVING_MODEL}"
        return status, status
    return "/ping", "/ping"


def deployment_spec(
    args: EksServingArgs,
    image: str,
    bucket: str,
    service_account: str,
    unpack_image: str | None = None,
) -> dict:
    """Replicas that fetch the model, then serve it; never fewer ready than wanted."""
    s = args.serving
    labels = {"app.kubernetes.io/name": args.model_name, "app.kubernetes.io/component": "serving"}
    gpus = {"nvidia.com/gpu": str(s.gpus_per_replica)} if s.gpus_per_replica else {}
    ready, live = health_paths(args.runtime)
    probe = {
        "httpGet": {"path": ready, "port": "http"},
        "periodSeconds": 5,
        "failureThreshold": 3,
    }
    return {
        "replicas": s.min_instances,
        "selector": {"matchLabels": labels},
        # A new pod must be ready before an old one goes: no capacity lost during a rollout.
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        },
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "serviceAccountName": service_account,
                # Pod Identity hands AWS credentials through its agent, not the token.
                "automountServiceAccountToken": False,
                "priorityClassName": args.target.priority_class,
                "nodeSelector": dict(args.target.placement.node_selector),
                "tolerations": [dict(x) for x in args.target.placement.tolerations],
                "securityContext": {
                    "fsGroup": RUN_USER,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                # Longer than the server's drain: in-flight requests finish on SIGTERM.
                "terminationGracePeriodSeconds": 60,
                "initContainers": [
                    {
                        "name": "fetch-model",
                        "image": AWS_CLI_IMAGE,
                        "command": [
                            "aws",
                            "s3",
                            "cp",
                            f"s3://{bucket}/{args.model_data_key}",
                            "/archive/model.tar.gz",
                        ],
                        "env": [{"name": "HOME", "value": "/tmp"}],
                        "volumeMounts": [
                            {"name": "archive", "mountPath": "/archive"},
                            {"name": "tmp", "mountPath": "/tmp"},
                        ],
                        "resources": resources("100m", "512Mi"),
                        "securityContext": restricted_security_context(),
                    },
                    {
                        "name": "unpack-model",
                        "image": unpack_image or image,
                        "command": ["python", "-c", UNPACK],
                        "volumeMounts": [
                            {"name": "archive", "mountPath": "/archive"},
                            {"name": "model", "mountPath": MODEL_DIR},
                        ],
                        "resources": resources("100m", "1Gi"),
                        "securityContext": restricted_security_context(),
                    },
                ],
                "containers": [
                    {
                        "name": "server",
                        "image": image,
                        **server_process(args.runtime),
                        "env": [
                            {"name": "MODEL_DIR", "value": MODEL_DIR},
                            {"name": "SERVING_PORT", "value": str(PORT)},
                            {"name": "SAGEMAKER_BIND_TO_PORT", "value": str(PORT)},
                            *({"name": k, "value": v} for k, v in sorted(args.environment.items())),
                        ],
                        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
                        "readinessProbe": probe,
                        "livenessProbe": {
                            **probe,
                            "httpGet": {"path": live, "port": "http"},
                            "failureThreshold": 6,
                        },
                        # The model loads and warms up before readiness; allow it 5 minutes.
                        "startupProbe": {
                            **probe,
                            "httpGet": {"path": live, "port": "http"},
                            "failureThreshold": 60,
                        },
                        "resources": resources(f"{s.cpus:g}", s.memory, gpus),
                        "volumeMounts": [
                            {"name": "model", "mountPath": MODEL_DIR, "readOnly": True},
                            {"name": "tmp", "mountPath": "/tmp"},
                        ],
                        "securityContext": restricted_security_context(),
                    }
                ],
                "volumes": [
                    {"name": "archive", "emptyDir": {}},
                    {"name": "model", "emptyDir": {}},
                    {"name": "tmp", "emptyDir": {}},
                ],
            },
        },
    }


# The type token this component had before its token matched its class name; the alias keeps
# `pulumi up` from replacing what a stack already has.
_OLD_TYPE = "mlplatform:eks:ModelServer"


def service_spec(selector: Mapping[str, str], target_port: int | str) -> dict:
    """A ClusterIP Service on port 80 (`http`) in front of the pods `selector` picks."""
    return {
        "type": "ClusterIP",
        "selector": dict(selector),
        "ports": [{"name": "http", "port": 80, "targetPort": target_port, "protocol": "TCP"}],
    }


def hpa_spec(model: str, serving: EksServing) -> dict:
    """CPU-driven scaling between minInstances (1 or more) and maxInstances."""
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": model},
        "minReplicas": serving.min_instances,
        "maxReplicas": serving.max_instances,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {
                        "type": "Utilization",
                        "averageUtilization": serving.target_cpu_utilization,
                    },
                },
            }
        ],
        # Scale in slowly: a GPU node that leaves takes minutes to come back.
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}},
    }


class EksModelServer(pulumi.ComponentResource):
    """One model served from a node pool behind a ClusterIP Service, autoscaled and alarmed."""

    service_name: str
    replica_service_name: str

    def __init__(self, name: str, args: EksServingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(
            "mlplatform:eks:EksModelServer",
            name,
            None,
            pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=_OLD_TYPE)])
            ),
        )
        s = args.serving
        model = args.model_name
        scaler = args.scale_from_zero
        if s.min_instances == 0 and scaler is None:
            raise ValueError(
                f"model {model!r}: minInstances 0 needs scale_from_zero (EksPlane.http_scaler())"
            )
        k8s_opts = pulumi.ResourceOptions(parent=self)
        service_account = f"{model}-serving"
        labels = {"app.kubernetes.io/name": model, "app.kubernetes.io/component": "serving"}
        account = k8s.core.v1.ServiceAccount(
            f"{name}-serving",
            metadata={"name": service_account, "namespace": args.target.namespace},
            opts=k8s_opts,
        )
        role = pod_identity_role(
            f"{name}-serving",
            description=f"{model} serving pods: read the model",
            scope=args.target.pod_identity(service_account),
            policy=pulumi.Output.all(
                args.context.bucket_arns["artifacts"], args.context.kms_key_arn
            ).apply(lambda v: serving_bucket_policy(model, v[0], v[1])),
            parent=self,
        )
        association = aws.eks.PodIdentityAssociation(
            f"{name}-serving",
            cluster_name=args.target.cluster_name,
            namespace=args.target.namespace,
            service_account=service_account,
            role_arn=role.arn,
            opts=pulumi.ResourceOptions(parent=role),
        )
        metadata: k8s.meta.v1.ObjectMetaArgsDict = {
            "name": model,
            "namespace": args.target.namespace,
            "labels": labels,
        }
        deployment = k8s.apps.v1.Deployment(
            f"{name}-serving",
            metadata=metadata,
            spec=pulumi.Output.all(
                args.serving_image,
                args.context.bucket_names["artifacts"],
                args.unpack_image or args.serving_image,
            ).apply(
                lambda v: cast(
                    k8s.apps.v1.DeploymentSpecArgsDict,
                    deployment_spec(args, v[0], v[1], service_account, v[2]),
                )
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[account, association],
                # From zero, KEDA owns the count once the Deployment exists (created at 0, so a
                # deploy wakes no node). The HPA path keeps setting its floor: the HPA does not act
                # on a Deployment at zero, which a model coming back from minInstances 0 may be.
                ignore_changes=["spec.replicas"] if scaler else None,
            ),
        )
        if scaler is None:
            self.replica_service_name = model
            k8s.core.v1.Service(
                f"{name}-serving",
                metadata=metadata,
                spec=cast(k8s.core.v1.ServiceSpecArgsDict, service_spec(labels, "http")),
                opts=k8s_opts,
            )
            k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{name}-serving",
                metadata=metadata,
                spec=cast(
                    k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgsDict, hpa_spec(model, s)
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment]),
            )
        else:
            # The model's Service leads to the add-on's interceptor, `<model>-backend` to the
            # replicas: the interceptor holds requests while they scale up from zero.
            self.replica_service_name = f"{model}-backend"
            k8s.core.v1.Service(
                f"{name}-serving",
                metadata=metadata,
                spec=cast(
                    k8s.core.v1.ServiceSpecArgsDict,
                    service_spec(INTERCEPTOR_LABELS, INTERCEPTOR_PORT),
                ),
                opts=k8s_opts,
            )
            k8s.core.v1.Service(
                f"{name}-backend",
                metadata={**metadata, "name": self.replica_service_name},
                spec=cast(k8s.core.v1.ServiceSpecArgsDict, service_spec(labels, "http")),
                opts=k8s_opts,
            )
            scaler.scale_from_zero(name, model, s, self.replica_service_name, metadata, parent=self)
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-serving",
            metadata=metadata,
            # Node drains take one replica at a time; with one replica, the rollout surge covers
            # it, and with none (scaled to zero) there is nothing to protect.
            spec=cast(
                k8s.policy.v1.PodDisruptionBudgetSpecArgsDict,
                {"maxUnavailable": 1, "selector": {"matchLabels": labels}},
            ),
            opts=k8s_opts,
        )
        if args.alert_topic_arn is not None:
            serving_alarms(
                name,
                ServingAlarmsArgs(
                    model=model,
                    serving=s,
                    target=args.target,
                    replica_service=self.replica_service_name,
                    topic_arn=args.alert_topic_arn,
                ),
                parent=self,
            )
        self.service_name = model
        self.register_outputs(
            {"serviceName": model, "replicaServiceName": self.replica_service_name}
        )
