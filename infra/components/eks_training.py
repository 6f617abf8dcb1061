"""EKS training plane: Kubeflow Trainer (pinned) and, per model, a TrainingRuntime that
`mlplatform train` starts TrainJobs from.

Each node of a run reads the dataset through the Mountpoint S3 CSI driver (read-only), writes
checkpoints to local disk that a sidecar syncs to `s3://<checkpoints>/<model>/<run>/` (and an
init container restores, so a restarted run resumes), and uploads the model to the artifacts
bucket when it ends. Pods are annotated so neither Karpenter nor the cluster-autoscaler
evicts a running job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.components.cluster import pod_identity_role
from infra.components.cluster_iam import PodIdentityScope
from infra.components.eks_operator import RUNTIME_API, TrainingOperator
from infra.config import EksTraining
from infra.context import StackContext
from infra.data_layout import DataLayout

if TYPE_CHECKING:
    from training.manifest import ModelManifest

# Kubernetes specs are written in the API's own camelCase, the form kubernetes-validate checks
# against the cluster's schemas and the provider accepts as-is; `cast` names the SDK type they
# stand for (its ArgsDicts spell keys in snake_case).

# Copies checkpoints and models between pod disks and S3 (the training image has no AWS CLI).
AWS_CLI_IMAGE = "public.ecr.aws/aws-cli/aws-cli:2.27.26"
RUN_USER = 10001  # the unprivileged user of the platform image
CODE_DIR = "/opt/ml/code"  # the model's code in its platform image (its WORKDIR)
DATA_DIR = "/data"  # channels are mounted at /data/<channel>
NO_EVICTION = {
    "karpenter.sh/do-not-disrupt": "true",
    "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
}
SYNC_SCRIPT = """\
set -u
sync_all() {
  aws s3 sync /checkpoints "$CHECKPOINT_URI" --only-show-errors
  if [ -f /model/metrics.json ]; then aws s3 sync /model "$MODEL_URI" --only-show-errors; fi
}
trap 'sync_all; exit 0' TERM
while true; do sleep 60 & wait $!; sync_all; done
"""


def restricted_security_context() -> dict:
    """Pod Security `restricted`, and a read-only root filesystem: a container writes only to
    the volumes mounted for it (emptyDirs for /tmp, checkpoints, the model)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_USER,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(cpu: str, memory: str, gpus: dict[str, str] | None = None) -> dict:
    """Requests, and a memory limit equal to them: a leak ends the container, not the node."""
    gpus = gpus or {}
    return {
        "requests": {"cpu": cpu, "memory": memory, **gpus},
        "limits": {"memory": memory, **gpus},
    }


@dataclass(frozen=True)
class PoolPlacement:
    """Where pods of a GPU pool land: its node selector and the tolerations its taints need."""

    node_selector: dict[str, str]
    tolerations: list[dict[str, str]]


@dataclass(frozen=True)
class EksTarget:
    """Where a workload runs on the cluster: its namespace, priority and node pool. The
    Kubernetes provider reaches workload components through `opts` (`provider=`), as Pulumi
    passes providers to components."""

    cluster_name: pulumi.Input[str]
    cluster_arn: pulumi.Input[str]
    namespace: pulumi.Input[str]
    priority_class: str
    placement: PoolPlacement

    def pod_identity(self, service_account: str) -> PodIdentityScope:
        """Scope a Pod Identity role to one service account of this namespace and cluster."""
        return PodIdentityScope(self.cluster_arn, self.namespace, service_account)


@dataclass(frozen=True)
class EksTrainingArgs:
    """A model's EKS training settings, the stack, where its runs land, and the operator."""

    model_name: str
    training: EksTraining
    manifest: ModelManifest
    layout: DataLayout
    context: StackContext
    target: EksTarget
    training_image: pulumi.Input[str]
    operator: TrainingOperator


