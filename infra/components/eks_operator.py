"""The training operator the EKS plane runs jobs with: Kubeflow Trainer v2 (TrainJob,
TrainingRuntime) and its JobSet dependency, installed from the project's Helm chart at a pinned
version, plus the TrainJob object `mlplatform train` creates."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

TRAINER_CHART = "oci://ghcr.io/kubeflow/charts/kubeflow-trainer"
TRAINER_VERSION = "2.3.0"
TRAINER_NAMESPACE = "kubeflow-system"
RUNTIME_API = "trainer.kubeflow.org/v1alpha1"


@dataclass(frozen=True)
class TrainingOperatorArgs:
    """Which Kubeflow Trainer release to install, and where."""

    version: str = TRAINER_VERSION
    namespace: str = TRAINER_NAMESPACE


class TrainingOperator(pulumi.ComponentResource):
    """Kubeflow Trainer v2 (with JobSet) from its Helm chart, at a pinned version."""

    def __init__(
        self,
        name: str,
        args: TrainingOperatorArgs | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        """The Kubernetes provider comes through `opts` (`provider=`), as for any component."""
        args = args or TrainingOperatorArgs()
        super().__init__("mlplatform:eks:TrainingOperator", name, None, opts)
        self.release = k8s.helm.v3.Release(
            f"{name}-kubeflow-trainer",
            name="kubeflow-trainer",
            chart=TRAINER_CHART,
            version=args.version,
            namespace=args.namespace,
            create_namespace=True,
            # Our runtimes are per model; the chart's stock ones would only confuse users.
            values={"runtimes": {"defaultEnabled": False}, "jobset": {"install": True}},
            atomic=True,
            cleanup_on_fail=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"version": args.version})


def train_job(model: str, namespace: str, name: str) -> dict:
    """A TrainJob that runs one training of `model` from its TrainingRuntime."""
    return {
        "apiVersion": RUNTIME_API,
        "kind": "TrainJob",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"mlplatform.io/model": model},
        },
        "spec": {
            "runtimeRef": {
                "name": model,
                "apiGroup": "trainer.kubeflow.org",
                "kind": "TrainingRuntime",
            }
        },
    }
