"""The model a local run works on: its directory, its manifest, and the hyperparameters it trains
with (model.yaml's defaults, then the stack's entry for the model, then `--epochs`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.config.manifests import available_models
from infra.stackfile import PROJECT_ROOT, STACKS_DIR, display_path, load_stack_file, stack_file

if TYPE_CHECKING:
    from training.manifest import ModelManifest

DEFAULT_STACK = "dev"


class RunError(Exception):
    """A local run that cannot go on: what failed, and how to run it by hand."""


@dataclass(frozen=True)
class LocalModel:
    """A model directory, its checked manifest and the hyperparameters chosen for this run."""

    name: str
    directory: Path
    manifest: ModelManifest
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def flags(self) -> list[str]:
        """`--name value` per chosen hyperparameter, as `python -m training launch` takes them."""
        flags: list[str] = []
        for name, value in self.hyperparameters.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            flags += [f"--{name}", text]
        return flags

    def hyperparameter_summary(self) -> str:
        chosen = ", ".join(f"{n}={v} ({self.sources[n]})" for n, v in self.hyperparameters.items())
        chosen = f"{chosen}; the rest model.yaml's defaults" if chosen else "model.yaml's defaults"
        lines = [*self.notes, f"hyperparameters: {chosen}"]
        return "\n".join(lines)


def _stack_entry(name: str, stack: str | None, stacks_dir: Path) -> tuple[Any, list[str]]:
    """The stack's entry for the model, or None with a note saying why the defaults apply."""
    path = stack_file(stack or DEFAULT_STACK, stacks_dir)
    if stack is None and not path.is_file():
        return None, []
    config, _ = load_stack_file(path)
    for entry in config.models:
        if entry.name == name:
            return entry, []
    where = display_path(path)
    return None, [
        f"stack {stack or DEFAULT_STACK} ({where}) has no model {name}: model.yaml's defaults"
    ]


def find_model(
    name: str,
    stack: str | None = None,
    epochs: int | None = None,
    stacks_dir: Path = STACKS_DIR,
) -> LocalModel:
    """The model `name` (models/<name>/, or the stack entry's `path`) with its hyperparameters.
    `stack` None: the dev stack's values when it has the model."""
    from training.errors import UserError
    from training.manifest import load_manifest

    entry, notes = _stack_entry(name, stack, stacks_dir)
    directory = entry.directory if entry is not None else PROJECT_ROOT / "models" / name
    if not (directory / "model.yaml").is_file():
        known = ", ".join(available_models()) or "none yet"
        raise RunError(
            f"no model {name!r}: {display_path(directory)}/model.yaml does not exist. Models: "
            f"{known}; scaffold one with `mlplatform new-model {name} --framework pytorch`"
        )
    try:
        manifest, _ = load_manifest(directory, check_name=entry is None or entry.path is None)
    except UserError as error:
        raise RunError(str(error)) from None
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if entry is not None:
        for key, value in entry.training.hyperparameters.items():
            values[key], sources[key] = value, f"stack {stack or DEFAULT_STACK}"
    if epochs is not None:
        if "epochs" in manifest.train.hyperparameters:
            values["epochs"], sources["epochs"] = epochs, "--epochs"
        else:
            notes.append(
                f"{name} declares no hyperparameter epochs in model.yaml: --epochs ignored"
            )
    return LocalModel(name, directory, manifest, values, sources, tuple(notes))
