"""One `Database` per URL per process, opened (and migrated) on first use.

A module of its own so that a process needing only the database, such as the story
worker a poll starts, does not import the poll's fetching and parsing stack with it.
"""

from __future__ import annotations

import threading

from newswatch.config import Config
from storage.db import Database, open_database

__all__ = ["close_databases", "database"]

_databases: dict[str, Database] = {}
_databases_lock = threading.Lock()


def database(config: Config) -> Database:
    """The process-wide `Database` for the config's URL, migrated on first use."""
    with _databases_lock:
        db = _databases.get(config.database_url)
        if db is None:
            db = open_database(config.database_url)
            _databases[config.database_url] = db
        return db


def close_databases() -> None:
    """Dispose of every database this process opened (the next use opens it again)."""
    with _databases_lock:
        for db in _databases.values():
            db.dispose()
        _databases.clear()
