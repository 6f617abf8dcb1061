"""Serving benchmark: our server against KServe, LitServe and a bare ASGI app, same model, same
machine, same run.

Each server runs as its own process group on its own loopback port; the load generator
(benchmarks/serve_loadgen.py, another process) sends a fixed number of requests at each
concurrency, one 8x8 digit per request, JSON in and out. Beside them, in-process: the raw forward
pass (TorchScript, onnxruntime) and our ONNX loader at the same batch sizes, so the serving
overhead and the loader's can be read off directly. Every server's whole process group is
stopped when its turn ends, and all of them if the run fails.

    .venv/bin/python benchmarks/serve_bench.py [--model-dir D] [--requests 3000]
        [--concurrency 1 16 64] [--threads 1] [--servers mlplatform kserve ...] [--no-raw]

Targets: at c=1 our p50 within 0.3 ms of the bare ASGI app's (and within 1 ms of the raw
forward); at c=64 our throughput at least 1.5x KServe's and the best LitServe's; our ONNX loader
within 10% of raw onnxruntime at batch 32. Without --model-dir it exports the trainer's
architecture (models/digits/model.py ImageClassifier, random weights: speed does not depend on them) as
model.pt and model.onnx with a digits model.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # the serving and training packages, when not installed

from serve_raw import export_digits_model, raw_rows  # noqa: E402

from serving.local import free_port, start_process, stop_process_group, wait_ready  # noqa: E402

V2_PATH = "/v2/models/digits/infer"
EVERY = [
    "hello", "mlplatform", "mlplatform-onnx", "mlplatform-v2", "kserve",
    "litserve", "litserve-batched", "litserve-zmq",
]  # fmt: skip


@dataclass
class Peer:
    """One server under test: how to start it, where to send requests and which body."""

    name: str
    command: list[str]
    path: str
    health: str
    port: int
    body: str = "invocations"  # or "v2"
    process: subprocess.Popen[bytes] | None = None


def peers(model_dir: Path, threads: int, names: list[str], device: str = "cpu") -> list[Peer]:
    """The servers to measure, each on a port of its own (a leftover would show as busy); ours
    on `device` (the peers here run on the CPU)."""
    py = sys.executable
    made = []
    for name in names:
        port = free_port()
        ours = [py, "-m", "serving", "serve", "--model-dir", str(model_dir), "--host", "127.0.0.1"]
        ours += ["--port", str(port), "--threads", str(threads), "--max-batch-size", "64"]
        ours += ["--log-level", "warning", "--device", device]
        lit = [py, str(HERE / "serve_litserve_app.py"), "--model-dir", str(model_dir)]
        lit += ["--port", str(port), "--threads", str(threads)]
        batched = [*lit, "--max-batch-size", "64", "--batch-timeout", "0.002"]
        kserve = [py, str(HERE / "serve_kserve_app.py"), "--model-dir", str(model_dir)]
        kserve += ["--port", str(port), "--threads", str(threads)]
        hello = [py, str(HERE / "serve_hello_app.py"), "--port", str(port)]
        command, path, health, body = {
            "hello": (hello, "/invocations", "/ping", "invocations"),
            "mlplatform": (ours, "/invocations", "/ping", "invocations"),
            "mlplatform-onnx": (
                [*ours, "--variant", "onnx"],
                "/invocations",
                "/ping",
                "invocations",
            ),
            "mlplatform-v2": (ours, V2_PATH, "/v2/health/ready", "v2"),
            "kserve": (kserve, V2_PATH, "/v2/health/ready", "v2"),
            # LitServe as its README starts it: one worker, no batching.
            "litserve": (lit, "/predict", "/health", "invocations"),
            # Tuned for throughput as its docs suggest: batching with a short timeout ...
            "litserve-batched": (batched, "/predict", "/health", "invocations"),
            # ... plus the ZeroMQ queue LitServe offers for throughput (fast_queue=True).
            "litserve-zmq": ([*batched, "--fast-queue"], "/predict", "/health", "invocations"),
        }[name]
        made.append(Peer(name, command, path, health, port, body))
    return made


def run_load(peer: Peer, body_file: Path, concurrency: int, requests: int) -> dict:
    command = [sys.executable, str(HERE / "serve_loadgen.py"), "--port", str(peer.port)]
    command += ["--path", peer.path, "--body-file", str(body_file)]
    command += ["--concurrency", str(concurrency), "--requests", str(requests)]
    command += ["--warmup", str(min(100, requests))]
    result = subprocess.run(command, capture_output=True, text=True)
    if not result.stdout.strip():
        raise RuntimeError(f"load generator failed:\n{result.stderr[-2000:]}")
    # Failed requests show in the row (and so in the report) rather than stopping the run.
    return json.loads(result.stdout)


def batch_totals(port: int) -> tuple[float, float]:
    """Our server's (samples, forward passes) so far, from its /metrics."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("serving_batch_size_sum", "serving_batch_size_count"):
            values[name] = float(value)
    return values["serving_batch_size_sum"], values["serving_batch_size_count"]


