"""EKS training plane: Kubeflow Trainer (pinned) and, per model, a TrainingRuntime that
`mlplatform train` starts TrainJobs from.

A run is a JobSet of up to three replicated jobs, the SageMaker pipeline's steps on the cluster:

    prepare (the model's prepare entry point, when it has one)
      -> node (training: torchrun or one process per node)
        -> evaluate (`python -m serving gate`: the platform's evaluator on the exported model
           and the held-out test channel, the manifest's threshold, then a version in the
           model's package group, or a failed run that says why)

Prepare writes the channels the stack file does not place, and the `test` channel, to the
prefixes the runtime's volumes mount. Each node reads its channels through the Mountpoint S3
CSI driver (read-only; never `test`), writes checkpoints to local disk that a sidecar syncs to
`s3://<checkpoints>/<model>/<run>/` (and an init container restores, so a restarted run
resumes), and uploads the model to the artifacts bucket when it ends. Node pods are annotated
so neither Karpenter nor the cluster-autoscaler evicts a running job. Each step has its own
service account and Pod Identity role: training code can neither write the test channel nor
register a model; only the evaluate job can, and only after the evaluator passed it.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.components.cluster import pod_identity_role
from infra.components.cluster_iam import PodIdentityScope
from infra.components.eks_operator import RUNTIME_API, TrainingOperator
from infra.components.model_registry import model_package_group, register_statement
from infra.config import EksTraining
from infra.context import StackContext
from infra.data_layout import ChannelSource, DataLayout
from infra.pipeline_definition import entry_command

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
TEST_CHANNEL = "test"  # the held-out split: only the evaluate job mounts it
PREPARED_DIR = "/prepared"  # where the prepare entry point writes its channels (`--out`)
RAW_DIR = "/raw"  # its raw input (`--input`), when the stack names one
WORK_DIR = "/work"  # the evaluate job's scratch: the exported model, its archive, evaluation.json
# The replicated jobs of a run, in order; JobSet starts each when the one before is Complete.
PREPARE, NODE, EVALUATE = "prepare", "node", "evaluate"
# Prepare and evaluate: the SageMaker pipeline's processing steps stop after an hour too.
STEP_DEADLINE_S = 3600
# Pod retries within a step's Job (a reclaimed node, an S3 hiccup); its final failure ends the
# run (FailJobSet), never restarts it: nothing before prepare could change, and restarting after
# evaluate would retrain only to be graded the same way.
STEP_RETRIES = 2
# `python -m serving gate` exit statuses that a retry cannot change: 2 nothing to evaluate or
# the evaluator refused, 3 below the threshold (serving/gate.py).
GATE_FINAL_EXITS = [2, 3]
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
    # Prepare and evaluate run in the platform image (the SageMaker steps' image); a registered
    # version is served by the serving image, on these SageMaker instance types when the model
    # serves on SageMaker instances.
    platform_image: pulumi.Input[str]
    serving_image: pulumi.Input[str]
    realtime_instance_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunImages:
    """The resolved images and bucket names the pod specs are written with."""

    training: str
    platform: str
    serving: str
    buckets: dict[str, str]
    model_package_group: str


def _s3(bucket_arn: str, prefix: str) -> str:
    return f"{bucket_arn}/{prefix}*"


def _stack_key(kms_key_arn: str) -> dict:
    return {
        "Sid": "StackKey",
        "Effect": "Allow",
        "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
        "Resource": kms_key_arn,
    }


def training_bucket_policy(
    layout: DataLayout, checkpoints_arn: str, artifacts_arn: str, kms_key_arn: str
) -> str:
    """A node may read and write its model's checkpoints and write its run's exported model:
    nothing it can reach is graded or registered."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ListOwnPrefixes",
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": [checkpoints_arn, artifacts_arn],
                    "Condition": {
                        "StringLike": {
                            "s3:prefix": [
                                f"{layout.checkpoints_prefix}*",
                                f"{layout.eks_runs_prefix}*",
                            ]
                        }
                    },
                },
                {
                    "Sid": "Checkpoints",
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                    "Resource": _s3(checkpoints_arn, layout.checkpoints_prefix),
                },
                {
                    "Sid": "Models",
                    "Effect": "Allow",
                    "Action": ["s3:PutObject"],
                    "Resource": _s3(artifacts_arn, layout.eks_runs_prefix),
                },
                _stack_key(kms_key_arn),
            ],
        }
    )


