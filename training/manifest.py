"""The model manifest, ``models/<name>/model.yaml``: what a model is, checked before anything runs.

The schema of docs/models.md as pydantic models: camelCase keys, unknown keys refused, a
description, default and bounds on every field. ``load_manifest`` turns every problem into one
line (``models/x/model.yaml:12: train.hyperparameters.epochs.type = 'integer': <why>. Allowed:
<what>``); ``check_hyperparameters`` is what the platform runs on a stack's values at plan time.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from training import hyperparameters as hp
from training.errors import UserError
from training.manifest_parts import Channel, Entry, Image, Metric, Schema, Serve, Where, check_name

MANIFEST_FILE = "model.yaml"
# What the platform's evaluator computes on the test channel, per task, and which way is better.
EVALUATOR_METRICS: dict[str, dict[str, str]] = {
    "classification": {"accuracy": "maximize", "f1_macro": "maximize", "log_loss": "minimize"},
    "regression": {"rmse": "minimize", "mae": "minimize", "r2": "maximize"},
}
# The values each evaluator metric can take: a threshold outside them never registers a model.
THRESHOLD_RANGE = {
    "accuracy": (0.0, 1.0),
    "f1_macro": (0.0, 1.0),
    "log_loss": (0.0, float("inf")),
    "rmse": (0.0, float("inf")),
    "mae": (0.0, float("inf")),
    "r2": (float("-inf"), 1.0),
}
DEFAULT_FORMAT = {
    "pytorch": "torchscript",
    "tensorflow": "tensorflow-savedmodel",
    "sklearn": "onnx",
    "xgboost": "onnx",
}
# Formats only one framework can write; onnx and python are open to all.
FORMAT_FRAMEWORK = {"torchscript": "pytorch", "tensorflow-savedmodel": "tensorflow"}
MAX_HYPERPARAMETERS = 90  # SageMaker takes 100 per job; its SDK adds up to ~10 of its own

# The pattern is for editors (the JSON schema); check_name gives the readable error.
Name = Annotated[
    str,
    AfterValidator(check_name),
    WithJsonSchema({"type": "string", "pattern": "^[a-z][a-z0-9_]*$"}),
]
Scalar = StrictBool | StrictInt | StrictFloat | StrictStr


class ManifestError(UserError):
    """A model.yaml that does not follow the schema: one line per problem."""


class CrossFieldProblems(ValueError):
    """Problems that involve several keys, each kept with the key path it belongs to."""

    def __init__(self, problems: list[Where]):
        super().__init__("; ".join(f"{'.'.join(map(str, p.path))}: {p.why}" for p in problems))
        self.problems = problems


class Hyperparameter(Schema):
    """A typed hyperparameter; the stack may override its value, never add a name."""

    type: Literal["int", "float", "str", "bool"] = Field(
        description="int, float, str or bool: how the string SageMaker passes is read."
    )
    default: Scalar = Field(description="The value when neither the stack nor the job sets one.")
    min: float | None = Field(default=None, description="Smallest allowed value (int, float).")
    max: float | None = Field(default=None, description="Largest allowed value (int, float).")
    choices: list[Scalar] | None = Field(
        default=None, min_length=1, description="The only values allowed (int, float, str)."
    )
    description: str = Field(default="", description="What it does, for people and the tuner.")

    @model_validator(mode="after")
    def _consistent(self) -> Hyperparameter:
        def fail(key: str, value: object, why: str, allowed: str = "") -> CrossFieldProblems:
            return CrossFieldProblems([Where((key,), value, why, allowed)])

        if self.type in ("str", "bool"):
            for key in ("min", "max"):
                if getattr(self, key) is not None:
                    raise fail(
                        key, getattr(self, key), f"applies to int and float, not {self.type}"
                    )
        if self.type == "bool" and self.choices:
            raise fail("choices", self.choices, "a bool is true or false; it has no choices")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise fail("min", self.min, f"above max {self.max:g}")
        if self.choices:
            bare = self.model_copy(update={"choices": None})
            try:
                self.choices = [hp.convert(bare, c) for c in self.choices]
            except ValueError as err:
                raise fail("choices", self.choices, f"every choice must be {err}") from None
        try:
            self.default = hp.convert(self, self.default)
        except ValueError as err:
            raise fail("default", self.default, "does not fit the declaration", str(err)) from None
        return self


class Objective(Schema):
    """What 'better' means: the evaluator's metric for registration, the tuner's metric."""

    metric: str = Field(
        description="A metric the platform's evaluator computes on the test channel: "
        "accuracy, f1_macro, log_loss (classification); rmse, mae, r2 (regression)."
    )
    goal: Literal["maximize", "minimize"] | None = Field(
        default=None, description="maximize or minimize; defaults to the metric's direction."
    )
    threshold: float | None = Field(
        default=None, description="Register a trained model only at or beyond this value."
    )
    tuning_metric: str | None = Field(
        default=None, description="A name from train.metrics that the tuner optimises."
    )


class Train(Entry):
    """How the training job runs: entry point, fan-out, hyperparameters, channels, metrics."""

    default_script: ClassVar[str] = "train.py"

    distribution: Literal["torchrun", "none"] = Field(
        default="none",
        description="torchrun: one process per GPU on every host; none: one process per host.",
    )
    hyperparameters: dict[Name, Hyperparameter] = Field(
        default_factory=dict,
        max_length=MAX_HYPERPARAMETERS,
        description="Typed hyperparameters by name ([a-z][a-z0-9_]*).",
    )
    channels: dict[Name, Channel] = Field(
        default_factory=lambda: {"train": Channel(description="prepared training data")},
        min_length=1,
        max_length=20,
        description="Input channels by name ([a-z][a-z0-9_]*; `test` is the evaluator's).",
    )
    metrics: list[Metric] = Field(
        default_factory=list, description="Metrics SageMaker reads from the training log."
    )
    objective: Objective = Field(description="The metric that decides registration and tuning.")

    @field_validator("channels")
    @classmethod
    def _not_test(cls, channels: dict[str, Channel]) -> dict[str, Channel]:
        if "test" in channels:
            why = "reserved for the platform's evaluator: a job must not see what grades it"
            raise CrossFieldProblems([Where(("test",), "test", why, "any other name, e.g. train")])
        return channels

    @field_validator("metrics")
    @classmethod
    def _unique(cls, metrics: list[Metric]) -> list[Metric]:
        names = [m.name for m in metrics]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"metric names must be unique; repeated: {', '.join(twice)}")
        return metrics

    def metric_definitions(self) -> list[dict[str, str]]:
        """SageMaker MetricDefinitions ({Name, Regex}) for the declared metrics."""
        return [{"Name": m.name, "Regex": m.pattern()} for m in self.metrics]


class ModelManifest(Schema):
    """model.yaml: one model, as the platform builds, trains, evaluates and serves it."""

    name: str = Field(
        pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        description="The model's name: lower-case letters, digits and -; its directory's name.",
    )
    description: str = Field(default="", description="One line about the model.")
    framework: Literal["pytorch", "tensorflow", "sklearn", "xgboost"] = Field(
        description="What the model is written in: picks the platform's image and export."
    )
    task: Literal["classification", "regression"] = Field(
        description="What the evaluator scores: classification or regression metrics."
    )
    prepare: Entry | None = Field(
        default=None, description="Data preparation: run as `<entry> --out DIR [--input DIR]`."
    )
    train: Train = Field(description="The training job.")
    image: Image = Field(default_factory=Image, description="How each role's image is made.")
    serve: Serve = Field(default_factory=Serve, description="How the exported model is served.")

    @model_validator(mode="after")
    def _cross_checks(self) -> ModelManifest:
        if self.serve.format is None:
            self.serve.format = DEFAULT_FORMAT[self.framework]  # type: ignore[assignment]
        problems = _objective_problems(self) + _serving_problems(self)
        if self.train.distribution == "torchrun" and self.framework != "pytorch":
            why = f"torchrun launches PyTorch processes; this is a {self.framework} model"
            problems.append(Where(("train", "distribution"), "torchrun", why, "none"))
        if problems:
            raise CrossFieldProblems(problems)
        return self

    def directory_problems(self, directory: Path, check_name: bool = True) -> list[Where]:
        """Files the manifest names must be in the directory, whose name is the model's."""
        found: list[Where] = []
        if check_name and self.name != directory.name:
            found.append(
                Where(("name",), self.name, "must equal the directory name", directory.name)
            )
        named: dict[tuple[str, ...], str | None] = {
            ("serve", "example"): self.serve.example,
            ("train", "entryPoint"): self.train.entry_point,
        }
        if self.prepare is not None:
            named["prepare", "entryPoint"] = self.prepare.entry_point
        for role in ("training", "serving"):
            named["image", role, "dockerfile"] = getattr(self.image, role).dockerfile
        present = sorted(p.name for p in directory.iterdir() if p.is_file())
        for path, file in named.items():
            if file and not (directory / file).is_file():
                found.append(Where(path, file, f"no such file in {directory}", ", ".join(present)))
        return found


