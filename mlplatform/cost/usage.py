"""How much a stack is expected to be used: what its prices are multiplied by.

Prices are facts of a region (the price table); usage is not. Runs a month, GB stored and
processed, serverless busy time and messages are assumed per environment in the budget policy's
config (`policies/config.<environment>.json`, `monthly-budget.assumptions`), and a model's stack
entry may say its own (`training.runsPerMonth`, `batch.runsPerMonth`, `batch.hoursPerRun`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# What an environment assumes when its policy config does not say (dev-sized).
DEFAULT_ASSUMPTIONS: dict[str, Any] = {
    "trainingRunsPerMonth": 20,
    "batchRunsPerMonth": 4,
    "serverlessBusySecondsPerMonth": 100_000,
    "natGbPerMonth": 20,
    "flowLogGbPerMonth": 2,
    "controlPlaneLogGbPerMonth": 5,
    "topicMessagesPerMonth": 1_000,
    "bucketGb": {"datasets": 20, "artifacts": 5, "checkpoints": 5, "access-logs": 1},
}
ASSUMPTION_KEYS = "monthly-budget.assumptions.{key} in policies/config.{environment}.json"


@dataclass(frozen=True)
class ModelUsage:
    """What a model's stack entry says about its own use (None: not said)."""

    name: str
    training_runs: float | None = None
    batch_runs: float | None = None
    batch_hours: float = 1.0


@dataclass(frozen=True)
class Usage:
    """The environment's assumptions and each model's own numbers."""

    environment: str = "dev"
    assumptions: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_ASSUMPTIONS))
    models: tuple[ModelUsage, ...] = ()

    def __getitem__(self, key: str) -> Any:
        return self.assumptions.get(key, DEFAULT_ASSUMPTIONS[key])

    def source(self, key: str) -> str:
        """Where an environment assumption is set, for the sentence that states it."""
        where = ASSUMPTION_KEYS.format(environment=self.environment, key=key)
        return f"{self.environment} policy default: {where}"

    def model(self, pipeline: str) -> ModelUsage | None:
        """The model a pipeline belongs to (`<prefix>-<model>[-batch|-monitor]`): the longest
        model name the pipeline name ends with, so `x-digits` never takes `digits`' pipeline."""
        base = re.sub(r"-(batch|monitor)$", "", pipeline)
        found = [m for m in self.models if base == m.name or base.endswith(f"-{m.name}")]
        return max(found, key=lambda m: len(m.name), default=None)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _section(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def model_usage(entry: Mapping[str, Any]) -> ModelUsage:
    """A model's own usage numbers from its stack entry (camelCase, as the stack file spells it)."""
    training, batch = (_section(entry.get(key)) for key in ("training", "batch"))
    return ModelUsage(
        name=str(entry.get("name", "")),
        training_runs=_number(training.get("runsPerMonth")),
        batch_runs=_number(batch.get("runsPerMonth")),
        batch_hours=_number(batch.get("hoursPerRun")) or 1.0,
    )


def usage_of(
    environment: str, assumptions: Mapping[str, Any] | None, models: Sequence[Mapping[str, Any]]
) -> Usage:
    """The usage a stack is priced with: policy assumptions over the defaults, plus its models'."""
    merged = {**DEFAULT_ASSUMPTIONS, **(assumptions or {})}
    return Usage(
        environment, merged, tuple(model_usage(m) for m in models if isinstance(m, Mapping))
    )


def runs_per_month(expression: str) -> float:
    """How many times an EventBridge Scheduler `rate(...)`/`cron(...)` expression fires a month."""
    rate = re.fullmatch(r"rate\((\d+)\s+(minute|hour|day)s?\)", expression.strip())
    if rate:
        minutes = int(rate[1]) * {"minute": 1, "hour": 60, "day": 1440}[rate[2]]
        return 730 * 60 / minutes
    cron = re.fullmatch(r"cron\((.+)\)", expression.strip())
    if not cron:
        raise ValueError(f"not a schedule expression: {expression!r}")
    minutes, hours, day_of_month, _month, day_of_week, *_ = cron[1].split()
    per_day = _count(minutes, 60) * _count(hours, 24)
    if day_of_week not in ("*", "?"):
        days = _count(day_of_week, 7) * 30.42 / 7
    elif day_of_month not in ("*", "?"):
        days = _count(day_of_month, 31)
    else:
        days = 30.42
    return per_day * days


def _count(field_: str, size: int) -> int:
    """Values one cron field selects: lists, ranges (MON-FRI, 1-5) and steps (*/15)."""
    total = 0
    for part in field_.split(","):
        base, _, step = part.partition("/")
        if base in ("*", "?"):
            span = size
        elif "-" in base:
            names = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
            lo, hi = (names.index(x) if x in names else int(x) for x in base.split("-"))
            span = hi - lo + 1
        else:
            span = 1
        total += -(-span // int(step)) if step else span
    return total