def start_all(every: list[Peer], stack: contextlib.ExitStack, logs: Path) -> None:
    """Start every server in a process group of its own, stopped whole when `stack` closes
    (on any exit, failures and SIGTERM included), and wait until each is ready."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for peer in every:
        log = stack.enter_context((logs / f"{peer.name}.log").open("wb"))
        peer.process = start_process(peer.command, env=env, cwd=ROOT, output=log)
        stack.callback(stop_process_group, peer.process, 30)
    for peer in every:
        try:
            wait_ready(peer.process, f"http://127.0.0.1:{peer.port}{peer.health}")
        except RuntimeError:
            tail = (logs / f"{peer.name}.log").read_text(errors="replace")[-4000:]
            sys.stderr.write(f"{peer.name} did not start:\n{tail}\n")
            raise


def measure(peer: Peer, body: Path, concurrency: int, requests: int) -> dict:
    """One load run against a ready server; for ours, the mean batch size it formed."""
    ours = peer.name.startswith("mlplatform")
    before = batch_totals(peer.port) if ours else None
    row = {"server": peer.name, **run_load(peer, body, concurrency, requests)}
    if before is not None:
        after = batch_totals(peer.port)
        passes = after[1] - before[1]
        row["mean_batch"] = (after[0] - before[0]) / passes if passes else None
    return row


def medians(rows: list[dict]) -> list[dict]:
    """Per server and concurrency, the median of each figure over the rounds."""
    keys = sorted({(r["server"], r["concurrency"]) for r in rows}, key=lambda k: (k[1], k[0]))
    summary = []
    for server, concurrency in keys:
        same = [r for r in rows if (r["server"], r["concurrency"]) == (server, concurrency)]
        ok = [r for r in same if r["p50_ms"] is not None]
        row: dict = {"server": server, "concurrency": concurrency, "rounds": len(same)}
        row["failures"] = {k: sum(r["failures"].get(k, 0) for r in same) for k in _codes(same)}
        row["requests"] = sum(r["requests"] for r in same)
        for figure in ("throughput_rps", "p50_ms", "p99_ms", "mean_batch"):
            values = [r[figure] for r in ok if r.get(figure) is not None]
            row[figure] = statistics.median(values) if values else None
        summary.append(row)
    return summary


def _codes(rows: list[dict]) -> set[str]:
    return {code for r in rows for code in r["failures"]}


def print_row(row: dict) -> None:
    failures = sum(row["failures"].values())
    if not row["requests"]:
        print(
            f"{row['server']:<17} c={row['concurrency']:<3} every request failed: {row['failures']}"
        )
        return
    print(
        f"{row['server']:<17} c={row['concurrency']:<3} n={row['requests']:<6} "
        f"{row['throughput_rps']:>8.0f} req/s   p50 {row['p50_ms']:7.3f} ms   "
        f"p99 {row['p99_ms']:7.3f} ms   failures {failures}"
        + (f"   mean batch {row['mean_batch']:.1f}" if row.get("mean_batch") else ""),
        flush=True,
    )


def targets(raw: list[dict], rows: list[dict]) -> list[str]:
    """The targets as printed verdicts with the figures behind them."""
    by = {(r["server"], r["concurrency"]): r for r in rows if r["p50_ms"] is not None}
    lines = []

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    ours1, hello1 = by.get(("mlplatform", 1)), by.get(("hello", 1))
    if ours1 and hello1:
        gap = ours1["p50_ms"] - hello1["p50_ms"]
        lines.append(
            f"target c=1: p50 {ours1['p50_ms']:.3f} ms - bare ASGI {hello1['p50_ms']:.3f} ms = "
            f"{gap:.3f} ms (<= 0.3 ms): {verdict(gap <= 0.3)}"
        )
    forward1 = next((r for r in raw if r["row"] == "torchscript" and r["batch"] == 1), None)
    if ours1 and forward1:
        gap = ours1["p50_ms"] - forward1["p50_ms"]
        lines.append(
            f"target c=1: p50 {ours1['p50_ms']:.3f} ms - raw forward {forward1['p50_ms']:.3f} ms"
            f" = {gap:.3f} ms (<= 1 ms): {verdict(gap <= 1.0)}"
        )
    ours64 = by.get(("mlplatform", 64))
    for peer in ("kserve", "litserve"):
        others = [r for (name, c), r in by.items() if c == 64 and name.startswith(peer)]
        if ours64 and others:
            best = max(others, key=lambda r: r["throughput_rps"])
            ratio = ours64["throughput_rps"] / best["throughput_rps"]
            lines.append(
                f"target c=64: {ours64['throughput_rps']:.0f} req/s vs {best['server']} "
                f"{best['throughput_rps']:.0f} req/s = {ratio:.2f}x (>= 1.5x): {verdict(ratio >= 1.5)}"
            )
    raw32 = {r["row"]: r for r in raw if r["batch"] == 32}
    if "onnxruntime" in raw32 and "mlplatform-onnx-loader" in raw32:
        ratio = raw32["mlplatform-onnx-loader"]["p50_ms"] / raw32["onnxruntime"]["p50_ms"]
        lines.append(
            f"target onnx batch 32: loader {raw32['mlplatform-onnx-loader']['p50_ms']:.3f} ms / raw"
            f" onnxruntime {raw32['onnxruntime']['p50_ms']:.3f} ms = {ratio:.2f} (<= 1.10): "
            f"{verdict(ratio <= 1.10)}"
        )
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model-dir", type=Path, help="with model.pt and model.onnx variants")
    p.add_argument("--requests", type=int, default=2000, help="timed requests per level and round")
    p.add_argument("--rounds", type=int, default=3, help="rounds over every server and level")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--threads", type=int, default=1, help="intra-op threads, every server alike")
    p.add_argument("--servers", nargs="+", default=EVERY, choices=EVERY)
    p.add_argument("--no-raw", action="store_true", help="skip the in-process forward rows")
    p.add_argument("--json", type=Path, help="also write all figures here")
    args = p.parse_args()
    # SIGTERM unwinds like Ctrl-C, so every server's group is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))

    with tempfile.TemporaryDirectory() as tmp:
        onnx = not args.no_raw or "mlplatform-onnx" in args.servers
        model_dir = args.model_dir or export_digits_model(Path(tmp) / "model", onnx=onnx)
        sample = np.random.default_rng(0).random((1, 1, 8, 8), np.float32)
        bodies = {"invocations": Path(tmp) / "invocations.json", "v2": Path(tmp) / "v2.json"}
        bodies["invocations"].write_text(json.dumps({"inputs": sample.tolist()}))
        v2 = {"name": "input", "datatype": "FP32", "shape": [1, 1, 8, 8]}
        v2["data"] = sample.ravel().tolist()
        bodies["v2"].write_text(json.dumps({"id": "1", "inputs": [v2]}))

        print(f"model {model_dir}, intra-op threads {args.threads}, {os.cpu_count()} CPUs")
        raw = [] if args.no_raw else raw_rows(model_dir, args.threads)
        rows: list[dict] = []
        every = peers(model_dir, args.threads, args.servers)
        with contextlib.ExitStack() as stack:
            start_all(every, stack, Path(tmp))
            # Rounds that visit every server in turn: load that drifts during the run (other
            # work on the machine) hits every server alike, and medians take out the rest.
            for round_ in range(args.rounds):
                for concurrency in args.concurrency:
                    for peer in every:
                        row = measure(peer, bodies[peer.body], concurrency, args.requests)
                        rows.append({**row, "round": round_})
                        print_row(rows[-1])
        summary = medians(rows)
        print(f"\nmedians over {args.rounds} rounds:")
        for row in summary:
            print_row(row)

    for line in targets(raw, summary):
        print(line)
    if args.json:
        ran = [{"server": p.name, "pid": p.process.pid, "port": p.port} for p in every if p.process]
        report = {"raw": raw, "summary": summary, "runs": rows, "servers": ran}
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
