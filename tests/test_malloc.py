"""The malloc arena cap (newswatch/malloc.py), checked in fresh processes: glibc reads
MALLOC_ARENA_MAX once, at start-up, and this test process may have it set."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not os.confstr("CS_GNU_LIBC_VERSION"),
    reason="arenas are glibc's",
)

REPORT = "import os; print(os.environ.get('MALLOC_ARENA_MAX'))"
CAP_AND_REPORT = (
    f"from newswatch.malloc import limit_malloc_arenas; print(limit_malloc_arenas()); {REPORT}"
)


def run(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_the_cap_is_set_for_the_process_and_its_children() -> None:
    assert run(CAP_AND_REPORT).split() == ["True", "2"]


def test_a_cap_the_environment_sets_is_left_alone() -> None:
    assert run(CAP_AND_REPORT, MALLOC_ARENA_MAX="4").split() == ["False", "4"]


def test_the_command_line_sets_the_cap_before_it_runs_a_command() -> None:
    code = (
        "import contextlib; from newswatch.cli import main\n"
        "with contextlib.suppress(SystemExit): main(['--version'])\n"
        f"{REPORT}"
    )
    assert run(code).splitlines()[-1] == "2"
