"""The offline plan's mocks: Pulumi's mock runtime answering the way AWS would.

Concrete ids, names and ARNs per resource type (so IAM policies and references come out resolved)
and answers for the data sources the program calls. Nothing here is imported by `infra/`: the
program runs unchanged under these mocks, as it does under the real engine.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable
from typing import Any

import pulumi

ACCOUNT_ID = "123456789012"


def short_hash(*parts: str, length: int = 8) -> str:
    """A stable hex digest of `parts`: mock ids that do not change between plans."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


# Per-type outputs that AWS computes, so references and policies come out concrete.
OutputFn = Callable[[str, dict[str, Any], "PlanMocks"], dict[str, Any]]
_EC2_ID_PREFIX = {
    "aws:ec2/vpc:Vpc": "vpc",
    "aws:ec2/subnet:Subnet": "subnet",
    "aws:ec2/securityGroup:SecurityGroup": "sg",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "sg",
    "aws:ec2/internetGateway:InternetGateway": "igw",
    "aws:ec2/natGateway:NatGateway": "nat",
    "aws:ec2/eip:Eip": "eipalloc",
    "aws:ec2/routeTable:RouteTable": "rtb",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce",
    "aws:ec2/launchTemplate:LaunchTemplate": "lt",
}


class PlanMocks(pulumi.runtime.Mocks):
    """Answers resource registrations and data-source calls the way AWS would."""

    # Other modules register type-specific outputs here (e.g. EKS clusters, SageMaker objects).
    outputs_by_type: dict[str, OutputFn] = {}

    def __init__(self, region: str, stack: str):
        self.region = region
        self.stack = stack
        self.account = ACCOUNT_ID
        # Names Pulumi would pick at deploy time: stand-ins here, unknown until `pulumi up`.
        self.autonamed: set[str] = set()

    def physical_name(self, name: str, inputs: dict[str, Any]) -> str:
        """The name the program gave, else an autoname like Pulumi's (`<name>-<7 hex>`)."""
        given = inputs.get("name")
        if isinstance(given, str) and given:
            return given
        autoname = f"{name}-{short_hash(self.stack, name, length=7)}"
        self.autonamed.add(autoname)
        return autoname

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return (
            f"arn:aws:{service}:{self.region if region else ''}:"
            f"{self.account if account else ''}:{resource}"
        )

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        if not args.custom:
            return f"{args.name}", {}
        inputs = dict(args.inputs)
        physical = self.physical_name(args.name, inputs)
        prefix = _EC2_ID_PREFIX.get(args.typ)
        resource_id = (
            f"{prefix}-{short_hash(args.typ, args.name, length=17)}" if prefix else physical
        )
        module = args.typ.split(":")[1].split("/")[0] if args.typ.count(":") >= 2 else ""
        state: dict[str, Any] = {
            **inputs,
            "id": resource_id,
            "name": physical,
            "arn": self.arn(module, f"{args.typ.rsplit(':', 1)[-1].lower()}/{physical}"),
        }
        if "tags" in inputs:
            state["tagsAll"] = inputs["tags"]
        handler = self.outputs_by_type.get(args.typ)
        if handler:
            state.update(handler(args.name, inputs, self))
        return state["id"], state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:
        """A data source's answer, from `calls`, and its check failures (none)."""
        handler = self.calls.get(args.token)
        if handler is None:
            raise NotImplementedError(
                f"the offline plan has no answer for data source {args.token!r}; add it to "
                "mlplatform.mocks.PlanMocks.calls"
            )
        # An empty list, not None: the SDK's mock monitor iterates the failures it is given.
        return handler(args.args, self), []

    # Data sources by token; other modules register theirs (e.g. ECR's authorization token).
    calls: dict[str, Callable[[dict[str, Any], PlanMocks], dict]] = {}


