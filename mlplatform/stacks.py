"""Facts about a stack that CI and the tool must resolve the same way."""

from __future__ import annotations

from pathlib import Path

from infra.stackfile import PROJECT_ROOT, load_stack_file
from policies.offline import config_path


def policy_config(path: Path) -> Path | None:
    """The policy pack config a stack is checked with, relative to the project folder: its
    `mlplatform:environment` picks `policies/config.<environment>.json` (None when that file
    does not exist and the pack's defaults apply). The offline plan uses the same rule."""
    config, _ = load_stack_file(path)
    found = config_path(config.environment)
    if not found.is_file():
        return None
    return (
        found.resolve().relative_to(PROJECT_ROOT) if found.is_relative_to(PROJECT_ROOT) else found
    )
