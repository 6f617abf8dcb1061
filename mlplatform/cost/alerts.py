"""Keys, secrets, alarms, topics and schedules: small monthly fees or per-use prices."""

from __future__ import annotations

from mlplatform.cost.lines import Pricing, per_month
from mlplatform.cost.usage import runs_per_month
from policies.rules import StackResource

SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"


def key(r: StackResource, c: Pricing) -> None:
    c.add(
        r,
        "KMS key",
        "keys and alerts",
        "the stack key (requests extra)",
        c.service("kmsKeyMonthly"),
    )


def secret(r: StackResource, c: Pricing) -> None:
    c.add(r, "secret", "keys and alerts", "per secret", c.service("secretMonthly"))


def alarm(r: StackResource, c: Pricing) -> None:
    c.add(r, "alarm", "keys and alerts", "per alarm", c.service("cloudwatchAlarmMonthly"))


def dashboard(r: StackResource, c: Pricing) -> None:
    c.add(
        r, "dashboard", "keys and alerts", "per dashboard", c.service("cloudwatchDashboardMonthly")
    )


def topic(r: StackResource, c: Pricing) -> None:
    messages = float(c.usage["topicMessagesPerMonth"])
    emails = sum(
        1
        for s in c.of_type(SUBSCRIPTION)
        if s.props.get("topic") == r.props.get("arn") and s.props.get("protocol") == "email"
    )
    per_message = (
        c.service("snsPublishPerMillion") / 1e6 + emails * c.service("snsEmailPer100k") / 1e5
    )
    alerts = r.name.endswith("-alerts")
    kind = "alert topic" if alerts else "SNS topic"
    to = f", {emails} e-mail subscriber{'s' * (emails != 1)}" if alerts else ""
    detail = f"per message: {messages:,.0f} a month{to}"
    c.add(r, kind, "keys and alerts", detail, 0, messages * per_message, scales=False)
    c.assume(
        f"SNS topics: {messages:,.0f} messages a month each ({c.usage.source('topicMessagesPerMonth')})"
    )


def schedule(r: StackResource, c: Pricing) -> None:
    expression = str(r.props.get("scheduleExpression"))
    runs = runs_per_month(expression)
    detail = f"EventBridge Scheduler {expression}: {per_month(runs)} invocations a month"
    c.add(
        r,
        "schedule",
        "keys and alerts",
        detail,
        runs * c.service("schedulerPerMillionInvocations") / 1e6,
    )