def _register_data_sources() -> None:
    """Who the caller is, the partition, the region and its zones."""

    def caller_identity(args: dict, m: PlanMocks) -> dict:
        return {
            "accountId": m.account,
            "arn": f"arn:aws:iam::{m.account}:user/offline-plan",
            "userId": "AIDAOFFLINEPLAN",
            "id": m.account,
        }

    def partition(args: dict, m: PlanMocks) -> dict:
        return {
            "partition": "aws",
            "dnsSuffix": "amazonaws.com",
            "reverseDnsPrefix": "com.amazonaws",
            "id": "aws",
        }

    def region(args: dict, m: PlanMocks) -> dict:
        return {"name": m.region, "region": m.region, "id": m.region}

    def availability_zones(args: dict, m: PlanMocks) -> dict:
        letters = "abcdef"
        return {
            "names": [f"{m.region}{c}" for c in letters],
            "zoneIds": [f"use1-az{i + 1}" for i in range(len(letters))],
            "id": m.region,
        }

    PlanMocks.calls.update(
        {
            "aws:index/getCallerIdentity:getCallerIdentity": caller_identity,
            "aws:index/getPartition:getPartition": partition,
            "aws:index/getRegion:getRegion": region,
            "aws:index/getAvailabilityZones:getAvailabilityZones": availability_zones,
        }
    )


_register_data_sources()


def _register_outputs() -> None:
    def s3_bucket(name: str, inputs: dict, m: PlanMocks) -> dict:
        bucket = inputs.get("bucket") or m.physical_name(name, {})
        return {
            "id": bucket,
            "bucket": bucket,
            "arn": f"arn:aws:s3:::{bucket}",
            "bucketDomainName": f"{bucket}.s3.amazonaws.com",
            "bucketRegionalDomainName": f"{bucket}.s3.{m.region}.amazonaws.com",
        }

    def kms_key(name: str, inputs: dict, m: PlanMocks) -> dict:
        key_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{m.stack}/{name}"))
        return {"id": key_id, "keyId": key_id, "arn": m.arn("kms", f"key/{key_id}")}

    def kms_alias(name: str, inputs: dict, m: PlanMocks) -> dict:
        return {"arn": m.arn("kms", inputs.get("name", name))}

    def iam_role(name: str, inputs: dict, m: PlanMocks) -> dict:
        role = m.physical_name(name, inputs)
        return {
            "id": role,
            "name": role,
            "arn": f"arn:aws:iam::{m.account}:role/{role}",
            "uniqueId": f"AROA{short_hash(role, length=16).upper()}",
        }

    def iam_policy(name: str, inputs: dict, m: PlanMocks) -> dict:
        policy = m.physical_name(name, inputs)
        return {"id": policy, "arn": f"arn:aws:iam::{m.account}:policy/{policy}"}

    def ecr_repository(name: str, inputs: dict, m: PlanMocks) -> dict:
        repo = m.physical_name(name, inputs)
        return {
            "id": repo,
            "arn": m.arn("ecr", f"repository/{repo}"),
            "registryId": m.account,
            "repositoryUrl": f"{m.account}.dkr.ecr.{m.region}.amazonaws.com/{repo}",
        }

    def secret(name: str, inputs: dict, m: PlanMocks) -> dict:
        secret_name = m.physical_name(name, inputs)
        arn = m.arn("secretsmanager", f"secret:{secret_name}-{short_hash(secret_name, length=6)}")
        return {"id": arn, "arn": arn}

    PlanMocks.outputs_by_type.update(
        {
            "aws:s3/bucket:Bucket": s3_bucket,
            "aws:kms/key:Key": kms_key,
            "aws:kms/alias:Alias": kms_alias,
            "aws:iam/role:Role": iam_role,
            "aws:iam/policy:Policy": iam_policy,
            "aws:ecr/repository:Repository": ecr_repository,
            "aws:secretsmanager/secret:Secret": secret,
        }
    )


_register_outputs()


