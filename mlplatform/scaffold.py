"""`mlplatform new-model NAME --framework F`: a model directory that trains, exports, serves and
passes its own tests as generated.

The files come from `templates/<framework>/*.tmpl` (model.yaml, train.py, requirements.txt) and
`templates/common/*.tmpl` (prepare.py: synthetic data from scikit-learn, so it runs offline;
example.json; the model's tests), with `$name`-style placeholders filled in. The generated
manifest is checked before the directory appears, so a scaffold never leaves a broken model.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from string import Template

from infra.stackfile import PROJECT_ROOT, display_path

TEMPLATES = Path(__file__).resolve().parent / "templates"
SUFFIX = ".tmpl"  # templates are not modules: linters and type checkers leave them alone
FRAMEWORKS = ("pytorch", "tensorflow", "sklearn", "xgboost")
TASKS = ("classification", "regression")
# What both a model directory (model.yaml's name) and a stack entry (2-32 characters) accept.
NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
OBJECTIVE = {"classification": ("accuracy", "0.8"), "regression": ("r2", "0.5")}
# Hyperparameters that keep the generated model's own test run short.
SHORT_RUN = {
    "pytorch": ("--epochs", "2"),
    "tensorflow": ("--epochs", "2"),
    "sklearn": ("--n_estimators", "10"),
    "xgboost": ("--n_estimators", "10"),
}


class ScaffoldError(Exception):
    """A model that cannot be scaffolded: the reason, and what would be accepted."""


def check_name(name: str) -> None:
    if not NAME.match(name):
        raise ScaffoldError(
            f"model name {name!r}: want 2-32 lower-case letters, digits or -, starting with a "
            "letter and not ending with - (e.g. churn-classifier)"
        )


def files(name: str, framework: str) -> dict[str, Path]:
    """What a model directory holds -> the template it is made from."""
    own, common = TEMPLATES / framework, TEMPLATES / "common"
    made = {
        "model.yaml": own / "model.yaml",
        "train.py": own / "train.py",
        "requirements.txt": own / "requirements.txt",
        "prepare.py": common / "prepare.py",
        "example.json": common / "example.json",
        f"tests/test_{name.replace('-', '_')}.py": common / "test_model.py",
    }
    return {target: Path(f"{template}{SUFFIX}") for target, template in made.items()}


def new_model(
    name: str, framework: str, task: str = "classification", directory: Path | None = None
) -> Path:
    """Write `<directory>/<name>/` (default: the project's models/) and return its path."""
    from training.errors import UserError
    from training.manifest import load_manifest

    check_name(name)
    if framework not in FRAMEWORKS:
        raise ScaffoldError(f"--framework {framework}: want one of {', '.join(FRAMEWORKS)}")
    if task not in TASKS:
        raise ScaffoldError(f"--task {task}: want one of {', '.join(TASKS)}")
    parent = directory if directory is not None else PROJECT_ROOT / "models"
    target = parent / name
    if target.exists():
        raise ScaffoldError(
            f"{display_path(target)} already exists; pick another name or remove it first"
        )
    metric, threshold = OBJECTIVE[task]
    values = {
        "name": name,
        "task": task,
        "metric": metric,
        "threshold": threshold,
        "description": f"A {framework} {task} model (mlplatform new-model); replace "
        "prepare.py's data and train.py's model with yours.",
        "short_run": "(" + ", ".join(f'"{arg}"' for arg in SHORT_RUN[framework]) + ")",
    }
    parent.mkdir(parents=True, exist_ok=True)
    # Built beside the target and renamed into place: the directory appears whole or not at all.
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=parent)) / name
    try:
        for relative, template in files(name, framework).items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(Template(template.read_text()).substitute(values))
        try:
            load_manifest(staging)
        except UserError as error:  # the templates' fault, never the user's
            raise ScaffoldError(
                f"the {framework} template made an invalid model: {error}"
            ) from None
        staging.rename(target)
    finally:
        shutil.rmtree(staging.parent, ignore_errors=True)
    return target


def next_steps(target: Path, name: str) -> str:
    """What to do with a new model, in commands."""
    in_models = target.parent.resolve() == (PROJECT_ROOT / "models").resolve()
    path = "" if in_models else f"\n        path: {display_path(target)}"
    return f"""next:
  mlplatform run --model {name}            # prepare, train, evaluate, serve and predict locally
  python -m pytest {display_path(target)}/tests     # the model's own tests
  # deploy: add it to a stack file's mlplatform:models, then `mlplatform plan --stack <stack>`
    - name: {name}{path}
      training: {{plane: sagemaker, instanceType: ml.m5.large}}
      serving: {{plane: sagemaker, mode: serverless}}"""
