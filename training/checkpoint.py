"""Checkpoints that survive being killed at any instant, and a resume that survives a bad one.

Files are ``ckpt-<step>.pt`` in the checkpoint directory (/opt/ml/checkpoints on SageMaker,
which SageMaker syncs to S3 and restores after a spot interruption). Each is written to a
temporary name, flushed to disk and renamed, so a reader only ever sees whole files; the
writing happens on a background thread so that the training step does not wait for the disk.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import threading
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


def _snapshot(obj: object) -> object:
    """A copy whose tensors the next optimizer step cannot change under the writer's feet."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _snapshot(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_snapshot(v) for v in obj)
    return obj


class CheckpointWriter:
    """Saves on a background thread, so training waits for a copy in memory, not for the disk.

    One write is in flight at a time: the next save or ``wait()`` first lets the previous one
    finish and re-raises its error if it failed; ``save(..., wait=True)`` (the SIGTERM path)
    writes on the calling thread.
    """

    def __init__(self, directory: Path, keep: int):
        self.directory, self.keep = directory, keep
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(self, state: dict, wait: bool = False) -> None:
        self.wait()
        if wait:  # the SIGTERM path: write now, on this thread, inside the grace period
            save_checkpoint(self.directory, state, self.keep)
            return
        self._thread = threading.Thread(target=self._write, args=(_snapshot(state),))
        self._thread.start()

    def _write(self, state: dict) -> None:
        # Lowest priority: the write fills the gaps that the training threads leave instead of
        # taking a core from them (at normal priority it slowed digits on 2 cores by ~7%).
        with contextlib.suppress(OSError, AttributeError):  # AttributeError: not on Linux
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        try:
            save_checkpoint(self.directory, state, self.keep)
        except BaseException as err:  # handed to the training thread by wait()
            self._error = err

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
