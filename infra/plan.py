"""The offline plan: the real program under Pulumi's mock runtime, no credentials, no CLI.

`plan_stack(path)` validates a stack file, runs `infra.program.main` with mocks that answer
like AWS would (concrete ids, names and ARNs), and returns every resource with its type
token, logical name, parent, options and inputs, plus the stack outputs. Tests, policies,
the cost estimate and PR comments are all built on this.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import json
import runpy
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.stack import run_in_stack

from infra.components.images import register_offline_mocks as register_image_mocks
from infra.components.sagemaker_training import offline_outputs as sagemaker_training_outputs
from infra.config import PROJECT, StackConfig
from infra.stackfile import RawStack, load_stack_file

ACCOUNT_ID = "123456789012"
PROGRAM = Path(__file__).resolve().parent / "__main__.py"
SECRET = "[secret]"
UNKNOWN = "[computed]"


@dataclass
class PlannedResource:
    """One resource the program declared, as the engine would receive it."""

    type: str
    name: str
    urn: str
    parent: str | None
    custom: bool
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    protect: bool = False
    depends_on: list[str] = field(default_factory=list)
    ignore_changes: list[str] = field(default_factory=list)
    provider: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "urn": self.urn,
            "parent": self.parent,
            "custom": self.custom,
            "protect": self.protect,
            "dependsOn": self.depends_on,
            "inputs": self.inputs,
        }


@dataclass
class Plan:
    """The whole resource graph of one stack."""

    stack: str
    source: str
    config: StackConfig
    resources: list[PlannedResource]
    outputs: dict[str, Any]

    def of_type(self, type_token: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.type == type_token]

    def get(self, type_token: str, name: str) -> PlannedResource:
        for r in self.resources:
            if r.type == type_token and r.name == name:
                return r
        raise KeyError(f"no {type_token} named {name!r} in the plan of {self.stack}")

    def children(self, parent: PlannedResource) -> list[PlannedResource]:
        return [r for r in self.resources if r.parent == parent.urn]

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "source": self.source,
            "resources": [r.to_json() for r in self.resources],
            "outputs": self.outputs,
        }


def _short_hash(*parts: str, length: int = 8) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def _clean(value: Any) -> Any:
    """Make a deserialized property JSON-friendly: secrets masked, unknowns named."""
    if isinstance(value, dict):
        if rpc._special_sig_key in value:
            if value[rpc._special_sig_key] == rpc._special_secret_sig:
                return SECRET
            if value[rpc._special_sig_key] == rpc._special_resource_sig:
                return value.get("urn")
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if value is rpc.UNKNOWN or isinstance(value, pulumi.output.Unknown):
        return UNKNOWN
    if isinstance(value, float) and value.is_integer():
        # The wire format has only doubles; integers read better as integers.
        return int(value)
    return value


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

    def physical_name(self, name: str, inputs: dict[str, Any]) -> str:
        given = inputs.get("name")
        if isinstance(given, str) and given:
            return given
        return f"{name}-{_short_hash(self.stack, name, length=7)}"

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
            f"{prefix}-{_short_hash(args.typ, args.name, length=17)}" if prefix else physical
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

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        token = args.token
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": self.account,
                "arn": f"arn:aws:iam::{self.account}:user/offline-plan",
                "userId": "AIDAOFFLINEPLAN",
                "id": self.account,
            }
        if token == "aws:index/getPartition:getPartition":
            return {
                "partition": "aws",
                "dnsSuffix": "amazonaws.com",
                "reverseDnsPrefix": "com.amazonaws",
                "id": "aws",
            }
        if token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            letters = "abcdef"
            return {
                "names": [f"{self.region}{c}" for c in letters],
                "zoneIds": [f"use1-az{i + 1}" for i in range(len(letters))],
                "id": self.region,
            }
        handler = self.calls.get(token)
        if handler:
            return handler(args.args, self)
        raise NotImplementedError(
            f"the offline plan has no answer for data source {token!r}; add it to "
            "infra.plan.PlanMocks.calls"
        )

    calls: dict[str, Callable[[dict[str, Any], PlanMocks], dict]] = {}


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
            "uniqueId": f"AROA{_short_hash(role, length=16).upper()}",
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
        arn = m.arn("secretsmanager", f"secret:{secret_name}-{_short_hash(secret_name, length=6)}")
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
        suffix = _short_hash(m.stack, cluster, length=32).upper()
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
                "clusterSecurityGroupId": f"sg-{_short_hash(cluster, 'cluster-sg', length=17)}",
                "vpcId": f"vpc-{_short_hash(m.stack, length=17)}",
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
        return {"id": group, "placementGroupId": f"pg-{_short_hash(group, length=17)}"}

    PlanMocks.outputs_by_type.update(
        {
            "aws:eks/cluster:Cluster": eks_cluster,
            "aws:eks/nodeGroup:NodeGroup": node_group,
            "aws:ec2/launchTemplate:LaunchTemplate": launch_template,
            "aws:ec2/placementGroup:PlacementGroup": placement_group,
        }
    )


_register_eks_outputs()
# Workload types (images, ...) answer from their own modules.
register_image_mocks(PlanMocks)
PlanMocks.outputs_by_type.update(sagemaker_training_outputs())


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that also keeps what Mocks never sees: parents, options, outputs."""

    def __init__(self, mocks: PlanMocks):
        super().__init__(mocks)
        self.registrations: list[PlannedResource] = []
        self.stack_outputs: dict[str, Any] = {}

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        inputs = rpc.deserialize_properties(request.object)
        urn = response.urn
        self.registrations.append(
            PlannedResource(
                type=request.type,
                name=request.name,
                urn=urn,
                parent=request.parent or None,
                custom=bool(request.custom),
                inputs=_clean(inputs),
                outputs=_clean(self.resources[urn].state),
                protect=bool(request.protect),
                depends_on=list(request.dependencies),
                ignore_changes=list(request.ignoreChanges),
                provider=request.provider or None,
            )
        )
        return response

    def RegisterResourceOutputs(self, request):
        if "::pulumi:pulumi:Stack::" in request.urn:
            self.stack_outputs = _clean(rpc.deserialize_properties(request.outputs))
        return super().RegisterResourceOutputs(request)


