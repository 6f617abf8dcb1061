"""The cyclic garbage collector, paused while a plan runs.

A plan allocates a few hundred thousand long-lived objects (provider modules, resource args,
outputs) and little cyclic garbage, so the collector's passes over them free almost nothing and
cost about a second a plan. Reference counting still frees everything else as it goes.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused(freeze: bool = False) -> Iterator[None]:
    """No automatic collections inside; the collector's state is restored after (nested uses
    leave it to the outermost). `freeze`: what was made inside lives until the process exits,
    so it is moved out of the collector's reach rather than scanned once more on the way out."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()
