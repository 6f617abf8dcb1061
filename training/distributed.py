"""PyTorch under torchrun: one device per rank, a process group, batches that resume exactly.

device = distributed.setup(run)            # cuda:<local rank> or cpu; DDP group if needed
sampler = EpochBatches(len(train), global_batch, run.rank, run.world_size, seed)
...
distributed.teardown(run)                  # after the DDP model is gone (see below)
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist

if TYPE_CHECKING:
    from training.runtime import Run


def setup(run: Run) -> torch.device:
    """This rank's device (TF32 and cuDNN autotuning on GPUs); the process group under torchrun."""
    if torch.cuda.is_available():
        device = torch.device("cuda", run.local_rank)
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        device = torch.device("cpu")
    if run.world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def teardown(run: Run) -> None:
    """Wait for every rank, then destroy the process group.

    Call it once the DistributedDataParallel model is unreachable: DDP's reducer must not hold
    the last reference to the group, because its destructor joins gloo's worker thread while
    holding the GIL, and that thread may need the GIL to free its last tensors (a hang at exit
    seen with torch 2.13 on gloo).
    """
    if run.world_size > 1 and dist.is_initialized():
        dist.barrier()  # nobody exits (and is torn down by torchrun) before rank 0 is done
        gc.collect()
        dist.destroy_process_group()


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums across ranks (the values themselves with one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    totals = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(totals)
    return totals.tolist()


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
