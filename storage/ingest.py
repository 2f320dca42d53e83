"""Storing articles: each distinct article once, one sighting per source that carried it.

Duplicates are stopped by the unique key on `articles.key` and the primary key of
`sightings`, with INSERT … ON CONFLICT DO NOTHING, never by looking first: two polls
storing the same articles at the same time must not both insert them. RETURNING
tells this call which rows it inserted itself, so topic matching runs once per
article even when another poll raced it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import Article, Sighting
from storage.records import ArticleRecord, StoreResult

# Rows per statement: far below SQLite's 32,766 bound parameters (12 per article)
# and big enough that statement overhead stays small.
CHUNK = 500

_articles = Article.__table__
_sightings = Sighting.__table__


def _insert(session: Session, table: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


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
    new_ids: list[int] = []
    ids_by_key: dict[str, int] = {}
    insert_articles = (
        _insert(session, _articles)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(_articles.c.id, _articles.c.key)
    )
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        rows = [_article_row(unique[key], now) for key in chunk]
        for article_id, key in session.execute(insert_articles, rows):
            new_ids.append(article_id)
            ids_by_key[key] = article_id
        missing = [key for key in chunk if key not in ids_by_key]
        if missing:
            found = session.execute(
                select(_articles.c.key, _articles.c.id).where(_articles.c.key.in_(missing))
            )
            ids_by_key.update((key, article_id) for key, article_id in found)

    sightings = sorted(
        (ids_by_key[key], unique[key].entry_url) for key in keys if key in ids_by_key
    )
    insert_sightings = (
        _insert(session, _sightings)
        .on_conflict_do_nothing(index_elements=["article_id", "source_id"])
        .returning(_sightings.c.article_id)
    )
    new_sightings = 0
    for start in range(0, len(sightings), CHUNK):
        rows = [
            {
                "article_id": article_id,
                "source_id": source_id,
                "entry_url": _text(entry_url),
                "first_seen_at": now,
            }
            for article_id, entry_url in sightings[start : start + CHUNK]
        ]
        new_sightings += len(session.execute(insert_sightings, rows).all())
    new_ids.sort()
    return StoreResult(
        new_article_ids=new_ids,
        new_sightings=new_sightings,
        duplicates=len(records) - len(new_ids),
    )


def _text(value: str | None) -> str | None:
    # sources/ strips NUL already; PostgreSQL rejects it in text, so one stray NUL
    # must not fail a whole batch here either.
    if value is None or "\x00" not in value:
        return value
    return value.replace("\x00", "")


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
        "language": _text(record.language),
        "published_at": record.published_at or now,
        "first_seen_at": now,
    }
