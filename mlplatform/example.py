"""A model's example request (`serve.example` in model.yaml): the body `mlplatform invoke` and
`mlplatform run` send, with the content type the manifest lists first; a held-out test sample
as a request; answers in words."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from training.manifest import ModelManifest


class PredictionError(Exception):
    """A request the server refused, with its answer."""


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


def held_out_request(test: Path, index: int) -> tuple[ExampleRequest, str]:
    """Sample `index` of a prepared test channel as a JSON request, and its true target."""
    import numpy as np

    x = np.load(test / "test_x.npy", allow_pickle=False)
    y = np.load(test / "test_y.npy", allow_pickle=False)
    index %= len(x)
    labels = json.loads((test / "manifest.json").read_text()).get("labels") or []
    truth = labels[int(y[index])] if labels else f"{y[index].item():.4g}"
    body = json.dumps({"inputs": x[index : index + 1].tolist()}).encode()
    return ExampleRequest(body, "application/json", test / "test_x.npy"), str(truth)


def post(url: str, request: ExampleRequest) -> list[Any]:
    """POST the request (asking for JSON); the answer's predictions."""
    import urllib.error
    import urllib.request

    post = urllib.request.Request(
        url,
        data=request.body,
        headers={"Content-Type": request.content_type, "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(post, timeout=60) as response:
            return json.loads(response.read())["predictions"]
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")
        raise PredictionError(f"POST {request.source} answered {error.code}: {detail}") from None


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
