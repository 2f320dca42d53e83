"""Opening the database: engine, sessions, migrations, and one-line errors.

`open_database(url)` is the only way in. It tunes the backend (SQLite: WAL, busy
timeout, foreign keys, writers take the lock up front; PostgreSQL: psycopg 3),
applies the Alembic migrations on first use, and turns every way of failing to get
there (unreachable server, wrong URL, read-only file) into a `DatabaseError` whose
message is one line a CLI can print as is.

`Database.session()` is the unit of work: one transaction, committed when the block
ends normally, rolled back when it raises. Query functions elsewhere in `storage/`
take that session and never commit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

SQLITE_BUSY_TIMEOUT_S = 30.0
PG_CONNECT_TIMEOUT_S = 10


class DatabaseError(Exception):
    """The database cannot be reached, opened, written or migrated (one-line message)."""


class LockConflict(DatabaseError):
    """PostgreSQL failed a statement to break a deadlock (or a serialization conflict).

    Only that statement failed: rolled back to its savepoint, the transaction goes on,
    and after a commit releases what the other writer waits for, the work can be
    done again. Writers that each lock in one sorted order in one transaction never
    meet this; a poll commits several feeds at once, and two feeds are two orders.
    """


# SQLSTATEs of deadlock_detected and serialization_failure.
_LOCK_CONFLICTS = frozenset({"40P01", "40001"})


def _display_url(url: URL) -> str:
    """The URL as a user would recognise it: no password, no driver suffix."""
    shown = url.set(drivername=url.get_backend_name())
    return shown.render_as_string(hide_password=True)


def _normalise_url(raw: str) -> URL:
    try:
        url = make_url(raw.strip())
    except ArgumentError as exc:
        raise DatabaseError(f"not a database URL: {raw!r}") from exc
    backend = url.get_backend_name()
    if backend == "postgres":  # Heroku-style spelling
        url = url.set(drivername="postgresql")
        backend = "postgresql"
    if backend == "postgresql" and url.get_driver_name() != "psycopg":
        url = url.set(drivername="postgresql+psycopg")
    if backend not in ("sqlite", "postgresql"):
        raise DatabaseError(
            f"unsupported database {_display_url(url)}: use sqlite:/// or postgresql://"
        )
    return url


def _first_line(exc: BaseException) -> str:
    """The most useful single line of a DBAPI error message."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    if not lines:
        return type(orig).__name__
    # psycopg: 'connection failed: connection to server at "…", port 5999 failed: Connection
    # refused' — the reason is after the last "failed:".
    line = lines[0]
    if "failed:" in line:
        line = line.rsplit("failed:", 1)[1].strip() or line
    line = re.sub(r"\s*\[SQL:.*$", "", line)
    return line[:1].lower() + line[1:]


def describe_error(url: str, exc: BaseException) -> str:
    """One line saying what went wrong with which database."""
    try:
        shown = _display_url(_normalise_url(url))
    except DatabaseError:
        shown = url
    return f"cannot use database {shown}: {_first_line(exc)}"


