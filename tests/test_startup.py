"""Loading a command's modules without the garbage collector walking them
(`newswatch.startup`): off while they load, frozen afterwards only in a process the
command line owns."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator

import pytest

from newswatch.startup import loading


@pytest.fixture
def collector_restored() -> Iterator[None]:
    enabled = gc.isenabled()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        else:
            gc.disable()


def test_the_collector_is_off_while_modules_load_and_on_again_after(
    collector_restored: None,
) -> None:
    gc.enable()
    with loading():
        inside = gc.isenabled()

    assert (inside, gc.isenabled()) == (False, True)


def test_a_collector_that_was_off_stays_off(collector_restored: None) -> None:
    gc.disable()
    with loading():
        pass

    assert not gc.isenabled()


def test_the_collector_comes_back_on_when_loading_fails(collector_restored: None) -> None:
    gc.enable()
    with pytest.raises(ImportError), loading():
        import newswatch.no_such_module  # type: ignore[import-not-found]  # noqa: F401

    assert gc.isenabled()


def test_outside_the_command_line_nothing_is_frozen(collector_restored: None) -> None:
    """Tests and callers' processes go on after a command: their objects stay collectable."""
    frozen = gc.get_freeze_count()
    with loading():
        pass

    assert gc.get_freeze_count() == frozen


_CLAIMED = """
import gc
from newswatch.startup import claim, loading
claim()
with loading():
    import json
print(gc.get_freeze_count() > 0, gc.isenabled())
"""


def test_in_the_command_lines_process_what_was_loaded_is_frozen() -> None:
    finished = subprocess.run(
        [sys.executable, "-c", _CLAIMED], capture_output=True, text=True, timeout=60, check=True
    )

    assert finished.stdout.split() == ["True", "True"]
