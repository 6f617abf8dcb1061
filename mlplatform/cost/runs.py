"""What runs start: SageMaker pipelines (train or tune, the prepare, evaluate and baseline steps
around them, Batch Transform, drift checks), each run priced at its maximum runtime.

Nothing is billed while no run is going, so every line here is 0 at min; max is the runs a month
the schedule starts, the model's stack entry expects or the environment assumes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlplatform.cost.lines import Pricing, per_month
from mlplatform.cost.usage import ModelUsage
from policies.rules import StackResource
from policies.rules import props as p


@dataclass(frozen=True)
class Job:
    """One processing or transform step: what it runs on and for how long at most."""

    name: str
    instance_type: Any
    count: int
    hours: float | None


def _value(value: Any, parameters: Mapping[str, Any]) -> Any:
    """A step argument, with `{"Get": "Parameters.X"}` replaced by X's default value."""
    if isinstance(value, Mapping) and str(value.get("Get", "")).startswith("Parameters."):
        return parameters.get(str(value["Get"]).removeprefix("Parameters."))
    return value


def _all_steps(steps: Any) -> list[Mapping[str, Any]]:
    """Steps, with those a Condition step runs (IfSteps, ElseSteps) counted as if they always
    ran: a run that passes its threshold also runs the baseline."""
    out = []
    for step in map(p.as_dict, p.as_list(steps)):
        out.append(step)
        if step.get("Type") == "Condition":
            args = p.as_dict(step.get("Arguments"))
            out += _all_steps([*p.as_list(args.get("IfSteps")), *p.as_list(args.get("ElseSteps"))])
    return out


def jobs(definition: Any, step_type: str) -> list[Job]:
    """The Processing (or Transform) steps of a pipeline definition."""
    doc = p.json_doc(definition)
    if not isinstance(doc, Mapping):
        return []
    parameters = {
        str(q.get("Name")): q.get("DefaultValue")
        for q in map(p.as_dict, p.as_list(doc.get("Parameters")))
    }
    out = []
    for step in _all_steps(doc.get("Steps")):
        if step.get("Type") != step_type:
            continue
        args = p.as_dict(step.get("Arguments"))
        if step_type == "Transform":
            resources = p.as_dict(args.get("TransformResources"))
            seconds = None  # a transform has no runtime limit: the usage says how long
        else:
            resources = p.as_dict(p.as_dict(args.get("ProcessingResources")).get("ClusterConfig"))
            stopping = p.as_dict(args.get("StoppingCondition"))
            seconds = _value(stopping.get("MaxRuntimeInSeconds"), parameters)
        out.append(
            Job(
                name=str(step.get("Name", "")),
                instance_type=_value(resources.get("InstanceType"), parameters),
                count=int(_value(resources.get("InstanceCount"), parameters) or 1),
                hours=float(seconds) / 3600 if isinstance(seconds, int | float) else None,
            )
        )
    return out


def _runs(
    c: Pricing, r: StackResource, label: str, own: float | None, own_key: str, default_key: str
) -> float:
    """Runs a month from the schedule, the model's stack entry or the environment's default,
    stated as an assumption. Training's runsPerMonth is for unscheduled models (as the schema
    documents it); batch's overrides the schedule."""
    arn = r.props.get("arn")
    scheduled = c.runs_by_target.get(str(arn)) if p.known(arn) else None
    batch = default_key == "batchRunsPerMonth"
    if own is not None and (batch or not scheduled):
        runs, why = own, f"(stack file: {own_key})"
    elif scheduled:
        runs, why = scheduled[0], f"(its schedule {scheduled[1]})"
    else:
        runs = float(c.usage[default_key])
        why = f"assumed ({c.usage.environment} policy default; set {own_key})"
    c.assume(f"{label}: {per_month(runs)} runs a month {why}")
    return runs


def pipeline(r: StackResource, c: Pricing) -> None:
    definition = r.props.get("pipelineDefinition")
    model = c.usage.model(r.name)
    name = model.name if model else r.name
    transforms = jobs(definition, "Transform")
    if transforms:
        _batch(r, c, name, model, transforms)
        return
    processing = jobs(definition, "Processing")
    if r.name.endswith("-monitor"):
        runs = _runs(
            c, r, f"{name} drift checks", None, "serving.driftSchedule", "trainingRunsPerMonth"
        )
        _processing(r, c, "drift check", processing, runs)
        return
    training = list(p.training_steps(definition))
    if not training and not processing:
        return
    own = model.training_runs if model else None
    runs = _runs(c, r, f"{name} training", own, "training.runsPerMonth", "trainingRunsPerMonth")
    spot_share = c.prices.assumptions["sagemakerSpotFactor"]
    default_hours = c.prices.assumptions["sagemakerMaxRuntimeHoursDefault"]
    for step in training:
        hourly = c.hourly(step.instance_type)
        if hourly is None:
            continue
        hours = step.max_runtime_s / 3600 if step.max_runtime_s else default_hours
        # A spot job's wait for capacity is not billed: each run costs its runtime at most.
        factor = spot_share if step.spot else 1
        tuning = step.total_jobs > 1 or step.parallel_jobs > 1
        trials = f" x {step.total_jobs} jobs" if tuning else ""
        detail = (
            f"{step.instance_type} x {step.instance_count}{' spot' if step.spot else ''}, "
            f"{per_month(runs)} runs{trials} x {hours:g} h"
        )
        cost = hourly * factor * hours * step.instance_count * step.total_jobs * runs
        c.add(r, "tuning" if tuning else "training", "runs", detail, 0, cost, scales=False)
    _processing(r, c, "pipeline steps", processing, runs)


def _processing(r: StackResource, c: Pricing, kind: str, steps: list[Job], runs: float) -> None:
    """One line for a pipeline's processing steps (on demand: processing has no spot)."""
    default_hours = c.prices.assumptions["sagemakerMaxRuntimeHoursDefault"]
    cost, parts = 0.0, []
    for step in steps:
        hourly = c.hourly(step.instance_type)
        if hourly is None:
            return
        hours = step.hours or default_hours
        cost += hourly * hours * step.count * runs
        count = f" x {step.count}" if step.count > 1 else ""
        parts.append(f"{step.name} ({step.instance_type}{count}, {hours:g} h)")
    if parts:
        detail = f"{', '.join(parts)}; {per_month(runs)} runs"
        c.add(r, kind, "runs", detail, 0, cost, scales=False)


def _batch(
    r: StackResource, c: Pricing, name: str, model: ModelUsage | None, steps: list[Job]
) -> None:
    own = model.batch_runs if model else None
    runs = _runs(c, r, f"{name} batch", own, "batch.runsPerMonth", "batchRunsPerMonth")
    hours = model.batch_hours if model else 1.0
    c.assume(f"{name} batch: {hours:g} h a run (batch.hoursPerRun)")
    for step in steps:
        hourly = c.hourly(step.instance_type)
        if hourly is None:
            continue
        detail = f"{step.instance_type} x {step.count}, {per_month(runs)} runs x {hours:g} h"
        cost = hourly * hours * step.count * runs
        c.add(r, "batch transform", "runs", detail, 0, cost, scales=False)
