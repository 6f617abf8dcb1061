"""`python -m serving evaluate`: the pipeline's independent evaluation of an exported model.

    python -m serving evaluate --model-dir M --data-dir TEST_CHANNEL --out evaluation.json
        [--variants all | default,onnx,int8] [--device cpu] [--threads 0] [--batch-size 256]

Each variant is loaded through the server's own loaders and run on the prepared test split
(TEST_CHANNEL/manifest.json, test_x.npy, test_y.npy; every file the manifest lists is checked
against its sha256). Metrics come from scikit-learn: accuracy, f1_macro and log_loss for a
classification, rmse, mae and r2 for a regression. The pipeline's condition reads
`metrics.<name>.value` of evaluation.json (the default variant). Nothing the training job wrote
about itself (metrics.json) is read: a job cannot grade itself. Errors: one line, exit status 2.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serving.model import Model, check_output, load_model, zeros_batch
from serving.signature import ModelDirectoryError, ModelSignature

EXIT_ERROR = 2
MANIFEST = "manifest.json"
SPLIT = ("test_x.npy", "test_y.npy")


class EvaluationError(Exception):
    """The test data or the model cannot be evaluated; the message says what and where."""


@dataclass(frozen=True)
class Options:
    """The loader settings the evaluator passes (the server's LoadOptions)."""

    device: str = "cpu"
    threads: int = 0
    dtype: str = "auto"


def load_test_split(data_dir: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """test_x and test_y after checking every listed file against the manifest's sha256."""
    path = data_dir / MANIFEST
    if not path.is_file():
        raise EvaluationError(
            f"{path}: not found; --data-dir must be the prepared test channel "
            "(manifest.json, test_x.npy, test_y.npy)"
        )
    try:
        manifest = json.loads(path.read_text())
        files: dict[str, str] = manifest["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not an object")
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise EvaluationError(f"{path}: not a prepared-data manifest ({exc})") from exc
    for name in SPLIT:
        if name not in files:
            raise EvaluationError(f"{path}: lists no {name}; this is not a test channel")
    for name, expected in files.items():
        actual = _sha256(data_dir / name, path)
        if actual != expected:
            raise EvaluationError(
                f"{data_dir / name}: sha256 {actual[:12]}... does not match {path} "
                f"({expected[:12]}...): a partial sync or a changed file"
            )
    combined = hashlib.sha256(
        "".join(f"{name}:{files[name]}\n" for name in sorted(files)).encode()
    ).hexdigest()
    if manifest.get("sha256", combined) != combined:
        raise EvaluationError(f"{path}: its sha256 does not match the files it lists")
    x = np.load(data_dir / SPLIT[0], allow_pickle=False)
    y = np.load(data_dir / SPLIT[1], allow_pickle=False)
    if len(x) != len(y) or len(x) == 0:
        raise EvaluationError(f"{data_dir}: {len(x)} test samples but {len(y)} targets")
    data = {"sha256": combined, "samples": len(x), "name": manifest.get("name")}
    return x, y, {**data, "labels": manifest.get("labels")}


def _sha256(path: Path, manifest: Path) -> str:
    if not path.is_file():
        raise EvaluationError(f"{path}: listed in {manifest} but missing")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def run_variant(model: Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """The variant's outputs for every test sample, in batches."""
    spec = model.signature.input
    if x.shape[1:] != spec.sample_shape:
        raise EvaluationError(
            f"test_x.npy holds samples of shape {list(x.shape[1:])} but "
            f"{model.signature.source} takes {list(spec.sample_shape)}"
        )
    check_output(model, zeros_batch(model.signature, 1))  # a shape unlike model.json's: named
    x = x.astype(spec.dtype, copy=False)
    parts = [
        model.predict(np.ascontiguousarray(x[i : i + batch_size]))
        for i in range(0, len(x), batch_size)
    ]
    outputs = np.concatenate(parts)
    bad = int((~np.isfinite(outputs)).reshape(len(outputs), -1).any(axis=1).sum())
    if bad:
        raise EvaluationError(
            f"variant {model.variant.name!r} returned NaN or Infinity for {bad} of "
            f"{len(x)} test samples"
        )
    return outputs


def metrics(signature: ModelSignature, outputs: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """The task's metrics, each as {"value": v} (the shape the pipeline's JsonGet reads)."""
    from sklearn import metrics as m

    n = len(outputs)
    if signature.regression:
        predicted = outputs.reshape(n)
        values = {
            "rmse": m.root_mean_squared_error(y, predicted),
            "mae": m.mean_absolute_error(y, predicted),
            "r2": m.r2_score(y, predicted),
        }
    else:
        scores = outputs.reshape(n, -1)
        predicted = _classes(outputs)
        values = {
            "accuracy": m.accuracy_score(y, predicted),
            "f1_macro": m.f1_score(y, predicted, average="macro"),
        }
        if scores.shape[1] > 1:
            values["log_loss"] = m.log_loss(
                y, _probabilities(scores), labels=list(range(scores.shape[1]))
            )
    return {name: {"value": float(value)} for name, value in values.items()}


def _classes(outputs: np.ndarray) -> np.ndarray:
    """Predicted class per sample: one number per sample is the class itself; a row holds one
    score per class."""
    scores = outputs.reshape(len(outputs), -1)
    return scores[:, 0].astype(np.int64) if scores.shape[1] == 1 else scores.argmax(1)


def _probabilities(scores: np.ndarray) -> np.ndarray:
    """Scores that already are probabilities stay; logits go through a softmax first."""
    from scipy.special import softmax

    as_float = scores.astype(np.float64)
    if (as_float >= 0).all() and (as_float <= 1).all() and np.allclose(as_float.sum(1), 1, 1e-3):
        return as_float
    return softmax(as_float, axis=1)


def evaluate(
    model_dir: Path, data_dir: Path, variants: str, options: Options, batch_size: int = 256
) -> dict[str, Any]:
    """The evaluation.json document for the model directory on the test channel."""
    signature = ModelSignature.from_file(model_dir / "model.json")
    x, y, data = load_test_split(data_dir)
    labels = data.pop("labels")
    if labels and signature.labels and list(signature.labels) != [str(v) for v in labels]:
        raise EvaluationError(
            f"{signature.source} labels {list(signature.labels)} differ from the test data's "
            f"{labels} ({data_dir / MANIFEST})"
        )
    results: dict[str, Any] = {}
    default_outputs: np.ndarray | None = None
    for name in _variant_names(signature, model_dir, variants):
        try:
            model = load_model(model_dir, name, options)
            outputs = run_variant(model, x, batch_size)
            figures = metrics(signature, outputs, y)
        except (EvaluationError, ModelDirectoryError):
            raise
        except Exception as exc:  # the model's own code, or scikit-learn refusing the targets
            raise EvaluationError(f"variant {name!r}: {type(exc).__name__}: {exc}") from exc
        entry: dict[str, Any] = {
            "format": model.variant.format,
            "path": model.variant.path,
            "metrics": figures,
        }
        if default_outputs is None:
            default_outputs = outputs
        elif signature.regression:
            entry["max_abs_diff_vs_default"] = float(np.abs(outputs - default_outputs).max())
        else:
            same = _classes(outputs) == _classes(default_outputs)
            entry["agreement_with_default"] = float(same.mean())
        results[name] = entry
    return {
        "metrics": results["default"]["metrics"],
        "variants": results,
        "data": data,
        "model": {"name": signature.name, "task": signature.task},
    }


def _variant_names(signature: ModelSignature, model_dir: Path, wanted: str) -> list[str]:
    """`all`: every declared variant (an older model.json: those whose files exist). The
    default always comes first: the pipeline's condition reads its metrics."""
    if wanted == "all":
        names = [
            name
            for name, variant in signature.variants.items()
            if not signature.implied_variants or (model_dir / variant.path).exists()
        ]
    else:
        names = [name.strip() for name in wanted.split(",") if name.strip()]
        for name in names:
            signature.variant(name)  # an unknown name fails here, listing the declared ones
    return ["default", *(name for name in names if name != "default")]


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m serving evaluate", description=__doc__)
    p.add_argument("--model-dir", type=Path, required=True, help="exported model directory")
    p.add_argument("--data-dir", type=Path, required=True, help="the prepared test channel")
    p.add_argument("--out", type=Path, required=True, help="where to write evaluation.json")
    p.add_argument("--variants", default="all", help="all, or names like default,onnx,int8")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto [cpu]")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads; 0: the default")
    p.add_argument("--batch-size", type=int, default=256, help="samples per forward pass")
    args = p.parse_args(argv)
    options = Options(device=args.device, threads=args.threads)
    try:
        report = evaluate(args.model_dir, args.data_dir, args.variants, options, args.batch_size)
    except (EvaluationError, ModelDirectoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    for name, entry in report["variants"].items():
        figures = ", ".join(f"{k} {v['value']:.4f}" for k, v in entry["metrics"].items())
        print(f"{report['model']['name']} {name} ({entry['format']}): {figures}")
    print(f"wrote {args.out} ({report['data']['samples']} test samples)")
    return 0