def training_bucket_policy(
    model: str, checkpoints_arn: str, artifacts_arn: str, kms_key_arn: str
) -> str:
    """A run may read and write its model's checkpoints and write its model's artifacts."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ListOwnPrefixes",
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": [checkpoints_arn, artifacts_arn],
                    "Condition": {"StringLike": {"s3:prefix": [f"{model}/*", f"models/{model}/*"]}},
                },
                {
                    "Sid": "Checkpoints",
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                    "Resource": f"{checkpoints_arn}/{model}/*",
                },
                {
                    "Sid": "Models",
                    "Effect": "Allow",
                    "Action": ["s3:PutObject"],
                    "Resource": f"{artifacts_arn}/models/{model}/*",
                },
                {
                    "Sid": "StackKey",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": kms_key_arn,
                },
            ],
        }
    )


def entry_command(manifest: ModelManifest) -> list[str]:
    """The model's training entry point in the image (code at /opt/ml/code, its WORKDIR); under
    torchrun when the model fans out (torchrun reads nodes, rank and rendezvous from the PET_*
    variables Kubeflow Trainer sets)."""
    train = manifest.train
    if train.command:
        return list(train.command)
    target = ["-m", train.module] if train.module else [f"{CODE_DIR}/{train.entry_point}"]
    return ["torchrun", *target] if train.distribution == "torchrun" else ["python", *target]


def contract_env(args: EksTrainingArgs) -> list[dict[str, str]]:
    """The SageMaker training contract's variables, so the model's script runs unchanged."""
    channels = [c.name for c in args.layout.channels]
    return [
        {
            "name": "SM_HPS",
            "value": json.dumps(dict(sorted(args.training.hyperparameters.items()))),
        },
        {"name": "SM_CHANNELS", "value": json.dumps(channels)},
        *({"name": f"SM_CHANNEL_{c.upper()}", "value": f"{DATA_DIR}/{c}"} for c in channels),
        {"name": "SM_MODEL_DIR", "value": "/model"},
        {"name": "SM_OUTPUT_DATA_DIR", "value": "/tmp/output/data"},
        {"name": "SM_OUTPUT_DIR", "value": "/tmp/output"},
        {"name": "CHECKPOINT_DIR", "value": "/checkpoints"},
    ]


def node_pod_spec(
    args: EksTrainingArgs, image: str, service_account: str, claims: dict[str, str], buckets: dict
) -> dict:
    """The pod every node of a run starts: restore, train the model's entry point, sync to S3."""
    t = args.training
    run = "$(TRAIN_JOB_NAME)"
    env = [
        {
            "name": "TRAIN_JOB_NAME",
            "valueFrom": {
                "fieldRef": {"fieldPath": "metadata.labels['jobset.sigs.k8s.io/jobset-name']"}
            },
        },
        {
            "name": "CHECKPOINT_URI",
            "value": f"s3://{buckets['checkpoints']}/{args.layout.checkpoints_prefix}{run}",
        },
        {
            "name": "MODEL_URI",
            "value": f"s3://{buckets['artifacts']}/{args.layout.artifacts_prefix}eks/{run}",
        },
        {"name": "HOME", "value": "/tmp"},
    ]
    mounts = [
        {"name": "checkpoints", "mountPath": "/checkpoints"},
        {"name": "model", "mountPath": "/model"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    gpus = {"nvidia.com/gpu": str(t.gpus_per_instance)} if t.gpus_per_instance else {}
    return {
        "serviceAccountName": service_account,
        # Pod Identity hands AWS credentials through its agent, not the service-account token.
        "automountServiceAccountToken": False,
        "priorityClassName": args.target.priority_class,
        "nodeSelector": dict(args.target.placement.node_selector),
        "tolerations": [dict(x) for x in args.target.placement.tolerations],
        "restartPolicy": "Never",
        "securityContext": {"fsGroup": RUN_USER, "seccompProfile": {"type": "RuntimeDefault"}},
        # Time for the final checkpoint (SIGTERM) and the sidecar's last sync.
        "terminationGracePeriodSeconds": 120,
        "initContainers": [
            {
                "name": "restore-checkpoints",
                "image": AWS_CLI_IMAGE,
                "command": [
                    "sh",
                    "-c",
                    'aws s3 sync "$CHECKPOINT_URI" /checkpoints --only-show-errors',
                ],
                "env": env,
                "volumeMounts": mounts,
                "resources": resources("100m", "512Mi"),
                "securityContext": restricted_security_context(),
            },
            {
                # A native sidecar (restartPolicy Always): runs beside training, stops after it.
                "name": "sync-to-s3",
                "image": AWS_CLI_IMAGE,
                "restartPolicy": "Always",
                "command": ["sh", "-c", SYNC_SCRIPT],
                "env": env,
                "volumeMounts": mounts,
                "securityContext": restricted_security_context(),
                "resources": resources("100m", "512Mi"),
            },
        ],
        "containers": [
            {
                "name": "node",
                "image": image,
                "command": entry_command(args.manifest),
                "env": [*env, *contract_env(args)],
                "volumeMounts": [
                    *mounts,
                    *(
                        {"name": f"channel-{c}", "mountPath": f"{DATA_DIR}/{c}", "readOnly": True}
                        for c in claims
                    ),
                    {"name": "shm", "mountPath": "/dev/shm"},
                ],
                "resources": resources(f"{t.cpus:g}", t.memory, gpus),
                "securityContext": restricted_security_context(),
            }
        ],
        "volumes": [
            *(
                {
                    "name": f"channel-{c}",
                    "persistentVolumeClaim": {"claimName": claim, "readOnly": True},
                }
                for c, claim in claims.items()
            ),
            {"name": "checkpoints", "emptyDir": {}},
            {"name": "model", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
            # NCCL and data loaders need more shared memory than the container default.
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}},
        ],
    }


def ml_policy(args: EksTrainingArgs) -> dict:
    """Trainer's torch policy (the PET_* rendezvous variables torchrun reads; processes per node
    default to one per GPU, or the CPU request on CPU nodes) for models that fan out under
    torchrun; a plain policy for the rest (scikit-learn, Keras: one process per node)."""
    policy: dict = {"numNodes": args.training.instance_count}
    if args.manifest.train.distribution == "torchrun":
        policy["torch"] = {}
    return policy


def training_runtime(args: EksTrainingArgs, pod_spec: dict, namespace: str) -> dict:
    """The TrainingRuntime object (trainer.kubeflow.org/v1alpha1) for one model."""
    t = args.training
    return {
        "apiVersion": RUNTIME_API,
        "kind": "TrainingRuntime",
        "metadata": {
            "name": args.model_name,
            "namespace": namespace,
            "labels": {
                "trainer.kubeflow.org/framework": args.manifest.framework,
                "mlplatform.io/model": args.model_name,
            },
        },
        "spec": {
            "mlPolicy": ml_policy(args),
            "template": {
                "spec": {
                    # Spot reclaims and node failures restart the run, which resumes from S3.
                    "failurePolicy": {"maxRestarts": 5},
                    "replicatedJobs": [
                        {
                            "name": "node",
                            "template": {
                                "metadata": {
                                    "labels": {
                                        "trainer.kubeflow.org/trainjob-ancestor-step": "trainer"
                                    }
                                },
                                "spec": {
                                    "activeDeadlineSeconds": t.max_runtime_hours * 3600,
                                    "template": {
                                        "metadata": {
                                            "labels": {"mlplatform.io/model": args.model_name},
                                            "annotations": dict(NO_EVICTION),
                                        },
                                        "spec": pod_spec,
                                    },
                                },
                            },
                        }
                    ],
                }
            },
        },
    }


# The type token this component had before its token matched its class name; the alias keeps
# `pulumi up` from replacing what a stack already has.
_OLD_TYPE = "mlplatform:eks:TrainingRuntime"


class EksTrainingRuntime(pulumi.ComponentResource):
    """Dataset volume, pod identity and TrainingRuntime for one model on the cluster."""

    runtime_name: str

    def __init__(
        self, name: str, args: EksTrainingArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(
            "mlplatform:eks:EksTrainingRuntime",
            name,
            None,
            pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=_OLD_TYPE)])
            ),
        )
        model = args.model_name
        k8s_opts = pulumi.ResourceOptions(parent=self)
        service_account = f"{model}-training"
        k8s.core.v1.ServiceAccount(
            f"{name}-training",
            metadata={"name": service_account, "namespace": args.target.namespace},
            opts=k8s_opts,
        )
        role = pod_identity_role(
            f"{name}-training",
            description=f"{model} training runs: its checkpoints and model artifacts",
            scope=args.target.pod_identity(service_account),
            policy=pulumi.Output.all(
                args.context.bucket_arns["checkpoints"],
                args.context.bucket_arns["artifacts"],
                args.context.kms_key_arn,
            ).apply(lambda v: training_bucket_policy(model, v[0], v[1], v[2])),
            parent=self,
        )
        aws.eks.PodIdentityAssociation(
            f"{name}-training",
            cluster_name=args.target.cluster_name,
            namespace=args.target.namespace,
            service_account=service_account,
            role_arn=role.arn,
            opts=pulumi.ResourceOptions(parent=role),
        )
        claims: dict[str, str] = {}
        for channel in args.layout.channels:
            # Static provisioning with the Mountpoint S3 CSI driver: the channel's prefix,
            # read-only (the driver's own pod identity reads the datasets bucket).
            volume = f"{args.context.prefix}-{model}-{channel.name}"
            claim = claims[channel.name] = f"{model}-{channel.name}".replace("_", "-")
            k8s.core.v1.PersistentVolume(
                f"{name}-{channel.name}",
                metadata={"name": volume.replace("_", "-")},
                spec=cast(
                    k8s.core.v1.PersistentVolumeSpecArgsDict,
                    {
                        "capacity": {"storage": "1Ti"},  # required by the API; S3 ignores it
                        "accessModes": ["ReadOnlyMany"],
                        "storageClassName": "",
                        "claimRef": {"namespace": args.target.namespace, "name": claim},
                        "mountOptions": [
                            "read-only",
                            f"region {args.context.region}",
                            f"prefix {channel.prefix}",
                        ],
                        "csi": {
                            "driver": "s3.csi.aws.com",
                            "volumeHandle": volume.replace("_", "-"),
                            "volumeAttributes": {
                                "bucketName": args.context.bucket_names["datasets"]
                            },
                        },
                    },
                ),
                opts=k8s_opts,
            )
            k8s.core.v1.PersistentVolumeClaim(
                f"{name}-{channel.name}",
                metadata={"name": claim, "namespace": args.target.namespace},
                spec=cast(
                    k8s.core.v1.PersistentVolumeClaimSpecArgsDict,
                    {
                        "accessModes": ["ReadOnlyMany"],
                        "storageClassName": "",
                        "volumeName": volume.replace("_", "-"),
                        "resources": {"requests": {"storage": "1Ti"}},
                    },
                ),
                opts=k8s_opts,
            )
        body = pulumi.Output.all(
            args.target.namespace,
            args.context.bucket_names["checkpoints"],
            args.context.bucket_names["artifacts"],
            args.training_image,
        ).apply(
            lambda v: training_runtime(
                args,
                node_pod_spec(
                    args, v[3], service_account, claims, {"checkpoints": v[1], "artifacts": v[2]}
                ),
                v[0],
            )
        )
        k8s.apiextensions.CustomResource(
            f"{name}-runtime",
            api_version=RUNTIME_API,
            kind="TrainingRuntime",
            metadata=body["metadata"],
            spec=body["spec"],
            # The CRD comes with the operator's chart.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.operator.release]),
        )
        self.runtime_name = model
        self.register_outputs({"runtimeName": model, "serviceAccount": service_account})
