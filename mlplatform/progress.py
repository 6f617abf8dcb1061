"""Progress on stderr while a command works: a spinner that says what it is doing."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

# Told what is going on: "validating …", "running the program (N resources so far)".
Progress = Callable[[str], None]


@contextlib.contextmanager
def spinner(quiet: bool = False) -> Iterator[Progress | None]:
    """A spinner on stderr, updated by the callable it yields; None (and nothing shown, rich
    not even imported) when stderr is not a terminal or with `--quiet`."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console

    with Console(stderr=True, highlight=False, markup=False).status("starting") as status:
        yield status.update
