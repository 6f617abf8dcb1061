"""Reading model.yaml and turning pydantic's errors into lines a person fixes in one go."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from training.manifest import CrossFieldProblems, ManifestError, ModelManifest
from training.yamlfile import (
    MISSING,
    KeyPath,
    did_you_mean,
    display_path,
    line_of,
    problem,
    read_yaml,
)


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (X, X | None, list[X], dict[str, X])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _walk(loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, Any]:
    """The model that holds the last key of ``loc``, and that key's field info."""
    model: type[BaseModel] | None = ModelManifest
    info = None
    for part in loc:
        if model is None or isinstance(part, int):
            continue
        name = next((n for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        if name is None:
            continue  # a key of a dict, such as a hyperparameter's name
        info = model.model_fields[name]
        model = _inner_model(info.annotation)
    return model, info


def allowed_for(loc: tuple[Any, ...]) -> str:
    """What the key at ``loc`` accepts: its description in the schema."""
    _, info = _walk(loc)
    return info.description if info is not None and info.description else ""


def _keys_of(loc: tuple[Any, ...]) -> list[str]:
    model, _ = _walk(loc)
    return [f.alias or n for n, f in model.model_fields.items()] if model else []


def format_errors(err: ValidationError, source: str, lines: dict[KeyPath, int]) -> list[str]:
    """One line per problem, with the file's line, the key path and what is allowed."""
    found: list[tuple[int, str]] = []
    for e in err.errors(include_url=False):
        loc = tuple(p for p in e["loc"] if p != "[key]")
        crossing = (e.get("ctx") or {}).get("error")
        if isinstance(crossing, CrossFieldProblems):
            for w in crossing.problems:
                path = (*loc, *w.path)
                found.append(
                    (line_of(lines, path), problem(source, lines, path, w.value, w.why, w.allowed))
                )
            continue
        why, allowed = str(e["msg"]).removeprefix("Value error, "), allowed_for(loc)
        if e["type"] == "extra_forbidden":
            keys = _keys_of(loc[:-1])
            hint = did_you_mean(str(loc[-1]), keys)
            why, allowed = "unknown key" + (f" ({hint})" if hint else ""), ", ".join(keys)
        value = MISSING if e["type"] == "missing" else e.get("input")
        found.append((line_of(lines, loc), problem(source, lines, loc, value, why, allowed)))
    return [text for _, text in sorted(found, key=lambda pair: pair[0])]


def read_and_validate(path: Path, check_name: bool) -> tuple[ModelManifest, dict[KeyPath, int]]:
    """Read, validate and check the model directory; ManifestError lists every problem."""
    source = display_path(path)
    if not path.is_file():
        raise ManifestError(f"{source}: no model manifest (model.yaml, see docs/models.md)")
    try:
        document, lines = read_yaml(path.read_text())
    except Exception as err:  # yaml.YAMLError, or a file that is not text
        raise ManifestError(f"{source}: not valid YAML: {err}") from None
    if not isinstance(document, dict):
        raise ManifestError(f"{source}: want a mapping (name, framework, task, train, …)")
    try:
        manifest = ModelManifest.model_validate(document)
    except ValidationError as err:
        found = format_errors(err, source, lines)
    else:
        found = [
            problem(source, lines, w.path, w.value, w.why, w.allowed)
            for w in manifest.directory_problems(path.parent, check_name)
        ]
        if not found:
            return manifest, lines
    count = f"{len(found)} problem{'s' if len(found) > 1 else ''}"
    raise ManifestError(f"{source}: invalid model manifest ({count}):\n  " + "\n  ".join(found))
