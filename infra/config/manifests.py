"""What a stack says about a model, checked against the model's own manifest (model.yaml).

The stack file chooses where and how big a model runs; the manifest says what the model is (its
hyperparameters with types, channels, metrics, objective). These checks join the two, after the
schema has validated the stack file, and report each problem at its key in the stack file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infra.config.base import suggest
from infra.config.models import PROJECT_ROOT, EksTraining, Model, SageMakerTraining

if TYPE_CHECKING:
    from training.manifest import ModelManifest


@dataclass(frozen=True)
class Problem:
    """One problem at a key path below `mlplatform:models`."""

    path: tuple[str | int, ...]
    value: Any
    why: str
    allowed: str = ""


def available_models() -> list[str]:
    """Model directories under models/ (those with a model.yaml)."""
    root = PROJECT_ROOT / "models"
    return sorted(p.parent.name for p in root.glob("*/model.yaml")) if root.is_dir() else []


def model_problems(index: int, model: Model) -> list[Problem]:
    """Every problem of one stack entry against its model directory and manifest."""
    from training.manifest import ManifestError

    key: tuple[str | int, ...] = (index,)
    where = ("path",) if model.path else ("name",)
    if not (model.directory / "model.yaml").is_file():
        shown = model.path or model.name
        relative = (
            model.directory.relative_to(PROJECT_ROOT)
            if model.directory.is_relative_to(PROJECT_ROOT)
            else model.directory
        )
        why = (
            f"no model directory {relative}/ with a model.yaml; scaffold one with "
            f"`mlplatform new-model {model.name} --framework pytorch`"
        )
        return [Problem((*key, *where), shown, why, ", ".join(available_models()) or "none yet")]
    try:
        manifest = model.manifest
    except ManifestError as error:
        return [Problem((*key, *where), model.path or model.name, str(error))]
    # With `path`, the entry may deploy a model under another name (e.g. once per plane).
    return _training_problems(key, model, manifest)


def _training_problems(
    key: tuple[str | int, ...], model: Model, manifest: ModelManifest
) -> list[Problem]:
    from training.manifest import check_hyperparameters

    training = model.training
    here = (*key, "training")
    problems = [
        Problem((*here, "hyperparameters", name), training.hyperparameters.get(name), why)
        for name, why in check_hyperparameters(manifest, training.hyperparameters).items()
    ]
    declared = manifest.train.channels
    for name in training.channels:
        if name not in declared:
            why = f"{model.name} reads no channel {name!r} ({suggest(name, set(declared))})"
            problems.append(
                Problem((*here, "channels", name), name, why, ", ".join(sorted(declared)))
            )
    if isinstance(training, EksTraining):
        problems += _eks_problems(here, model, manifest)
    if isinstance(training, SageMakerTraining) and training.tuning:
        problems += _tuning_problems((*here, "tuning"), training, manifest)
    return problems


def _eks_problems(
    here: tuple[str | int, ...], model: Model, manifest: ModelManifest
) -> list[Problem]:
    """EKS runs the model's code from its image and mounts channels from the datasets bucket."""
    problems = []
    image = manifest.image.training
    if image.uri or image.dlc:
        why = (
            f"EKS runs the training code baked into the image, but {model.name}'s training image "
            "is an existing one (script mode ships code to SageMaker only)"
        )
        problems.append(
            Problem(
                (*here, "plane"),
                "eks",
                why,
                "sagemaker, or image.training build: platform / dockerfile in model.yaml",
            )
        )
    for name, channel in model.training.channels.items():
        if channel.uri:
            why = (
                "EKS mounts channels from the stack's datasets bucket (S3 CSI driver); give prefix"
            )
            problems.append(Problem((*here, "channels", name, "uri"), channel.uri, why, "prefix"))
    return problems


def _tuning_problems(
    here: tuple[str | int, ...], training: SageMakerTraining, manifest: ModelManifest
) -> list[Problem]:
    assert training.tuning is not None
    tuning, problems = training.tuning, []
    metrics = [m.name for m in manifest.train.metrics]
    metric = tuning.objective_metric or manifest.train.objective.tuning_metric
    if metric is None:
        why = "the model names no tuningMetric in model.yaml; name one of its metrics here"
        problems.append(Problem((*here, "objectiveMetric"), None, why, ", ".join(metrics)))
    elif metric not in metrics:
        why = f"{manifest.name} declares no metric {metric!r} in model.yaml train.metrics"
        problems.append(Problem((*here, "objectiveMetric"), metric, why, ", ".join(metrics)))
    declared = manifest.train.hyperparameters
    kinds = {"continuous": ("float",), "integer": ("int",), "categorical": ("str", "int", "float")}
    for name, search in tuning.ranges.items():
        if name not in declared:
            why = f"not a hyperparameter of {manifest.name} ({suggest(name, set(declared))})"
            problems.append(
                Problem((*here, "ranges", name), name, why, ", ".join(sorted(declared)))
            )
        elif declared[name].type not in kinds[search.type]:
            why = f"a {search.type} range for a {declared[name].type} hyperparameter"
            allowed = ", ".join(k for k, v in kinds.items() if declared[name].type in v)
            problems.append(Problem((*here, "ranges", name, "type"), search.type, why, allowed))
    return problems


def tuning_metric(training: SageMakerTraining, manifest: ModelManifest) -> str:
    """The metric the tuner optimises (checked by `model_problems`)."""
    assert training.tuning is not None
    return str(training.tuning.objective_metric or manifest.train.objective.tuning_metric)
