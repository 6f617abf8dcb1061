"""`mlplatform new-model`: a scaffolded model trains, exports, serves, plans and passes its own
tests as generated, with no edit outside its directory and the stack file that deploys it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from infra.stackfile import PROJECT_ROOT
from mlplatform.cli import main
from mlplatform.scaffold import FRAMEWORKS, TASKS
from training.manifest import load_manifest

RUFF = Path(sys.executable).with_name("ruff")
SCHEMA = (
    PROJECT_ROOT / "docs" / "schema" / "model.schema.json"
)  # what editors check model.yaml with


def python(*args: str, cwd: Path, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    """`python ARGS` in `cwd`, importing the packages found there (a project copy's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "MLFLOW_"))}
    env.update(PYTHONPATH=str(cwd), OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def files(root: Path) -> dict[str, str]:
    """Every file under `root` (bytecode caches aside) -> its sha256."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_a_new_pytorch_model_plans_runs_and_passes_its_tests_with_no_edit_elsewhere(
    project_copy, tmp_path
):
    name = "churn-net"
    before = files(project_copy)
    python("-m", "mlplatform", "new-model", name, "--framework", "pytorch", cwd=project_copy)
    stack = yaml.safe_load((project_copy / "stacks" / "Pulumi.dev.yaml").read_text())
    stack["config"]["mlplatform:models"].append(
        {
            "name": name,
            "training": {"plane": "sagemaker", "instanceType": "ml.m5.large"},
            "serving": {"plane": "sagemaker", "mode": "serverless"},
        }
    )
    (project_copy / "stacks" / "Pulumi.byom.yaml").write_text(yaml.safe_dump(stack))

    plan = python("-m", "mlplatform", "plan", "--stack", "byom", cwd=project_copy).stdout
    for shown in (
        f"mlplatform:sagemaker:TrainingPipeline  mlplatform-byom-{name}",
        f"aws:sagemaker/pipeline:Pipeline  mlplatform-byom-{name}",
        f"docker-build:index:Image  mlplatform-byom-{name}-{name}",
        f"aws:sagemaker/endpoint:Endpoint  mlplatform-byom-{name}  name=mlplatform-byom-{name}",
    ):
        assert shown in plan, shown
    assert "all mandatory policies pass" in plan

    workdir = tmp_path / "run"
    args = ["--model", name, "--stack", "byom", "--workdir", str(workdir), "--epochs", "2"]
    out = python("-m", "mlplatform", "run", *args, cwd=project_copy).stdout
    assert "hyperparameters: epochs=2 (--epochs)" in out
    assert f"POST the example request models/{name}/example.json" in out
    assert any(line.startswith("prediction: ") for line in out.splitlines()), out[-2000:]
    assert (workdir / "training-curve.png").is_file()

    # The project's own test command (no paths: pyproject's testpaths) runs them too.
    own = python("-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project_copy)
    assert "4 passed" in own.stdout, "the model's own tests pass as generated"
    assert (
        f"models/{name}/tests"
        in python(
            "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", cwd=project_copy
        ).stdout
    )

    after = files(project_copy)
    added = set(after) - set(before)
    changed = {p for p, digest in before.items() if after.get(p) != digest}
    assert changed == set(), "nothing outside the new model and the stack file changes"
    assert {p for p in added if not p.startswith(f"models/{name}/")} == {"stacks/Pulumi.byom.yaml"}


@pytest.mark.parametrize(
    ("framework", "task"),
    [("tensorflow", "classification"), ("sklearn", "regression"), ("xgboost", "classification")],
)
def test_other_frameworks_prepare_train_and_export_through_their_own_tests(
    framework, task, tmp_path
):
    name = f"{framework}-{task[:5]}"
    args = ["new-model", name, "--framework", framework, "--task", task, "--dir", str(tmp_path)]
    assert main(args) == 0
    # The generated tests run from a bare folder with the suite's packages on PYTHONPATH.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path / name / "tests"), "-q", "-p",
         "no:cacheprovider"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1",
             "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=400,
    )  # fmt: skip
    assert result.returncode == 0 and "4 passed" in result.stdout, result.stdout[-3000:]


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("task", TASKS)
def test_every_template_makes_a_schema_valid_manifest_and_lint_clean_code(
    framework, task, tmp_path
):
    name = f"{framework}-{task}"
    assert (
        main(["new-model", name, "--framework", framework, "--task", task, "--dir", str(tmp_path)])
        == 0
    )
    manifest, _ = load_manifest(tmp_path / name)
    document = yaml.safe_load((tmp_path / name / "model.yaml").read_text())
    jsonschema.validate(document, json.loads(SCHEMA.read_text()))
    assert (manifest.framework, manifest.task) == (framework, task)
    assert (
        manifest.train.objective.metric == {"classification": "accuracy", "regression": "r2"}[task]
    )
    made = sorted(str(p.relative_to(tmp_path / name)) for p in (tmp_path / name).rglob("*.*"))
    assert made == [
        "example.json", "model.yaml", "prepare.py", "requirements.txt",
        f"tests/test_{name.replace('-', '_')}.py", "train.py",
    ]  # fmt: skip
    for check in (["check"], ["format", "--check"]):
        lint = subprocess.run(
            [str(RUFF), *check, str(tmp_path / name)], capture_output=True, text=True
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr


def test_new_model_refuses_an_existing_directory_and_a_bad_name(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    assert main(["new-model", "taken", "--framework", "sklearn", "--dir", str(tmp_path)]) == 2
    assert "taken already exists; pick another name or remove it first" in capsys.readouterr().err
    for bad in ("Churn", "9lives", "x", "ends-", "under_score"):
        assert main(["new-model", bad, "--framework", "sklearn", "--dir", str(tmp_path)]) == 2
        assert f"error: model name {bad!r}: want 2-32 lower-case letters" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"], "nothing half-written"


def test_an_unknown_framework_is_refused_with_the_choices(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["new-model", "fine-name", "--framework", "jax", "--dir", str(tmp_path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'jax'" in err and "xgboost" in err
