"""model.yaml: the schema refuses what would fail later, naming file, line, key and what is allowed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from training.manifest import ManifestError, check_hyperparameters, load_manifest
from training.metrics import format_metrics

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
name: m
framework: pytorch
task: classification
train:
  hyperparameters:
    epochs: {type: int, default: 3, min: 1}
    lr: {type: float, default: 0.01, min: 0.0, max: 1.0}
    precision: {type: str, default: auto, choices: [auto, bf16]}
  metrics:
    - {name: "validation:accuracy", key: validation_accuracy}
  objective: {metric: accuracy, tuningMetric: "validation:accuracy"}
"""


def _errors(model_dir, manifest: str, files: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(ManifestError) as err:
        load_manifest(model_dir("m", manifest, files))
    return str(err.value).splitlines()


def test_the_example_manifest_in_docs_models_md_is_valid(tmp_path: Path) -> None:
    text = (REPO / "docs" / "models.md").read_text()
    example = re.search(r"```yaml\n(# yaml-language-server.*?)```", text, re.S).group(1)
    directory = tmp_path / "digits"
    directory.mkdir()
    (directory / "model.yaml").write_text(example)
    for name in ("train.py", "prepare.py", "example.json"):
        (directory / name).touch()
    manifest, lines = load_manifest(directory)
    assert manifest.train.hyperparameters["lr"].default == 0.003
    assert manifest.train.objective.goal == "maximize"
    assert lines[("train", "objective", "tuningMetric")] > lines[("train", "metrics")]


def test_every_problem_is_reported_at_once_with_file_line_key_value_and_what_is_allowed(
    model_dir,
) -> None:
    lines = _errors(
        model_dir,
        """\
        name: m
        framework: pytorch
        task: classification
        trian: {}
        train:
          hyperparameters:
            epochs: {type: integer, default: 3}
          objective: {metric: accuracy}
        """,
    )
    assert lines[0].endswith("m/model.yaml: invalid model manifest (2 problems):")
    assert lines[1].endswith(
        "m/model.yaml:4: trian = {}: unknown key (did you mean 'train'?). "
        "Allowed: name, description, framework, task, prepare, train, image, serve"
    )
    assert re.search(
        r"m/model\.yaml:7: train\.hyperparameters\.epochs\.type = 'integer': "
        r"Input should be 'int', 'float', 'str' or 'bool'\. Allowed: int, float, str or bool",
        lines[2],
    )


@pytest.mark.parametrize(
    ("hyperparameter", "message"),
    [
        (
            "{type: float, default: 3, max: 1.0}",
            "lr.default = 3: does not fit the declaration. Allowed: a number <= 1",
        ),
        (
            "{type: str, default: x, choices: [a, b]}",
            "lr.default = 'x': does not fit the declaration. Allowed: one of a, b",
        ),
        ("{type: bool, default: true, min: 0}", "lr.min = 0.0: applies to int and float, not bool"),
        ("{type: int, default: 3, min: 5, max: 1}", "lr.min = 5.0: above max 1"),
        (
            "{type: int, default: true}",
            "lr.default = True: does not fit the declaration. Allowed: an integer",
        ),
    ],
)
def test_a_default_or_bound_that_contradicts_its_declaration_is_refused(
    model_dir, hyperparameter: str, message: str
) -> None:
    manifest = GOOD.replace("{type: float, default: 0.01, min: 0.0, max: 1.0}", hyperparameter)
    (line,) = _errors(model_dir, manifest)[1:]
    assert line.endswith(message), line


def test_names_the_toolkit_cannot_turn_into_variables_are_refused(model_dir) -> None:
    manifest = GOOD.replace("    lr:", "    Learning-Rate:") + "  channels: {train-v2: {}}\n"
    lines = _errors(model_dir, manifest)[1:]
    assert (
        "train.hyperparameters.Learning-Rate = 'Learning-Rate': 'Learning-Rate' is not a valid name"
        in lines[0]
    )
    assert "SM_HP_LEARNING-RATE" in lines[0]
    assert "train.channels.train-v2" in lines[1] and "SM_CHANNEL_TRAIN-V2" in lines[1]


def test_the_test_channel_is_reserved_for_the_evaluator(model_dir) -> None:
    (line,) = _errors(model_dir, GOOD + "  channels: {test: {}}\n")[1:]
    assert "train.channels.test = 'test': reserved for the platform's evaluator" in line


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("123.dkr.ecr.us-east-1.amazonaws.com/x:latest", "`latest` changes under a deployed model"),
        ("registry:5000/team/x", "no tag and no digest means `latest`"),
    ],
)
def test_a_mutable_image_reference_is_refused(model_dir, uri: str, why: str) -> None:
    (line,) = _errors(model_dir, GOOD + f"image:\n  serving: {{uri: '{uri}'}}\n")[1:]
    assert f"image.serving.uri = '{uri}': a mutable image reference: {why}" in line


@pytest.mark.parametrize(
    "uri", ["registry:5000/team/x:1.4.2", "public.ecr.aws/x/y@sha256:" + "a" * 64]
)
def test_images_by_version_tag_or_digest_are_accepted(model_dir, uri: str) -> None:
    manifest, _ = load_manifest(model_dir("m", GOOD + f"image:\n  training: {{uri: '{uri}'}}\n"))
    assert manifest.image.training.uri == uri and manifest.image.serving.build == "platform"


