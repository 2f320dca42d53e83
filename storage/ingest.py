"""Storing articles: each distinct article once, one sighting per source that carried it.

Duplicates are stopped by the unique key on `articles.key` and the primary key of
`sightings`, with INSERT … ON CONFLICT DO NOTHING, never by looking first: two polls
storing the same articles at the same time must not both insert them. RETURNING
tells this call which rows it inserted itself, so topic matching runs once per
article even when another poll raced it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import CursorResult, Table, func, select, text, update
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from storage.models import Article, Sighting
from storage.records import ArticleRecord, NewArticle, StoreResult, without_nul

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
    dialect = session.get_bind().dialect
    postgres = dialect.name == "postgresql"
    new_articles: list[NewArticle] = []
    revised_articles: list[NewArticle] = []
    ids_by_key: dict[str, int] = {}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        rows = {key: _article_row(unique[key], now) for key in chunk}
        inserted = (
            _insert_articles_pg(session, list(rows.values()))
            if postgres
            else _insert_articles(session, dialect, list(rows.values()))
        )
        for article_id, key in inserted:
            new_articles.append(_as_stored(article_id, rows[key], unique[key]))
            ids_by_key[key] = article_id
        missing = [key for key in chunk if key not in ids_by_key]
        if missing:
            found = session.execute(
                select(_articles.c.key, _articles.c.id, _STORED_LENGTH, _articles.c.sketch).where(
                    _articles.c.key.in_(missing)
                )
            )
            for key, article_id, stored_length, stored_sketch in found:
                ids_by_key[key] = article_id
                row = rows[key]
                length = _length(row)
                if length > (stored_length or 0):
                    if _revise(session, article_id, row):
                        revised_articles.append(_as_stored(article_id, row, unique[key]))
                elif length == stored_length and _sorts_first(row["sketch"], stored_sketch):
                    _resketch(session, article_id, row)

    sightings = sorted(
        (ids_by_key[key], _text(unique[key].entry_url)) for key in keys if key in ids_by_key
    )
    new_sightings = 0
    for start in range(0, len(sightings), CHUNK):
        chunk_s = sightings[start : start + CHUNK]
        if postgres:
            new_sightings += _insert_sightings_pg(session, source_id, chunk_s, now)
        else:
            new_sightings += _insert_sightings(session, dialect, source_id, chunk_s, now)
    new_articles.sort(key=lambda article: article.id)
    return StoreResult(
        new_article_ids=[article.id for article in new_articles],
        new_sightings=new_sightings,
        duplicates=len(records) - len(new_articles),
        new_articles=new_articles,
        revised_articles=revised_articles,
    )


def _as_stored(article_id: int, row: dict[str, Any], record: ArticleRecord) -> NewArticle:
    return NewArticle(article_id, row["title"], row["summary"], row["content"], record.match_text)


# One article often reaches us in several outlets' copies (the publisher's feed, a
# partner's syndication with a shorter summary). Which feed answers first in a poll
# is network timing, so the article keeps its fullest copy, not its first: the one
# with the longest summary + content (an equally long copy leaves it as it is).
_STORED_LENGTH = func.length(_articles.c.summary) + func.coalesce(
    func.length(_articles.c.content), 0
)


def _length(row: dict[str, Any]) -> int:
    return len(row["summary"] or "") + len(row["content"] or "")


def _revise(session: Session, article_id: int, row: dict[str, Any]) -> bool:
    """Give a stored article a fuller copy's text; False if a fuller one came first."""
    # The length test again in the statement: a concurrent poll may have stored a
    # still fuller copy since we read it, and a shorter copy must never replace it.
    result = session.execute(
        update(_articles)
        .where(_articles.c.id == article_id, _length(row) > _STORED_LENGTH)
        .values(
            title=row["title"], summary=row["summary"], content=row["content"], sketch=row["sketch"]
        )
    )
    return bool(cast(CursorResult[Any], result).rowcount)


# The same text can come with two sketches: a sketch leaves out what most entries of
# its feed carry (an outlet's sign-off), and an aggregator's feed around the same copy
# shows no such run. Which feed is stored first is network timing, so of equally long
# copies with the same title and summary, the article keeps the sketch that sorts
# first, whichever came first, and the stories of a poll do not depend on the order.
# (Of one version, that is the sketch with fewer word-pair hashes: their count is its
# second byte.)
def _sorts_first(sketch: bytes | None, stored: bytes | None) -> bool:
    return sketch is not None and (stored is None or sketch < stored)


