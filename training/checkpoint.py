"""Checkpoints that survive being killed at any instant, and a resume that survives a bad one.

Files are ``ckpt-<step>.pt`` in the checkpoint directory (/opt/ml/checkpoints on SageMaker,
which SageMaker syncs to S3 and restores after a spot interruption). Each is written to a
temporary name, flushed to disk and renamed, so a reader only ever sees whole files.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

import torch

log = logging.getLogger(__name__)

_NAME = re.compile(r"^ckpt-(\d{8})\.pt$")
REQUIRED_KEYS = ("model", "optimizer", "step", "epoch", "batch_in_epoch", "config")


def checkpoint_path(directory: Path, step: int) -> Path:
    return directory / f"ckpt-{step:08d}.pt"


def list_checkpoints(directory: Path) -> list[Path]:
    """Checkpoint files, newest (highest step) first; temporary files are not listed."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if _NAME.match(p.name)]
    return sorted(found, key=lambda p: p.name, reverse=True)


def save_checkpoint(directory: Path, state: dict, keep: int) -> Path:
    """Write ``state`` atomically as the checkpoint for ``state['step']``; prune to ``keep``."""
    directory.mkdir(parents=True, exist_ok=True)
    target = checkpoint_path(directory, state["step"])
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".pt")
    try:
        # mkstemp makes the file private (0600); a checkpoint is shared like any output file.
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(directory)
    for old in list_checkpoints(directory)[keep:]:
        old.unlink(missing_ok=True)
    return target


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk too.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_latest(directory: Path) -> tuple[dict, Path] | None:
    """The newest checkpoint that loads, falling back past unusable ones with a warning."""
    for path in list_checkpoints(directory):
        try:
            # weights_only: a checkpoint synced from S3 is data, never code to unpickle.
            state = torch.load(path, map_location="cpu", weights_only=True)
            missing = [k for k in REQUIRED_KEYS if k not in state]
            if missing:
                raise ValueError(f"missing keys {missing}")
        except Exception as err:
            # Moved aside, not deleted: kept for a post-mortem, but no longer the "newest"
            # that pruning would keep in place of the good checkpoints written after it.
            aside = path.with_name(path.name + ".corrupt")
            log.warning(
                "checkpoint %s is unusable (%s); moved to %s, falling back to the previous one",
                path,
                f"{type(err).__name__}: {err}".splitlines()[0],
                aside.name,
            )
            os.replace(path, aside)
            continue
        return state, path
    return None
