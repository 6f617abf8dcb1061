"""Checkpoints are whole or absent, and a bad newest one falls back to the one before."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from training.checkpoint import (
    Checkpoints,
    CheckpointWriter,
    list_checkpoints,
    load_latest,
    save_checkpoint,
)


def _state(step: int) -> dict:
    return {
        "model": {"w": torch.full((3,), float(step))},
        "optimizer": {},
        "step": step,
        "epoch": 0,
        "batch_in_epoch": step,
        "config": {},
    }


def test_checkpoints_are_renamed_into_place_and_pruned_to_keep(tmp_path: Path) -> None:
    for step in (10, 20, 30, 40):
        save_checkpoint(tmp_path, _state(step), keep=3)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "ckpt-00000040.pt",
        "ckpt-00000030.pt",
        "ckpt-00000020.pt",
    ]
    assert not list(tmp_path.glob(".tmp-*")), "no temporary file is left behind"


def test_the_newest_checkpoint_is_resumed(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, _state(10), keep=3)
    save_checkpoint(tmp_path, _state(20), keep=3)
    state, path = load_latest(tmp_path)
    assert state["step"] == 20 and path.name == "ckpt-00000020.pt"


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing_keys"])
def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    save_checkpoint(tmp_path, _state(10), keep=3)
    newest = save_checkpoint(tmp_path, _state(20), keep=3)
    if damage == "truncate":
        newest.write_bytes(newest.read_bytes()[:200])
    elif damage == "garbage":
        newest.write_bytes(b"\x00not a checkpoint" * 10)
    else:
        torch.save({"model": {}}, newest)
    with caplog.at_level(logging.WARNING, logger="training.checkpoint"):
        state, _ = load_latest(tmp_path)
    assert state["step"] == 10 and torch.equal(state["model"]["w"], torch.full((3,), 10.0))
    assert "ckpt-00000020.pt is unusable" in caplog.text
    assert (tmp_path / "ckpt-00000020.pt.corrupt").exists()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-00000010.pt"]


def test_an_empty_or_missing_directory_means_a_fresh_start(tmp_path: Path) -> None:
    assert load_latest(tmp_path / "absent") is None
    assert load_latest(tmp_path) is None


def test_the_background_writer_saves_the_state_as_it_was_when_save_was_called(
    tmp_path: Path,
) -> None:
    writer = CheckpointWriter(tmp_path, keep=3)
    state = _state(10)
    writer.save(state)
    state["model"]["w"].add_(100.0)  # the next optimizer step, racing the write
    writer.wait()
    saved, _ = load_latest(tmp_path)
    assert torch.equal(saved["model"]["w"], torch.full((3,), 10.0))


def test_a_failed_background_write_is_raised_to_the_training_thread(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    writer = CheckpointWriter(blocker, keep=3)
    writer.save(_state(10))
    with pytest.raises(OSError):
        writer.wait()


def test_a_runs_checkpoints_need_step_and_epoch_and_a_spare(tmp_path: Path) -> None:
    checkpoints = Checkpoints(tmp_path, keep=2)
    with pytest.raises(ValueError, match=r"needs the keys \['epoch'\]"):
        checkpoints.save({"step": 1})
    checkpoints.save({"step": 7, "epoch": 1, "w": torch.ones(2)})
    checkpoints.wait()
    latest = checkpoints.latest()
    assert (latest.step, latest.epoch, checkpoints.last_saved_step) == (7, 1, 7)
    with pytest.raises(ValueError, match="keep at least 2"):
        Checkpoints(tmp_path, keep=1)


def test_only_rank_0_writes(tmp_path: Path) -> None:
    Checkpoints(tmp_path, is_main=False).save({"step": 1, "epoch": 0})
    assert list_checkpoints(tmp_path) == []