def prepared_prefixes(layout: DataLayout) -> list[tuple[str, str]]:
    """(channel, datasets prefix) the prepare job writes: the channels the stack file does not
    place, then the held-out test channel."""
    return [
        *((c.name, c.prefix) for c in layout.prepared_channels if c.prefix),
        (TEST_CHANNEL, layout.test_prefix),
    ]


def _raw_uri(raw: ChannelSource, datasets: str) -> str:
    return raw.uri or f"s3://{datasets}/{raw.prefix}"


def prepare_bucket_policy(
    layout: DataLayout, datasets_arn: str, kms_key_arn: str, partition: str = "aws"
) -> str:
    """The prepare job reads its raw input and replaces what the channels' prefixes hold (sync
    --delete): the prefixes the node and evaluate jobs mount, and nothing else."""
    written = [prefix for _, prefix in prepared_prefixes(layout)]
    raw = layout.raw
    listed = [*written, *([raw.prefix] if raw and raw.prefix else [])]
    statements: list[dict] = [
        {
            "Sid": "ListOwnPrefixes",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": datasets_arn,
            "Condition": {"StringLike": {"s3:prefix": [f"{p}*" for p in listed]}},
        },
        {
            "Sid": "WritePreparedChannels",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            "Resource": [_s3(datasets_arn, p) for p in written],
        },
    ]
    if raw and raw.prefix:
        statements.append(
            {
                "Sid": "ReadRawInput",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": _s3(datasets_arn, raw.prefix),
            }
        )
    elif raw and raw.uri:
        bucket, _, prefix = raw.uri.removeprefix("s3://").partition("/")
        statements += [
            {
                "Sid": "ListExternalRawInput",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:{partition}:s3:::{bucket}",
            },
            {
                "Sid": "ReadExternalRawInput",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"arn:{partition}:s3:::{bucket}/{prefix}*",
            },
        ]
    statements.append(_stack_key(kms_key_arn))
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def evaluate_bucket_policy(
    layout: DataLayout, artifacts_arn: str, kms_key_arn: str, sagemaker_arn: str, group: str
) -> str:
    """The evaluate job reads the run's exported model, writes the archive it evaluated and
    the evaluation beside it, and registers versions in the model's own package group. The
    test channel comes through the CSI driver's volume, not this role."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ListRunModels",
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": artifacts_arn,
                    "Condition": {"StringLike": {"s3:prefix": [f"{layout.eks_runs_prefix}*"]}},
                },
                {
                    "Sid": "ReadRunModels",
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": _s3(artifacts_arn, layout.eks_runs_prefix),
                },
                {
                    "Sid": "WriteEvaluatedModels",
                    "Effect": "Allow",
                    "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
                    "Resource": _s3(artifacts_arn, layout.evaluated_prefix),
                },
                register_statement(sagemaker_arn, group, ["sagemaker:CreateModelPackage"]),
                _stack_key(kms_key_arn),
            ],
        }
    )


def train_command(manifest: ModelManifest) -> list[str]:
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


RUN = "$(TRAIN_JOB_NAME)"  # the JobSet's (and TrainJob's) name, from each pod's labels
RUN_NAME_ENV = {
    "name": "TRAIN_JOB_NAME",
    "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['jobset.sigs.k8s.io/jobset-name']"}},
}


def model_uri(layout: DataLayout, artifacts: str) -> str:
    """Where a run's nodes sync the exported model and its evaluate job fetches it from."""
    return f"s3://{artifacts}/{layout.eks_runs_prefix}{RUN}"


def _placement(args: EksTrainingArgs, service_account: str) -> dict:
    """What every pod of a run shares: its pool, priority, identity and hardening."""
    return {
        "serviceAccountName": service_account,
        # Pod Identity hands AWS credentials through its agent, not the service-account token.
        "automountServiceAccountToken": False,
        "priorityClassName": args.target.priority_class,
        "nodeSelector": dict(args.target.placement.node_selector),
        "tolerations": [dict(x) for x in args.target.placement.tolerations],
        "restartPolicy": "Never",
        "securityContext": {"fsGroup": RUN_USER, "seccompProfile": {"type": "RuntimeDefault"}},
    }


