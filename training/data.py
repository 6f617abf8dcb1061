"""Prepared datasets: the on-disk training format, its manifest, and the batches the loop reads.

A prepared dataset is a directory (a SageMaker channel, or a synced S3 prefix on Kubernetes):

    manifest.json        name, image shape, labels, split sizes, sha256 per file and overall
    train_x.npy          float32 [N, C, H, W], pixel values scaled to 0..1
    train_y.npy          int64 [N]
    test_x.npy, test_y.npy   the held-out split, same layout

Plain ``.npy`` files load without pickle, so a dataset from an untrusted channel cannot run code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from training.config import UserError

MANIFEST = "manifest.json"
SPLITS = ("train", "test")
FORMAT_VERSION = 1


class DatasetError(UserError):
    """A dataset directory that is missing, incomplete or does not match its manifest."""


@dataclass(frozen=True)
class Split:
    """One split held in memory: images [N, C, H, W] float32 and labels [N] int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Indexed by a whole batch of indices at once: one gather instead of N tiny ones.
        return self.images[index], self.labels[index]


@dataclass(frozen=True)
class Dataset:
    """A prepared dataset: both splits plus what the manifest says about them."""

    name: str
    labels: list[str]
    image_shape: tuple[int, int, int]
    sha256: str
    train: Split
    test: Split

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _combined_hash(files: dict[str, str]) -> str:
    # Hash of "name:hash" lines in name order: independent of file order and mtime.
    lines = "".join(f"{name}:{files[name]}\n" for name in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


def write_dataset(
    out_dir: Path,
    name: str,
    labels: list[str],
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
) -> dict:
    """Write splits as ``.npy`` files plus a manifest with per-file and overall sha256."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    sizes: dict[str, int] = {}
    shape: list[int] = []
    for split in SPLITS:
        images, targets = splits[split]
        if images.ndim != 4 or len(images) != len(targets):
            raise DatasetError(
                f"{split}: want images [N, C, H, W] and N labels, got "
                f"{images.shape} and {targets.shape}"
            )
        shape = list(images.shape[1:])
        for suffix, array in (("x", images.astype(np.float32)), ("y", targets.astype(np.int64))):
            path = out_dir / f"{split}_{suffix}.npy"
            np.save(path, np.ascontiguousarray(array), allow_pickle=False)
            files[path.name] = _sha256(path)
        sizes[split] = len(targets)
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "image_shape": shape,
        "labels": labels,
        "splits": sizes,
        "files": files,
        "sha256": _combined_hash(files),
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def prepare_digits(out_dir: Path, test_fraction: float = 0.2, seed: int = 0) -> dict:
    """scikit-learn's handwritten digits (1797 8x8 images, shipped in the wheel: no download)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # The raw pixels are 0..16 intensities; the served model takes 0..1 floats.
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=test_fraction, random_state=seed, stratify=digits.target
    )
    labels = [str(int(c)) for c in digits.target_names]
    return write_dataset(
        out_dir, "digits", labels, {"train": (x_train, y_train), "test": (x_test, y_test)}
    )


def prepare_synthetic(
    out_dir: Path,
    samples: int = 8192,
    image_size: int = 16,
    channels: int = 1,
    classes: int = 10,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> dict:
    """A learnable synthetic set of any size for benchmarks: noisy copies of class prototypes."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((classes, channels, image_size, image_size), dtype=np.float32)
    targets = rng.integers(0, classes, size=samples)
    noise = rng.normal(0.0, 0.35, size=(samples, channels, image_size, image_size))
    images = np.clip(prototypes[targets] + noise, 0.0, 1.0).astype(np.float32)
    n_test = max(1, int(samples * test_fraction))
    labels = [f"class_{i}" for i in range(classes)]
    return write_dataset(
        out_dir,
        "synthetic",
        labels,
        {"train": (images[n_test:], targets[n_test:]), "test": (images[:n_test], targets[:n_test])},
    )


def read_manifest(data_dir: Path) -> dict:
    """The manifest of a prepared dataset, or a DatasetError that says how to make one."""
    path = data_dir / MANIFEST
    if not path.is_file():
        raise DatasetError(
            f"no prepared dataset in {data_dir}: {MANIFEST} is missing. "
            "Create one with `python -m training prepare --out DIR` and point the 'training' "
            "channel (or --data-dir / DATA_DIR) at it."
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path} is not valid JSON: {err}") from err


def load_dataset(data_dir: Path) -> Dataset:
    """Load both splits into memory after checking every file against the manifest's sha256."""
    manifest = read_manifest(data_dir)
    arrays: dict[str, np.ndarray] = {}
    for name, expected in manifest["files"].items():
        path = data_dir / name
        if not path.is_file():
            raise DatasetError(f"{path} is listed in {MANIFEST} but missing")
        actual = _sha256(path)
        if actual != expected:
            raise DatasetError(
                f"{path} does not match {MANIFEST}: sha256 {actual[:12]}..., expected "
                f"{expected[:12]}... (a partial sync or a changed file; prepare the data again)"
            )
        arrays[name] = np.load(path, allow_pickle=False)
    splits = {
        split: Split(
            torch.from_numpy(arrays[f"{split}_x.npy"]), torch.from_numpy(arrays[f"{split}_y.npy"])
        )
        for split in SPLITS
    }
    return Dataset(
        name=manifest["name"],
        labels=list(manifest["labels"]),
        image_shape=tuple(manifest["image_shape"]),
        sha256=manifest["sha256"],
        train=splits["train"],
        test=splits["test"],
    )


class EpochBatches(torch.utils.data.Sampler[torch.Tensor]):
    """This rank's share of each global batch, in an order fixed by (seed, epoch).

    Every rank draws the same permutation and takes its own slice of each global batch, so one
    process and N processes see the same global batches; ``start`` skips batches already trained,
    which makes a resume land on exactly the batch after the checkpoint. The last partial global
    batch is dropped so that every rank steps the same number of times.
    """

    def __init__(self, size: int, global_batch: int, rank: int, world_size: int, seed: int):
        if global_batch % world_size:
            raise ValueError(f"batch_size {global_batch} must divide by world size {world_size}")
        self.size, self.global_batch, self.seed = size, global_batch, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0

    def __len__(self) -> int:
        return self.size // self.global_batch - self.start

    def set_position(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator[torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator)
        per_rank = self.global_batch // self.world_size
        for batch in range(self.start, self.size // self.global_batch):
            first = batch * self.global_batch + self.rank * per_rank
            yield order[first : first + per_rank]


def batches_per_epoch(size: int, global_batch: int) -> int:
    """Steps in one epoch (the last partial global batch is dropped)."""
    return size // global_batch
