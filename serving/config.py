"""Server settings: command-line flags, each with environment variables as its default.

Environment variables are how SageMaker (ContainerDefinition.Environment) and Kubernetes (the
container's env) configure the image; flags are for running it by hand. One table row per
setting: the flag, its variables (the first one set wins), how to read the value and the help.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# SageMaker real-time endpoints refuse payloads over 6 MB (InvokeEndpoint Body: 6291456 bytes).
SAGEMAKER_MAX_BODY_BYTES = 6 * 1024 * 1024


@dataclass(frozen=True)
class ServerConfig:
    """Everything `serve` needs; SETTINGS gives the flag and variables of each field."""

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
    allow_non_finite: bool | None = None  # None: model.json decides
    header_timeout_s: float = 10.0
    idle_timeout_s: float = 5.0
    log_level: str = "info"


def flag(value: str) -> bool:
    """A boolean setting's text: true/false, 1/0, yes/no."""
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(f"{value!r} is not true or false")


@dataclass(frozen=True)
class Setting:
    """One setting: a ServerConfig field, its flag and variables, its reader and help."""

    field: str
    flag: str
    env: tuple[str, ...]
    read: Callable[[str], Any]
    help: str
    choices: tuple[str, ...] | None = None
    default_help: str = ""  # how to show the default when str(default) says too little


SETTINGS = (
    Setting("model_dir", "--model-dir", ("MODEL_DIR",), Path,
            "exported model directory (model.json and its variants' files)"),
    Setting("host", "--host", ("SERVING_HOST",), str, "address to listen on"),
    Setting("port", "--port", ("SAGEMAKER_BIND_TO_PORT", "SERVING_PORT"), int, "port"),
    Setting("device", "--device", ("SERVING_DEVICE",), str,
            "cpu, cuda, cuda:N or auto (a GPU when one is visible)"),
    Setting("threads", "--threads", ("SERVING_THREADS",), int,
            "intra-op threads of torch or onnxruntime; 0 keeps the runtime's default"),
    Setting("dtype", "--dtype", ("SERVING_DTYPE",), str,
            "compute dtype of torchscript variants; auto: model.json preferred_dtype on GPU, "
            "float32 on CPU", choices=("auto", "float32", "float16", "bfloat16")),
    Setting("variant", "--variant", ("SERVING_MODEL_VARIANT",), str,
            "which of model.json's variants to serve (default, onnx, int8, ...)"),
    Setting("max_batch_size", "--max-batch-size", ("SERVING_MAX_BATCH_SIZE",), int,
            "samples per forward pass"),
    Setting("max_batch_wait_ms", "--max-batch-wait-ms", ("SERVING_MAX_BATCH_WAIT_MS",), float,
            "how long a batch may wait to fill; 0 never delays"),
    Setting("max_queue", "--max-queue", ("SERVING_MAX_QUEUE",), int,
            "samples waiting before new requests get 503; a request holding more gets 413"),
    Setting("request_timeout_s", "--request-timeout", ("SERVING_REQUEST_TIMEOUT_S",), float,
            "seconds before an inference gets 504 (and a body that stops arriving 408)"),
    Setting("max_body_bytes", "--max-body-bytes", ("SERVING_MAX_BODY_BYTES",), int,
            "larger bodies get 413", default_help="6 MiB: SageMaker real-time's limit"),
    Setting("grace_s", "--grace", ("SERVING_GRACE_S",), float,
            "seconds from SIGTERM to exit", default_help="25: SageMaker kills at 30"),
    Setting("drain_s", "--drain", ("SERVING_DRAIN_S",), float,
            "seconds to keep serving, reporting not-ready, after SIGTERM before closing the "
            "port, so load balancers can stop routing here"),
    Setting("allow_non_finite", "--allow-non-finite", ("SERVING_ALLOW_NON_FINITE",), flag,
            "pass NaN and Infinity inputs to the model instead of answering 400",
            default_help="model.json allow_non_finite, else false"),
    Setting("header_timeout_s", "--header-timeout", ("SERVING_HEADER_TIMEOUT_S",), float,
            "seconds a connection may take to send a request's headers; then it is closed"),
    Setting("idle_timeout_s", "--idle-timeout", ("SERVING_IDLE_TIMEOUT_S",), float,
            "seconds an idle keep-alive connection is kept open"),
    Setting("log_level", "--log-level", ("SERVING_LOG_LEVEL",), str.lower, "log level",
            choices=("critical", "error", "warning", "info", "debug", "trace")),
)  # fmt: skip
assert {s.field for s in SETTINGS} == {f.name for f in dataclasses.fields(ServerConfig)}


def parse_args(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> ServerConfig:
    """Flags of `python -m serving serve`; a flag beats its variables, which beat the default."""
    defaults = ServerConfig()
    p = argparse.ArgumentParser(prog="python -m serving serve", description=__doc__)
    for s in SETTINGS:
        default = getattr(defaults, s.field)
        for name in s.env:
            if name in environ:
                try:
                    default = s.read(environ[name])
                except ValueError as exc:
                    p.error(f"{name}={environ[name]!r}: {exc}")
                if s.choices and default not in s.choices:
                    p.error(f"{name}={environ[name]!r}: allowed: {', '.join(s.choices)}")
                break
        fallback = getattr(defaults, s.field)
        shown = s.default_help or (f"{fallback:g}" if isinstance(fallback, float) else fallback)
        p.add_argument(
            s.flag,
            dest=s.field,
            type=s.read,
            default=default,
            choices=s.choices,
            metavar="{true,false}" if s.read is flag else None,
            help=f"{s.help} [{', '.join((*s.env, str(shown)))}]",
        )
    config = ServerConfig(**vars(p.parse_args(argv)))
    if config.max_batch_size < 1:
        p.error(f"--max-batch-size must be >= 1, got {config.max_batch_size}")
    if config.drain_s >= config.grace_s:
        p.error(f"--drain ({config.drain_s:g}) must be shorter than --grace ({config.grace_s:g})")
    return config
