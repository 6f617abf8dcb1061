"""Stack variants: a shipped stack file with some config changed, for what-if plans and tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from infra.stackfile import STACKS_DIR


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `overrides` into a copy of `base`; a None value deletes the key."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def write_variant(
    directory: Path,
    base: str,
    overrides: dict[str, Any],
    name: str = "variant",
    stacks_dir: Path = STACKS_DIR,
) -> Path:
    """Write stack `base` with `overrides` merged into its `config:` as
    `<directory>/Pulumi.<name>.yaml` and return the path."""
    document = yaml.safe_load((stacks_dir / f"Pulumi.{base}.yaml").read_text())
    document["config"] = merge(document["config"], overrides)
    path = directory / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
