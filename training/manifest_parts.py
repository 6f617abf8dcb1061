"""The leaf sections of model.yaml: entry points, channels, metrics, images, serving."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from training.metrics import metric_regex

# SageMaker's toolkit upper-cases these names into variables (SM_HP_<NAME>, SM_CHANNEL_<NAME>)
# without sanitising them, so anything but [a-z0-9_] makes a name a shell cannot read.
NAME_PATTERN = r"[a-z][a-z0-9_]*"
CONTENT_TYPES = ("application/json", "application/jsonlines", "application/x-npy", "text/csv")


@dataclass(frozen=True)
class Where:
    """One problem that belongs to a key path: the value found, why, and what is allowed."""

    path: tuple[str | int, ...]
    value: Any
    why: str
    allowed: str = ""


class Schema(BaseModel):
    """camelCase keys as written in model.yaml; unknown keys are errors, not ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=False,
    )


def check_name(name: str) -> str:
    """A hyperparameter or channel name the toolkit can turn into an environment variable."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise ValueError(
            f"{name!r} is not a valid name: lower-case letters, digits and _, starting with a "
            f"letter (SageMaker turns it into SM_HP_{name.upper()} / SM_CHANNEL_{name.upper()})"
        )
    return name


class Entry(Schema):
    """What to run: a script, a module or a command (exactly one; default: the usual script)."""

    default_script: ClassVar[str] = "prepare.py"

    entry_point: str | None = Field(
        default=None,
        description="A script in the model directory, run as `python <script>` (e.g. train.py).",
    )
    module: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$",
        description="A Python module, run as `python -m <module>`.",
    )
    command: list[str] | None = Field(
        default=None, min_length=1, description="A command and its arguments, e.g. [bash, run.sh]."
    )

    @field_validator("entry_point")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        # The SageMaker toolkit refuses names that start with - or / or contain ..
        if value is not None and (value.startswith(("-", "/")) or ".." in value or not value):
            raise ValueError("a path inside the model directory (no leading / or -, no ..)")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Entry:
        given = [k for k in ("entry_point", "module", "command") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of entryPoint, module or command, not {len(given)}")
        if not given:
            self.entry_point = self.default_script
        return self

    def argv(self, python: str) -> list[str]:
        """The command line that runs this entry with ``python``."""
        if self.command:
            return list(self.command)
        if self.module:
            return [python, "-m", self.module]
        return [python, str(self.entry_point)]


class Channel(Schema):
    """An input channel the job reads: SM_CHANNEL_<NAME>, /opt/ml/input/data/<name>."""

    description: str = Field(default="", description="What the channel holds.")


class Metric(Schema):
    """A metric SageMaker scrapes from the log: from a `metric:` line key, or a regex."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9:._\-]{1,255}$",
        description="The metric's name in SageMaker (e.g. validation:accuracy).",
    )
    key: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_]*$",
        description="A key the script logs with run.log(key=value).",
    )
    regex: str | None = Field(
        default=None, description="A regex with one group that captures the value from the log."
    )

    @field_validator("regex")
    @classmethod
    def _one_group(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            groups = re.compile(value).groups
        except re.error as err:
            raise ValueError(f"not a valid regex ({err})") from None
        if groups != 1:
            raise ValueError(f"the regex must have exactly one group (has {groups})")
        return value

    @model_validator(mode="after")
    def _key_or_regex(self) -> Metric:
        if (self.key is None) == (self.regex is None):
            raise ValueError("give either key (a run.log name) or regex, not both or neither")
        return self

    def pattern(self) -> str:
        return self.regex if self.regex is not None else metric_regex(str(self.key))


class Dlc(Schema):
    """An AWS Deep Learning Container of the model's framework."""

    version: str = Field(
        pattern=r"^[0-9]+(\.[0-9]+){0,2}(-[0-9]+)?$",
        description="The framework version of the container, e.g. 2.8.0.",
    )


def mutable_tag_problem(uri: str) -> str | None:
    """Why an image reference may change under the platform's feet, or None if it cannot."""
    if "@sha256:" in uri:
        return None
    name = uri.rsplit("/", 1)[-1]
    tag = name.split(":", 1)[1] if ":" in name else ""
    if not tag:
        return "no tag and no digest means `latest`, which changes under a deployed model"
    if tag == "latest":
        return "`latest` changes under a deployed model"
    return None


class ImageSource(Schema):
    """How one role's image is made (exactly one key)."""

    build: Literal["platform"] | None = Field(
        default=None, description="platform: the platform's image for the framework."
    )
    dockerfile: str | None = Field(default=None, description="A Dockerfile in the model directory.")
    uri: str | None = Field(
        default=None, description="An existing image, by digest (…@sha256:…) or immutable tag."
    )
    dlc: Dlc | None = Field(default=None, description="An AWS Deep Learning Container.")

    @field_validator("uri")
    @classmethod
    def _immutable(cls, value: str | None) -> str | None:
        why = mutable_tag_problem(value) if value else None
        if why:
            raise ValueError(f"a mutable image reference: {why}; pin a digest or a version tag")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageSource:
        given = [k for k in ("build", "dockerfile", "uri", "dlc") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of build, dockerfile, uri or dlc, not {', '.join(given)}")
        if not given:
            self.build = "platform"
        return self


class Image(Schema):
    """The training and serving images."""

    training: ImageSource = Field(
        default_factory=ImageSource, description="The image training and preparation run in."
    )
    serving: ImageSource = Field(
        default_factory=ImageSource, description="The image the endpoint serves from."
    )


class Serve(Schema):
    """How the exported model is served."""

    format: Literal["torchscript", "onnx", "python", "tensorflow-savedmodel"] | None = Field(
        default=None,
        description="The default variant's format; defaults to the framework's "
        "(torchscript, tensorflow-savedmodel, onnx).",
    )
    runtime: Literal["platform", "tensorflow-serving", "image"] = Field(
        default="platform",
        description="platform: the platform's server; tensorflow-serving: TF Serving; "
        "image: the model's own serving image.",
    )
    example: str = Field(
        default="example.json", description="An example request body in the model directory."
    )
    content_types: list[Literal[CONTENT_TYPES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(CONTENT_TYPES),
        min_length=1,
        description="Request content types the endpoint accepts.",
    )
