"""Prometheus /metrics: request counts by route and status, latency, batch sizes, queue depth."""

from __future__ import annotations

import httpx
import numpy as np


def test_metrics_count_requests_by_route_and_status_with_latency_and_batches(
    client: httpx.Client,
) -> None:
    client.post("/invocations", json={"inputs": np.zeros((2, 1, 8, 8)).tolist()})
    client.post("/invocations", json={"inputs": [1]})
    client.get("/v2/models/nope")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for line in (
        'serving_requests_total{route="/invocations",status="200"}',
        'serving_requests_total{route="/invocations",status="400"}',
        'serving_requests_total{route="/v2/models/{name}",status="404"}',
        'serving_request_duration_seconds_bucket{le="0.001",route="/invocations"}',
        'serving_batch_size_bucket{le="2.0"}',
        "serving_queue_depth 0.0",
        "serving_requests_in_flight 0.0",
        "serving_model_ready 1.0",
    ):
        assert line in text, line


def test_route_labels_are_templates_so_model_names_do_not_multiply_series(
    client: httpx.Client,
) -> None:
    for name in ("a", "b", "c"):
        client.get(f"/v2/models/{name}/ready")
    text = client.get("/metrics").text
    assert 'route="/v2/models/{name}/ready"' in text
    assert 'route="/v2/models/a/ready"' not in text