@pytest.mark.parametrize(
    ("task", "metric", "allowed"),
    [
        ("classification", "rmse", "accuracy, f1_macro, log_loss"),
        ("regression", "accuracy", "rmse, mae, r2"),
    ],
)
def test_the_objective_must_be_a_metric_the_evaluator_computes_for_the_task(
    model_dir, task: str, metric: str, allowed: str
) -> None:
    manifest = GOOD.replace("task: classification", f"task: {task}")
    manifest = manifest.replace("metric: accuracy,", f"metric: {metric},")
    (line,) = _errors(model_dir, manifest)[1:]
    assert line.endswith(
        f"train.objective.metric = '{metric}': not a {task} metric of the evaluator. Allowed: {allowed}"
    )


def test_the_tuning_metric_must_be_declared_and_the_goal_follows_the_metric(model_dir) -> None:
    manifest = GOOD.replace(
        'tuningMetric: "validation:accuracy"', 'tuningMetric: "val:acc", goal: minimize'
    )
    lines = _errors(model_dir, manifest)[1:]
    assert lines[0].endswith(
        "train.objective.goal = 'minimize': accuracy is better when larger. Allowed: maximize"
    )
    assert lines[1].endswith(
        "train.objective.tuningMetric = 'val:acc': not a metric declared in train.metrics. Allowed: validation:accuracy"
    )
    regression = GOOD.replace("classification", "regression").replace(
        "metric: accuracy,", "metric: rmse,"
    )
    manifest, _ = load_manifest(model_dir("r", regression.replace("name: m", "name: r")))
    assert manifest.train.objective.goal == "minimize"


def test_a_threshold_the_metric_cannot_reach_is_refused(model_dir) -> None:
    (line,) = _errors(
        model_dir, GOOD.replace("metric: accuracy,", "metric: accuracy, threshold: 95,")
    )[1:]
    assert line.endswith(
        "train.objective.threshold = 95.0: accuracy cannot reach it. Allowed: a number between 0 and 1"
    )


def test_files_the_manifest_names_must_exist_and_the_name_is_the_directory(model_dir) -> None:
    manifest = GOOD.replace("name: m", "name: other") + "prepare: {entryPoint: prep.py}\n"
    lines = _errors(model_dir, manifest)[1:]
    assert lines[0].endswith("name = 'other': must equal the directory name. Allowed: m")
    assert "prepare.entryPoint = 'prep.py': no such file in" in lines[1]
    assert lines[1].endswith("Allowed: example.json, model.yaml, train.py")


def test_serving_format_defaults_to_the_frameworks_and_must_suit_it(model_dir) -> None:
    for framework, expected in (
        ("pytorch", "torchscript"),
        ("tensorflow", "tensorflow-savedmodel"),
        ("sklearn", "onnx"),
    ):
        manifest, _ = load_manifest(
            model_dir(
                framework,
                GOOD.replace("name: m", f"name: {framework}").replace("pytorch", framework),
            )
        )
        assert manifest.serve.format == expected
    lines = _errors(
        model_dir, GOOD + "serve: {format: tensorflow-savedmodel, runtime: tensorflow-serving}\n"
    )[1:]
    assert lines == [
        lines[0].split(": serve.format")[0]
        + ": serve.format = 'tensorflow-savedmodel': a pytorch model cannot be exported as tensorflow-savedmodel. Allowed: onnx, python, torchscript"
    ]


def test_one_entry_point_kind_and_train_py_by_default(model_dir) -> None:
    manifest, _ = load_manifest(model_dir("m", GOOD))
    assert manifest.train.argv("python") == ["python", "train.py"]
    module = GOOD.replace("train:\n", "train:\n  module: pkg.train\n")
    assert load_manifest(model_dir("p", module.replace("name: m", "name: p")))[0].train.argv(
        "py"
    ) == ["py", "-m", "pkg.train"]
    (line,) = _errors(
        model_dir, GOOD.replace("train:\n", "train:\n  module: a\n  command: [bash, run.sh]\n")
    )[1:]
    assert "give one of entryPoint, module or command, not 2" in line


def test_declared_metric_keys_capture_what_run_log_prints(model_dir) -> None:
    manifest, _ = load_manifest(model_dir("m", GOOD))
    (definition,) = manifest.train.metric_definitions()
    line = format_metrics(epoch=2, train_validation_accuracy=0.1, validation_accuracy=0.9375)
    assert definition["Name"] == "validation:accuracy"
    assert re.search(definition["Regex"], line).group(1) == "0.9375"


def test_stack_values_are_checked_per_key_against_the_declarations(model_dir) -> None:
    manifest, _ = load_manifest(model_dir("m", GOOD))
    assert check_hyperparameters(manifest, {"epochs": 12, "lr": "0.5", "precision": "bf16"}) == {}
    assert check_hyperparameters(
        manifest, {"epochs": 0, "lr": True, "lrr": 0.1, "precision": "fp8"}
    ) == {
        "epochs": "got 0, want an integer >= 1",
        "lr": "got True, want a number between 0 and 1",
        "lrr": "not declared in model.yaml; did you mean 'lr'? declared: epochs, lr, precision",
        "precision": "got 'fp8', want one of auto, bf16",
    }


def test_yaml_that_does_not_parse_or_is_missing_says_so(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no model manifest"):
        load_manifest(tmp_path)
    (tmp_path / "model.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_manifest(tmp_path)


def test_the_published_json_schema_is_the_one_the_code_generates() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "training", "schema"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    published = json.loads((REPO / "docs" / "schema" / "model.schema.json").read_text())
    assert json.loads(result.stdout) == published, (
        "regenerate: python -m training schema > docs/schema/model.schema.json"
    )
    assert published["additionalProperties"] is False and "train" in published["required"]
