"""`mlplatform run --model NAME`: the local loop for each reference model, from its manifest
alone: prepare, train, export, evaluate, serve, predict. Each model runs once per session (one
epoch), shared by the tests that read its output."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

from infra.stackfile import PROJECT_ROOT
from mlplatform.cli import main

FIXTURE_STACKS = PROJECT_ROOT / "tests" / "stacks"
REFERENCE_MODELS = ("digits", "mnist-keras", "breast-cancer")


@dataclass(frozen=True)
class LocalRun:
    """A finished `mlplatform run`: its work directory and what it printed."""

    workdir: Path
    out: str

    def evaluation(self) -> dict:
        return json.loads((self.workdir / "evaluation.json").read_text())


def mlplatform(*args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "MLFLOW_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env.update(OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "mlplatform", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def shared_run(factory: pytest.TempPathFactory, model: str, *extra: str) -> LocalRun:
    """`mlplatform run --model MODEL`, once per session whichever xdist worker asks first."""
    base = factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    workdir = root / f"run-{model}"
    with FileLock(str(root / f"run-{model}.lock")):
        if not (workdir / "stdout.txt").is_file():
            shutil.rmtree(workdir, ignore_errors=True)
            args = ["run", "--model", model, "--workdir", str(workdir), *extra]
            result = mlplatform(*args, "--stack", "dev", "--stacks-dir", str(FIXTURE_STACKS))
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
            (workdir / "stdout.txt").write_text(result.stdout)
    return LocalRun(workdir, (workdir / "stdout.txt").read_text())


@pytest.fixture(params=REFERENCE_MODELS)
def reference_run(request: pytest.FixtureRequest, tmp_path_factory) -> LocalRun:
    return shared_run(tmp_path_factory, request.param, "--epochs", "1", "--sample", "3")


def test_the_loop_runs_its_six_steps_and_prints_a_prediction_and_the_evaluation(reference_run):
    out = reference_run.out
    steps = re.findall(r"^==> (\d)/6 (\w+)", out, re.MULTILINE)
    assert [title for _, title in steps] == [
        "Prepare", "Train", "Export", "Evaluate", "Serve", "Predict",
    ]  # fmt: skip
    assert re.search(r"^prediction: \S+", out, re.MULTILINE), out[-2000:]
    assert re.search(r"^held-out test sample #3: prediction \S+ \(true label: \S+\)$", out, re.M)
    assert re.search(r"^\S+ default \([\w-]+\): accuracy 0\.\d{4}", out, re.MULTILINE), out[-2000:]
    assert re.search(r"^done in [\d.]+ s \(prepare [\d.]+ s, train", out, re.MULTILINE)


def test_the_evaluation_scores_the_test_channel_which_training_never_read(reference_run):
    evaluation = reference_run.evaluation()
    test = json.loads((reference_run.workdir / "data" / "test" / "manifest.json").read_text())
    assert evaluation["data"]["sha256"] == test["sha256"]
    assert 0.0 <= evaluation["metrics"]["accuracy"]["value"] <= 1.0
    assert f"--channel-train {reference_run.workdir / 'data' / 'train'} " in reference_run.out
    assert "--channel-test" not in reference_run.out


def test_epoch_models_get_a_training_curve_png_named_in_the_output(tmp_path_factory):
    for model in ("digits", "mnist-keras"):
        run = shared_run(tmp_path_factory, model, "--epochs", "1", "--sample", "3")
        png = run.workdir / "training-curve.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"training curve  {png}" in run.out


def test_the_stack_entrys_hyperparameters_apply_and_epochs_overrides(tmp_path_factory):
    run = shared_run(tmp_path_factory, "digits", "--epochs", "1", "--sample", "3")
    assert "hyperparameters: epochs=1 (--epochs), batch_size=64 (stack dev)" in run.out
    assert " --epochs 1 --batch_size 64\n" in run.out


def test_a_model_without_an_epochs_hyperparameter_ignores_epochs_and_says_so(tmp_path_factory):
    run = shared_run(tmp_path_factory, "breast-cancer", "--epochs", "1", "--sample", "3")
    assert "breast-cancer declares no hyperparameter epochs in model.yaml: --epochs ignored" in (
        run.out
    )
    assert "no training curve:" in run.out, "one fit, nothing per epoch"


def test_a_keras_model_is_evaluated_and_served_from_its_savedmodel_export(tmp_path_factory):
    # The export TF Serving serves on AWS is what the local run scores and serves too.
    run = shared_run(tmp_path_factory, "mnist-keras", "--epochs", "1", "--sample", "3")
    assert f"serving {run.workdir / 'model'} (tensorflow-savedmodel)" in run.out
    variants = run.evaluation()["variants"]
    assert variants["default"]["format"] == "tensorflow-savedmodel"
    assert variants["onnx"]["agreement_with_default"] >= 0.99


def test_a_torchscript_model_is_served_as_exported(tmp_path_factory):
    run = shared_run(tmp_path_factory, "digits", "--epochs", "1", "--sample", "3")
    assert f"serving {run.workdir / 'model'} (torchscript)" in run.out
    assert set(run.evaluation()["variants"]) == {"default", "onnx", "int8"}


def test_a_model_with_a_label_and_a_scores_output_is_served_from_its_scores(tmp_path_factory):
    # scikit-learn's export declares `label` and `probabilities`; the server answers from the
    # class scores, and the python-handler variant scores like the ONNX default.
    run = shared_run(tmp_path_factory, "breast-cancer", "--epochs", "1", "--sample", "3")
    assert re.search(r"^prediction: (malignant|benign) \(probabilities \[", run.out, re.M)
    variants = run.evaluation()["variants"]
    assert set(variants) == {"default", "python"}
    assert variants["python"]["agreement_with_default"] == 1.0


def test_an_unknown_model_lists_the_models(capsys):
    assert main(["run", "--model", "mnist", "--stacks-dir", str(FIXTURE_STACKS)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no model 'mnist': models/mnist/model.yaml does not exist.")
    assert "Models: breast-cancer, digits, mnist-keras;" in err
    assert "mlplatform new-model mnist --framework pytorch" in err


def test_a_failing_step_names_its_command_and_exit_status(tmp_path):
    args = ["--workdir", str(tmp_path), "--epochs", "0", "--stacks-dir", str(FIXTURE_STACKS)]
    result = mlplatform("run", "--model", "digits", *args)
    assert result.returncode == 1
    assert re.search(
        r"^error: step train failed: `python -m training launch --model \S+/models/digits "
        r".* --epochs 0( .*)?` exited with 1$",
        result.stderr,
        re.MULTILINE,
    ), result.stderr[-2000:]
