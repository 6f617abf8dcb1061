"""What the platform's server (and its evaluator) can load of an exported model.

The server loads torchscript, onnx and python variants with one input and one output. Two kinds
of export need a local view of the model directory first:

- a Keras export, which holds a `tensorflow-savedmodel` variant (TF Serving serves it on AWS):
  the SavedModel is left out and, when it was the default, the ONNX variant takes its place;
- an ONNX export with several outputs (scikit-learn's `label` and `probabilities`): the graph
  keeps the scores alone (a classification's `[-1, classes]` output), which the server answers
  with the label; handler variants, which return every output, are left out.

The view is a copy in the run's work directory; the export itself is never changed. When the
server loads an export as it is, the export is served directly.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVER_FORMATS = ("torchscript", "onnx", "python")
MODEL_JSON = "model.json"


class NotServable(Exception):
    """An exported model with no variant the platform's server loads."""


@dataclass(frozen=True)
class Servable:
    """What the server loads: a directory, the variant served and, for a view, why."""

    directory: Path
    variant: str
    format: str
    note: str = ""


def _variants(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    variants = spec.get("variants")
    if isinstance(variants, dict) and "default" in variants:
        return variants
    # An older model.json without variants: the server implies the default from `format`.
    return {"default": {"format": spec.get("format", "torchscript"), "path": ""}}


def _scores_output(spec: dict[str, Any]) -> dict[str, Any]:
    """The one output to serve: a classification's per-class scores, else the first float."""
    outputs = spec["outputs"]
    floats = [o for o in outputs if str(o.get("datatype", "")).startswith("FP")] or outputs
    if spec.get("task") == "classification":
        return next((o for o in floats if len(o.get("shape", ())) == 2), floats[0])
    return floats[0]


def _keep_output(onnx_file: Path, name: str) -> None:
    """Drop every graph output of `onnx_file` but `name` (its producers stay; unused ends)."""
    import onnx

    model = onnx.load(str(onnx_file), load_external_data=False)
    kept = [o for o in model.graph.output if o.name == name]
    del model.graph.output[:]
    model.graph.output.extend(kept)
    onnx.save(model, str(onnx_file))


def servable(model_dir: Path, view_dir: Path) -> Servable:
    """The export itself when the server loads it as it is; else a view in `view_dir`."""
    path = model_dir / MODEL_JSON
    if not path.is_file():
        raise NotServable(f"{path}: not found; the training run exported no model")
    spec = json.loads(path.read_text())
    variants = _variants(spec)
    default = variants["default"]["format"]
    several = len(spec.get("outputs", ())) > 1
    foreign = {n: v["format"] for n, v in variants.items() if v.get("format") not in SERVER_FORMATS}
    if not foreign and not several:
        return Servable(model_dir, "default", default)
    formats = ("onnx",) if several else SERVER_FORMATS
    kept = {n: v for n, v in variants.items() if v.get("format") in formats}
    if not kept:
        raise NotServable(
            f"{path}: no variant the platform's server loads (formats "
            f"{', '.join(formats)}{', one output' if several else ''}); the default is {default}"
        )
    chosen = "default" if "default" in kept else "onnx" if "onnx" in kept else next(iter(kept))
    tops = {Path(v["path"]).parts[0] for n, v in variants.items() if n not in kept and v["path"]}
    if view_dir.exists():
        shutil.rmtree(view_dir)
    top = str(model_dir)
    shutil.copytree(
        model_dir, view_dir, ignore=lambda at, names: [n for n in names if at == top and n in tops]
    )
    why = [
        f"the server does not load the {name!r} variant ({fmt}"
        + (", which TF Serving serves on AWS)" if fmt == "tensorflow-savedmodel" else ")")
        for name, fmt in foreign.items()
    ]
    if several:
        output = _scores_output(spec)
        for variant in kept.values():
            _keep_output(view_dir / variant["path"], output["name"])
        spec["outputs"] = [output]
        names = ", ".join(o["name"] for o in json.loads(path.read_text())["outputs"])
        why.append(f"the export has outputs {names}; the server answers from {output['name']}")
    spec["format"] = kept[chosen]["format"]
    spec["variants"] = {"default": kept[chosen]} | {n: v for n, v in kept.items() if n != chosen}
    (view_dir / MODEL_JSON).write_text(json.dumps(spec, indent=2) + "\n")
    note = (
        f"{'; '.join(why)}: the platform's server loads its {chosen!r} variant "
        f"({kept[chosen]['format']}) from a view of the export, {view_dir}"
    )
    return Servable(view_dir, chosen, kept[chosen]["format"], note)
