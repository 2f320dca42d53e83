"""Opening a database already at the newest revision does not load Alembic.

Alembic with Mako and Pygments is a third of a second of CPU on every process start;
`open_database` reads the head revision from the revision files itself and only
hands the database to Alembic when it is not at that head.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from storage.db import _head_revision, open_database

PROBE = """
import sys
from storage.db import open_database
try:
    open_database(sys.argv[1]).dispose()
except Exception:  # an unknown revision: Alembic refuses it, after loading
    pass
print('alembic' in sys.modules)
"""


def _alembic_loaded_opening(url: str) -> bool:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, url], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    return out.stdout.strip() == "True"


def test_a_database_at_head_opens_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nw.db'}"
    open_database(url).dispose()
    assert not _alembic_loaded_opening(url)


def test_a_database_at_another_revision_is_left_to_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nw.db'}"
    db = open_database(url)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'older'"))
    db.dispose()
    assert _alembic_loaded_opening(url)


def test_the_head_read_from_the_revision_files_is_alembics() -> None:
    from storage.migrations import head_revision

    assert _head_revision() == head_revision()
