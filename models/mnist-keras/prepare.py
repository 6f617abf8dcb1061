"""Prepare MNIST for the Keras CNN: [N, 28, 28, 1] floats in 0..1, labels 0-9.

    python prepare.py --out DATA --input MNIST_DIR   # the real IDX files, .gz or not
    python prepare.py --out DATA                     # offline: scikit-learn's digits at 28x28

MNIST_DIR holds train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
t10k-labels-idx1-ubyte (as published, optionally gzipped). Without it the model still trains
end to end, on scikit-learn's 1797 8x8 digits scaled up to MNIST's size.
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from training.data import write_prepared

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_UBYTE = 0x08  # the IDX type code of unsigned bytes, the only one MNIST uses


def read_idx(path: Path) -> np.ndarray:
    """An IDX file as an array (hand-written: four header fields, no library in the image
    reads the format offline; keras.datasets.mnist downloads its own .npz instead)."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0:2] != b"\0\0" or raw[2] != IDX_UBYTE:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    shape = tuple(int(n) for n in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, file holds {data.size} values")
    return data.reshape(shape)


def _find(directory: Path, name: str) -> Path | None:
    return next((p for p in (directory / name, directory / f"{name}.gz") if p.is_file()), None)


def load_idx(directory: Path) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """MNIST's train and test splits from its IDX files in ``directory``, or None if absent."""
    found = {split: [_find(directory, n) for n in names] for split, names in FILES.items()}
    if not all(p for paths in found.values() for p in paths):
        return None
    splits = {}
    for split, (images, labels) in found.items():
        x = read_idx(images).astype(np.float32)[..., None] / 255.0  # type: ignore[arg-type]
        splits[split] = (x, read_idx(labels).astype(np.int64))  # type: ignore[arg-type]
    return splits


def load_offline() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's 8x8 digits, bilinearly scaled to 28x28 (shipped in the wheel)."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = zoom(digits.images / 16.0, (1, 3.5, 3.5), order=1).clip(0.0, 1.0)
    x = images.astype(np.float32)[..., None]
    train_x, test_x, train_y, test_y = train_test_split(
        x, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    return {"train": (train_x, train_y), "test": (test_x, test_y)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where the channels go")
    parser.add_argument("--input", type=Path, help="a directory with MNIST's IDX files")
    parser.add_argument("--validation", type=float, default=0.1, help="share of train held out")
    args = parser.parse_args()

    splits = load_idx(args.input) if args.input else None
    if args.input and splits is None:
        parser.error(f"{args.input} lacks MNIST's IDX files: {', '.join(sum(FILES.values(), ()))}")
    name = "mnist" if splits else "digits-28x28"
    splits = splits or load_offline()
    x, y = splits["train"]
    train_x, val_x, train_y, val_y = train_test_split(
        x, y, test_size=args.validation, random_state=0, stratify=y
    )
    manifests = write_prepared(
        args.out,
        name=name,
        task="classification",
        labels=[str(d) for d in range(10)],
        splits={"train": (train_x, train_y), "validation": (val_x, val_y), "test": splits["test"]},
    )
    for channel, manifest in manifests.items():
        print(f"{args.out / channel}: {name} {manifest['splits']}, sha256 {manifest['sha256']}")


if __name__ == "__main__":
    main()
