"""Blocks of README.md generated from code, each between two marker comments."""

from __future__ import annotations

from pathlib import Path


def block(path: Path, start: str, end: str) -> str:
    """The text between the markers, without them."""
    text = path.read_text()
    return text[text.index(start) + len(start) : text.index(end)].strip()


def update(path: Path, start: str, end: str, text: str) -> bool:
    """Put `text` between the markers; True when the file changed."""
    old = path.read_text()
    head, tail = old.index(start), old.index(end) + len(end)
    new = f"{old[:head]}{start}\n{text.rstrip()}\n{end}{old[tail:]}"
    path.write_text(new)
    return new != old
