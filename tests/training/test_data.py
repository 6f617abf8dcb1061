"""Prepared datasets: a manifest that pins the content, and batches that resume exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from training.data import (
    DatasetError,
    EpochBatches,
    load_dataset,
    prepare_digits,
    prepare_synthetic,
)


def test_digits_are_prepared_offline_with_a_held_out_split_and_0_to_1_pixels(
    digits_dir: Path,
) -> None:
    data = load_dataset(digits_dir)
    assert (data.name, data.image_shape, data.num_classes) == ("digits", (1, 8, 8), 10)
    assert (len(data.train), len(data.test)) == (1437, 360)
    assert data.train.images.dtype == torch.float32
    assert data.train.images.min() == 0.0 and data.train.images.max() == 1.0


def test_the_manifest_hash_is_the_same_when_prepared_again(
    digits_dir: Path, tmp_path: Path
) -> None:
    again = prepare_digits(tmp_path)
    assert again["sha256"] == json.loads((digits_dir / "manifest.json").read_text())["sha256"]
    assert load_dataset(tmp_path).sha256 == again["sha256"]


def test_a_changed_data_file_is_refused_by_name(digits_dir: Path, tmp_path: Path) -> None:
    prepare_digits(tmp_path)
    labels = np.load(tmp_path / "train_y.npy")
    np.save(tmp_path / "train_y.npy", (labels + 1) % 10)
    with pytest.raises(DatasetError, match=r"train_y\.npy does not match manifest\.json"):
        load_dataset(tmp_path)


def test_a_directory_without_a_manifest_says_how_to_prepare_one(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="python -m training prepare"):
        load_dataset(tmp_path)


def test_synthetic_data_has_the_requested_size_and_shape(tmp_path: Path) -> None:
    manifest = prepare_synthetic(tmp_path, samples=500, image_size=12, channels=3, classes=5)
    data = load_dataset(tmp_path)
    assert manifest["splits"] == {"train": 400, "test": 100}
    assert data.image_shape == (3, 12, 12) and data.labels == [f"class_{i}" for i in range(5)]


def _batches(sampler: EpochBatches) -> list[list[int]]:
    return [batch.tolist() for batch in sampler]


def test_two_ranks_together_see_exactly_the_global_batches_of_one_process() -> None:
    single = _batches(EpochBatches(100, global_batch=8, rank=0, world_size=1, seed=5))
    ranks = [
        _batches(EpochBatches(100, global_batch=8, rank=r, world_size=2, seed=5)) for r in (0, 1)
    ]
    assert len(single) == 12 and all(len(b) == 4 for b in ranks[0] + ranks[1])
    assert [a + b for a, b in zip(*ranks, strict=True)] == single


def test_a_resumed_epoch_continues_with_the_next_batch_and_epochs_differ() -> None:
    sampler = EpochBatches(100, global_batch=10, rank=0, world_size=1, seed=0)
    sampler.set_position(epoch=2)
    full = _batches(sampler)
    sampler.set_position(epoch=2, start=4)
    assert _batches(sampler) == full[4:] and len(sampler) == 6
    sampler.set_position(epoch=3)
    assert _batches(sampler) != full


def test_a_global_batch_that_does_not_split_evenly_across_ranks_is_refused() -> None:
    with pytest.raises(ValueError, match="batch_size 10 must divide by world size 4"):
        EpochBatches(100, global_batch=10, rank=0, world_size=4, seed=0)