def _config_values(raw: RawStack) -> dict[str, str]:
    """Config as the engine hands it to a program: strings, objects JSON-encoded."""
    return {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in raw.config.items()
    }


def _run_isolated(fn: Callable[[], Any]) -> Any:
    """Run in a fresh thread: Pulumi's runtime state lives in context variables and an event
    loop, and a new thread starts with neither, so plans never leak into each other."""
    result: dict[str, Any] = {}

    def target() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            result["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc
        finally:
            # The SDK calls the monitor from executor threads that make loops of their own;
            # ending those threads now lets their loops close cleanly.
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    thread = threading.Thread(target=target, name="offline-plan")
    thread.start()
    thread.join()
    # Event loops the SDK left in reference cycles would otherwise be collected at interpreter
    # exit, after their sockets, and print "Invalid file descriptor" noise.
    gc.collect()
    if "error" in result:
        raise result["error"]
    return result["value"]


def plan_stack(path: Path, stack: str | None = None) -> Plan:
    """Validate a stack file, then run the program for it under mocks."""
    config, raw = load_stack_file(path)
    stack = stack or path.name.removeprefix("Pulumi.").removesuffix(".yaml")

    def run() -> Plan:
        mocks = PlanMocks(region=config.region, stack=stack)
        monitor = RecordingMonitor(mocks)
        pulumi.runtime.set_all_config(_config_values(raw), secret_keys=raw.secret_keys)
        # What `set_mocks` does, minus its placeholder root stack: `run_in_stack` makes the real
        # one, exactly as the language host does, so `pulumi.export` reaches the monitor.
        settings.configure(
            pulumi_mocks.MockSettings(
                monitor=monitor,
                monitor_features=set(monitor.GetDeploymentInfo(None).supportedFeatures),
                engine=pulumi_mocks.MockEngine(None),
                project=PROJECT,
                stack=stack,
                dry_run=False,
                organization="organization",
                callbacks=None,
            )
        )
        # Run infra/__main__.py itself, as `pulumi up` would, not a function behind it.
        pulumi_mocks._sync_await(
            run_in_stack(lambda: runpy.run_path(str(PROGRAM), run_name="__main__"))
        )
        return Plan(
            stack=stack,
            source=raw.source,
            config=config,
            resources=monitor.registrations,
            outputs=monitor.stack_outputs,
        )

    return _run_isolated(run)
