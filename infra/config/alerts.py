"""The `mlplatform:alerts` section: who hears when something needs a person."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from infra.config.base import Section


class Alerts(Section):
    """One SNS topic per stack that every alarm, budget alert and failed run notifies."""

    emails: list[str] = Field(
        default_factory=list,
        description="Who the stack's alert topic e-mails (each confirms once): budget alerts, "
        "endpoint and serving alarms, failed training pipelines, data drift.",
    )

    @field_validator("emails")
    @classmethod
    def _emails(cls, emails: list[str]) -> list[str]:
        for email in emails:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
                raise ValueError(f"{email!r} is not an email address")
        return emails
