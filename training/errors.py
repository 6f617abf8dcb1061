"""Mistakes a person can fix from the message alone: the run prints one line, no traceback."""

from __future__ import annotations


class UserError(ValueError):
    """A mistake in a job's inputs that its message alone explains."""


class HyperparameterError(UserError):
    """A hyperparameter that is unknown, of the wrong type or out of its declared bounds."""


class DatasetError(UserError):
    """A channel that is missing, incomplete or does not match its manifest."""


class ExportError(UserError):
    """An exported model that does not behave like the trained one (conversion check failed)."""
