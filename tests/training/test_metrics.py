"""The metric lines the loop prints are the ones SageMaker's metric definitions capture."""

from __future__ import annotations

import io
import re

from training.metrics import METRIC_DEFINITIONS, ProgressBar, format_metrics

REGEXES = {d["Name"]: re.compile(d["Regex"]) for d in METRIC_DEFINITIONS}


def _captured(name: str, line: str) -> float | None:
    match = REGEXES[name].search(line)
    return float(match.group(1)) if match else None


def test_each_definition_captures_its_value_from_a_printed_line() -> None:
    train = format_metrics(
        epoch=3, step=66, train_loss=0.1234, lr=0.0027, step_time_ms=4.25, samples_per_s=15060.2
    )
    test = format_metrics(epoch=3, step=66, test_loss=2.5e-5, test_accuracy=0.9722)
    assert train == (
        "metric: epoch=3 step=66 train_loss=0.1234 lr=0.0027 step_time_ms=4.25 "
        "samples_per_s=15060.2"
    )
    assert _captured("train:loss", train) == 0.1234
    assert _captured("train:learning_rate", train) == 0.0027
    assert _captured("train:step_time_ms", train) == 4.25
    assert _captured("train:samples_per_second", train) == 15060.2
    assert _captured("test:loss", test) == 2.5e-5
    assert _captured("test:accuracy", test) == 0.9722


def test_a_name_that_ends_another_name_is_not_captured_by_mistake() -> None:
    line = format_metrics(train_loss=0.5, int8_test_accuracy=0.9)
    assert _captured("test:loss", line) is None
    assert _captured("test:accuracy", line) is None


def test_definitions_have_the_shape_sagemaker_expects() -> None:
    for definition in METRIC_DEFINITIONS:
        assert set(definition) == {"Name", "Regex"}
        assert re.fullmatch(r"[A-Za-z0-9:._-]{1,255}", definition["Name"])
        assert re.compile(definition["Regex"]).groups == 1


def test_the_progress_bar_draws_only_on_a_terminal() -> None:
    quiet, loud = io.StringIO(), io.StringIO()
    ProgressBar(10, stream=quiet).update(10)
    ProgressBar(10, stream=loud, enabled=True).update(10, "epoch 1/1")
    assert quiet.getvalue() == ""
    assert "10/10 epoch 1/1" in loud.getvalue()
