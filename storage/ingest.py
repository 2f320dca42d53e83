"""Storing articles: each distinct article once, one sighting per source that carried it.

Duplicates are stopped by the unique key on `articles.key` and the primary key of
`sightings`, with INSERT … ON CONFLICT DO NOTHING, never by looking first: two polls
storing the same articles at the same time must not both insert them. RETURNING
tells this call which rows it inserted itself, so topic matching runs once per
article even when another poll raced it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from storage.models import Article, Sighting
from storage.records import ArticleRecord, StoreResult

# Rows per statement: far below SQLite's 32,766 bound parameters (12 per article)
# and big enough that statement overhead stays small.
CHUNK = 500

_articles = cast(Table, Article.__table__)
_sightings = cast(Table, Sighting.__table__)


def store_articles(
    session: Session, source_id: int, records: Sequence[ArticleRecord], now: datetime
) -> StoreResult:
    """Store `records` seen in source `source_id` at `now`; see `StoreResult`."""
    unique: dict[str, ArticleRecord] = {}
    for record in records:
        unique.setdefault(record.key, record)
    # Sorted keys make every writer take row locks in the same order, so two
    # PostgreSQL transactions with overlapping batches wait instead of deadlocking.
    keys = sorted(unique)
    postgres = session.get_bind().dialect.name == "postgresql"
    new_ids: list[int] = []
    ids_by_key: dict[str, int] = {}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        rows = [_article_row(unique[key], now) for key in chunk]
        inserted = (
            _insert_articles_pg(session, rows) if postgres else _insert_articles(session, rows)
        )
        for article_id, key in inserted:
            new_ids.append(article_id)
            ids_by_key[key] = article_id
        missing = [key for key in chunk if key not in ids_by_key]
        if missing:
            found = session.execute(
                select(_articles.c.key, _articles.c.id).where(_articles.c.key.in_(missing))
            )
            ids_by_key.update((key, article_id) for key, article_id in found)

    sightings = sorted(
        (ids_by_key[key], _text(unique[key].entry_url)) for key in keys if key in ids_by_key
    )
    new_sightings = 0
    for start in range(0, len(sightings), CHUNK):
        chunk_s = sightings[start : start + CHUNK]
        if postgres:
            new_sightings += _insert_sightings_pg(session, source_id, chunk_s, now)
        else:
            new_sightings += _insert_sightings(session, source_id, chunk_s, now)
    new_ids.sort()
    return StoreResult(
        new_article_ids=new_ids,
        new_sightings=new_sightings,
        duplicates=len(records) - len(new_ids),
    )


_ARTICLE_COLUMNS = (
    "key",
    "key_kind",
    "url",
    "canonical_url",
    "guid",
    "title",
    "summary",
    "content",
    "author",
    "language",
    "published_at",
    "first_seen_at",
)


def _insert_articles(session: Session, rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
    stmt = (
        sqlite.insert(_articles)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(_articles.c.id, _articles.c.key)
    )
    return [(article_id, key) for article_id, key in session.execute(stmt, rows)]


# PostgreSQL: one short statement over arrays (unnest) instead of a multi-row VALUES
# list. psycopg re-parses every long statement text in Python (it caches only short
# ones), which made the VALUES form several times slower per row.
_PG_INSERT_ARTICLES = text(
    "INSERT INTO articles (key, key_kind, url, canonical_url, guid, title, summary, content,"
    " author, language, published_at, first_seen_at)"
    " SELECT * FROM unnest("
    "CAST(:key AS text[]), CAST(:key_kind AS text[]), CAST(:url AS text[]),"
    " CAST(:canonical_url AS text[]), CAST(:guid AS text[]), CAST(:title AS text[]),"
    " CAST(:summary AS text[]), CAST(:content AS text[]), CAST(:author AS text[]),"
    " CAST(:language AS text[]), CAST(:published_at AS timestamptz[]),"
    " CAST(:first_seen_at AS timestamptz[])) AS t(key) ORDER BY key"
    " ON CONFLICT (key) DO NOTHING RETURNING id, key"
)

_PG_INSERT_SIGHTINGS = text(
    "INSERT INTO sightings (article_id, source_id, entry_url, first_seen_at)"
    " SELECT t.article_id, :source_id, t.entry_url, :now"
    " FROM unnest(CAST(:article_id AS integer[]), CAST(:entry_url AS text[]))"
    " AS t(article_id, entry_url) ORDER BY t.article_id"
    " ON CONFLICT (article_id, source_id) DO NOTHING RETURNING article_id"
)


def _insert_articles_pg(session: Session, rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
    params = {column: [row[column] for row in rows] for column in _ARTICLE_COLUMNS}
    return [(article_id, key) for article_id, key in session.execute(_PG_INSERT_ARTICLES, params)]


def _insert_sightings(
    session: Session, source_id: int, sightings: list[tuple[int, str | None]], now: datetime
) -> int:
    stmt = (
        sqlite.insert(_sightings)
        .on_conflict_do_nothing(index_elements=["article_id", "source_id"])
        .returning(_sightings.c.article_id)
    )
    rows = [
        {"article_id": a, "source_id": source_id, "entry_url": e, "first_seen_at": now}
        for a, e in sightings
    ]
    return len(session.execute(stmt, rows).all())


def _insert_sightings_pg(
    session: Session, source_id: int, sightings: list[tuple[int, str | None]], now: datetime
) -> int:
    params = {
        "source_id": source_id,
        "now": _utc(now),
        "article_id": [a for a, _ in sightings],
        "entry_url": [e for _, e in sightings],
    }
    return len(session.execute(_PG_INSERT_SIGHTINGS, params).all())


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC)


def _text(value: str | None) -> str | None:
    # sources/ strips NUL already; PostgreSQL rejects it in text, so one stray NUL
    # must not fail a whole batch here either.
    if value is None or "\x00" not in value:
        return value
    return value.replace("\x00", "")


_LANGUAGE_LENGTH = Article.__table__.c.language.type.length  # type: ignore[attr-defined]


def _language(value: str | None) -> str | None:
    # A feed's <language> is free text; PostgreSQL refuses one longer than the column
    # (SQLite silently keeps it). No real language tag is that long: drop it.
    value = _text(value)
    return value if value is None or len(value) <= _LANGUAGE_LENGTH else None


def _article_row(record: ArticleRecord, now: datetime) -> dict[str, Any]:
    return {
        "key": record.key,
        "key_kind": record.key_kind,
        "url": _text(record.url),
        "canonical_url": _text(record.canonical_url),
        "guid": _text(record.guid),
        "title": _text(record.title) or "",
        "summary": _text(record.summary) or "",
        "content": _text(record.content),
        "author": _text(record.author),
        "language": _language(record.language),
        "published_at": _utc(record.published_at or now),
        "first_seen_at": _utc(now),
    }
