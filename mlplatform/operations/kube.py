"""The Kubernetes API for the EKS plane, from a kubeconfig, and its refusals in one line."""

from __future__ import annotations

import argparse
from typing import Any

from mlplatform.operations.aws import OperationError

# Kubeflow Trainer's TrainJob: (group, version, plural).
TRAINJOBS = ("trainer.kubeflow.org", "v1alpha1", "trainjobs")


def api_client(args: argparse.Namespace) -> Any:
    """The Kubernetes API client for the stack's cluster, from a kubeconfig."""
    from kubernetes import client, config

    config.load_kube_config(config_file=args.kubeconfig, context=args.context)
    return client.ApiClient()


def custom_objects(args: argparse.Namespace) -> Any:
    """The API for custom resources (TrainJobs)."""
    from kubernetes import client

    return client.CustomObjectsApi(api_client(args))


def explain(error: Exception) -> OperationError | None:
    """A Kubernetes client error as a message for people; None for anything else."""
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    if isinstance(error, ApiException):
        return OperationError(f"Kubernetes API refused the request ({error.status} {error.reason})")
    if isinstance(error, ConfigException):
        return OperationError(f"no usable kubeconfig ({error}); run `aws eks update-kubeconfig`")
    return None
