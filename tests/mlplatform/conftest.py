"""Stand-ins for what the operating commands talk to: AWS (moto as a server process), the Pulumi
CLI (a fake `pulumi` on PATH that prints a stack's outputs) and nothing else."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}

FAKE_PULUMI = """#!{python}
# `pulumi stack output --json --stack S`: prints S's outputs from {outputs}; logs each call.
import json, sys
args = sys.argv[1:]
with open({log!r}, "a") as log:
    log.write(" ".join(args) + "\\n")
stacks = json.load(open({outputs!r}))
if args[:3] != ["stack", "output", "--json"] or "--stack" not in args:
    sys.exit("fake pulumi: unexpected arguments " + " ".join(args))
stack = args[args.index("--stack") + 1]
if stack not in stacks:
    sys.exit(f"error: no stack named '{{stack}}' found")
print(json.dumps(stacks[stack], indent=2))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's server as its own process on loopback, as boto3 would meet AWS."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Point boto3 (through AWS_ENDPOINT_URL) at a local endpoint with dummy credentials."""

    def use(url: str) -> None:
        for key, value in {**AWS_ENV, "AWS_ENDPOINT_URL": url}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("AWS_PROFILE", raising=False)

    return use


@pytest.fixture
def moto(moto_url: str) -> Callable[[str], Any]:
    """boto3 clients of the moto server, for arranging and checking what it holds."""

    def client(service: str) -> Any:
        return boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=moto_url,
            **{k.lower(): v for k, v in AWS_ENV.items()},
        )

    return client


class FakePulumi:
    """The fake CLI's outputs per stack, and the calls it received."""

    def __init__(self, directory: Path):
        self.outputs_file = directory / "outputs.json"
        self.log = directory / "calls.log"
        self.stacks: dict[str, dict[str, Any]] = {}

    def set(self, stack: str, outputs: dict[str, Any]) -> None:
        self.stacks[stack] = outputs
        self.outputs_file.write_text(json.dumps(self.stacks))

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def fake_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakePulumi:
    """A `pulumi` executable first on PATH that answers `stack output --json --stack S`."""
    directory = tmp_path / "fake-pulumi"
    directory.mkdir()
    fake = FakePulumi(directory)
    fake.outputs_file.write_text("{}")
    script = directory / "pulumi"
    script.write_text(
        FAKE_PULUMI.format(python=sys.executable, outputs=str(fake.outputs_file), log=str(fake.log))
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ.get('PATH', '')}")
    return fake


@pytest.fixture
def no_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No Pulumi CLI on PATH: the commands fall back to the offline plan's outputs."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
