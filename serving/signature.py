"""model.json: what a model directory says about itself, read and checked before anything loads.

    {"name": "digits",
     "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}],
     "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}],
     "labels": ["0", ..., "9"],                       # optional: classification labels
     "task": "classification",                        # optional: or "regression"
     "allow_non_finite": false,                       # optional: accept NaN/Infinity inputs
     "preferred_dtype": "bfloat16",                   # optional: compute dtype on a GPU
     "served_output": "logits",                       # optional: see below
     "variants": {"default": {"format": "torchscript", "path": "model.pt"},
                  "onnx": {"format": "onnx", "path": "model.onnx"},
                  "int8": {"format": "onnx", "path": "model-int8.onnx"}}}

A model may declare several outputs (scikit-learn's ONNX graphs have `label` and
`probabilities`); the server answers from one, the *served output*: `served_output` when given,
else a classification's per-class scores (the first floating-point output of shape
[-1, classes]), else the first floating-point output. Labels, metrics and the protocols' output
all describe that one; an ONNX graph or a python handler returning several picks it by position
or by name.

Without `variants` (model.json as exported before variants existed), the top-level `format`
(default torchscript) names the format and the files are the format's usual ones: `default` is
model.pt / model.onnx / handler.py, `int8` is model-int8.pt / model-int8.onnx. Standard library
and numpy only: the evaluator and the server read it before choosing a runtime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

# Open Inference Protocol datatype names → numpy dtypes (the ones a tensor model can take).
OIP_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
FORMATS = ("torchscript", "onnx", "python", "tensorflow-savedmodel")
TASKS = ("classification", "regression")
COMPUTE_DTYPES = ("float32", "float16", "bfloat16")
# The files a model.json without "variants" implies, per format.
_LEGACY_FILES = {
    "torchscript": {"default": "model.pt", "int8": "model-int8.pt"},
    "onnx": {"default": "model.onnx", "int8": "model-int8.onnx"},
    "python": {"default": "handler.py"},
}


class ModelDirectoryError(ValueError):
    """The model directory is missing a file, or its model.json is not what the server needs."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the model as model.json declares it (-1 marks the batch dim)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype:
        return OIP_TO_NUMPY[self.datatype]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample: the declared shape without its leading batch dim."""
        return self.shape[1:]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class Variant:
    """One servable artifact of the model: its name, format and file (relative to the dir)."""

    name: str
    format: str
    path: str


@dataclass(frozen=True)
class ModelSignature:
    """What model.json says: name, one input, the served output, labels, task and variants."""

    name: str
    input: TensorSpec
    output: TensorSpec  # the served output
    labels: tuple[str, ...] = ()
    task: str = "classification"
    allow_non_finite: bool = False
    # The dtype to compute in on a GPU (model.json "preferred_dtype"); the CPU stays float32.
    preferred_dtype: str = "float32"
    variants: dict[str, Variant] = field(default_factory=dict)
    # True when model.json has no "variants" and they follow from "format" (older exports).
    implied_variants: bool = False
    source: Path = Path("model.json")
    # Every output model.json declares, in order (the served one among them).
    outputs: tuple[TensorSpec, ...] = ()

    @property
    def output_index(self) -> int:
        """The served output's position among the declared outputs (graphs return them so)."""
        return next((i for i, o in enumerate(self.outputs) if o == self.output), 0)

    @classmethod
    def from_file(cls, path: Path) -> ModelSignature:
        """Read and check model.json; errors name the file, the key and what is allowed."""
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelDirectoryError(
                f"{path}: not found; the model directory needs a model.json"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelDirectoryError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(doc, dict):
            raise ModelDirectoryError(f"{path}: expected a JSON object at the top level")
        return _parse(path, doc)

    @property
    def regression(self) -> bool:
        return self.task == "regression"

    def variant(self, name: str) -> Variant:
        """The named variant, or an error that lists the ones model.json declares."""
        if name not in self.variants:
            raise ModelDirectoryError(
                f"{self.source}: variant {name!r} is not declared; "
                f"allowed: {', '.join(sorted(self.variants))}"
            )
        return self.variants[name]


def _parse(path: Path, doc: dict[str, Any]) -> ModelSignature:
    for key in ("name", "inputs", "outputs"):
        if key not in doc:
            raise ModelDirectoryError(f"{path}: missing key {key!r}")
    if not isinstance(doc["inputs"], list) or not isinstance(doc["outputs"], list):
        raise ModelDirectoryError(f"{path}: inputs and outputs must be lists of tensor specs")
    if len(doc["inputs"]) != 1:
        raise ModelDirectoryError(
            f"{path}: exactly one input is supported, got {len(doc['inputs'])}"
        )
    if not doc["outputs"]:
        raise ModelDirectoryError(f"{path}: outputs is empty; declare at least one")
    inp = _tensor_spec(path, "inputs[0]", doc["inputs"][0])
    outputs = tuple(
        _tensor_spec(path, f"outputs[{i}]", spec) for i, spec in enumerate(doc["outputs"])
    )
    labels = tuple(str(label) for label in doc.get("labels", ()))
    out = _served_output(path, outputs, doc.get("served_output"), doc.get("task"))
    task = doc.get("task", _default_task(out, labels))
    _choice(path, "task", task, TASKS)
    if task == "regression" and out.shape not in ((-1,), (-1, 1)):
        raise ModelDirectoryError(
            f"{path}: task 'regression' needs output {out.name!r} of shape [-1] or [-1, 1], "
            f"got {list(out.shape)}"
        )
    if labels and (task != "classification" or len(out.shape) != 2):
        raise ModelDirectoryError(
            f"{path}: labels need task 'classification' and output {out.name!r} of shape "
            f"[-1, classes], got task {task!r} and shape {list(out.shape)}"
        )
    if labels and out.shape[-1] != len(labels):
        raise ModelDirectoryError(
            f"{path}: {len(labels)} labels but output {out.name!r} has {out.shape[-1]} columns"
        )
    allow_non_finite = doc.get("allow_non_finite", False)
    if not isinstance(allow_non_finite, bool):
        raise ModelDirectoryError(
            f"{path}: allow_non_finite {allow_non_finite!r} must be true or false"
        )
    preferred = doc.get("preferred_dtype", "float32")
    _choice(path, "preferred_dtype", preferred, COMPUTE_DTYPES)
    return ModelSignature(
        name=str(doc["name"]),
        input=inp,
        output=out,
        labels=labels,
        task=task,
        allow_non_finite=allow_non_finite,
        preferred_dtype=preferred,
        variants=_variants(path, doc),
        implied_variants="variants" not in doc,
        source=path,
        outputs=outputs,
    )


def _served_output(
    path: Path, outputs: tuple[TensorSpec, ...], named: Any, task: Any
) -> TensorSpec:
    """The output the server answers from (see the module's docstring)."""
    if named is not None:
        for spec in outputs:
            if spec.name == named:
                return spec
        raise ModelDirectoryError(
            f"{path}: served_output {named!r} is not a declared output; "
            f"allowed: {', '.join(o.name for o in outputs)}"
        )
    if len(outputs) == 1:
        return outputs[0]
    floats = [o for o in outputs if o.datatype.startswith("FP")]
    if not floats:
        raise ModelDirectoryError(
            f"{path}: {len(outputs)} outputs and none floating-point; name the one to serve "
            "with served_output"
        )
    if task != "regression":
        scores = [o for o in floats if len(o.shape) == 2]
        if scores:
            return scores[0]
    return floats[0]


def _default_task(output: TensorSpec, labels: tuple[str, ...]) -> str:
    # One number per sample and no labels reads as a regression; anything else as scores.
    return "regression" if not labels and output.shape in ((-1,), (-1, 1)) else "classification"


def _choice(path: Path, key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ModelDirectoryError(
            f"{path}: {key} {value!r} is not supported; allowed: {', '.join(allowed)}"
        )


def _variants(path: Path, doc: dict[str, Any]) -> dict[str, Variant]:
    declared = doc.get("variants")
    if declared is None:
        fmt = doc.get("format", "torchscript")
        _choice(path, "format", fmt, FORMATS)
        return {name: Variant(name, fmt, file) for name, file in _LEGACY_FILES[fmt].items()}
    if not isinstance(declared, dict) or "default" not in declared:
        raise ModelDirectoryError(
            f"{path}: variants must be an object with a 'default' entry, like "
            '{"default": {"format": "torchscript", "path": "model.pt"}}'
        )
    variants = {}
    for name, entry in declared.items():
        where = f"variants.{name}"
        if not isinstance(entry, dict) or set(entry) != {"format", "path"}:
            raise ModelDirectoryError(f"{path}: {where} needs exactly 'format' and 'path'")
        _choice(path, f"{where}.format", entry["format"], FORMATS)
        file = PurePosixPath(str(entry["path"]))
        # The artifact must live inside the model directory: model.json is not trusted to
        # point the server at arbitrary files.
        if file.is_absolute() or ".." in file.parts or not file.parts:
            raise ModelDirectoryError(
                f"{path}: {where}.path {entry['path']!r} must be a relative path inside the "
                "model directory"
            )
        variants[name] = Variant(name, entry["format"], str(file))
    if "format" in doc and doc["format"] != variants["default"].format:
        raise ModelDirectoryError(
            f"{path}: format {doc['format']!r} disagrees with variants.default.format "
            f"{variants['default'].format!r}; drop one or make them equal"
        )
    return variants


def _tensor_spec(path: Path, where: str, doc: Any) -> TensorSpec:
    try:
        name, datatype, shape = doc["name"], doc["datatype"], doc["shape"]
    except (TypeError, KeyError) as exc:
        raise ModelDirectoryError(f"{path}: {where} needs name, datatype and shape") from exc
    if datatype not in OIP_TO_NUMPY:
        raise ModelDirectoryError(
            f"{path}: {where}.datatype {datatype!r} is not supported; "
            f"allowed: {', '.join(OIP_TO_NUMPY)}"
        )
    valid = isinstance(shape, list) and all(isinstance(d, int) for d in shape)
    if not valid or not shape or shape[0] != -1 or any(d <= 0 for d in shape[1:]):
        raise ModelDirectoryError(
            f"{path}: {where}.shape {shape!r} must start with -1 (the batch dim) "
            "followed by positive sizes"
        )
    return TensorSpec(name=str(name), datatype=datatype, shape=tuple(shape))
