"""Batches that N ranks share exactly and that a resumed epoch continues exactly."""

from __future__ import annotations

import pytest

from training.distributed import EpochBatches


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
