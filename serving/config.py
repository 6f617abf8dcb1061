"""Server settings: command-line flags, each with an environment variable as its default.

Environment variables are how SageMaker (ContainerDefinition.Environment) and Kubernetes (the
container's env) configure the image; flags are for running it by hand.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# SageMaker real-time endpoints refuse payloads over 6 MB (InvokeEndpoint Body: 6291456 bytes).
SAGEMAKER_MAX_BODY_BYTES = 6 * 1024 * 1024


@dataclass(frozen=True)
class ServerConfig:
    """Everything `serve` needs; see `parse_args` for the flag and variable of each field."""

    model_dir: Path = Path("/opt/ml/model")
    host: str = "0.0.0.0"
    port: int = 8080
    device: str = "auto"
    threads: int = 0
    dtype: str = "auto"
    variant: str = "default"
    max_batch_size: int = 32
    max_batch_wait_ms: float = 0.0
    max_queue: int = 1024
    request_timeout_s: float = 55.0
    max_body_bytes: int = SAGEMAKER_MAX_BODY_BYTES
    grace_s: float = 25.0
    drain_s: float = 0.0
    log_level: str = "info"

    @property
    def resolved_device(self) -> str:
        """`auto` is the first GPU when torch sees one, else the CPU."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


def parse_args(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> ServerConfig:
    """Flags of `python -m serving serve`; a flag beats its variable, which beats the default."""
    d = ServerConfig()
    env = environ.get
    p = argparse.ArgumentParser(prog="python -m serving serve", description=__doc__)
    p.add_argument(
        "--model-dir",
        type=Path,
        default=Path(env("MODEL_DIR", str(d.model_dir))),
        help="exported model directory (model.json + model.pt) [MODEL_DIR, /opt/ml/model]",
    )
    p.add_argument("--host", default=env("SERVING_HOST", d.host), help="[SERVING_HOST, 0.0.0.0]")
    p.add_argument(
        "--port",
        type=int,
        default=int(env("SAGEMAKER_BIND_TO_PORT", env("SERVING_PORT", str(d.port)))),
        help="[SAGEMAKER_BIND_TO_PORT, SERVING_PORT, 8080]",
    )
    p.add_argument(
        "--device",
        default=env("SERVING_DEVICE", d.device),
        help="cpu, cuda, cuda:N or auto [SERVING_DEVICE, auto]",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=int(env("SERVING_THREADS", str(d.threads))),
        help="torch intra-op threads; 0 keeps torch's default [SERVING_THREADS, 0]",
    )
    p.add_argument(
        "--dtype",
        default=env("SERVING_DTYPE", d.dtype),
        choices=["auto", "float32", "float16", "bfloat16"],
        help="compute dtype; auto: model.json preferred_dtype on GPU, float32 on CPU",
    )
    p.add_argument(
        "--variant",
        default=env("SERVING_MODEL_VARIANT", d.variant),
        choices=["default", "int8"],
        help="which weights: model.pt or model-int8.pt [SERVING_MODEL_VARIANT, default]",
    )
    p.add_argument(
        "--max-batch-size",
        type=int,
        default=int(env("SERVING_MAX_BATCH_SIZE", str(d.max_batch_size))),
        help="samples per forward pass [SERVING_MAX_BATCH_SIZE, 32]",
    )
    p.add_argument(
        "--max-batch-wait-ms",
        type=float,
        default=float(env("SERVING_MAX_BATCH_WAIT_MS", str(d.max_batch_wait_ms))),
        help="how long a batch may wait to fill; 0 never delays [SERVING_MAX_BATCH_WAIT_MS, 0]",
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=int(env("SERVING_MAX_QUEUE", str(d.max_queue))),
        help="samples waiting before new requests get 503 [SERVING_MAX_QUEUE, 1024]",
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=float(env("SERVING_REQUEST_TIMEOUT_S", str(d.request_timeout_s))),
        help="seconds before an inference gets 504 [SERVING_REQUEST_TIMEOUT_S, 55]",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=int(env("SERVING_MAX_BODY_BYTES", str(d.max_body_bytes))),
        help="larger bodies get 413 [SERVING_MAX_BODY_BYTES, 6 MiB: SageMaker's limit]",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=float(env("SERVING_GRACE_S", str(d.grace_s))),
        help="seconds from SIGTERM to exit [SERVING_GRACE_S, 25: SageMaker kills at 30]",
    )
    p.add_argument(
        "--drain",
        type=float,
        default=float(env("SERVING_DRAIN_S", str(d.drain_s))),
        help="seconds to keep serving, reporting not-ready, after SIGTERM before closing the "
        "port, so load balancers can stop routing here [SERVING_DRAIN_S, 0]",
    )
    p.add_argument("--log-level", default=env("SERVING_LOG_LEVEL", d.log_level))
    a = p.parse_args(argv)
    if a.max_batch_size < 1:
        p.error(f"--max-batch-size must be >= 1, got {a.max_batch_size}")
    if a.drain >= a.grace:
        p.error(f"--drain ({a.drain}) must be shorter than --grace ({a.grace})")
    return ServerConfig(
        model_dir=a.model_dir,
        host=a.host,
        port=a.port,
        device=a.device,
        threads=a.threads,
        dtype=a.dtype,
        variant=a.variant,
        max_batch_size=a.max_batch_size,
        max_batch_wait_ms=a.max_batch_wait_ms,
        max_queue=a.max_queue,
        request_timeout_s=a.request_timeout,
        max_body_bytes=a.max_body_bytes,
        grace_s=a.grace,
        drain_s=a.drain,
        log_level=a.log_level,
    )
