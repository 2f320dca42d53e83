"""Shared test setup.

Fixtures live in `tests/fixtures/` by what they provide (a loopback HTTP feed
server, databases, an SMTP server, Prefect); this file only wires them in and
keeps every test offline and quiet.
"""

from __future__ import annotations

import os
from pathlib import Path

# Before anything imports prefect: no telemetry, no internet, quiet logs.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS", "false")

import pytest

pytest_plugins = [
    "tests.fixtures.http",
    "tests.fixtures.db",
    "tests.fixtures.smtp",
    "tests.fixtures.prefect",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS = REPO_ROOT.parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The third-party feed corpus in ../shared/corpus (read-only)."""
    if not CORPUS.is_dir():
        pytest.fail(f"feed corpus not found at {CORPUS}")
    return CORPUS
