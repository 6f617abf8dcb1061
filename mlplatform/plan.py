"""The offline plan: the real program under Pulumi's mock runtime, no credentials, no CLI.

`plan_stack(path)` validates a stack file, runs the program `Pulumi.yaml` names (`main`) with
mocks that answer like AWS would (concrete ids, names and ARNs), and returns every resource with
its type token, logical name, parent, options and inputs, plus the stack outputs. Tests,
policies, the cost estimate and PR comments are all built on this.
"""

from __future__ import annotations

import asyncio
import json
import runpy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from infra.config import PROJECT, StackConfig
from infra.stackfile import RawStack, display_path, load_stack_file, pulumi_project
from mlplatform import collector
from mlplatform.mocks import PlanMocks
from mlplatform.progress import Progress

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
    environments: list[str] = field(default_factory=list)
    """Pulumi ESC environments the stack file imports: their values are not known offline."""
    autonamed: frozenset[str] = frozenset()
    """Physical names Pulumi picks at deploy time (`<name>-<random>`); offline they are made up."""

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


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that also keeps what Mocks never sees: parents, options, outputs."""

    def __init__(self, mocks: PlanMocks, progress: Progress | None = None):
        super().__init__(mocks)
        self.registrations: list[PlannedResource] = []
        self.stack_outputs: dict[str, Any] = {}
        self.progress = progress
        # The SDK calls the monitor from executor threads, and each makes an event loop of its
        # own that nothing closes; they are kept here and closed when the program is done.
        self.loops: set[asyncio.AbstractEventLoop] = set()

    def RegisterResource(self, request):
        self.loops.add(_ensure_event_loop())
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
        if self.progress:
            count = len(self.registrations)
            self.progress(f"running the program ({count} resource{'s' * (count > 1)} so far)")
        return response

    def Invoke(self, request):
        self.loops.add(_ensure_event_loop())
        return super().Invoke(request)

    def RegisterResourceOutputs(self, request):
        if "::pulumi:pulumi:Stack::" in request.urn:
            self.stack_outputs = _clean(rpc.deserialize_properties(request.outputs))
        return super().RegisterResourceOutputs(request)

    def close_loops(self) -> None:
        """Close the executor threads' loops now, rather than leave them to the garbage
        collector at interpreter exit, after their sockets ("Invalid file descriptor")."""
        for loop in self.loops:
            if not loop.is_running() and not loop.is_closed():
                loop.close()


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
            # End the SDK's executor threads, so their loops can be closed (RecordingMonitor).
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    thread = threading.Thread(target=target, name="offline-plan")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def in_tree_order(resources: list[PlannedResource]) -> list[PlannedResource]:
    """The resources parents first, siblings components first, then by type and name.

    The mock runtime records resources as their inputs resolve, an order that changes from run to
    run; a plan (its JSON, the checks that walk it) should not."""
    urns = {r.urn for r in resources}
    children: dict[str | None, list[PlannedResource]] = {}
    for r in resources:
        children.setdefault(r.parent if r.parent in urns else None, []).append(r)
    ordered: list[PlannedResource] = []
    pending = sorted(children.get(None, []), key=_sibling_key, reverse=True)
    while pending:
        r = pending.pop()
        ordered.append(r)
        pending.extend(sorted(children.get(r.urn, []), key=_sibling_key, reverse=True))
    return ordered


def _sibling_key(r: PlannedResource) -> tuple[bool, str, str]:
    return (r.custom, r.type, r.name)


def plan_stack(path: Path, stack: str | None = None, *, progress: Progress | None = None) -> Plan:
    """Validate a stack file, then run the program (`main` of `Pulumi.yaml`) for it under
    mocks; `progress` hears what it is doing."""
    if progress:
        progress(f"validating {display_path(path)}")
    with collector.paused():
        return _plan(path, stack, progress)


def _plan(path: Path, stack: str | None, progress: Progress | None) -> Plan:
    config, raw = load_stack_file(path)
    stack = stack or path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    entry = pulumi_project().main
    mocks = PlanMocks(region=config.region, stack=stack)
    monitor = RecordingMonitor(mocks, progress)

    def run_program() -> None:
        # Run the entry file itself, as `pulumi up` would, not a function behind it.
        runpy.run_path(str(entry), run_name="__main__")

    def run() -> Plan:
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
        _sync_await(run_in_stack(run_program))
        return Plan(
            stack=stack,
            source=raw.source,
            config=config,
            resources=in_tree_order(monitor.registrations),
            outputs=monitor.stack_outputs,
            environments=raw.environments,
            autonamed=frozenset(mocks.autonamed),
        )

    try:
        return _run_isolated(run)
    finally:
        monitor.close_loops()
