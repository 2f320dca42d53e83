"""The INSERT construct with ON CONFLICT support for the session's database."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_for(session: Session) -> Any:
    """`sqlite.insert` or `postgresql.insert`, whichever the session is bound to."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"unsupported database dialect {name!r}")
