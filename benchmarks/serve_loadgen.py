"""Closed-loop HTTP load generator for the serving benchmark (runs in its own process).

`concurrency` keep-alive connections each send the next request as soon as the previous answer
arrives, until `requests` answers have been timed (after `warmup` untimed ones). Raw asyncio
streams rather than an HTTP client library, so the generator costs little CPU and the same for
every server it measures. Prints one JSON object: throughput, latency percentiles, failures by status (exit 1 if any).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path


class Run:
    """Shared counters of one run: how many requests remain, and their latencies."""

    def __init__(self, requests: int, warmup: int) -> None:
        self.remaining = requests + warmup
        self.warmup = warmup
        self.latencies_ns: list[int] = []
        self.failures: dict[str, int] = {}

    def take(self) -> bool:
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


def build_request(host: str, port: int, path: str, body: bytes, content_type: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; returns (status, server wants the connection closed)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    close = False
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            close = True
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(length)
    return status, close


async def worker(run: Run, host: str, port: int, request: bytes) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while run.take():
            started = time.perf_counter_ns()
            writer.write(request)
            status, close = await read_response(reader)
            elapsed = time.perf_counter_ns() - started
            if status != 200:
                run.failures[str(status)] = run.failures.get(str(status), 0) + 1
            elif run.warmup > 0:
                run.warmup -= 1
            else:
                run.latencies_ns.append(elapsed)
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()


async def main_async(args: argparse.Namespace) -> dict:
    body = Path(args.body_file).read_bytes()
    request = build_request(args.host, args.port, args.path, body, args.content_type)
    run = Run(args.requests, args.warmup)
    started = time.perf_counter()
    await asyncio.gather(
        *(worker(run, args.host, args.port, request) for _ in range(args.concurrency))
    )
    wall = time.perf_counter() - started
    latencies = sorted(run.latencies_ns)
    timed = len(latencies)
    # Throughput over the whole run, warm-up included, so it is not flattered by the split.
    total = timed + args.warmup
    return {
        "concurrency": args.concurrency,
        "requests": timed,
        "failures": run.failures,
        "throughput_rps": total / wall,
        "p50_ms": statistics.median(latencies) / 1e6 if latencies else None,
        "p99_ms": latencies[min(timed - 1, int(timed * 0.99))] / 1e6 if latencies else None,
        "mean_ms": statistics.fmean(latencies) / 1e6 if latencies else None,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--body-file", required=True)
    p.add_argument("--content-type", default="application/json")
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--requests", type=int, required=True)
    p.add_argument("--warmup", type=int, default=100)
    args = p.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(main_async(args))
    print(json.dumps(result))
    # A run with failed requests is not a measurement of serving: say so in the exit status.
    return 1 if result["failures"] or not result["requests"] else 0


if __name__ == "__main__":
    sys.exit(main())
