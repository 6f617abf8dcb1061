"""The project files Pulumi and pip read: one source of truth for versions, Pulumi's layout."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_pulumi_project_uses_pip_toolchain_infra_program_and_stacks_dir():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "mlplatform"
    assert project["runtime"] == {
        "name": "python",
        "options": {"toolchain": "pip", "virtualenv": ".venv"},
    }
    assert project["main"] == "infra/"
    assert (ROOT / project["main"] / "__main__.py").is_file()
    assert project["stackConfigDir"] == "stacks"
    for stack in ("dev", "staging", "prod"):
        assert (ROOT / "stacks" / f"Pulumi.{stack}.yaml").is_file()


def test_pulumi_install_installs_this_project_with_its_pins():
    # Pulumi's pip toolchain runs `pip install -r requirements.txt` in the project root.
    lines = [
        line.strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines == ["-e ."]


def test_every_dependency_is_pinned_exactly():
    project = _pyproject()["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    for requirement in requirements:
        if requirement.startswith("mlplatform["):
            continue
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[a-z,]+\])?==[0-9][0-9A-Za-z.]*", requirement), (
            requirement
        )


def test_torch_is_the_cpu_wheel_version_the_images_also_use():
    workloads = _pyproject()["project"]["optional-dependencies"]["workloads"]
    assert "torch==2.13.0" in workloads
    for dockerfile in ("images/Dockerfile",):
        assert "2.13.0" in (ROOT / dockerfile).read_text(), dockerfile


def test_console_script_is_the_cli():
    assert _pyproject()["project"]["scripts"] == {"mlplatform": "mlplatform.cli:main"}


def test_infra_never_imports_the_tool():
    """`infra/` is what `pulumi up` runs; the tool (`mlplatform/`) imports it, not the reverse."""
    offenders = []
    for path in (ROOT / "infra").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [
                f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "mlplatform"
            ]
    assert offenders == []
