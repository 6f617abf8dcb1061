"""The stack's AWS Budget: the same monthly limit the cost policy checks, alerting the stack's
alert topic (mlplatform:alerts)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import config
from infra.context import StackContext

# Alert when actual spend passes 80% of the limit, and when the month is forecast to exceed it.
ALERTS = (("ACTUAL", 80.0), ("FORECASTED", 100.0))


@dataclass(frozen=True)
class BudgetArgs:
    """The `mlplatform:budget` section (limit, who to tell) and the stack whose spend it scopes."""

    settings: config.Budget
    context: StackContext
    alert_topic_arn: pulumi.Input[str]  # the stack's alert topic (mlplatform:alerts)


class StackBudget(pulumi.ComponentResource):
    """A monthly cost budget filtered to this stack's resources by their `stack` tag.

    The filter needs `stack` activated once per account as a cost allocation tag (Billing
    console, or `aws ce update-cost-allocation-tags-status`); it is account-wide, so no single
    stack owns it.
    """

    def __init__(self, name: str, args: BudgetArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:budget:StackBudget", name, None, opts)
        notifications: list[aws.budgets.BudgetNotificationArgsDict] = [
            {
                "comparison_operator": "GREATER_THAN",
                "notification_type": kind,
                "threshold": threshold,
                "threshold_type": "PERCENTAGE",
                "subscriber_sns_topic_arns": [args.alert_topic_arn],
            }
            for kind, threshold in ALERTS
        ]
        budget = aws.budgets.Budget(
            name,
            name=name,
            budget_type="COST",
            limit_amount=f"{args.settings.monthly_usd:.2f}",
            limit_unit="USD",
            time_unit="MONTHLY",
            cost_filters=[{"name": "TagKeyValue", "values": [f"user:stack${args.context.stack}"]}],
            notifications=notifications,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.budget_name = budget.name
        self.register_outputs({"budgetName": self.budget_name})
