"""The training package: self-contained (its own named build context) and framework-lazy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRAINING = REPO / "training"


def test_the_package_imports_nothing_from_the_rest_of_the_repository() -> None:
    # infra imports training (the manifest schema), never the reverse; models use the library.
    forbidden = {"infra", "serving", "policies", "models", "tests", "benchmarks", "mlplatform"}
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