def _objective_problems(m: ModelManifest) -> list[Where]:
    problems = []
    metrics, objective = EVALUATOR_METRICS[m.task], m.train.objective
    if objective.metric not in metrics:
        why = f"not a {m.task} metric of the evaluator"
        problems.append(
            Where(("train", "objective", "metric"), objective.metric, why, ", ".join(metrics))
        )
    else:
        natural = metrics[objective.metric]
        if objective.goal not in (None, natural):
            why = f"{objective.metric} is better when {'larger' if natural == 'maximize' else 'smaller'}"
            problems.append(Where(("train", "objective", "goal"), objective.goal, why, natural))
        objective.goal = natural  # type: ignore[assignment]
        low, high = THRESHOLD_RANGE[objective.metric]
        threshold = objective.threshold
        if threshold is not None and not low <= threshold <= high:
            why = f"{objective.metric} cannot reach it"
            allowed = (
                f">= {low:g}" if high == float("inf")
                else f"<= {high:g}" if low == float("-inf")
                else f"a number between {low:g} and {high:g}"
            )  # fmt: skip
            problems.append(Where(("train", "objective", "threshold"), threshold, why, allowed))
    declared = [metric.name for metric in m.train.metrics]
    if objective.tuning_metric is not None and objective.tuning_metric not in declared:
        why = "not a metric declared in train.metrics"
        path = ("train", "objective", "tuningMetric")
        problems.append(Where(path, objective.tuning_metric, why, ", ".join(declared) or "none"))
    return problems


