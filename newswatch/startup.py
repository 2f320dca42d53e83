"""Loading a command's modules without the garbage collector walking them.

Importing what a Prefect poll needs creates several hundred thousand objects that
live as long as the process (Prefect's, pydantic's and SQLAlchemy's modules, models
and schemas), and the collector's full passes over them while they were created took
0.2-0.25 s of a 2 s warm poll. `loading()` turns the collector off while a command
imports them. In a process the command line owns (`claim`), it also freezes what was
loaded, so that no later collection walks it again; elsewhere (tests, a caller's
process) it leaves the collector as it was.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_claimed = False


def claim() -> None:
    """Say that this process does one piece of newswatch work and ends (the command
    line's process, a poll's story worker)."""
    global _claimed
    _claimed = True


@contextmanager
def loading() -> Iterator[None]:
    """Import inside this block with the collector off; in a claimed process, what is
    alive at its end is frozen (it lives as long as the process anyway)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if _claimed:
            gc.freeze()
        if was_enabled:
            gc.enable()
