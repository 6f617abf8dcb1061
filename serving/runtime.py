"""The model's life in the server: loading, readiness, draining, checked inference, exit statuses.

Protocol adapters share one `ModelRuntime`. It turns the batcher's failures into HTTP statuses,
which is the one place the serving core meets HTTP.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from serving.batching import BatcherClosed, DynamicBatcher, QueueFull, RequestTooLarge
from serving.config import ServerConfig
from serving.http import HttpError
from serving.metrics import ServerMetrics
from serving.model import Model, load_model
from serving.payloads import check_finite
from serving.signature import ModelDirectoryError, ModelSignature

log = logging.getLogger("serving")
T = TypeVar("T")

# Bodies above this are decoded on a worker thread so one big request does not stall the loop.
OFFLOAD_BYTES = 256 * 1024
# Exit statuses: a model that raised while loading, and a model directory (model.json, a
# variant, a file, a format) that cannot be served as declared: retrying cannot help that one.
EXIT_LOAD_FAILED = 1
EXIT_MODEL_INVALID = 3


class ModelState(enum.Enum):
    LOADING = "loading"
    READY = "ready"
    DRAINING = "draining"
    FAILED = "failed"


class ModelRuntime:
    """One served model: loads it in the background, batches its requests, reports readiness."""

    def __init__(
        self,
        config: ServerConfig,
        metrics: ServerMetrics,
        on_fatal: Callable[[str, int], None] | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.state = ModelState.LOADING
        self.signature: ModelSignature | None = None
        self.format = ""
        self.allow_non_finite = False
        self.in_flight = 0  # inference requests received and not yet answered (the app counts)
        # Requests in the server, counting those whose headers arrived but that the app has not
        # started yet; the server replaces this with uvicorn's count, which sees those too.
        self.requests_in_server: Callable[[], int] = lambda: self.in_flight
        self.batcher: DynamicBatcher | None = None
        self.error = ""
        self._on_fatal = on_fatal
        self._loop: asyncio.AbstractEventLoop | None = None
        self._load_task: asyncio.Task[None] | None = None
        self._drain_started: float | None = None
        # Set when a forward pass outlived the grace period: the process must not wait for it.
        self.abandoned_work = False

    @property
    def ready(self) -> bool:
        return self.state is ModelState.READY

    def start(self) -> None:
        """Begin loading on a thread; the server listens (and answers not-ready) meanwhile."""
        self._loop = asyncio.get_running_loop()
        self._load_task = self._loop.create_task(self._load(), name="model-load")

    async def _load(self) -> None:
        try:
            model = await asyncio.to_thread(self._load_model)
        except Exception as exc:
            self.state = ModelState.FAILED
            # One line, no traceback: the message names the file and what is allowed.
            if isinstance(exc, ModelDirectoryError):
                self.error, code = f"cannot serve this model: {exc}", EXIT_MODEL_INVALID
            else:
                self.error = f"loading the model failed: {type(exc).__name__}: {exc}"
                code = EXIT_LOAD_FAILED
            log.error("%s", self.error)
            if self._on_fatal is not None:
                self._on_fatal(self.error, code)
            return
        self.signature = model.signature
        self.format = model.variant.format
        configured = self.config.allow_non_finite
        self.allow_non_finite = (
            model.signature.allow_non_finite if configured is None else configured
        )
        self.batcher = DynamicBatcher(
            model.predict,
            max_batch_size=self.config.max_batch_size,
            max_wait_s=self.config.max_batch_wait_ms / 1000,
            max_queue=self.config.max_queue,
            on_batch=self.metrics.observe_batch,
            in_flight=lambda: self.requests_in_server(),
        )
        self.batcher.start()
        self.metrics.watch_queue(lambda: self.batcher.queued_samples if self.batcher else 0)
        if self.state is ModelState.LOADING:
            self.state = ModelState.READY
            log.info(
                "model %r variant %r (%s) ready on %s (max batch %d, max wait %.1f ms)",
                model.signature.name,
                model.variant.name,
                model.variant.format,
                model.device,
                self.config.max_batch_size,
                self.config.max_batch_wait_ms,
            )

    def _load_model(self) -> Model:
        model = load_model(self.config.model_dir, self.config.variant, self.config)
        model.warm_up(self.config.max_batch_size)
        return model

    def begin_drain(self) -> None:
        """Report not-ready from now on, and run queued batches without waiting for them to fill.

        Safe to call from a signal handler: the work is handed to the event loop.
        """
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._drain_started = time.monotonic()
        if self.state is not ModelState.FAILED:
            self.state = ModelState.DRAINING
        if self.batcher is not None:
            self.batcher.flush()

    async def stop(self) -> None:
        """Finish queued work and release the worker thread, within what is left of the grace."""
        if self.batcher is None:
            return
        elapsed = time.monotonic() - (self._drain_started or time.monotonic())
        try:
            async with asyncio.timeout(max(0.5, self.config.grace_s - elapsed)):
                await self.batcher.stop()
        except TimeoutError:
            log.error("a forward pass outlived the %.0f s grace period", self.config.grace_s)
            self.abandoned_work = True

    async def infer(self, array: np.ndarray) -> np.ndarray:
        """Check `array`'s values, then run it through the model (the app holds the deadline)."""
        batcher = self.batcher
        if batcher is None:
            raise HttpError(503, f"the model is not ready ({self.state.value})")
        if not self.allow_non_finite:
            # Every protocol and content type passes here, so none can slip NaN past the check.
            check_finite(array)
        try:
            return await batcher.infer(array)
        except RequestTooLarge as exc:
            raise HttpError(
                413,
                f"{exc}; send at most {batcher.max_queue} samples per request (the queue "
                "limit, --max-queue / SERVING_MAX_QUEUE)",
            ) from exc
        except (QueueFull, BatcherClosed) as exc:
            raise HttpError(503, f"the server is overloaded or stopping: {exc}") from exc
        except Exception as exc:
            # One line, not a traceback: a client can trigger this at will.
            log.warning("the model failed on a request: %s: %s", type(exc).__name__, exc)
            raise HttpError(500, f"the model failed on this request: {exc}") from exc

    async def offload(self, size: int, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args), on a worker thread when `size` bytes are enough to hold up other requests
        (decoding or encoding a big body); inline otherwise, which is faster for small ones."""
        if size > OFFLOAD_BYTES:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)
