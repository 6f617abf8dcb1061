"""AWS calls for the operating commands: clients that retry, and refusals explained in one line."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
}
THROTTLED = {"Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException"}


class OperationError(Exception):
    """A failed operation, explained in one line."""


def aws_client(service: str, region: str, attempts: int | None = None) -> Any:
    """A boto3 client that retries throttling and transient errors with adaptive back-off
    (5 attempts in all unless AWS_MAX_ATTEMPTS says otherwise)."""
    import boto3
    from botocore.config import Config

    total = attempts or int(os.environ.get("AWS_MAX_ATTEMPTS", "5"))
    retries = Config(
        retries={"mode": "adaptive", "total_max_attempts": total},
        connect_timeout=5,
        read_timeout=70,
    )
    return boto3.client(service, region_name=region, config=retries)


def explain(error: Exception, doing: str) -> OperationError:
    """Turn a botocore error into a message for people."""
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(error, NoCredentialsError):
        return OperationError(
            f"{doing}: no AWS credentials (set AWS_PROFILE or run `aws sso login`)"
        )
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "")
        operation = error.operation_name
        if code in DENIED:
            return OperationError(f"{doing}: AWS denied {operation} ({code}): {message}")
        if code in THROTTLED:
            return OperationError(
                f"{doing}: AWS kept throttling {operation} after retries; try again later"
            )
        return OperationError(f"{doing}: {operation} failed ({code}): {message}")
    return OperationError(f"{doing}: {type(error).__name__}: {error}")


def call(doing: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    """One AWS call; every botocore failure becomes an OperationError."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(**kwargs)
    except (BotoCoreError, ClientError) as error:
        raise explain(error, doing) from None
