"""Settings come from flags, else the environment SageMaker and Kubernetes set, else defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.config import (
    SAGEMAKER_MAX_BODY_BYTES,
    SETTINGS,
    Setting,
    flag,
    parse_args,
)


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


def two_values(setting: Setting) -> tuple[str, str]:
    """Two different valid texts for `setting`."""
    if setting.choices:
        return setting.choices[-1], setting.choices[0]
    if setting.read is flag:
        return "true", "false"
    if setting.read in (int, float):
        return "7", "9"
    return "/here", "/there"


@pytest.mark.parametrize("setting", SETTINGS, ids=[s.flag for s in SETTINGS])
def test_every_setting_reads_its_variables_and_its_flag_beats_them(setting: Setting) -> None:
    text, other = two_values(setting)
    value = setting.read(text)
    for variable in setting.env:
        assert getattr(parse_args([], {variable: text}), setting.field) == value
    # The first variable listed wins over the later ones (SAGEMAKER_BIND_TO_PORT first).
    both = {name: text if i == 0 else other for i, name in enumerate(setting.env)}
    assert getattr(parse_args([], both), setting.field) == value
    flagged = parse_args([setting.flag, text], {setting.env[0]: other})
    assert getattr(flagged, setting.field) == value


def test_a_variable_that_cannot_be_read_is_a_usage_error_naming_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args([], {"SERVING_MAX_QUEUE": "lots"})
    assert exit_.value.code == 2
    assert "SERVING_MAX_QUEUE='lots'" in capsys.readouterr().err


def test_non_finite_inputs_follow_model_json_unless_a_setting_says_otherwise() -> None:
    assert parse_args([], {}).allow_non_finite is None
    assert parse_args(["--allow-non-finite", "false"], {}).allow_non_finite is False
