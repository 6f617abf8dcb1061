"""Offline plan timing: `mlplatform plan --stack S` as a whole process, per stack.

Baseline, side by side: a process that only imports what the program imports (pulumi,
pulumi_aws, pulumi_kubernetes, pydantic, botocore models), so the ratio shows what planning adds
on top of start-up. Prints min/median/max wall seconds, the median CPU seconds (user + system:
steadier than wall time on a shared machine) and the median ratio to the baseline.

    .venv/bin/python benchmarks/plan_bench.py [--runs 5] [--stacks dev staging prod]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra.stackfile import STACKS_DIR  # noqa: E402  (after the path: run as a script)

BASELINE = (
    "import pulumi, pulumi_aws, pulumi_kubernetes, pydantic;"
    "from infra.config import ec2_instance_types, aws_regions; ec2_instance_types(); aws_regions()"
)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(command: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each run."""
    walls, cpus = [], []
    for _ in range(runs):
        cpu, start = _children_cpu(), time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - start)
        cpus.append(_children_cpu() - cpu)
    return walls, cpus


def _row(label: str, walls: list[float], cpus: list[float], base: float) -> str:
    median = statistics.median(walls)
    return (
        f"{label:<34} {min(walls):7.2f} {median:7.2f} {max(walls):7.2f} "
        f"{statistics.median(cpus):7.2f} {median / base:>11.2f}"
    )


def main() -> int:
    stacks = sorted(p.name.split(".")[1] for p in STACKS_DIR.glob("Pulumi.*.yaml"))
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stacks", nargs="+", default=stacks)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "mlplatform"]

    base_walls, base_cpus = _time([sys.executable, "-c", BASELINE], args.runs)
    base = statistics.median(base_walls)
    print(f"{'command':<34} {'min':>7} {'median':>7} {'max':>7} {'cpu':>7} {'x baseline':>11}")
    print(_row("baseline: imports only", base_walls, base_cpus, base))
    for stack in args.stacks:
        walls, cpus = _time([*cli, "plan", "--stack", stack], args.runs)
        print(_row(f"mlplatform plan --stack {stack}", walls, cpus, base))
    print(f"({args.runs} runs each, seconds, whole processes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
