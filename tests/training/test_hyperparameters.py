"""Hyperparameters arrive as strings, JSON-quoted strings, typed JSON or flags; all read alike."""

from __future__ import annotations

import pytest

from training.errors import HyperparameterError
from training.hyperparameters import parse_flags, resolve
from training.manifest import Hyperparameter

DECLARED = {
    "epochs": Hyperparameter(type="int", default=3, min=1),
    "lr": Hyperparameter(type="float", default=0.01, min=0.0, max=1.0),
    "precision": Hyperparameter(type="str", default="auto", choices=["auto", "bf16"]),
    "quantize": Hyperparameter(type="bool", default=True),
    "tag": Hyperparameter(type="str", default="x"),
}


def test_defaults_come_from_the_declarations() -> None:
    assert resolve(DECLARED, []) == {
        "epochs": 3, "lr": 0.01, "precision": "auto", "quantize": True, "tag": "x"
    }  # fmt: skip


def test_sagemaker_strings_are_converted_to_the_declared_types() -> None:
    values = {"epochs": "5", "lr": "1e-3", "quantize": "false", "precision": "bf16"}
    got = resolve(DECLARED, [("hyperparameters.json", values)])
    assert (got["epochs"], got["lr"], got["quantize"], got["precision"]) == (
        5,
        0.001,
        False,
        "bf16",
    )


def test_json_quoted_values_from_the_sagemaker_python_sdk_are_unquoted() -> None:
    values = {"precision": '"bf16"', "epochs": '"7"', "quantize": '"false"', "tag": '"a b"'}
    got = resolve(DECLARED, [("hyperparameters.json", values)])
    assert (got["precision"], got["epochs"], got["quantize"], got["tag"]) == (
        "bf16",
        7,
        False,
        "a b",
    )


def test_typed_sm_hps_and_the_toolkits_python_booleans_are_accepted() -> None:
    typed = {"epochs": 4, "lr": 1, "quantize": False, "tag": 5}  # SM_HPS decodes "5" to 5
    flags = parse_flags(["--quantize", "True", "-b", "3"])  # the toolkit's argv form
    assert flags == {"quantize": "True", "b": "3"}
    got = resolve(DECLARED, [("SM_HPS", typed), ("flags", {"quantize": "True"})])
    assert (got["epochs"], got["lr"], got["quantize"], got["tag"]) == (4, 1.0, True, "5")


def test_later_sources_win() -> None:
    got = resolve(DECLARED, [("file", {"epochs": "2"}), ("the command line", {"epochs": "9"})])
    assert got["epochs"] == 9


def test_keys_sagemaker_adds_itself_are_ignored() -> None:
    values = {
        "sagemaker_program": '"train.py"',
        "sagemaker_submit_directory": '"s3://b/k/sourcedir.tar.gz"',
        "_tuning_objective_metric": "validation:accuracy",
        "model_dir": "s3://b/model",  # the SDK's TensorFlow estimator adds it
    }
    assert resolve(DECLARED, [("hyperparameters.json", values)])["epochs"] == 3


def test_every_problem_is_named_in_one_line_with_its_source_and_what_is_allowed() -> None:
    values = {
        "epochs": "ten",
        "lr": "5",
        "precision": "fp8",
        "quantize": "maybe",
        "epoch": "1",
    }
    with pytest.raises(HyperparameterError) as err:
        resolve(DECLARED, [("/opt/ml/input/config/hyperparameters.json", values)])
    message = str(err.value)
    assert "\n" not in message
    for part in (
        "hyperparameter 'epochs' (from /opt/ml/input/config/hyperparameters.json): got 'ten', want an integer >= 1",
        "'lr' (from /opt/ml/input/config/hyperparameters.json): got '5', want a number between 0 and 1",
        "got 'fp8', want one of auto, bf16",
        "got 'maybe', want true or false",
        "'epoch' (from /opt/ml/input/config/hyperparameters.json): not declared in model.yaml; "
        "did you mean 'epochs'? declared: epochs, lr, precision, quantize, tag",
    ):
        assert part in message, part


@pytest.mark.parametrize(("value", "why"), [("2.5", "an integer"), ("nan", None), (True, None)])
def test_values_that_only_look_right_are_refused(value: object, why: str | None) -> None:
    name = "epochs" if why else "lr"
    with pytest.raises(HyperparameterError, match=f"hyperparameter '{name}'"):
        resolve(DECLARED, [("x", {name: value})])


def test_a_hyphenated_flag_gets_the_underscore_name_suggested() -> None:
    declared = {"batch_size": Hyperparameter(type="int", default=1)}
    with pytest.raises(HyperparameterError, match="did you mean 'batch_size'"):
        resolve(declared, [("the command line", parse_flags(["--batch-size=4"]))])


def test_a_flag_without_a_value_or_a_stray_argument_is_refused() -> None:
    with pytest.raises(HyperparameterError, match="--epochs has no value"):
        parse_flags(["--epochs"])
    with pytest.raises(HyperparameterError, match="unexpected argument 'five'"):
        parse_flags(["five"])
