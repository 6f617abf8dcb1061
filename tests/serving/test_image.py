"""The serving image's build context: Dockerfile rules, pins, and a self-contained package."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest

from tests.serving.conftest import REPO, ServerProcess, free_port

SERVING = REPO / "serving"
DOCKERFILE = (SERVING / "Dockerfile").read_text()


def instructions(name: str) -> list[str]:
    """The arguments of every Dockerfile instruction called `name` (continuations joined)."""
    text = DOCKERFILE.replace("\\\n", " ")
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.*)$", text, re.MULTILINE)]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), str(SERVING / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_a_pinned_cuda_pytorch_runtime() -> None:
    [arg] = [a for a in instructions("ARG") if a.startswith("BASE_IMAGE=")]
    image = arg.removeprefix("BASE_IMAGE=")
    assert re.fullmatch(r"pytorch/pytorch:\d+\.\d+\.\d+-cuda[\d.]+-cudnn\d+-runtime", image)
    torch_pin = next(
        d
        for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
            "optional-dependencies"
        ]["workloads"]
        if d.startswith("torch==")
    )
    assert image.split(":")[1].startswith(torch_pin.removeprefix("torch==") + "-")


def test_image_runs_as_a_non_root_user() -> None:
    [user] = instructions("USER")
    assert user.split(":")[0] not in ("0", "root")


def test_entrypoint_is_exec_form_and_serve_is_the_argument() -> None:
    assert instructions("ENTRYPOINT") == ['["python", "-m", "serving"]']
    assert instructions("CMD") == ['["serve"]']
    assert "com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true" in DOCKERFILE


def test_healthcheck_probes_the_ping_route() -> None:
    [check] = instructions("HEALTHCHECK")
    assert 'CMD ["python", "-m", "serving", "healthcheck"]' in check


def test_requirements_pin_the_same_versions_as_the_workloads_extra() -> None:
    workloads = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["workloads"]
    lines = (SERVING / "requirements.txt").read_text().splitlines()
    pins = [line for line in lines if line and not line.startswith("#")]
    assert pins, "serving/requirements.txt pins nothing"
    for pin in pins:
        assert "==" in pin, pin
        assert pin in workloads, f"{pin} differs from pyproject.toml's workloads extra"
    assert not any(pin.startswith("torch") for pin in pins), "torch comes from the base image"


def test_serving_package_imports_nothing_from_the_rest_of_the_repository() -> None:
    forbidden = {"infra", "training", "policies", "tests", "benchmarks"}
    for path in SERVING.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


@pytest.mark.parametrize("server", ["torchscript"], indirect=True)
def test_healthcheck_command_exits_0_on_a_ready_server_and_1_on_a_closed_port(
    server: ServerProcess,
) -> None:
    def healthcheck(port: int) -> int:
        command = [sys.executable, "-m", "serving", "healthcheck", str(port)]
        return subprocess.run(command, cwd=REPO, capture_output=True).returncode

    assert httpx.get(f"{server.url}/ping").status_code == 200
    assert healthcheck(server.port) == 0
    assert healthcheck(free_port()) == 1


@pytest.mark.parametrize("server", ["torchscript"], indirect=True)
def test_healthcheck_finds_the_port_where_serve_would_listen(server: ServerProcess) -> None:
    for variable in ("SAGEMAKER_BIND_TO_PORT", "SERVING_PORT"):
        env = {**os.environ, variable: str(server.port)}
        command = [sys.executable, "-m", "serving", "healthcheck"]
        assert subprocess.run(command, cwd=REPO, env=env, capture_output=True).returncode == 0


def test_unknown_command_exits_2_with_usage() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "serving", "train"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "serve" in result.stderr
