"""Format `python`: the model's own handler module (handler.py), shaped like `kserve.Model`.

    def load(model_dir: pathlib.Path) -> object: ...   # module level; returns the model object

The object has `predict(batch: np.ndarray)` and optionally `preprocess(batch)` and
`postprocess(output)`, each numpy in, numpy (or anything np.asarray takes) out. `predict` (or
`postprocess`) may return a dict of named outputs, as model.json declares them; the server answers
from the served output (signature.py). It knows nothing
of HTTP: the server decodes and checks requests against model.json before calling it, batches
them, and encodes what it returns. The model directory is put on sys.path, so the handler can
import modules shipped beside it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np

from serving.model import LoadOptions, check_output, warm_up_sizes, zeros_batch
from serving.signature import ModelDirectoryError, ModelSignature, Variant


class Handler(Protocol):
    """What load() returns: an object with predict (checked when the model loads)."""

    def predict(self, batch: Any) -> Any: ...


class HandlerModel:
    """A handler module's model object behind the same `predict` as the other formats."""

    def __init__(
        self, model_dir: Path, signature: ModelSignature, variant: Variant, options: LoadOptions
    ) -> None:
        self.signature = signature
        self.variant = variant
        self.device = "the device its handler chose"
        if options.dtype not in ("auto", "float32"):
            raise ModelDirectoryError(
                f"--dtype {options.dtype} applies to torchscript variants; variant "
                f"{variant.name!r} is a python handler, which picks its own precision"
            )
        path = model_dir / variant.path
        module = _import(path)
        load = getattr(module, "load", None)
        if not callable(load):
            raise ModelDirectoryError(
                f"{path}: a python handler needs a module-level load(model_dir) that returns "
                "an object with predict(batch)"
            )
        obj = load(model_dir)
        if not callable(getattr(obj, "predict", None)):
            raise ModelDirectoryError(
                f"{path}: load() returned {type(obj).__name__}, which has no predict(batch) method"
            )
        self.obj = cast(Handler, obj)
        self._pre: Callable[[Any], Any] | None = getattr(self.obj, "preprocess", None)
        self._post: Callable[[Any], Any] | None = getattr(self.obj, "postprocess", None)
        self._output_dtype = signature.output.dtype

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """preprocess → predict → postprocess, as the handler defines them."""
        x = self._pre(batch) if self._pre is not None else batch
        y = self.obj.predict(x)
        if self._post is not None:
            y = self._post(y)
        if isinstance(y, dict):
            name = self.signature.output.name
            if name not in y:
                raise ModelDirectoryError(
                    f"{self.variant.path}: predict returned outputs {sorted(y)}, without "
                    f"{name!r}, the output {self.signature.source} serves"
                )
            y = y[name]
        return np.asarray(y, dtype=self._output_dtype)

    def warm_up(self, max_batch_size: int) -> None:
        """Check the output shape, then run each common batch size once (lazy set-up in user
        code runs now rather than in the first request)."""
        check_output(self, zeros_batch(self.signature, 1))
        for size in warm_up_sizes(max_batch_size):
            self.predict(zeros_batch(self.signature, size))


def _import(path: Path) -> Any:
    """Import a handler file by path under a name of its own (two models never collide)."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"mlplatform_handler_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelDirectoryError(f"{path}: not a Python module the server can import")
    module = importlib.util.module_from_spec(spec)
    directory = str(path.parent.resolve())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ModelDirectoryError(
            f"{path}: importing the handler failed: {type(exc).__name__}: {exc}"
        ) from exc
    return module
