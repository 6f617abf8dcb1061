"""`mlplatform demo`: the whole loop on one machine with no cloud account.

Plan the dev stack offline, prepare the digits dataset, train the reference model, serve it with
the platform's server on localhost, and print a prediction for a held-out image. Training and
serving run as separate processes through the same entry points the container images use
(`python -m training ...`, `python -m serving serve`), so what works here works in the images.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from infra.stackfile import STACKS_DIR, stack_file


def _step(title: str) -> None:
    print(f"\n==> {title}", flush=True)


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    print("$ " + " ".join(command), flush=True)
    result = subprocess.run(command, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"error: `{' '.join(command)}` exited with {result.returncode}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_ready(url: str, server: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(
                f"error: the server exited with {server.returncode} before it was ready"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"error: the server was not ready within {timeout_s:.0f} s ({url})")


def _held_out_sample(data_dir: Path, index: int) -> tuple[list, str]:
    import numpy as np

    manifest = json.loads((data_dir / "manifest.json").read_text())
    images = np.load(data_dir / "test_x.npy", allow_pickle=False)
    targets = np.load(data_dir / "test_y.npy", allow_pickle=False)
    index %= len(images)
    return images[index : index + 1].tolist(), manifest["labels"][int(targets[index])]


def run_demo(workdir: Path, stack: str = "dev", epochs: int | None = None, sample: int = 0) -> int:
    """Plan, prepare, train, serve, predict; returns a process exit code."""
    from mlplatform import terminal
    from mlplatform.plan import plan_stack
    from mlplatform.progress import spinner
    from mlplatform.report import preview

    python = sys.executable
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir, model_dir = workdir / "data", workdir / "model"

    _step(f"1/4 Offline plan of stack '{stack}', policy check and cost (no AWS account needed)")
    with spinner() as say:
        plan = plan_stack(stack_file(stack, STACKS_DIR), stack, progress=say)
        checked = preview(plan, progress=say)
    out = terminal.console()
    terminal.show(out, terminal.summary(plan))
    terminal.print_checks(checked, out)

    _step("2/4 Prepare the digits dataset")
    _run([python, "-m", "training", "prepare", "--dataset", "digits", "--out", str(data_dir)])

    _step("3/4 Train the reference model (resumes from its checkpoints if interrupted)")
    train = [
        python, "-m", "training", "train",
        "--data-dir", str(data_dir),
        "--model-dir", str(model_dir),
        "--checkpoint-dir", str(workdir / "checkpoints"),
        "--output-dir", str(workdir / "output"),
    ]  # fmt: skip
    if epochs is not None:
        train += ["--epochs", str(epochs)]
    _run(train)
    metrics = json.loads((model_dir / "metrics.json").read_text())
    print(f"test accuracy {metrics['accuracy']:.4f}; model exported to {model_dir}")

    _step("4/4 Serve the model on localhost and ask it for a prediction")
    port = _free_port()
    server = subprocess.Popen(
        [
            python,
            "-m",
            "serving",
            "serve",
            "--model-dir",
            str(model_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        _wait_until_ready(f"http://127.0.0.1:{port}/ping", server, timeout_s=120)
        instance, truth = _held_out_sample(data_dir, sample)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"instances": instance}).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        prediction = answer["predictions"][0]
        print(f"POST http://127.0.0.1:{port}/invocations (held-out test image #{sample})")
        print(f"\nprediction: {prediction.get('label')} (true label: {truth})")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    return 0
