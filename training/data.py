"""The prepared format: the channels a ``prepare`` step writes and a training job reads.

``write_prepared(out, ...)`` writes two channels, each a directory (an S3 prefix on AWS)::

    out/train/   manifest.json, train_x.npy, train_y.npy, validation_x.npy, validation_y.npy
    out/test/    manifest.json, test_x.npy, test_y.npy

The training job reads only ``train``; the platform's evaluator reads only ``test``, so a job
cannot grade itself. ``manifest.json`` holds the name, task, labels, the shape of one sample,
split sizes, and a sha256 per file plus one over all of them. Plain ``.npy`` files load without
pickle, so data from an untrusted channel cannot run code. Inputs may have any shape (images
[N, C, H, W] or [N, H, W, C], tabular [N, F]) and are stored float32; targets are int64 class
indices (classification) or float32 values (regression).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.errors import DatasetError

MANIFEST = "manifest.json"
FORMAT_VERSION = 2
CHANNEL_SPLITS = {"train": ("train", "validation"), "test": ("test",)}
TASKS = ("classification", "regression")


@dataclass(frozen=True)
class Split:
    """One split in memory: inputs ``x`` [N, ...] float32 and targets ``y`` [N]."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Prepared:
    """One channel of a prepared dataset, checked against its manifest."""

    name: str
    task: str
    labels: list[str]
    sample_shape: tuple[int, ...]
    sha256: str
    splits: dict[str, Split]

    def __getitem__(self, split: str) -> Split:
        if split not in self.splits:
            raise DatasetError(
                f"this channel has the splits {', '.join(self.splits)}, not {split!r} "
                "(the `train` channel holds train and validation, `test` holds test)"
            )
        return self.splits[split]

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def combined_hash(files: Mapping[str, str]) -> str:
    """sha256 of "name:hash" lines in name order: independent of file order and mtime."""
    lines = "".join(f"{name}:{files[name]}\n" for name in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


def _checked(split: str, task: str, labels: list[str], x: np.ndarray, y: np.ndarray) -> tuple:
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        raise DatasetError(
            f"split {split!r}: want inputs [N, ...] and targets [N], got {x.shape} and {y.shape}"
        )
    if task == "classification":
        if not np.issubdtype(y.dtype, np.integer):
            raise DatasetError(f"split {split!r}: classification targets are class indices")
        if len(y) and (y.min() < 0 or y.max() >= len(labels)):
            raise DatasetError(
                f"split {split!r}: targets span {y.min()}..{y.max()}, labels has {len(labels)}"
            )
        return x.astype(np.float32), y.astype(np.int64)
    return x.astype(np.float32), y.astype(np.float32)


def write_prepared(
    out: Path,
    name: str,
    task: str,
    labels: list[str],
    splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
) -> dict[str, dict]:
    """Write the ``train`` and ``test`` channels under ``out``; return their manifests."""
    if task not in TASKS:
        raise DatasetError(f"task {task!r}: want one of {', '.join(TASKS)}")
    wanted = [s for names in CHANNEL_SPLITS.values() for s in names]
    if sorted(splits) != sorted(wanted):
        raise DatasetError(f"want the splits {', '.join(wanted)}, got {', '.join(splits)}")
    arrays = {s: _checked(s, task, labels, *splits[s]) for s in wanted}
    shapes = {arrays[s][0].shape[1:] for s in wanted}
    if len(shapes) > 1:
        raise DatasetError(f"the splits' samples differ in shape: {sorted(shapes)}")
    sample_shape = list(shapes.pop())
    manifests = {}
    for channel, names in CHANNEL_SPLITS.items():
        directory = out / channel
        directory.mkdir(parents=True, exist_ok=True)
        files: dict[str, str] = {}
        for split in names:
            for suffix, array in zip(("x", "y"), arrays[split], strict=True):
                path = directory / f"{split}_{suffix}.npy"
                np.save(path, np.ascontiguousarray(array), allow_pickle=False)
                files[path.name] = _sha256(path)
        manifest = {
            "format_version": FORMAT_VERSION,
            "name": name,
            "task": task,
            "labels": list(labels),
            "sample_shape": sample_shape,
            "splits": {split: len(arrays[split][1]) for split in names},
            "files": files,
            "sha256": combined_hash(files),
        }
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        manifests[channel] = manifest
    return manifests


def read_manifest(directory: Path) -> dict:
    """A channel's manifest, or a DatasetError that says how to make one."""
    path = directory / MANIFEST
    if not path.is_file():
        raise DatasetError(
            f"no prepared data in {directory}: {MANIFEST} is missing. Run the model's prepare "
            "step (`python -m training prepare --model DIR --out DATA`) and point the channel "
            "at DATA/train"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path} is not valid JSON: {err}") from err


def load_prepared(directory: Path) -> Prepared:
    """Load a channel after checking every file against the manifest's sha256."""
    manifest = read_manifest(directory)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DatasetError(
            f"{directory / MANIFEST} has format_version {manifest.get('format_version')}, this "
            f"library reads {FORMAT_VERSION}; prepare the data again"
        )
    arrays: dict[str, np.ndarray] = {}
    for name, expected in manifest["files"].items():
        path = directory / name
        if not path.is_file():
            raise DatasetError(f"{path} is listed in {MANIFEST} but missing")
        if (actual := _sha256(path)) != expected:
            raise DatasetError(
                f"{path} does not match {MANIFEST}: sha256 {actual[:12]}…, expected "
                f"{expected[:12]}… (a partial sync or a changed file; prepare the data again)"
            )
        arrays[name] = np.load(path, allow_pickle=False)
    splits = {
        split: Split(arrays[f"{split}_x.npy"], arrays[f"{split}_y.npy"])
        for split in manifest["splits"]
    }
    return Prepared(
        name=manifest["name"],
        task=manifest["task"],
        labels=list(manifest["labels"]),
        sample_shape=tuple(manifest["sample_shape"]),
        sha256=manifest["sha256"],
        splits=splits,
    )