def _serving_problems(m: ModelManifest) -> list[Where]:
    problems = []
    fmt, runtime = m.serve.format, m.serve.runtime
    if fmt in FORMAT_FRAMEWORK and FORMAT_FRAMEWORK[fmt] != m.framework:
        why = f"a {m.framework} model cannot be exported as {fmt}"
        allowed = f"onnx, python, {DEFAULT_FORMAT[m.framework]}"
        problems.append(Where(("serve", "format"), fmt, why, allowed))
    if runtime == "tensorflow-serving" and fmt != "tensorflow-savedmodel":
        why = "TF Serving serves only the format tensorflow-savedmodel"
        problems.append(Where(("serve", "runtime"), runtime, why, "platform, image"))
    if runtime == "image" and m.image.serving.build == "platform":
        why = (
            "runtime `image` serves from the model's own image, but image.serving is the platform's"
        )
        allowed = "image.serving: {dockerfile: …}, {uri: …} or {dlc: …}"
        problems.append(Where(("serve", "runtime"), runtime, why, allowed))
    return problems


def load_manifest(path: Path, check_name: bool = True) -> tuple[ModelManifest, dict]:
    """Read and check ``path`` (a model.yaml or its directory): the manifest and its line map.

    Raises ManifestError listing every problem, one line each. ``check_name=False`` where the
    code runs from a directory of another name (SageMaker's /opt/ml/code).
    """
    from training.manifest_errors import read_and_validate

    return read_and_validate(path if path.is_file() else path / MANIFEST_FILE, check_name)


def check_hyperparameters(manifest: ModelManifest, values: Mapping[str, object]) -> dict[str, str]:
    """Per-key problems of values a stack gives (type, bounds, unknown names); {} when all good."""
    return hp.check_values(manifest.train.hyperparameters, values)
