"""A model's example request (`serve.example` in model.yaml): the body `mlplatform invoke` and
`mlplatform run` send, with the content type the manifest lists first, and its answer in words."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from training.manifest import ModelManifest


@dataclass(frozen=True)
class ExampleRequest:
    """A request body, its content type and the file it came from."""

    body: bytes
    content_type: str
    source: Path

    @property
    def is_json(self) -> bool:
        return self.content_type == "application/json"


def example_request(directory: Path, manifest: ModelManifest) -> ExampleRequest:
    """The model's example request (the manifest check made sure the file exists)."""
    path = directory / manifest.serve.example
    return ExampleRequest(path.read_bytes(), manifest.serve.content_types[0], path)


def request_from_file(path: Path, content_type: str) -> ExampleRequest:
    """A request body a person chose (`--input FILE`)."""
    return ExampleRequest(path.read_bytes(), content_type, path)


def describe(prediction: Any) -> str:
    """One prediction in a line: the label when the answer has one, else its values."""
    if not isinstance(prediction, dict):
        return json.dumps(prediction)
    rest = {k: v for k, v in prediction.items() if k != "label"}
    values = ", ".join(f"{k} {_short(v)}" for k, v in rest.items())
    if "label" in prediction:
        return f"{prediction['label']}" + (f" ({values})" if values else "")
    return values


def _short(value: Any) -> str:
    """Numbers to 4 significant digits, long lists cut to their first values."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        shown = ", ".join(_short(v) for v in value[:10])
        return f"[{shown}{', …' if len(value) > 10 else ''}]"
    return json.dumps(value)