def _aws_cli(name: str, script: str, env: list[dict], mounts: list[dict]) -> dict:
    return {
        "name": name,
        "image": AWS_CLI_IMAGE,
        "command": ["sh", "-c", script],
        "env": env,
        "volumeMounts": mounts,
        "resources": resources("100m", "512Mi"),
        "securityContext": restricted_security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _volume(name: str, claim: str) -> dict:
    return {"name": name, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}


def node_pod_spec(
    args: EksTrainingArgs, image: str, service_account: str, claims: dict[str, str], buckets: dict
) -> dict:
    """The pod every node of a run starts: restore, train the model's entry point, sync to S3."""
    t = args.training
    env = [
        RUN_NAME_ENV,
        {
            "name": "CHECKPOINT_URI",
            "value": f"s3://{buckets['checkpoints']}/{args.layout.checkpoints_prefix}{RUN}",
        },
        {"name": "MODEL_URI", "value": model_uri(args.layout, buckets["artifacts"])},
        {"name": "HOME", "value": "/tmp"},
    ]
    mounts = [
        {"name": "checkpoints", "mountPath": "/checkpoints"},
        {"name": "model", "mountPath": "/model"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    gpus = {"nvidia.com/gpu": str(t.gpus_per_instance)} if t.gpus_per_instance else {}
    return {
        **_placement(args, service_account),
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
                "command": train_command(args.manifest),
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
            *(_volume(f"channel-{c}", claim) for c, claim in claims.items()),
            {"name": "checkpoints", "emptyDir": {}},
            {"name": "model", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
            # NCCL and data loaders need more shared memory than the container default.
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}},
        ],
    }


def upload_script(layout: DataLayout, datasets: str) -> str:
    """Replace each prepared channel's prefix with what prepare wrote (a channel it did not
    write fails the job, naming it, before anything is replaced)."""
    checks, syncs = [], []
    for channel, prefix in prepared_prefixes(layout):
        local = shlex.quote(f"{PREPARED_DIR}/{channel}")
        checks.append(
            f"[ -d {local} ] || {{ echo 'prepare wrote no {channel} channel "
            f"({PREPARED_DIR}/{channel})' >&2; exit 2; }}"
        )
        remote = shlex.quote(f"s3://{datasets}/{prefix}")
        syncs.append(f"aws s3 sync {local} {remote} --delete --only-show-errors")
    return "\n".join(["set -eu", *checks, *syncs]) + "\n"


def prepare_pod_spec(args: EksTrainingArgs, images: RunImages, service_account: str) -> dict:
    """The prepare job's pod: fetch the raw input (if any), run the model's prepare entry point
    as the SageMaker Processing step does (`--out DIR [--input DIR]`), upload the channels."""
    assert args.manifest.prepare is not None
    t, raw, datasets = args.training, args.layout.raw, images.buckets["datasets"]
    env = [{"name": "HOME", "value": "/tmp"}]
    tmp = {"name": "tmp", "mountPath": "/tmp"}
    prepared = {"name": "prepared", "mountPath": PREPARED_DIR}
    raw_mount = {"name": "raw", "mountPath": RAW_DIR}
    extra = ["--out", PREPARED_DIR] + (["--input", RAW_DIR] if raw else [])
    init = []
    if raw is not None:
        init.append(
            _aws_cli(
                "fetch-raw",
                'aws s3 sync "$RAW_URI" /raw --only-show-errors',
                [*env, {"name": "RAW_URI", "value": _raw_uri(raw, datasets)}],
                [raw_mount, tmp],
            )
        )
    init.append(
        {
            "name": PREPARE,
            "image": images.platform,
            "command": entry_command(args.manifest.prepare, extra),
            "env": env,
            "volumeMounts": [prepared, tmp, *([{**raw_mount, "readOnly": True}] if raw else [])],
            "resources": resources(f"{t.cpus:g}", t.memory),
            "securityContext": restricted_security_context(),
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }
    )
    return {
        **_placement(args, service_account),
        "initContainers": init,
        "containers": [
            _aws_cli(
                "upload",
                upload_script(args.layout, datasets),
                env,
                [{**prepared, "readOnly": True}, tmp],
            )
        ],
        "volumes": [
            {"name": "prepared", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
            *([{"name": "raw", "emptyDir": {}}] if raw else []),
        ],
    }


def gate_command(args: EksTrainingArgs, images: RunImages) -> list[str]:
    """`python -m serving gate` with the manifest's objective and the model's registration."""
    objective, serve = args.manifest.train.objective, args.manifest.serve
    command = [
        "python", "-m", "serving", "gate",
        "--export-dir", f"{WORK_DIR}/export",
        "--test-dir", f"{DATA_DIR}/{TEST_CHANNEL}",
        "--work-dir", f"{WORK_DIR}/gate",
        "--metric", objective.metric,
        "--goal", objective.goal or "maximize",
    ]  # fmt: skip
    if objective.threshold is not None:
        command += ["--threshold", repr(float(objective.threshold))]
    command += [
        "--output-uri", f"s3://{images.buckets['artifacts']}/{args.layout.evaluated_prefix}{RUN}/",
        "--model-package-group", images.model_package_group,
        "--image", images.serving,
        *(a for t in serve.content_types for a in ("--content-type", t)),
        *(a for t in args.realtime_instance_types for a in ("--instance-type", t)),
        "--description", f"{args.model_name}, trained by TrainJob {RUN}",
        "--token", RUN,
    ]  # fmt: skip
    return command


def evaluate_pod_spec(
    args: EksTrainingArgs, images: RunImages, service_account: str, test_claim: str
) -> dict:
    """The evaluate job's pod: fetch what the nodes exported, then the gate (pack, evaluate on
    the held-out test channel, compare, register) with its verdict as the termination message."""
    t = args.training
    env = [RUN_NAME_ENV, {"name": "HOME", "value": "/tmp"}]
    work, tmp = {"name": "work", "mountPath": WORK_DIR}, {"name": "tmp", "mountPath": "/tmp"}
    return {
        **_placement(args, service_account),
        "initContainers": [
            _aws_cli(
                "fetch-model",
                f'aws s3 sync "$MODEL_URI" {WORK_DIR}/export --only-show-errors',
                [
                    *env,
                    {
                        "name": "MODEL_URI",
                        "value": model_uri(args.layout, images.buckets["artifacts"]),
                    },
                ],
                [work, tmp],
            )
        ],
        "containers": [
            {
                "name": EVALUATE,
                "image": images.platform,
                "command": gate_command(args, images),
                "env": [
                    *env,
                    # boto3 needs the region for SageMaker (Pod Identity gives credentials only).
                    {"name": "AWS_REGION", "value": args.context.region},
                    {"name": "AWS_DEFAULT_REGION", "value": args.context.region},
                ],
                "volumeMounts": [
                    work,
                    tmp,
                    {
                        "name": "channel-test",
                        "mountPath": f"{DATA_DIR}/{TEST_CHANNEL}",
                        "readOnly": True,
                    },
                ],
                "resources": resources(f"{t.cpus:g}", t.memory),
                "securityContext": restricted_security_context(),
                "terminationMessagePolicy": "FallbackToLogsOnError",
            }
        ],
        "volumes": [
            _volume("channel-test", test_claim),
            {"name": "work", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
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


def _step_job(
    args: EksTrainingArgs, name: str, after: str | None, pod_spec: dict, final_exits: list[int]
) -> dict:
    """A one-pod step (prepare, evaluate): a few pod retries inside its Job, a disruption
    retried without counting, and the exit statuses a retry cannot change failing it at once."""
    rules: list[dict] = [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    ]
    if final_exits:
        rules.append(
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": name, "operator": "In", "values": final_exits},
            }
        )
    job: dict = {
        "name": name,
        "template": {
            "spec": {
                "backoffLimit": STEP_RETRIES,
                "activeDeadlineSeconds": STEP_DEADLINE_S,
                "podFailurePolicy": {"rules": rules},
                "template": {
                    "metadata": {"labels": {"mlplatform.io/model": args.model_name}},
                    "spec": pod_spec,
                },
            }
        },
    }
    if after:
        job["dependsOn"] = [{"name": after, "status": "Complete"}]
    return job


def training_runtime(
    args: EksTrainingArgs,
    pod_spec: dict,
    namespace: str,
    prepare: dict | None = None,
    evaluate: dict | None = None,
) -> dict:
    """The TrainingRuntime object (trainer.kubeflow.org/v1alpha1) for one model: its JobSet
    runs prepare (when given), the nodes, then evaluate (when given), each after the one before
    completed."""
    t = args.training
    node: dict = {
        "name": NODE,
        "template": {
            "metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
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
    jobs = []
    if prepare is not None:
        # JobSet: the first replicated job depends on nothing; a later one on one before it.
        jobs.append(_step_job(args, PREPARE, None, prepare, []))
        node["dependsOn"] = [{"name": PREPARE, "status": "Complete"}]
    jobs.append(node)
    if evaluate is not None:
        jobs.append(_step_job(args, EVALUATE, NODE, evaluate, GATE_FINAL_EXITS))
    # Spot reclaims and node failures restart the run (no rule matches: RestartJobSet), which
    # resumes from S3. A failed prepare or evaluate ends it (after the pod retries in its Job).
    failure: dict = {"maxRestarts": 5}
    rules = [
        {
            "name": f"{step.capitalize()}Failed",
            "action": "FailJobSet",
            "targetReplicatedJobs": [step],
        }
        for step in (PREPARE, EVALUATE)
        if any(j["name"] == step for j in jobs)
    ]
    if rules:
        failure["rules"] = rules
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
            "template": {"spec": {"failurePolicy": failure, "replicatedJobs": jobs}},
        },
    }


def runtime_for(
    args: EksTrainingArgs,
    namespace: str,
    images: RunImages,
    service_accounts: dict[str, str],
    claims: dict[str, str],
    test_claim: str,
) -> dict:
    """The TrainingRuntime with every step's pod: prepare (when the model has a prepare entry
    point), the nodes, evaluate."""
    prepare = (
        prepare_pod_spec(args, images, service_accounts[PREPARE])
        if args.manifest.prepare is not None
        else None
    )
    node = node_pod_spec(args, images.training, service_accounts[NODE], claims, images.buckets)
    evaluate = evaluate_pod_spec(args, images, service_accounts[EVALUATE], test_claim)
    return training_runtime(args, node, namespace, prepare=prepare, evaluate=evaluate)


# The type token this component had before its token matched its class name; the alias keeps
# `pulumi up` from replacing what a stack already has.
_OLD_TYPE = "mlplatform:eks:TrainingRuntime"


class EksTrainingRuntime(pulumi.ComponentResource):
    """Dataset volumes, the model's package group, a Pod Identity role per step and the
    TrainingRuntime for one model on the cluster."""

    runtime_name: str
    model_package_group_name: pulumi.Output[str]

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
        model, context, layout = args.model_name, args.context, args.layout
        k8s_opts = pulumi.ResourceOptions(parent=self)
        group = model_package_group(name, model, parent=self)
        sagemaker_arn = context.arn("sagemaker", "").rstrip(":")
        policies = {
            PREPARE: (
                f"{model} prepare jobs: its raw input and the channels they write",
                pulumi.Output.all(context.bucket_arns["datasets"], context.kms_key_arn).apply(
                    lambda v: prepare_bucket_policy(layout, v[0], v[1], context.partition)
                ),
            ),
            NODE: (
                f"{model} training runs: its checkpoints and model artifacts",
                pulumi.Output.all(
                    context.bucket_arns["checkpoints"],
                    context.bucket_arns["artifacts"],
                    context.kms_key_arn,
                ).apply(lambda v: training_bucket_policy(layout, v[0], v[1], v[2])),
            ),
            EVALUATE: (
                f"{model} evaluate jobs: its runs' models, their evaluation and registration",
                pulumi.Output.all(
                    context.bucket_arns["artifacts"],
                    context.kms_key_arn,
                    group.model_package_group_name,
                ).apply(lambda v: evaluate_bucket_policy(layout, v[0], v[1], sagemaker_arn, v[2])),
            ),
        }
        if args.manifest.prepare is None:
            del policies[PREPARE]
        service_accounts: dict[str, str] = {}
        for step, (description, policy) in policies.items():
            # The node keeps its first name (`<model>-training`): its role exists in stacks.
            suffix = "training" if step == NODE else step
            account = service_accounts[step] = f"{model}-{suffix}"
            k8s.core.v1.ServiceAccount(
                f"{name}-{suffix}",
                metadata={"name": account, "namespace": args.target.namespace},
                opts=k8s_opts,
            )
            role = pod_identity_role(
                f"{name}-{suffix}",
                description=description,
                scope=args.target.pod_identity(account),
                policy=policy,
                parent=self,
            )
            aws.eks.PodIdentityAssociation(
                f"{name}-{suffix}",
                cluster_name=args.target.cluster_name,
                namespace=args.target.namespace,
                service_account=account,
                role_arn=role.arn,
                opts=pulumi.ResourceOptions(parent=role),
            )
        claims: dict[str, str] = {}
        for channel in layout.channels:
            claims[channel.name] = self._s3_volume(name, args, channel.name, channel.prefix)
        # The held-out test channel: mounted by the evaluate job alone.
        test_claim = self._s3_volume(name, args, TEST_CHANNEL, layout.test_prefix)
        body = pulumi.Output.all(
            args.target.namespace,
            context.bucket_names["datasets"],
            context.bucket_names["checkpoints"],
            context.bucket_names["artifacts"],
            args.training_image,
            args.platform_image,
            args.serving_image,
            group.model_package_group_name,
        ).apply(
            lambda v: runtime_for(
                args,
                v[0],
                RunImages(
                    training=v[4],
                    platform=v[5],
                    serving=v[6],
                    buckets={"datasets": v[1], "checkpoints": v[2], "artifacts": v[3]},
                    model_package_group=v[7],
                ),
                service_accounts,
                claims,
                test_claim,
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
        self.model_package_group_name = group.model_package_group_name
        self.register_outputs(
            {
                "runtimeName": model,
                "serviceAccounts": service_accounts,
                "modelPackageGroupName": self.model_package_group_name,
            }
        )

    def _s3_volume(self, name: str, args: EksTrainingArgs, channel: str, prefix: str | None) -> str:
        """A read-only volume of one datasets prefix, statically provisioned with the Mountpoint
        S3 CSI driver (the driver's own pod identity reads the datasets bucket); its claim."""
        model, context = args.model_name, args.context
        volume = f"{context.prefix}-{model}-{channel}".replace("_", "-")
        claim = f"{model}-{channel}".replace("_", "-")
        k8s_opts = pulumi.ResourceOptions(parent=self)
        k8s.core.v1.PersistentVolume(
            f"{name}-{channel}",
            metadata={"name": volume},
            spec=cast(
                k8s.core.v1.PersistentVolumeSpecArgsDict,
                {
                    "capacity": {"storage": "1Ti"},  # required by the API; S3 ignores it
                    "accessModes": ["ReadOnlyMany"],
                    "storageClassName": "",
                    "claimRef": {"namespace": args.target.namespace, "name": claim},
                    "mountOptions": ["read-only", f"region {context.region}", f"prefix {prefix}"],
                    "csi": {
                        "driver": "s3.csi.aws.com",
                        "volumeHandle": volume,
                        "volumeAttributes": {"bucketName": context.bucket_names["datasets"]},
                    },
                },
            ),
            opts=k8s_opts,
        )
        k8s.core.v1.PersistentVolumeClaim(
            f"{name}-{channel}",
            metadata={"name": claim, "namespace": args.target.namespace},
            spec=cast(
                k8s.core.v1.PersistentVolumeClaimSpecArgsDict,
                {
                    "accessModes": ["ReadOnlyMany"],
                    "storageClassName": "",
                    "volumeName": volume,
                    "resources": {"requests": {"storage": "1Ti"}},
                },
            ),
            opts=k8s_opts,
        )
        return claim
