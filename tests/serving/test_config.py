"""Settings come from flags, else the environment SageMaker and Kubernetes set, else defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.config import SAGEMAKER_MAX_BODY_BYTES, parse_args


def test_defaults_follow_the_sagemaker_contract() -> None:
    config = parse_args([], {})
    assert config.model_dir == Path("/opt/ml/model")
    assert config.port == 8080
    assert config.max_body_bytes == SAGEMAKER_MAX_BODY_BYTES == 6 * 1024 * 1024
    assert config.grace_s < 30  # SageMaker sends SIGKILL 30 s after SIGTERM


def test_sagemaker_bind_to_port_and_model_dir_come_from_the_environment() -> None:
    config = parse_args([], {"SAGEMAKER_BIND_TO_PORT": "9090", "MODEL_DIR": "/mnt/models"})
    assert config.port == 9090
    assert config.model_dir == Path("/mnt/models")


def test_flags_beat_the_environment() -> None:
    env = {"SERVING_MAX_BATCH_SIZE": "8", "SERVING_MAX_BATCH_WAIT_MS": "5"}
    config = parse_args(["--max-batch-size", "16"], env)
    assert config.max_batch_size == 16
    assert config.max_batch_wait_ms == 5


def test_a_drain_as_long_as_the_grace_period_is_refused() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--drain", "30", "--grace", "25"], {})
