"""The estimate in words and pictures, for the PR comment and the terminal: what the stack bills
while idle, a chart of where the money goes, what each network choice costs, and the usage
assumptions the figures rest on. Deterministic: same estimate, same text."""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlplatform.cost.lines import GROUPS, Estimate


def usd(value: float) -> str:
    """Dollars with cents and thousands separators."""
    return f"${value:,.2f}"


def idle_sentence(est: Estimate, scale_out: float) -> str:
    """The three figures a reader wants first."""
    return (
        f"Idle (nothing running): {usd(est.monthly_min)}/month. Expected "
        f"{usd(est.monthly_expected(scale_out))}/month ({scale_out:.0%} scale-out, assumed "
        f"usage); at most {usd(est.monthly_max)}/month."
    )


def pie(est: Estimate, scale_out: float) -> str:
    """A Mermaid pie of the expected monthly cost by kind (empty when nothing costs)."""
    slices = est.by_group(scale_out)
    if not slices:
        return ""
    lines = ["```mermaid", "pie showData", "  title Expected cost a month by kind (USD)"]
    lines += [f'  "{group}" : {slices[group]:.2f}' for group in GROUPS if group in slices]
    return "\n".join([*lines, "```"])


@dataclass(frozen=True)
class NetworkChoice:
    """One network decision of the stack, what it is for and what it costs a month."""

    choice: str
    setting: str
    purpose: str
    monthly_min: float
    monthly_max: float


def network_choices(
    est: Estimate, nat_setting: str, private_endpoints: bool
) -> list[NetworkChoice]:
    """NAT, interface endpoints and flow logs, each with its setting and purpose."""

    def total(*kinds: str) -> tuple[int, float, float]:
        found = [line for line in est.lines if line.kind in kinds]
        return (
            sum(line.kind == kinds[0] for line in found),
            round(math.fsum(line.monthly_min for line in found), 2),
            round(math.fsum(line.monthly_max for line in found), 2),
        )

    nats, nat_min, nat_max = total("NAT gateway", "public IPv4")
    endpoints, ep_min, ep_max = total("interface endpoint")
    logs, log_min, log_max = total("flow log")
    nat = f"`natGateways: {nat_setting}`: {nats}" if nats else "none (no cluster needs egress)"
    private = f"`privateEndpoints: {str(private_endpoints).lower()}`: {endpoints}"
    return [
        NetworkChoice(
            "NAT gateways", nat, "outbound internet for the cluster's nodes", nat_min, nat_max
        ),
        NetworkChoice(
            "interface endpoints",
            private,
            "AWS APIs (ECR, STS, SageMaker, EKS) without the internet",
            ep_min,
            ep_max,
        ),
        NetworkChoice("S3 gateway endpoint", "always", "S3 traffic off the NAT gateways", 0, 0),
        NetworkChoice(
            "flow logs",
            f"always: {logs}",
            "a record of every connection, for audit",
            log_min,
            log_max,
        ),
    ]


def network_markdown(choices: list[NetworkChoice]) -> list[str]:
    return [
        "| choice | setting | what it is for | idle | max |",
        "| --- | --- | --- | ---: | ---: |",
        *[
            f"| {c.choice} | {c.setting} | {c.purpose} | {usd(c.monthly_min)} | {usd(c.monthly_max)} |"
            for c in choices
        ],
    ]


def stacks_table(rows: list[tuple[str, str, Estimate, float, float]]) -> str:
    """Idle, expected and max of several stacks: (stack, environment, estimate, scale-out,
    budget) each."""
    lines = [
        "| stack | environment | idle | expected | max | budget |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {stack} | {environment} | {usd(est.monthly_min)} | "
        f"{usd(est.monthly_expected(scale_out))} | {usd(est.monthly_max)} | {usd(budget)} |"
        for stack, environment, est, scale_out, budget in rows
    ]
    return "\n".join(lines)
