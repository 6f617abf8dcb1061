"""EKS serving plane: Deployment + Service + HorizontalPodAutoscaler + PodDisruptionBudget
on the GPU serving pool, with the model fetched from the artifacts bucket at start-up."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.components.cluster import pod_identity_role
from infra.components.eks_training import (
    AWS_CLI_IMAGE,
    RUN_USER,
    PoolPlacement,
    restricted_security_context,
)
from infra.config import Model

PORT = 8080
MODEL_DIR = "/opt/ml/model"
UNPACK = "import tarfile; tarfile.open('/archive/model.tar.gz').extractall('/opt/ml/model', filter='data')"


@dataclass(frozen=True)
class EksServingArgs:
    """A model's serving settings and the cluster and bucket its pods use."""

    model: Model
    cluster_name: pulumi.Input[str]
    namespace: pulumi.Input[str]
    placement: PoolPlacement
    priority_class: str
    serving_image: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    artifacts_bucket: pulumi.Input[str]
    artifacts_bucket_arn: pulumi.Input[str]
    provider: k8s.Provider


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


def deployment_spec(args: EksServingArgs, image: str, bucket: str, service_account: str) -> dict:
    """Replicas that fetch the model, then serve it; never fewer ready than wanted."""
    s = args.model.serving
    labels = {"app.kubernetes.io/name": args.model.name, "app.kubernetes.io/component": "serving"}
    gpus = {"nvidia.com/gpu": str(s.gpus_per_replica)} if s.gpus_per_replica else {}
    probe = {
        "httpGet": {"path": "/v2/health/ready", "port": "http"},
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
                "priorityClassName": args.priority_class,
                "nodeSelector": dict(args.placement.node_selector),
                "tolerations": [dict(x) for x in args.placement.tolerations],
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
                            f"s3://{bucket}/models/{args.model.name}/model.tar.gz",
                            "/archive/model.tar.gz",
                        ],
                        "env": [{"name": "HOME", "value": "/tmp"}],
                        "volumeMounts": [
                            {"name": "archive", "mountPath": "/archive"},
                            {"name": "tmp", "mountPath": "/tmp"},
                        ],
                        "securityContext": restricted_security_context(),
                    },
                    {
                        "name": "unpack-model",
                        "image": image,
                        "command": ["python", "-c", UNPACK],
                        "volumeMounts": [
                            {"name": "archive", "mountPath": "/archive"},
                            {"name": "model", "mountPath": MODEL_DIR},
                        ],
                        "securityContext": restricted_security_context(),
                    },
                ],
                "containers": [
                    {
                        "name": "server",
                        "image": image,
                        "args": ["serve"],
                        "env": [
                            {"name": "MODEL_DIR", "value": MODEL_DIR},
                            {"name": "SERVING_PORT", "value": str(PORT)},
                        ],
                        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
                        "readinessProbe": probe,
                        "livenessProbe": {
                            **probe,
                            "httpGet": {"path": "/v2/health/live", "port": "http"},
                            "failureThreshold": 6,
                        },
                        # The model loads and warms up before readiness; allow it 5 minutes.
                        "startupProbe": {
                            **probe,
                            "httpGet": {"path": "/v2/health/live", "port": "http"},
                            "failureThreshold": 60,
                        },
                        "resources": {
                            "requests": {"cpu": "1", "memory": "2Gi", **gpus},
                            "limits": gpus,
                        },
                        "volumeMounts": [
                            {"name": "model", "mountPath": MODEL_DIR, "readOnly": True}
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


class EksModelServer(pulumi.ComponentResource):
    """One model served from the GPU serving pool behind a ClusterIP Service."""

    service_name: str

    def __init__(self, name: str, args: EksServingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:eks:ModelServer", name, None, opts)
        s = args.model.serving
        model = args.model.name
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.provider)
        service_account = f"{model}-serving"
        labels = {"app.kubernetes.io/name": model, "app.kubernetes.io/component": "serving"}
        account = k8s.core.v1.ServiceAccount(
            f"{name}-serving",
            metadata={"name": service_account, "namespace": args.namespace},
            opts=k8s_opts,
        )
        role = pod_identity_role(
            f"{name}-serving",
            description=f"{model} serving pods: read the model",
            policy=pulumi.Output.all(args.artifacts_bucket_arn, args.kms_key_arn).apply(
                lambda v: serving_bucket_policy(model, v[0], v[1])
            ),
            parent=self,
        )
        association = aws.eks.PodIdentityAssociation(
            f"{name}-serving",
            cluster_name=args.cluster_name,
            namespace=args.namespace,
            service_account=service_account,
            role_arn=role.arn,
            opts=pulumi.ResourceOptions(parent=role),
        )
        metadata = {"name": model, "namespace": args.namespace, "labels": labels}
        deployment = k8s.apps.v1.Deployment(
            f"{name}-serving",
            metadata=metadata,
            spec=pulumi.Output.all(args.serving_image, args.artifacts_bucket).apply(
                lambda v: deployment_spec(args, v[0], v[1], service_account)
            ),
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=[account, association]
            ),
        )
        k8s.core.v1.Service(
            f"{name}-serving",
            metadata=metadata,
            spec={
                "type": "ClusterIP",
                "selector": labels,
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            },
            opts=k8s_opts,
        )
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-serving",
            metadata=metadata,
            spec={
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": model},
                "minReplicas": s.min_instances,
                "maxReplicas": s.max_instances,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {
                                "type": "Utilization",
                                "averageUtilization": s.target_cpu_utilization,
                            },
                        },
                    }
                ],
                # Scale in slowly: a GPU node that leaves takes minutes to come back.
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}},
            },
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=[deployment]
            ),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-serving",
            metadata=metadata,
            # Node drains take one replica at a time; with one replica, the rollout surge covers it.
            spec={"maxUnavailable": 1, "selector": {"matchLabels": labels}},
            opts=k8s_opts,
        )
        self.service_name = model
        self.register_outputs({"serviceName": model})
