"""Prometheus metrics for `/metrics`: requests by route and status, latency, batches, queue."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Sub-millisecond buckets: a small model's whole request takes well under a millisecond.
LATENCY_BUCKETS = (
    0.0002,
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServerMetrics:
    """One registry per server, so tests can run many servers in one process if they like."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "serving_requests",
            "HTTP requests answered, by route template and status code.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "serving_request_duration_seconds",
            "Time from the request's arrival to its response, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "serving_batch_size",
            "Samples per forward pass.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.forward_seconds = Histogram(
            "serving_forward_duration_seconds",
            "Time of one forward pass, batch included.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.forward_errors = Counter(
            "serving_forward_errors",
            "Forward passes that raised (a failed batch is retried one request at a time).",
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "serving_queue_depth",
            "Samples waiting for a forward pass.",
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "serving_requests_in_flight",
            "Inference requests received and not yet answered.",
            registry=self.registry,
        )
        self.ready = Gauge(
            "serving_model_ready", "1 when the model is loaded and warm.", registry=self.registry
        )
        # labels() costs a dict lookup under a lock; the hot path keeps the children itself.
        self._request_children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        children = self._request_children.get((route, status))
        if children is None:
            children = (
                self.requests.labels(route, str(status)),
                self.latency.labels(route),
            )
            self._request_children[(route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_batch(self, size: int, seconds: float, ok: bool) -> None:
        if not ok:
            self.forward_errors.inc()
            return
        self.batch_size.observe(size)
        self.forward_seconds.observe(seconds)

    def watch_queue(self, depth: Callable[[], float]) -> None:
        self.queue_depth.set_function(depth)

    def watch_in_flight(self, count: Callable[[], float]) -> None:
        self.in_flight.set_function(count)

    def watch_ready(self, ready: Callable[[], bool]) -> None:
        self.ready.set_function(lambda: float(ready()))

    def render(self) -> bytes:
        return generate_latest(self.registry)
