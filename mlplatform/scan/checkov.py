"""checkov, run from its own venv, over rendered plans; findings explained or reported.

checkov pins its own dependencies (boto3 among them) at versions the project's cannot share, so
it lives in `.venv-scan`, created from `scanners/requirements.txt` the first time it is needed
and reused while that file is unchanged. Every finding must be fixed or written down, with the
reason, in `scanners/suppressions.yaml`; a suppression that matches nothing is stale.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import subprocess
import sys
import venv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCAN_VENV = PROJECT_ROOT / ".venv-scan"
REQUIREMENTS = PROJECT_ROOT / "scanners" / "requirements.txt"
SUPPRESSIONS = PROJECT_ROOT / "scanners" / "suppressions.yaml"
FRAMEWORKS = ("terraform_plan", "kubernetes", "dockerfile")


@dataclass(frozen=True)
class Finding:
    """One failed checkov check: which, on what, in which stack's render."""

    check: str
    name: str
    resource: str
    stack: str
    framework: str

    def __str__(self) -> str:
        return f"{self.stack}: {self.check} {self.resource} ({self.name})"


@dataclass(frozen=True)
class Suppression:
    """An accepted finding: the check, the resources (glob), the stacks, and why."""

    check: str
    resource: str
    why: str
    stacks: tuple[str, ...] = ()

    def matches(self, finding: Finding) -> bool:
        return (
            finding.check == self.check
            and fnmatch.fnmatchcase(finding.resource, self.resource)
            and (not self.stacks or finding.stack in self.stacks)
        )


def load_suppressions(path: Path = SUPPRESSIONS) -> list[Suppression]:
    entries = yaml.safe_load(path.read_text()) or []
    found = []
    for e in entries:
        if not str(e.get("why", "")).strip():
            raise ValueError(f"{path}: suppression of {e.get('check')} has no reason (why)")
        found.append(
            Suppression(e["check"], e["resource"], e["why"].strip(), tuple(e.get("stacks", ())))
        )
    return found


def _digest() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def ensure_venv(path: Path = SCAN_VENV) -> Path:
    """The checkov executable of the scanner venv, (re)created when the requirements changed.
    Needs PyPI the first time; nothing else."""
    marker = path / "requirements.sha256"
    checkov = path / "bin" / "checkov"
    if checkov.exists() and marker.exists() and marker.read_text() == _digest():
        return checkov
    venv.EnvBuilder(clear=True, with_pip=True).create(path)
    subprocess.run(
        [
            str(path / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(REQUIREMENTS),
        ],
        check=True,
    )
    marker.write_text(_digest())
    return checkov


def run(directory: Path, checkov: Path | None = None) -> list[Finding]:
    """Every failed check under `directory`, whose first-level folders are stack names."""
    checkov = checkov or ensure_venv()
    result = subprocess.run(
        [
            str(checkov),
            "-d",
            str(directory),
            "--framework",
            *FRAMEWORKS,
            "-o",
            "json",
            "--quiet",
            "--skip-download",
            "--compact",
        ],
        capture_output=True,
        text=True,
        cwd=directory,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(directory),
            "BC_SKIP_MAPPING": "TRUE",
            "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
            "LOG_LEVEL": "ERROR",
        },
    )
    if result.returncode not in (0, 1) or not result.stdout.strip():
        raise RuntimeError(f"checkov failed ({result.returncode}): {result.stderr[-2000:]}")
    reports = json.loads(result.stdout)
    findings = []
    for report in reports if isinstance(reports, list) else [reports]:
        for failed in report["results"]["failed_checks"]:
            stack = Path(failed["file_path"].lstrip("/")).parts[0]
            findings.append(
                Finding(
                    failed["check_id"],
                    failed["check_name"],
                    failed["resource"],
                    stack,
                    report["check_type"],
                )
            )
    return sorted(findings, key=lambda f: (f.stack, f.check, f.resource))


def explain(
    findings: Iterable[Finding], suppressions: Sequence[Suppression]
) -> tuple[list[Finding], list[Suppression]]:
    """(findings no suppression explains, suppressions that explain nothing)."""
    findings = list(findings)
    unexplained = [f for f in findings if not any(s.matches(f) for s in suppressions)]
    unused = [s for s in suppressions if not any(s.matches(f) for f in findings)]
    return unexplained, unused


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m mlplatform.scan [STACK ...]`: render, scan, print what is not explained."""
    import tempfile

    from infra.stackfile import STACKS_DIR
    from mlplatform.plan import plan_stack
    from mlplatform.scan.render import render

    stacks = list(argv if argv is not None else sys.argv[1:]) or ["dev", "staging", "prod"]
    with tempfile.TemporaryDirectory() as tmp:
        for stack in stacks:
            render(plan_stack(STACKS_DIR / f"Pulumi.{stack}.yaml", stack), Path(tmp) / stack)
        findings = run(Path(tmp))
    unexplained, _ = explain(findings, load_suppressions())
    for stack in stacks:
        print(f"{stack}: {sum(f.stack == stack for f in findings)} checkov findings")
    for finding in unexplained:
        print(f"unexplained: {finding}")
    return 1 if unexplained else 0
