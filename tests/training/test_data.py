"""The prepared format: two channels, content pinned by sha256, any shape, no pickle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.data import load_prepared, write_prepared
from training.errors import DatasetError

RNG = np.random.default_rng(0)


def _splits(shape: tuple[int, ...], targets: str = "int") -> dict:
    def one(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = RNG.integers(0, 3, n) if targets == "int" else RNG.random(n)
        return RNG.random((n, *shape)), y

    return {"train": one(20), "validation": one(5), "test": one(7)}


def test_the_train_channel_holds_train_and_validation_and_the_test_channel_only_test(
    tmp_path: Path,
) -> None:
    manifests = write_prepared(
        tmp_path, "images", "classification", ["a", "b", "c"], _splits((1, 8, 8))
    )
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == [
        "manifest.json", "train_x.npy", "train_y.npy", "validation_x.npy", "validation_y.npy"
    ]  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "test").iterdir()) == [
        "manifest.json",
        "test_x.npy",
        "test_y.npy",
    ]
    assert manifests["train"]["splits"] == {"train": 20, "validation": 5}
    train = load_prepared(tmp_path / "train")
    assert (train.name, train.task, train.labels, train.sample_shape) == (
        "images",
        "classification",
        ["a", "b", "c"],
        (1, 8, 8),
    )
    assert train["train"].x.dtype == np.float32 and train["validation"].y.dtype == np.int64
    assert len(load_prepared(tmp_path / "test")["test"]) == 7


@pytest.mark.parametrize("shape", [(28, 28, 1), (30,), (3, 4, 5, 6)])
def test_inputs_of_any_sample_shape_round_trip(tmp_path: Path, shape: tuple[int, ...]) -> None:
    splits = _splits(shape)
    write_prepared(tmp_path, "x", "classification", ["a", "b", "c"], splits)
    loaded = load_prepared(tmp_path / "train")
    assert loaded.sample_shape == shape
    np.testing.assert_array_equal(loaded["train"].x, splits["train"][0].astype(np.float32))


def test_regression_targets_are_stored_as_float32(tmp_path: Path) -> None:
    write_prepared(tmp_path, "r", "regression", [], _splits((4,), targets="float"))
    assert load_prepared(tmp_path / "test")["test"].y.dtype == np.float32


def test_classification_targets_must_be_class_indices_of_the_labels(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"targets span 0\.\.2, labels has 2"):
        write_prepared(tmp_path, "x", "classification", ["a", "b"], _splits((4,)))
    with pytest.raises(DatasetError, match="classification targets are class indices"):
        write_prepared(tmp_path, "x", "classification", ["a"], _splits((4,), targets="float"))
    with pytest.raises(DatasetError, match="want the splits train, validation, test"):
        write_prepared(tmp_path, "x", "classification", ["a"], {"train": _splits((4,))["train"]})


def test_the_hash_is_the_same_when_prepared_again(tmp_path: Path) -> None:
    splits = _splits((4,))
    first = write_prepared(tmp_path / "a", "x", "classification", ["a", "b", "c"], splits)
    again = write_prepared(tmp_path / "b", "x", "classification", ["a", "b", "c"], splits)
    assert first["train"]["sha256"] == again["train"]["sha256"] != first["test"]["sha256"]
    assert load_prepared(tmp_path / "b" / "train").sha256 == first["train"]["sha256"]


def test_a_changed_file_is_refused_by_name(tmp_path: Path) -> None:
    write_prepared(tmp_path, "x", "classification", ["a", "b", "c"], _splits((4,)))
    np.save(tmp_path / "train" / "train_y.npy", np.zeros(20, dtype=np.int64))
    with pytest.raises(DatasetError, match=r"train_y\.npy does not match manifest\.json"):
        load_prepared(tmp_path / "train")


def test_a_directory_without_a_manifest_says_how_to_prepare_one(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"python -m training prepare --model DIR --out DATA"):
        load_prepared(tmp_path)


def test_a_pickled_array_is_never_loaded(tmp_path: Path) -> None:
    write_prepared(tmp_path, "x", "classification", ["a", "b", "c"], _splits((4,)))
    path = tmp_path / "test" / "test_x.npy"
    np.save(path, np.array([{"code": 1}] * 7, dtype=object), allow_pickle=True)
    manifest = json.loads((tmp_path / "test" / "manifest.json").read_text())
    import hashlib

    manifest["files"]["test_x.npy"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "test" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="allow_pickle=False"):
        load_prepared(tmp_path / "test")


def test_asking_for_a_split_the_channel_lacks_names_the_ones_it_has(tmp_path: Path) -> None:
    write_prepared(tmp_path, "x", "classification", ["a", "b", "c"], _splits((4,)))
    with pytest.raises(
        DatasetError, match="this channel has the splits train, validation, not 'test'"
    ):
        load_prepared(tmp_path / "train")["test"]
