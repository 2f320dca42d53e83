"""Stories in the database: the clustering lock, the window to reload, saving assignments.

Story clustering itself lives in `watch.cluster`; `newswatch.stories` runs it. This
module only reads and writes rows, inside the caller's transaction (never commits):

- `lock_stories` serialises clustering runs (PostgreSQL: a transaction-scoped
  advisory lock; SQLite: the write lock a write session already holds) and returns
  the story clock's token, which says whether the stories changed since a run.
- `window_articles` / `story_representatives` / `unclustered_articles` read what a
  clusterer needs, as plain `StoryArticle` rows.
- `save_assignments` writes a run's result; `bump_story_clock` marks that it did.

A story's id is its key in the clusterer (the smallest article id it ever held), so
saving is an upsert by id, and the same run on another process writes the same rows.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, case, delete, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from storage.dialect import insert
from storage.models import Article, Story, StoryClock

__all__ = [
    "STORY_LOCK_ID",
    "AssignedStory",
    "StoryArticle",
    "bump_story_clock",
    "lock_stories",
    "save_assignments",
    "story_clock",
    "story_representatives",
    "unclustered_articles",
    "window_articles",
]

STORY_LOCK_ID = 0x73746F72  # "stor": any constant shared by every newswatch process
_CHUNK = 500  # ids per IN (...) list: well under every backend's parameter limit
_CLOCK_ID = 1

# Core tables: executemany UPDATEs with WHERE clauses of their own, which the ORM's
# bulk UPDATE (by primary key only) does not take.
_articles: Table = Article.__table__  # type: ignore[assignment]
_stories: Table = Story.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class StoryArticle:
    """What clustering reads of a stored article. `summary` is sanitized HTML; both
    texts are empty where read with a `sketch_prefix` that the sketch starts with."""

    id: int
    published_at: datetime
    title: str
    summary: str
    story_id: int | None
    sketch: bytes | None = None


@dataclass(frozen=True, slots=True)
class AssignedStory:
    """One article's story after a clustering run.

    `merged_story_ids`: stories that this article joined into `story_id`; their
    articles move to `story_id` and their rows go (some may never have been saved).
    """

    article_id: int
    story_id: int
    representative_article_id: int
    merged_story_ids: tuple[int, ...] = ()


def lock_stories(session: Session) -> int | None:
    """Wait until no other clustering run is in progress; the story clock's token.

    The lock lasts until the session's transaction ends. The token changes with
    every run that saved anything (None when the clock row is missing).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(STORY_LOCK_ID)))
    # SQLite: a write session began with BEGIN IMMEDIATE and already holds the lock.
    return story_clock(session)


def story_clock(session: Session) -> int | None:
    """The story clock's token, without the lock: what a run that saves later compares
    with `lock_stories`'s token to know that no other run saved in between."""
    token: int | None = session.scalar(select(StoryClock.version).where(StoryClock.id == _CLOCK_ID))
    return token


def bump_story_clock(session: Session) -> int:
    """Give the story clock a new random token (a run saved assignments); the token.

    Random rather than counted: equal tokens then mean "no other run since mine",
    even if the row was deleted and recreated in between.
    """
    token = secrets.randbits(62)
    stmt = insert(session, StoryClock).values(id=_CLOCK_ID, version=token)
    session.execute(
        stmt.on_conflict_do_update(index_elements=[StoryClock.id], set_={"version": token})
    )
    return token


def _rows(session: Session, stmt: object) -> Iterator[StoryArticle]:
    for row in session.execute(stmt).yield_per(2000):  # type: ignore[call-overload]
        yield StoryArticle(
            row.id, row.published_at, row.title, row.summary, row.story_id, row.sketch
        )


def _columns(sketch_prefix: bytes | None) -> tuple[ColumnElement[Any], ...]:
    """The columns of a `StoryArticle`; with `sketch_prefix`, the title and summary
    of an article whose sketch starts with it are read as empty strings."""
    title, summary = Article.title.expression, Article.summary.expression
    if sketch_prefix is not None:
        # substr() of a blob is a blob on SQLite and PostgreSQL (bytea) alike
        sketched = func.substr(Article.sketch, 1, len(sketch_prefix)) == sketch_prefix
        title = case((sketched, ""), else_=title).label("title")
        summary = case((sketched, ""), else_=summary).label("summary")
    return (
        Article.id.expression,
        Article.published_at.expression,
        title,
        summary,
        Article.story_id.expression,
        Article.sketch.expression,
    )


def _in_window(since: datetime) -> tuple[ColumnElement[bool], ...]:
    return (Article.story_id.is_not(None), Article.published_at >= since)


