"""Opening the database: migrations, backends, and one-line errors."""

from __future__ import annotations

import multiprocessing
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from storage.db import Database, DatabaseError, open_database
from storage.feeds import add_sources
from storage.migrations import current_revision, head_revision, schema_diff
from storage.models import Source
from storage.records import SourceSpec
from tests.fixtures.db import open_database_in_child, process_context


def test_migrated_schema_equals_the_models(database: Database) -> None:
    assert schema_diff(database.engine) == []


def test_database_is_at_the_head_revision(database: Database) -> None:
    with database.engine.connect() as conn:
        assert current_revision(conn) == head_revision()


def test_opening_a_migrated_database_again_changes_nothing(database: Database) -> None:
    again = open_database(database.url)
    try:
        assert schema_diff(again.engine) == []
        with again.engine.connect() as conn:
            assert current_revision(conn) == head_revision()
    finally:
        again.dispose()


def test_fresh_sqlite_file_and_its_directory_are_created(tmp_path: Path) -> None:
    path = tmp_path / "deeper" / "still" / "newswatch.db"
    db = open_database(f"sqlite:///{path}")
    try:
        assert path.is_file()
        assert schema_diff(db.engine) == []
    finally:
        db.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_url: str) -> None:
    db = open_database(sqlite_url)
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert (conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 10_000
    finally:
        db.dispose()


def test_plain_postgresql_url_is_served_by_psycopg_3(postgres_url: str) -> None:
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    db = open_database(plain)
    try:
        assert db.engine.dialect.driver == "psycopg"
        with db.session() as s:
            assert s.execute(text("SELECT 1")).scalar() == 1
    finally:
        db.dispose()


def test_two_processes_migrating_a_fresh_database_at_once_both_succeed(
    empty_database_url: str,
) -> None:
    url = empty_database_url
    ctx = process_context()
    answers: multiprocessing.Queue[str] = ctx.Queue()
    procs = [
        ctx.Process(target=open_database_in_child, args=(url, answers), kwargs={"uid": None})
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    assert [answers.get(timeout=60) for _ in procs] == ["opened", "opened"]
    for p in procs:
        p.join(60)
    db = open_database(url)
    try:
        assert schema_diff(db.engine) == []
    finally:
        db.dispose()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nobody listens once the socket is closed


def test_unreachable_postgresql_is_one_line_database_error() -> None:
    port = _closed_port()
    with pytest.raises(DatabaseError) as caught:
        open_database(f"postgresql://newswatch:secret@127.0.0.1:{port}/newswatch")
    message = str(caught.value)
    assert "\n" not in message
    assert f"127.0.0.1:{port}" in message
    assert "refused" in message.lower()
    assert "secret" not in message


def test_missing_postgresql_database_is_database_error(postgres_url: str) -> None:
    missing = postgres_url.rsplit("/", 1)[0] + "/newswatch_no_such_db"
    with pytest.raises(DatabaseError, match="newswatch_no_such_db"):
        open_database(missing)


def test_unsupported_url_is_database_error() -> None:
    with pytest.raises(DatabaseError, match="unsupported database"):
        open_database("mysql://root@127.0.0.1/newswatch")


def test_garbage_url_is_database_error() -> None:
    with pytest.raises(DatabaseError, match="not a database URL"):
        open_database("not a url at all")


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A directory outside pytest's private tmp tree, so "nobody" can reach it."""
    path = Path(tempfile.mkdtemp(prefix="newswatch-ro-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _answer_of_unprivileged_open(url: str) -> str:
    # root writes whatever the mode bits say: the child acts as "nobody" instead.
    ctx = process_context()
    answers: multiprocessing.Queue[str] = ctx.Queue()
    proc = ctx.Process(target=open_database_in_child, args=(url, answers), kwargs={"uid": 65534})
    proc.start()
    answer = answers.get(timeout=60)
    proc.join(60)
    return answer


def test_read_only_sqlite_file_is_one_line_database_error(world_dir: Path) -> None:
    path = world_dir / "newswatch.db"
    open_database(f"sqlite:///{path}").dispose()
    path.chmod(0o444)
    answer = _answer_of_unprivileged_open(f"sqlite:///{path}")
    assert answer.startswith("DatabaseError: ")
    assert "readonly" in answer
    assert "\n" not in answer


def test_sqlite_file_in_a_read_only_directory_is_database_error(world_dir: Path) -> None:
    path = world_dir / "newswatch.db"
    open_database(f"sqlite:///{path}").dispose()
    path.chmod(0o666)  # the file itself is writable; its directory is not
    answer = _answer_of_unprivileged_open(f"sqlite:///{path}")
    assert answer.startswith("DatabaseError: ")


def test_sqlite_file_under_a_regular_file_is_database_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(DatabaseError, match="cannot create the directory"):
        open_database(f"sqlite:///{blocker / 'newswatch.db'}")


def test_connection_lost_inside_a_session_is_database_error(postgres_url: str) -> None:
    db = open_database(postgres_url)
    try:
        with pytest.raises(DatabaseError), db.session() as s:
            s.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
    finally:
        db.dispose()


def test_sqlite_reader_does_not_block_a_writer(sqlite_url: str) -> None:
    db = open_database(sqlite_url)
    try:
        with db.session(readonly=True) as reader:
            reader.execute(text("SELECT count(*) FROM articles")).scalar()
            with db.session() as writer:  # would wait 30 s if the reader held the lock
                writer.execute(text("UPDATE alembic_version SET version_num = version_num"))
    finally:
        db.dispose()


def test_a_failed_savepoint_rolls_back_alone_inside_a_transaction_the_caller_ends(
    database: Database,
) -> None:
    # What a poll's group of feeds relies on, on SQLite (through the pysqlite
    # transaction recipe in storage/db.py) as on PostgreSQL.
    session = database.begin()
    try:
        with database.errors():
            add_sources(session, [SourceSpec("Kept", "https://kept.example/rss")])
            with pytest.raises(ZeroDivisionError), session.begin_nested():
                add_sources(session, [SourceSpec("Dropped", "https://dropped.example/rss")])
                raise ZeroDivisionError
            with session.begin_nested():
                add_sources(session, [SourceSpec("Also kept", "https://also.example/rss")])
            session.commit()
    finally:
        session.close()
    with database.session(readonly=True) as s:
        assert sorted(s.scalars(select(Source.name))) == ["Also kept", "Kept"]
