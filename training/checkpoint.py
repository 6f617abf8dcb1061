"""Checkpoints that survive being killed at any instant, and a resume that survives a bad one.

Files are ``ckpt-<step>.pt`` in the checkpoint directory (/opt/ml/checkpoints on SageMaker,
which SageMaker syncs to S3 and restores after a spot interruption). Each is written to a
temporary name, flushed to disk and renamed, so a reader only ever sees whole files; the
writing happens on a background thread so that the training step does not wait for the disk.
A state is a dict of tensors and plain values saved with ``torch.save`` (torch is imported only
when a checkpoint is written or read: a Keras or scikit-learn run never needs it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_NAME = re.compile(r"^ckpt-(\d{8})\.pt$")
REQUIRED_KEYS = ("step", "epoch")


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
    import torch

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


def load_latest(
    directory: Path, required: tuple[str, ...] = REQUIRED_KEYS
) -> tuple[dict, Path] | None:
    """The newest checkpoint that loads, falling back past unusable ones with a warning."""
    import torch

    for path in list_checkpoints(directory):
        try:
            # weights_only: a checkpoint synced from S3 is data, never code to unpickle.
            state = torch.load(path, map_location="cpu", weights_only=True)
            missing = [k for k in required if k not in state]
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
    import torch

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


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: its state dict and the file it came from."""

    state: dict[str, Any]
    path: Path

    @property
    def step(self) -> int:
        return int(self.state["step"])

    @property
    def epoch(self) -> int:
        return int(self.state["epoch"])


class Checkpoints:
    """A run's checkpoints: rank 0 reads and writes; under DDP every rank gets what it read."""

    def __init__(self, directory: Path, keep: int = 3, is_main: bool = True):
        if keep < 2:
            # One spare is what lets a corrupt newest checkpoint fall back to the previous one.
            raise ValueError(f"keep {keep}: keep at least 2 checkpoints")
        self.directory, self.is_main = directory, is_main
        self.last_saved_step: int | None = None
        self._writer = CheckpointWriter(directory, keep)

    def latest(self, required: tuple[str, ...] = REQUIRED_KEYS) -> Checkpoint | None:
        """The newest checkpoint that loads (None: start fresh)."""
        found = [load_latest(self.directory, required) if self.is_main else None]
        dist = process_group()
        if dist is not None:
            dist.broadcast_object_list(found, src=0)
        return Checkpoint(*found[0]) if found[0] is not None else None

    def save(self, state: dict[str, Any], wait: bool = False) -> None:
        """Write ``state`` (it needs ``step`` and ``epoch``) in the background; rank 0 only."""
        missing = [k for k in REQUIRED_KEYS if k not in state]
        if missing:
            raise ValueError(f"a checkpoint state needs the keys {missing}")
        if self.is_main:
            self._writer.save(state, wait=wait)
            self.last_saved_step = int(state["step"])

    def wait(self) -> None:
        """Let the write in flight finish (re-raising its error)."""
        self._writer.wait()


def process_group() -> Any:
    """torch.distributed when a process group with several ranks is up, else None."""
    dist = sys.modules.get("torch.distributed")  # never import torch for a run that has none
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return dist if dist.get_world_size() > 1 else None
