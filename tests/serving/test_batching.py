"""Dynamic batching: concurrent requests share forward passes and get their own answers."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from serving.batching import DynamicBatcher, QueueFull


def run_alone(model: torch.jit.ScriptModule, x: np.ndarray) -> np.ndarray:
    """The unbatched answer: each sample through the model on its own."""
    with torch.inference_mode():
        return np.concatenate([model(torch.from_numpy(s[None])).numpy() for s in x])


def test_concurrent_requests_share_one_forward_pass_and_match_unbatched_results(
    digits_dir: Path, reference_model: torch.jit.ScriptModule, start_server
) -> None:
    # Four requests of 1, 2, 3 and 2 samples fill a batch of 8 exactly, so they run together.
    server = start_server(digits_dir, "--max-batch-size", "8", "--max-batch-wait-ms", "20000")
    rng = np.random.default_rng(7)
    inputs = [rng.standard_normal((n, 1, 8, 8)).astype(np.float32) for n in (1, 2, 3, 2)]
    with httpx.Client(base_url=server.url, timeout=30) as c, ThreadPoolExecutor(4) as pool:
        responses = list(
            pool.map(lambda x: c.post("/invocations", json={"inputs": x.tolist()}), inputs)
        )
    assert server.metric("serving_batch_size_count") == 1
    assert server.metric("serving_batch_size_sum") == 8
    for x, response in zip(inputs, responses, strict=True):
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        got = np.array([p["logits"] for p in predictions], np.float32)
        want = run_alone(reference_model, x)
        # Equal up to float32 rounding: BLAS picks its kernel by batch size, so the last bit of
        # a sum can differ between a batch of 1 and a batch of 8; the labels cannot.
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        assert [p["label"] for p in predictions] == [str(i) for i in want.argmax(axis=1)]


def test_batches_never_exceed_the_maximum_batch_size(digits_dir: Path, start_server) -> None:
    server = start_server(digits_dir, "--max-batch-size", "4", "--max-batch-wait-ms", "20000")
    body = {"inputs": np.zeros((1, 1, 8, 8)).tolist()}
    with httpx.Client(base_url=server.url, timeout=30) as c, ThreadPoolExecutor(12) as pool:
        statuses = list(
            pool.map(lambda _: c.post("/invocations", json=body).status_code, range(12))
        )
    assert statuses == [200] * 12
    assert server.metric("serving_batch_size_count") == 3
    assert server.metric("serving_batch_size_sum") == 12


def batch_sizes_for(request_sizes: list[int], max_batch_size: int) -> list[int]:
    """Submit requests of the given sizes at once; returns the batch sizes predict saw."""
    seen: list[int] = []

    def predict(x: np.ndarray) -> np.ndarray:
        seen.append(len(x))
        return x * 2

    async def main() -> None:
        batcher = DynamicBatcher(predict, max_batch_size=max_batch_size, max_wait_s=0.5)
        batcher.start()
        arrays = [np.full((n, 2), i, np.float32) for i, n in enumerate(request_sizes)]
        outputs = await asyncio.gather(*(batcher.infer(a) for a in arrays))
        for a, out in zip(arrays, outputs, strict=True):
            np.testing.assert_array_equal(out, a * 2)
        await batcher.stop()

    asyncio.run(main())
    return seen


def test_a_request_that_does_not_fit_waits_for_the_next_batch() -> None:
    assert batch_sizes_for([3, 3, 3], max_batch_size=4) == [3, 3, 3]
    assert batch_sizes_for([1, 2, 1, 3], max_batch_size=4) == [4, 3]


def test_a_request_larger_than_the_maximum_runs_alone() -> None:
    assert batch_sizes_for([6, 1], max_batch_size=4) == [6, 1]


def test_a_request_cancelled_while_queued_takes_no_place_in_the_batch() -> None:
    seen: list[int] = []

    def predict(x: np.ndarray) -> np.ndarray:
        seen.append(len(x))
        return x

    async def main() -> None:
        batcher = DynamicBatcher(predict, max_batch_size=8, max_wait_s=0.2)
        batcher.start()
        doomed = asyncio.ensure_future(batcher.infer(np.zeros((3, 2), np.float32)))
        await asyncio.sleep(0)
        doomed.cancel()
        await batcher.infer(np.zeros((1, 2), np.float32))
        await batcher.stop()

    asyncio.run(main())
    assert seen == [1]


def test_a_request_that_would_overfill_the_queue_is_refused_at_once() -> None:
    async def main() -> None:
        batcher = DynamicBatcher(lambda x: x, max_batch_size=4, max_wait_s=0.2, max_queue=4)
        batcher.start()
        waiting = asyncio.ensure_future(batcher.infer(np.zeros((3, 2), np.float32)))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await batcher.infer(np.zeros((2, 2), np.float32))
        await waiting
        await batcher.stop()

    asyncio.run(main())


def test_a_lone_short_pass_runs_on_the_event_loop_and_concurrent_ones_on_the_worker() -> None:
    threads: list[str] = []
    in_flight = 1

    def predict(x: np.ndarray) -> np.ndarray:
        threads.append(threading.current_thread().name)
        return x * 2

    async def main() -> None:
        nonlocal in_flight
        batcher = DynamicBatcher(predict, max_batch_size=8, in_flight=lambda: in_flight)
        batcher.start()
        one = np.ones((1, 2), np.float32)
        # The first pass is timed on the worker; once it is known to be short, a lone request
        # skips the hand-off.
        for _ in range(2):
            np.testing.assert_array_equal(await batcher.infer(one), one * 2)
        # Three requests batch together while a fourth is still arriving: the pass goes to the
        # worker so the event loop can read the fourth meanwhile.
        in_flight = 4
        outputs = await asyncio.gather(*(batcher.infer(one * i) for i in range(3)))
        for i, out in enumerate(outputs):
            np.testing.assert_array_equal(out, one * i * 2)
        await batcher.stop()

    asyncio.run(main())
    assert threads[0].startswith("forward")
    assert threads[1] == threading.main_thread().name
    assert threads[2:] == [threads[0]]  # the three concurrent requests shared one pass


def test_a_lone_request_that_breaks_the_model_fails_with_the_models_error() -> None:
    def predict(x: np.ndarray) -> np.ndarray:
        if x.sum() < 0:
            raise RuntimeError("negative input")
        return x

    async def main() -> None:
        batcher = DynamicBatcher(predict, max_batch_size=8, in_flight=lambda: 1)
        batcher.start()
        await batcher.infer(np.ones((1, 2), np.float32))
        with pytest.raises(RuntimeError, match="negative input"):
            await batcher.infer(-np.ones((1, 2), np.float32))
        await batcher.infer(np.ones((1, 2), np.float32))
        await batcher.stop()

    asyncio.run(main())
