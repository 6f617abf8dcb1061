"""Dynamic batching: requests that arrive together share one forward pass.

Requests queue on the event loop; one task takes what is queued (up to `max_batch_size` samples),
optionally waits up to `max_wait_s` for the batch to fill, and runs the forward pass on a single
worker thread so the event loop keeps accepting and parsing requests meanwhile. With the default
wait of zero nothing is delayed at low load, and under load batches form by themselves from the
requests that arrive while the previous pass runs (Triton's default policy).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np


class QueueFull(Exception):
    """The queue holds `max_queue` samples already; the caller should shed this request."""


class RequestTooLarge(Exception):
    """One request holds more samples than the queue can ever hold: waiting cannot help it."""


class BatcherClosed(Exception):
    """The batcher is stopped and takes no new work."""


@dataclass(slots=True)
class _Pending:
    array: np.ndarray
    future: asyncio.Future[np.ndarray]


class DynamicBatcher:
    """Merges concurrent `infer` calls into batches for one `predict` function."""

    def __init__(
        self,
        predict: Callable[[np.ndarray], np.ndarray],
        *,
        max_batch_size: int,
        max_wait_s: float = 0.0,
        max_queue: int = 1024,
        on_batch: Callable[[int, float, bool], None] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._queue: collections.deque[_Pending] = collections.deque()
        self._queued = 0  # samples in the queue
        self._filling = 0  # samples taken into a batch that is waiting to fill
        self._wakeup = asyncio.Event()
        self._flush = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        # One thread: the model runs one pass at a time; parallelism lives inside the pass.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forward")

    @property
    def queued_samples(self) -> int:
        """Samples waiting for a forward pass, including those in a batch still filling."""
        return self._queued + self._filling

    def start(self) -> None:
        """Start the batching task on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    async def infer(self, array: np.ndarray) -> np.ndarray:
        """Queue `array` (a batch of one or more samples) and wait for its slice of the output."""
        if self._closed:
            raise BatcherClosed("the server is shutting down")
        rows = len(array)
        if rows > self.max_queue:
            raise RequestTooLarge(
                f"the request holds {rows} samples and the queue holds at most {self.max_queue}"
            )
        if self.queued_samples + rows > self.max_queue:
            raise QueueFull(f"the queue is full ({self.queued_samples} samples waiting)")
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(array, future))
        self._queued += rows
        self._wakeup.set()
        return await future

    def flush(self) -> None:
        """Stop waiting for batches to fill (shutting down: nothing more is coming)."""
        self._flush = True
        self._wakeup.set()

    async def stop(self) -> None:
        """Finish what is queued, then stop the task and the worker thread."""
        self._closed = True
        self.flush()
        if self._task is not None:
            await self._task
        self._executor.shutdown(wait=True)

    def _take(self, batch: list[_Pending], rows: int) -> int:
        """Move queued requests into `batch` while they fit; returns the new row count."""
        queue = self._queue
        while queue:
            item = queue[0]
            n = len(item.array)
            if batch and rows + n > self.max_batch_size:
                break
            queue.popleft()
            self._queued -= n
            # A request that timed out while queued is cancelled: it does not take a slot.
            if not item.future.done():
                batch.append(item)
                rows += n
        return rows

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closed:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch: list[_Pending] = []
            rows = self._take(batch, 0)
            if self.max_wait_s > 0 and rows < self.max_batch_size:
                rows = await self._fill(batch, rows)
            # Requests that timed out while the batch filled are dropped before the pass.
            batch = [item for item in batch if not item.future.done()]
            rows = sum(len(item.array) for item in batch)
            if not batch:
                continue
            if not await self._forward(batch, rows) and len(batch) > 1:
                # One request that breaks the model must not fail the ones batched with it.
                for item in batch:
                    await self._forward([item], len(item.array))

    async def _forward(self, batch: list[_Pending], rows: int) -> bool:
        """Run one pass and resolve each request's future; False if the pass raised."""
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            arrays = [item.array for item in batch]
            merged = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
            output = await loop.run_in_executor(self._executor, self._predict, merged)
            if len(output) != rows:
                raise ValueError(f"the model returned {len(output)} rows for {rows} inputs")
        except Exception as exc:
            if self._on_batch is not None:
                self._on_batch(rows, time.perf_counter() - started, False)
            if len(batch) == 1 and not batch[0].future.done():
                batch[0].future.set_exception(exc)
            return False
        if self._on_batch is not None:
            self._on_batch(rows, time.perf_counter() - started, True)
        start = 0
        for item in batch:
            end = start + len(item.array)
            if not item.future.done():
                item.future.set_result(output[start:end])
            start = end
        return True

    async def _fill(self, batch: list[_Pending], rows: int) -> int:
        """Wait up to max_wait_s for more requests while the batch has room."""
        deadline = time.monotonic() + self.max_wait_s
        # A request left in the queue did not fit: running now beats waiting.
        while rows < self.max_batch_size and not self._flush and not self._queue:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._filling = rows
            self._wakeup.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()
            except TimeoutError:
                break
            finally:
                self._filling = 0
            rows = self._take(batch, rows)
        return rows
