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

# A pass at most this short runs on the event loop itself when its batch is all the server has
# to do: handing it to the worker thread and back (two thread switches and a GIL hand-off) costs
# 0.1-0.5 ms on 2 cores, more on a busy machine, and no other request waits meanwhile. The bound
# leaves room for a pass slowed by a busy CPU while keeping /ping's worst delay short.
INLINE_MAX_S = 0.005


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
        in_flight: Callable[[], int] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._in_flight = in_flight  # requests in the server; None: always use the thread
        self._last_pass_s = float("inf")  # the last pass's own duration, thread hops excluded
        self._busy = False  # the batching task holds a batch (filling it or running its pass)
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
        if not self._busy and not self._queue and self.max_wait_s == 0 and self._alone(1):
            # Nothing to batch with and nobody to keep waiting: skip the queue and the batching
            # task (two event-loop turns and a future) and run the short pass right here.
            return self._pass_here(array)
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
            self._busy = True
            try:
                await self._next_batch()
            finally:
                self._busy = False

    async def _next_batch(self) -> None:
        batch: list[_Pending] = []
        rows = self._take(batch, 0)
        if self.max_wait_s > 0 and rows < self.max_batch_size:
            rows = await self._fill(batch, rows)
        # Requests that timed out while the batch filled are dropped before the pass.
        batch = [item for item in batch if not item.future.done()]
        rows = sum(len(item.array) for item in batch)
        if batch and not await self._forward(batch, rows) and len(batch) > 1:
            # One request that breaks the model must not fail the ones batched with it.
            for item in batch:
                await self._forward([item], len(item.array))

    def _timed_predict(self, batch: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        output = self._predict(batch)
        self._last_pass_s = time.perf_counter() - started
        if len(output) != len(batch):
            raise ValueError(f"the model returned {len(output)} rows for {len(batch)} inputs")
        return output

    def _alone(self, requests: int) -> bool:
        """True when these requests are all the server has and the last pass was short."""
        if self._in_flight is None or self._last_pass_s > INLINE_MAX_S:
            return False
        return self._in_flight() <= requests

    def _pass_here(self, array: np.ndarray) -> np.ndarray:
        """One pass on the event loop's thread, reported like any other."""
        try:
            output = self._timed_predict(array)
        except Exception:
            if self._on_batch is not None:
                self._on_batch(len(array), 0.0, False)
            raise
        if self._on_batch is not None:
            self._on_batch(len(array), self._last_pass_s, True)
        return output

    async def _forward(self, batch: list[_Pending], rows: int) -> bool:
        """Run one pass and resolve each request's future; False if the pass raised."""
        try:
            arrays = [item.array for item in batch]
            merged = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
            if self._alone(len(batch)):
                output = self._timed_predict(merged)
            else:
                loop = asyncio.get_running_loop()
                output = await loop.run_in_executor(self._executor, self._timed_predict, merged)
        except Exception as exc:
            if self._on_batch is not None:
                self._on_batch(rows, 0.0, False)
            if len(batch) == 1 and not batch[0].future.done():
                batch[0].future.set_exception(exc)
            return False
        if self._on_batch is not None:
            self._on_batch(rows, self._last_pass_s, True)
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