def _register_eks_outputs() -> None:
    """What EKS computes: the API endpoint and CA the Kubernetes provider needs, node groups'
    autoscaling groups (where the cluster-autoscaler tags go), launch template versions."""

    def eks_cluster(name: str, inputs: dict, m: PlanMocks) -> dict:
        cluster = m.physical_name(name, inputs)
        suffix = short_hash(m.stack, cluster, length=32).upper()
        ca = base64.b64encode(f"offline-plan CA of {cluster}".encode()).decode()
        return {
            "id": cluster,
            "arn": m.arn("eks", f"cluster/{cluster}"),
            "endpoint": f"https://{suffix}.gr7.{m.region}.eks.amazonaws.com",
            "certificateAuthority": {"data": ca},
            "identities": [
                {"oidcs": [{"issuer": f"https://oidc.eks.{m.region}.amazonaws.com/id/{suffix}"}]}
            ],
            "version": inputs.get("version", "1.34"),
            "platformVersion": "eks.1",
            "status": "ACTIVE",
            "vpcConfig": {
                **(inputs.get("vpcConfig") or {}),
                "clusterSecurityGroupId": f"sg-{short_hash(cluster, 'cluster-sg', length=17)}",
                "vpcId": f"vpc-{short_hash(m.stack, length=17)}",
            },
        }

    def node_group(name: str, inputs: dict, m: PlanMocks) -> dict:
        group = inputs.get("nodeGroupName") or m.physical_name(name, {})
        uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{m.stack}/{group}"))
        return {
            "id": f"{inputs.get('clusterName')}:{group}",
            "arn": m.arn("eks", f"nodegroup/{inputs.get('clusterName')}/{group}/{uid}"),
            "status": "ACTIVE",
            "resources": [
                {
                    "autoscalingGroups": [{"name": f"eks-{group}-{uid}"}],
                    "remoteAccessSecurityGroupId": "",
                }
            ],
        }

    def launch_template(name: str, inputs: dict, m: PlanMocks) -> dict:
        return {"latestVersion": 1, "defaultVersion": 1}

    def placement_group(name: str, inputs: dict, m: PlanMocks) -> dict:
        group = m.physical_name(name, inputs)
        return {"id": group, "placementGroupId": f"pg-{short_hash(group, length=17)}"}

    PlanMocks.outputs_by_type.update(
        {
            "aws:eks/cluster:Cluster": eks_cluster,
            "aws:eks/nodeGroup:NodeGroup": node_group,
            "aws:ec2/launchTemplate:LaunchTemplate": launch_template,
            "aws:ec2/placementGroup:PlacementGroup": placement_group,
        }
    )


_register_eks_outputs()


def _register_image_outputs() -> None:
    """docker-build images: a digest derived from the tag; ECR's authorization token."""

    def image(name: str, inputs: dict, m: PlanMocks) -> dict:
        tag = (inputs.get("tags") or [f"{name}:unknown"])[0]
        digest = "sha256:" + hashlib.sha256(tag.encode()).hexdigest()
        return {"ref": f"{tag}@{digest}", "digest": digest, "contextHash": digest[7:]}

    def auth_token(args: dict, m: PlanMocks) -> dict:
        registry = args.get("registryId") or m.account
        return {
            "authorizationToken": "QVdTOm9mZmxpbmU=",
            "userName": "AWS",
            "password": "offline",
            "proxyEndpoint": f"https://{registry}.dkr.ecr.{m.region}.amazonaws.com",
            "expiresAt": "2099-01-01T00:00:00Z",
            "registryId": registry,
            "id": registry,
        }

    PlanMocks.outputs_by_type["docker-build:index:Image"] = image
    PlanMocks.calls["aws:ecr/getAuthorizationToken:getAuthorizationToken"] = auth_token


_register_image_outputs()


def _register_sagemaker_outputs() -> None:
    """ARNs of SageMaker objects, named as AWS names them (lower-case)."""

    def pipeline(name: str, inputs: dict, m: PlanMocks) -> dict:
        return {"arn": m.arn("sagemaker", f"pipeline/{inputs['pipelineName'].lower()}")}

    def group(name: str, inputs: dict, m: PlanMocks) -> dict:
        return {
            "arn": m.arn(
                "sagemaker", f"model-package-group/{inputs['modelPackageGroupName'].lower()}"
            )
        }

    def named(kind: str, key: str = "name"):
        """A SageMaker object whose ARN is `<kind>/<its name, lower-case>`."""

        def outputs(name: str, inputs: dict, m: PlanMocks) -> dict:
            given = inputs.get(key) or m.physical_name(name, {})
            return {"arn": m.arn("sagemaker", f"{kind}/{given.lower()}")}

        return outputs

    PlanMocks.outputs_by_type.update(
        {
            "aws:sagemaker/pipeline:Pipeline": pipeline,
            "aws:sagemaker/modelPackageGroup:ModelPackageGroup": group,
            "aws:sagemaker/endpoint:Endpoint": named("endpoint"),
            "aws:sagemaker/endpointConfiguration:EndpointConfiguration": named("endpoint-config"),
            "aws:sagemaker/model:Model": named("model"),
            "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer": named(
                "mlflow-tracking-server", "trackingServerName"
            ),
        }
    )


_register_sagemaker_outputs()
