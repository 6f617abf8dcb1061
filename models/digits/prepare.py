"""Prepare scikit-learn's handwritten digits (1797 8x8 images, shipped in the wheel: no download).

python prepare.py --out DATA      # DATA/train (train + validation), DATA/test
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from training.data import write_prepared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where the channels go")
    parser.add_argument("--input", type=Path, help="unused: the data ships with scikit-learn")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    digits = load_digits()
    # Pixels are 0..16 intensities; the model (and the server's clients) use 0..1 floats.
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    rest_x, test_x, rest_y, test_y = train_test_split(
        images, digits.target, test_size=0.2, random_state=args.seed, stratify=digits.target
    )
    train_x, val_x, train_y, val_y = train_test_split(
        rest_x, rest_y, test_size=0.1, random_state=args.seed, stratify=rest_y
    )
    manifests = write_prepared(
        args.out,
        name="digits",
        task="classification",
        labels=[str(int(c)) for c in digits.target_names],
        splits={
            "train": (train_x, train_y),
            "validation": (val_x, val_y),
            "test": (test_x, test_y),
        },
    )
    for channel, manifest in manifests.items():
        print(f"{args.out / channel}: {manifest['splits']}, sha256 {manifest['sha256']}")


if __name__ == "__main__":
    main()
