"""The `mlplatform:budget` section: the monthly limit and who hears about it."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from infra.config.base import Section


class Budget(Section):
    """Monthly spend limit that the cost estimate and policies check against."""

    monthly_usd: float = Field(
        default=1000.0, gt=0, description="Estimated monthly cost must stay under this (USD)."
    )
    alert_emails: list[str] = Field(
        default_factory=list, description="Who AWS Budgets notifies at 80% and 100%."
    )

    @field_validator("alert_emails")
    @classmethod
    def _emails(cls, emails: list[str]) -> list[str]:
        for email in emails:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
                raise ValueError(f"{email!r} is not an email address")
        return emails
