"""The stack file schema: every knob of a stack, named, described, defaulted and validated.

A stack file (`stacks/Pulumi.<stack>.yaml`) holds Pulumi config: `aws:region`, one
`mlplatform:<section>` key per section (one module here each, mirroring `infra/components/`),
and any other keys the engine and its providers read. `StackConfig` validates the `mlplatform:`
namespace before any resource is declared; `infra.stackfile` turns its errors into messages that
name the file, line, key path, the value given and what is allowed.
"""

from infra.config.alerts import Alerts
from infra.config.base import (
    PROJECT,
    Section,
    StackConfigError,
    aws_regions,
    botocore_enum,
    check_ec2_instance_type,
    check_sagemaker_instance_type,
    ec2_instance_types,
    suggest,
)
from infra.config.budget import Budget
from infra.config.cluster import KUBERNETES_VERSIONS, Cluster, GpuQuota, SystemNodes
from infra.config.models import (
    AsyncEndpoint,
    BatchTransform,
    EksServing,
    EksTraining,
    HyperparameterRange,
    Model,
    SageMakerEndpoint,
    SageMakerServingBase,
    SageMakerTraining,
    ServerlessEndpoint,
    Serving,
    Training,
    Tuning,
)
from infra.config.network import Network
from infra.config.pools import CpuPool, GpuPool, check_gpu_instance_type
from infra.config.registry import Registry
from infra.config.stack import SCHEMA_KEYS, StackConfig, describe_allowed, field_at
from infra.config.storage import Storage
from infra.config.tags import Tags
from infra.config.tracking import Tracking

__all__ = [
    "KUBERNETES_VERSIONS",
    "PROJECT",
    "SCHEMA_KEYS",
    "Alerts",
    "AsyncEndpoint",
    "BatchTransform",
    "Budget",
    "Cluster",
    "CpuPool",
    "EksServing",
    "EksTraining",
    "GpuPool",
    "GpuQuota",
    "HyperparameterRange",
    "Model",
    "Network",
    "Registry",
    "SageMakerEndpoint",
    "SageMakerServingBase",
    "SageMakerTraining",
    "Section",
    "ServerlessEndpoint",
    "Serving",
    "StackConfig",
    "StackConfigError",
    "Storage",
    "SystemNodes",
    "Tags",
    "Tracking",
    "Training",
    "Tuning",
    "aws_regions",
    "botocore_enum",
    "check_ec2_instance_type",
    "check_gpu_instance_type",
    "check_sagemaker_instance_type",
    "describe_allowed",
    "ec2_instance_types",
    "field_at",
    "suggest",
]
