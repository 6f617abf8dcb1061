"""YAML with line numbers, and errors in the form people fix fastest.

``models/x/model.yaml:12: train.hyperparameters.epochs.type = 'integer': <why>. Allowed: <what>``.
The stack files' reader in infra/ does the same for stacks; this copy lets ``training`` stay free
of infra imports (infra imports training, never the reverse).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

KeyPath = tuple[str | int, ...]
MISSING = object()  # the value shown for a key that is required but absent


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (shorter messages)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _line_map(node: yaml.Node, path: KeyPath, out: dict[KeyPath, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, key_node.value)
            out[child] = key_node.start_mark.line + 1
            _line_map(value_node, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            out[child] = item.start_mark.line + 1
            _line_map(item, child, out)


def read_yaml(text: str) -> tuple[Any, dict[KeyPath, int]]:
    """The document and the line of every key and list item in it (yaml.YAMLError if bad)."""
    document = yaml.safe_load(text)
    node = yaml.compose(text)
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _line_map(node, (), lines)
    return document, lines


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int:
    """The line of ``path``, or of its nearest parent that has one (0: unknown)."""
    return next((lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in lines), 0)


def dotted(path: KeyPath) -> str:
    """``train.metrics[0].name``."""
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return text.lstrip(".")


def did_you_mean(value: str, allowed: Iterable[str]) -> str:
    near = difflib.get_close_matches(value, sorted(allowed), n=1, cutoff=0.6)
    return f"did you mean '{near[0]}'?" if near else ""


def problem(
    source: str,
    lines: dict[KeyPath, int],
    path: KeyPath,
    value: Any,
    why: str,
    allowed: str = "",
) -> str:
    """One line: file, line, key path, value, why, and what is allowed."""
    line = line_of(lines, path)
    where = f"{source}:{line}" if line else source
    shown = "(missing)" if value is MISSING else repr(value)
    message = f"{where}: {dotted(path)} = {shown}: {why}"
    return f"{message}. Allowed: {allowed}" if allowed else message