def _resketch(session: Session, article_id: int, row: dict[str, Any]) -> None:
    # The text and the order again in the statement: a concurrent poll may have
    # stored a fuller copy, or a sketch that sorts first, since we read it.
    session.execute(
        update(_articles)
        .where(
            _articles.c.id == article_id,
            _articles.c.title == row["title"],
            _articles.c.summary == row["summary"],
            (_articles.c.sketch.is_(None)) | (_articles.c.sketch > row["sketch"]),
        )
        .values(sketch=row["sketch"])
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
    "sketch",
    "published_at",
    "first_seen_at",
)


# SQLite: one plain multi-row INSERT through the driver. SQLAlchemy's executemany
# with RETURNING ("insertmanyvalues") spent ~30 µs of Python a row rendering and
# binding it (store + commit of a 50-entry feed: 5.4 → 3.8 ms); the statement text here
# depends only on the row count, so sqlite3's statement cache parses each shape once
# per connection. Timestamps go through the columns' own bind processors, so every
# value is stored exactly as SQLAlchemy stores it.


@lru_cache(maxsize=64)
def _values_sql(head: str, width: int, rows: int, tail: str) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return f"{head} VALUES {', '.join([row] * rows)} {tail}"


def _timestamp(dialect: Dialect) -> Callable[[datetime], Any]:
    processor = _articles.c.first_seen_at.type.dialect_impl(dialect).bind_processor(dialect)
    assert processor is not None
    return cast(Callable[[datetime], Any], processor)


_SQLITE_ARTICLES = f"INSERT INTO articles ({', '.join(_ARTICLE_COLUMNS)})"
_SQLITE_SIGHTINGS = "INSERT INTO sightings (article_id, source_id, entry_url, first_seen_at)"


def _insert_articles(
    session: Session, dialect: Dialect, rows: list[dict[str, Any]]
) -> list[tuple[int, str]]:
    if not rows:
        return []
    stamp = _timestamp(dialect)
    params: list[Any] = []
    for row in rows:
        params += [row[column] for column in _ARTICLE_COLUMNS[:-2]]
        params += [stamp(row["published_at"]), stamp(row["first_seen_at"])]
    sql = _values_sql(
        _SQLITE_ARTICLES,
        len(_ARTICLE_COLUMNS),
        len(rows),
        "ON CONFLICT (key) DO NOTHING RETURNING id, key",
    )
    result = session.connection().exec_driver_sql(sql, tuple(params))
    return [(article_id, key) for article_id, key in result]


# PostgreSQL: one short statement over arrays (unnest) instead of a multi-row VALUES
# list. psycopg re-parses every long statement text in Python (it caches only short
# ones), which made the VALUES form several times slower per row.
_PG_INSERT_ARTICLES = text(
    "INSERT INTO articles (key, key_kind, url, canonical_url, guid, title, summary, content,"
    " author, language, sketch, published_at, first_seen_at)"
    " SELECT * FROM unnest("
    "CAST(:key AS text[]), CAST(:key_kind AS text[]), CAST(:url AS text[]),"
    " CAST(:canonical_url AS text[]), CAST(:guid AS text[]), CAST(:title AS text[]),"
    " CAST(:summary AS text[]), CAST(:content AS text[]), CAST(:author AS text[]),"
    " CAST(:language AS text[]), CAST(:sketch AS bytea[]), CAST(:published_at AS timestamptz[]),"
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
    session: Session,
    dialect: Dialect,
    source_id: int,
    sightings: list[tuple[int, str | None]],
    now: datetime,
) -> int:
    seen = _timestamp(dialect)(_utc(now))
    params: list[Any] = []
    for article_id, entry_url in sightings:
        params += (article_id, source_id, entry_url, seen)
    sql = _values_sql(
        _SQLITE_SIGHTINGS,
        4,
        len(sightings),
        "ON CONFLICT (article_id, source_id) DO NOTHING RETURNING article_id",
    )
    return len(session.connection().exec_driver_sql(sql, tuple(params)).all())


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


_text = without_nul


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
        "sketch": record.sketch,
        "published_at": _utc(record.published_at or now),
        "first_seen_at": _utc(now),
    }
