"""The house rules: `infra/` is the Pulumi program and nothing else, components share one contract,
and the type checker passes."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pulumi

ROOT = Path(__file__).resolve().parent.parent
TOOL_PACKAGES = ("mlplatform",)
# Every package of the project is type-checked: the program, the tool, the policies and the
# workloads (training and serving).
TYPED_PACKAGES = ["infra", "mlplatform", "policies", "serving", "training"]


def python_files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_the_program_never_imports_the_tool():
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m for m in imported_modules(path) if m.split(".")[0] in TOOL_PACKAGES
        )
        for path in python_files("infra")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_offline_plan_mocks_live_in_the_program():
    mocks = []
    for path in python_files("infra"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(b) for b in node.bases}
                if any(b.endswith("Mocks") or b.endswith("MockMonitor") for b in bases):
                    mocks.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert mocks == []


def component_classes() -> list[type[pulumi.ComponentResource]]:
    import infra.components

    classes = []
    for info in pkgutil.iter_modules(infra.components.__path__):
        module = importlib.import_module(f"infra.components.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, pulumi.ComponentResource) and cls.__module__ == module.__name__:
                classes.append(cls)
    return classes


def registered_type(cls: type) -> str:
    """The type token a component passes to ComponentResource.__init__."""
    source = inspect.getsource(cls.__init__)
    for node in ast.walk(ast.parse(inspect.cleandoc("\n" + source))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "__init__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            return node.args[0].value
    raise AssertionError(f"{cls.__name__} registers no literal type token")


def test_every_component_type_token_ends_with_its_class_name():
    mismatched = {
        cls.__name__: registered_type(cls)
        for cls in component_classes()
        if registered_type(cls).rsplit(":", 1)[-1] != cls.__name__
    }
    assert mismatched == {}


def test_every_component_takes_one_args_object_and_options():
    shapes = {
        cls.__name__: list(inspect.signature(cls.__init__).parameters)
        for cls in component_classes()
    }
    assert {n: s for n, s in shapes.items() if s != ["self", "name", "args", "opts"]} == {}


def test_planned_components_are_the_programs_classes(plan):
    tokens = {registered_type(cls) for cls in component_classes()}
    planned = {r.type for r in plan.resources if r.type.startswith("mlplatform:")}
    assert planned <= tokens


def test_pyright_finds_no_errors_in_any_package():
    # Without paths pyright checks pyrightconfig.json's include list: all of TYPED_PACKAGES.
    config = json.loads((ROOT / "pyrightconfig.json").read_text())
    assert sorted(config["include"]) == TYPED_PACKAGES
    pyright = Path(sys.executable).with_name("pyright")
    result = subprocess.run(
        [str(pyright), "--outputjson"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
