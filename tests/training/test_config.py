"""Hyperparameters arrive as strings; wrong ones stop the run with a message a person can act on."""

from __future__ import annotations

import pytest

from training.config import HyperparameterError, TrainConfig, parse_config


def test_string_values_from_sagemaker_are_converted_to_their_types() -> None:
    cfg = parse_config({"epochs": "3", "lr": "0.01", "channels_last": "false", "precision": "bf16"})
    assert (cfg.epochs, cfg.lr, cfg.channels_last, cfg.precision) == (3, 0.01, False, "bf16")


def test_json_quoted_values_from_the_sagemaker_python_sdk_are_unquoted() -> None:
    cfg = parse_config({"precision": '"bf16"', "epochs": '"3"', "quantize": '"false"'})
    assert (cfg.precision, cfg.epochs, cfg.quantize) == ("bf16", 3, False)


def test_hyphenated_names_and_keys_sagemaker_adds_itself_are_accepted() -> None:
    cfg = parse_config(
        {
            "batch-size": "32",
            "sagemaker_program": "train.py",
            "sagemaker_region": "eu-west-1",
            "_tuning_objective_metric": "test:accuracy",
        }
    )
    assert cfg.batch_size == 32


def test_a_non_integer_epochs_names_the_key_the_value_and_the_file() -> None:
    with pytest.raises(HyperparameterError) as err:
        parse_config({"epochs": "ten"}, source="/opt/ml/input/config/hyperparameters.json")
    message = str(err.value)
    assert "'epochs'" in message and "'ten'" in message and "an integer" in message
    assert "hyperparameters.json" in message


def test_an_unknown_hyperparameter_lists_the_known_ones() -> None:
    with pytest.raises(
        HyperparameterError, match=r"unknown hyperparameter 'learning_rate'.*\blr\b"
    ):
        parse_config({"learning_rate": "0.1"})


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("epochs", "0", "an integer >= 1"),
        ("lr", "5", "between 0 and 1"),
        ("precision", "fp8", "one of auto, fp32, bf16, fp16"),
        ("quantize", "maybe", "true or false"),
        ("keep_checkpoints", "1", ">= 2"),
    ],
)
def test_out_of_range_values_say_what_is_allowed(key: str, value: str, expected: str) -> None:
    with pytest.raises(HyperparameterError, match=expected):
        parse_config({key: value})


def test_defaults_are_a_valid_config() -> None:
    assert parse_config({}) == TrainConfig()