def window_articles(
    session: Session, since: datetime, *, sketch_prefix: bytes | None = None
) -> Iterator[StoryArticle]:
    """Clustered articles published at or after `since`, by id (streamed).

    With `sketch_prefix`, articles whose sketch starts with it come without their
    title and summary (empty): the clusterer needs only the sketch of those.
    """
    stmt = select(*_columns(sketch_prefix)).where(*_in_window(since)).order_by(Article.id)
    return _rows(session, stmt)


def window_story_ids(session: Session, since: datetime) -> list[int]:
    """The stories of the articles `window_articles(session, since)` yields."""
    stmt = select(Article.story_id).where(*_in_window(since)).distinct()
    return [story_id for story_id in session.scalars(stmt) if story_id is not None]


def unclustered_articles(
    session: Session, *, after_id: int = 0, limit: int, sketch_prefix: bytes | None = None
) -> list[StoryArticle]:
    """Up to `limit` articles without a story, with ids above `after_id`, oldest id
    first (`sketch_prefix`: as for `window_articles`)."""
    stmt = (
        select(*_columns(sketch_prefix))
        .where(Article.story_id.is_(None), Article.id > after_id)
        .order_by(Article.id)
        .limit(limit)
    )
    return list(_rows(session, stmt))


def story_representatives(
    session: Session, story_ids: Sequence[int]
) -> dict[int, tuple[int, datetime]]:
    """Stored representative (article id, published_at) of each of these stories."""
    out: dict[int, tuple[int, datetime]] = {}
    unique = sorted(set(story_ids))
    for start in range(0, len(unique), _CHUNK):
        rows = session.execute(
            select(Story.id, Article.id, Article.published_at)
            .join(Article, Article.id == Story.representative_article_id)
            .where(Story.id.in_(unique[start : start + _CHUNK]))
        )
        for story_id, article_id, published_at in rows:
            out[story_id] = (article_id, published_at)
    return out


def save_assignments(session: Session, assigned: Sequence[AssignedStory], now: datetime) -> None:
    """Write a run's assignments: story rows, article membership, merges, counts.

    Merged stories' articles (inside the window or not) move to the surviving story
    and their rows are deleted; each touched story gets its representative and its
    article count and first/last seen times recomputed from its articles.
    """
    if not assigned:
        return
    representative = {a.story_id: a.representative_article_id for a in assigned}
    moved = {old: a.story_id for a in assigned for old in a.merged_story_ids}
    story_ids = sorted(representative)
    # Rows first: articles.story_id references them. Times and counts are
    # placeholders until the recount below.
    # executemany of one compiled statement: a multi-row VALUES of thousands of rows
    # cost SQLAlchemy more to build and compile (4 s for 50,000 stories) than to run.
    # The representative goes in with the row, or over an existing row's: one pass.
    rows = insert(session, _stories)
    session.execute(
        rows.on_conflict_do_update(
            index_elements=[_stories.c.id],
            set_={"representative_article_id": rows.excluded.representative_article_id},
        ),
        [
            {
                "id": sid,
                "first_seen_at": now,
                "last_seen_at": now,
                "article_count": 0,
                "representative_article_id": representative[sid],
            }
            for sid in story_ids
        ],
    )
    if moved:
        session.execute(
            update(_articles)
            .where(_articles.c.story_id == bindparam("old_story"))
            .values(story_id=bindparam("new_story")),
            [{"old_story": old, "new_story": new} for old, new in sorted(moved.items())],
        )
        old_ids = sorted(moved)
        for start in range(0, len(old_ids), _CHUNK):
            session.execute(delete(Story).where(Story.id.in_(old_ids[start : start + _CHUNK])))
    session.execute(
        update(_articles)
        .where(_articles.c.id == bindparam("article"))
        .values(story_id=bindparam("story")),
        [{"article": a.article_id, "story": a.story_id} for a in assigned],
    )
    # Counts and times recomputed from the articles, a chunk of stories at a time, with
    # one grouped aggregate joined in (UPDATE … FROM). Not a correlated subquery per
    # story: PostgreSQL answers min(first_seen_at) for one story by walking the
    # first_seen_at index until a row of that story turns up, which made a cold
    # 200-feed poll's clustering take 22 s there.
    for start in range(0, len(story_ids), _CHUNK):
        counts = (
            select(
                _articles.c.story_id,
                func.count().label("articles"),
                func.min(_articles.c.first_seen_at).label("first_seen"),
                func.max(_articles.c.first_seen_at).label("last_seen"),
            )
            .where(_articles.c.story_id.in_(story_ids[start : start + _CHUNK]))
            .group_by(_articles.c.story_id)
            .subquery()
        )
        session.execute(
            update(_stories)
            .where(_stories.c.id == counts.c.story_id)
            .values(
                article_count=counts.c.articles,
                first_seen_at=counts.c.first_seen,
                last_seen_at=counts.c.last_seen,
            )
        )
