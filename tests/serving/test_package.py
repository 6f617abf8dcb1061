"""The serving package: self-contained (its own named build context) and its healthcheck command."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import httpx
import pytest

from tests.serving.conftest import REPO, ServerProcess, free_port

SERVING = REPO / "serving"


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
