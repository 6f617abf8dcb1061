"""Offline plan timing: `mlplatform plan --stack S` as a whole process, per shipped stack.

Baseline, side by side: a process that only imports what the program imports (pulumi,
pulumi_aws, pulumi_kubernetes, pydantic, botocore models), so the ratio shows what planning adds
on top of start-up. Prints min/median/max seconds and the median ratio.

    .venv/bin/python benchmarks/plan_bench.py [--runs 5] [--stacks dev staging prod]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = (
    "import pulumi, pulumi_aws, pulumi_kubernetes, pydantic;"
    "from infra.config import ec2_instance_types, aws_regions; ec2_instance_types(); aws_regions()"
)


def _time(command: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stacks", nargs="+", default=["dev", "staging", "prod"])
    args = parser.parse_args()
    cli = str(Path(sys.executable).parent / "mlplatform")

    baseline = _time([sys.executable, "-c", BASELINE], args.runs)
    base_median = statistics.median(baseline)
    print(f"{'command':<34} {'min':>7} {'median':>7} {'max':>7} {'x baseline':>11}")
    print(
        f"{'baseline: imports only':<34} {min(baseline):7.2f} {base_median:7.2f} {max(baseline):7.2f} {1:>11.2f}"
    )
    for stack in args.stacks:
        times = _time([cli, "plan", "--stack", stack], args.runs)
        median = statistics.median(times)
        label = f"mlplatform plan --stack {stack}"
        print(
            f"{label:<34} {min(times):7.2f} {median:7.2f} {max(times):7.2f} {median / base_median:>11.2f}"
        )
    print(f"({args.runs} runs each, seconds, whole processes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