class Database:
    """An engine and its sessions for one database URL (open it with `open_database`)."""

    def __init__(self, url: str, engine: Engine) -> None:
        self.url = url
        self.engine = engine
        self._sessions = sessionmaker(bind=engine, expire_on_commit=False)
        # Readers on SQLite do not need the write lock; a long export must not block polls.
        self._read_sessions = sessionmaker(
            bind=engine.execution_options(sqlite_begin="DEFERRED"), expire_on_commit=False
        )

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """One transaction: commit when the block ends, roll back if it raises.

        On SQLite a write session takes the write lock when it begins (BEGIN
        IMMEDIATE), so two writers queue on the busy timeout instead of one failing
        with "database is locked" when it upgrades a read lock mid-transaction.
        `readonly=True` skips that lock (for status and export).
        """
        maker = self._read_sessions if readonly else self._sessions
        with self.errors(), maker() as session, session.begin():
            yield session

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Raise the ways the database itself fails as `DatabaseError`."""
        try:
            yield
        except (OperationalError, InterfaceError) as exc:
            # The database went away or refused a write: not a bug in the caller.
            if getattr(exc.orig, "sqlstate", None) in _LOCK_CONFLICTS:
                raise LockConflict(describe_error(self.url, exc)) from exc
            raise DatabaseError(describe_error(self.url, exc)) from exc

    def begin(self) -> Session:
        """A write session whose transaction has begun and that the caller ends.

        For a transaction that outlives one block (a poll commits a group of feeds
        stored by separate calls, each in its own SAVEPOINT): end it with `commit()`
        or `rollback()` and then `close()`, inside `errors()`. SAVEPOINTs work on
        SQLite too: the connection hooks below take transaction control away from
        the sqlite3 module, SQLAlchemy's documented recipe for them.
        """
        session = self._sessions()
        session.begin()
        return session

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({_display_url(_normalise_url(self.url))!r})"


def _sqlite_on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    # Take transaction control away from the sqlite3 module so that "begin" below
    # decides how each transaction starts (the documented SQLAlchemy recipe).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable across application crashes in WAL mode; only a power
        # loss can drop the last transactions, never corrupt the file.
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
    conn.exec_driver_sql(f"BEGIN {mode}")


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database).expanduser()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(
                    f"cannot create the directory for {_display_url(url)}: {exc.strerror}"
                ) from exc
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": PG_CONNECT_TIMEOUT_S,
            "application_name": "newswatch",
            # Our queries are short and indexed; PostgreSQL's JIT compiled some of
            # them for ~200 ms each on a freshly loaded database (stale statistics
            # make every plan look expensive), many times what they then ran for.
            "options": "-c jit=off",
        },
    )


def open_database(url: str, *, migrate: bool = True) -> Database:
    """Open (and, unless `migrate=False`, migrate to head) the database at `url`.

    Accepts `sqlite:///path`, `postgresql+psycopg://…`, and `postgresql://…`
    (mapped to psycopg 3). Raises `DatabaseError` with one line when the database
    cannot be reached, opened for writing, or migrated.
    """
    parsed = _normalise_url(url)
    try:
        engine = _create_engine(parsed)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise DatabaseError(f"not a usable database URL {_display_url(parsed)}: {exc}") from exc
    db = Database(url, engine)
    try:
        if migrate and not _at_head(engine):
            from storage.migrations import upgrade_to_head

            upgrade_to_head(engine)
        _probe_writable(engine)
    except DatabaseError:
        engine.dispose()
        raise
    except SQLAlchemyError as exc:
        engine.dispose()
        raise DatabaseError(describe_error(url, exc)) from exc
    return db


_VERSIONS = Path(__file__).resolve().parent / "migrations" / "versions"
_REVISION = re.compile(r"""^revision\b[^=\n]*=\s*['"]([^'"]+)['"]""", re.MULTILINE)
_DOWN_REVISION = re.compile(r"""^down_revision\b[^=\n]*=\s*(.*)$""", re.MULTILINE)
_QUOTED = re.compile(r"""['"]([^'"]+)['"]""")


def _head_revision() -> str | None:
    """The single head of the revision files, read without Alembic; None on any doubt."""
    revisions: set[str] = set()
    parents: set[str] = set()
    try:
        files = list(_VERSIONS.glob("*.py"))
        for path in files:
            source = path.read_text(encoding="utf-8")
            revision, down = _REVISION.search(source), _DOWN_REVISION.search(source)
            if revision is None or down is None:
                return None
            revisions.add(revision.group(1))
            parents.update(_QUOTED.findall(down.group(1)))
    except OSError:
        return None
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


def _at_head(engine: Engine) -> bool:
    """True when the database is already at the newest revision.

    Importing Alembic (and the Mako and Pygments it pulls in) costs a third of a
    second of CPU on every start of every process; a database at head, the usual
    case, needs none of it. Any doubt answers False and Alembic decides.
    """
    head = _head_revision()
    if head is None:
        return False
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
            conn.rollback()
    except SQLAlchemyError:
        return False  # no such table yet (a new database), or unreachable: Alembic reports
    return [tuple(row) for row in rows] == [(head,)]


def _probe_writable(engine: Engine) -> None:
    """Fail now, with a clear message, if the database can be read but not written.

    A poll must not discover this after fetching every feed. The probe is a write
    that changes nothing (SQLite) or the server's own read-only flag (PostgreSQL).
    """
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            has_version = conn.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'"
            ).scalar()
            if has_version:
                conn.exec_driver_sql("UPDATE alembic_version SET version_num = version_num")
            else:  # not migrated (migrate=False): a no-op write all the same
                conn.exec_driver_sql("PRAGMA user_version = 0")
        elif conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "on":
            raise DatabaseError(f"cannot use database {_display_url(engine.url)}: it is read-only")
