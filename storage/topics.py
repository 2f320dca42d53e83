"""Topics and their matches.

Topics come from the config and are synced by name. A topic's `backfilled_hash` is the
fingerprint of the query its stored matches reflect: when the config's fingerprint
differs (a new topic, an edited query, alias or minimum score, a topic configured
again after a pause), the caller re-applies it to recent articles and then records the
new fingerprint with `mark_backfilled`.

Duplicates are prevented by the unique (article, topic) constraint and ON CONFLICT,
never by looking first; two processes backfilling the same topic are serialised by
`lock_topics` (a row lock on PostgreSQL, the write lock every SQLite write session
takes when it begins), after which the second finds the work done.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.dialect import insert
from storage.models import Article, DigestItem, Match, Sighting, Source, Topic

# Rows per statement: 7 parameters a match stays far below SQLite's 32,766 and
# PostgreSQL's 65,535 bound parameters.
CHUNK = 500


@dataclass(frozen=True, slots=True)
class TopicSpecRecord:
    """A configured topic; `fingerprint` changes whenever its matches can change."""

    name: str
    query: str
    min_score: float
    fingerprint: str


@dataclass(frozen=True, slots=True)
class TopicRow:
    id: int
    name: str
    needs_backfill: bool
    fingerprint: str


@dataclass(frozen=True, slots=True)
class MatchRecord:
    article_id: int
    topic_id: int
    score: float
    terms: tuple[str, ...]
    snippet: str
    highlights: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class ArticleText:
    """What the matcher reads of an article."""

    id: int
    title: str
    summary: str
    content: str | None
    published_at: datetime
    source: str  # the first (alphabetically) source that carried it


@dataclass(frozen=True, slots=True)
class TopicSummary:
    name: str
    query: str
    active: bool
    matches_total: int
    matches_recent: int


def sync_topics(
    session: Session, specs: Sequence[TopicSpecRecord], now: datetime
) -> list[TopicRow]:
    """Upsert the configured topics by name; topics no longer configured become inactive.

    An inactive topic forgets its fingerprint: articles stored while it was not
    configured were never matched against it, so configuring it again backfills it.
    """
    if specs:
        session.execute(
            insert(session, Topic)
            .values(
                [
                    {
                        "name": s.name,
                        "query": s.query,
                        "min_score": s.min_score,
                        "active": True,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for s in specs
                ]
            )
            .on_conflict_do_nothing(index_elements=["name"])
        )
    # Lock order is by id in every writer, so two syncing processes wait, not deadlock.
    existing = {
        t.name: t
        for t in session.scalars(select(Topic).order_by(Topic.id).with_for_update(key_share=True))
    }
    rows: list[TopicRow] = []
    for spec in specs:
        topic = existing.pop(spec.name)
        if (topic.query, topic.min_score, topic.active) != (spec.query, spec.min_score, True):
            topic.query, topic.min_score, topic.active = spec.query, spec.min_score, True
            topic.updated_at = now
        rows.append(
            TopicRow(
                topic.id, topic.name, topic.backfilled_hash != spec.fingerprint, spec.fingerprint
            )
        )
    for topic in existing.values():
        if topic.active or topic.backfilled_hash is not None:
            topic.active = False
            topic.backfilled_hash = None
            topic.updated_at = now
    session.flush()
    return rows


def lock_topics(session: Session, topic_ids: Sequence[int]) -> dict[int, str | None]:
    """Lock the topics for a backfill until the transaction ends; their fingerprints now.

    A second process waits here while the first backfills, then reads the fingerprint
    the first recorded and skips the work. FOR NO KEY UPDATE leaves the foreign-key
    checks of other writers' match inserts unblocked.
    """
    rows = session.execute(
        select(Topic.id, Topic.backfilled_hash)
        .where(Topic.id.in_(list(topic_ids)))
        .order_by(Topic.id)
        .with_for_update(key_share=True)
    )
    return {row[0]: row[1] for row in rows}


def mark_backfilled(session: Session, topic_id: int, fingerprint: str) -> None:
    """Record that the topic's stored matches reflect the query with this fingerprint."""
    session.execute(update(Topic).where(Topic.id == topic_id).values(backfilled_hash=fingerprint))


def _first_source() -> Any:
    return (
        select(func.min(Source.name))
        .join(Sighting, Sighting.source_id == Source.id)
        .where(Sighting.article_id == Article.id)
        .scalar_subquery()
    )


def _article_texts(
    session: Session, condition: ColumnElement[bool], limit: int | None = None
) -> list[ArticleText]:
    query = (
        select(
            Article.id,
            Article.title,
            Article.summary,
            Article.content,
            Article.published_at,
            _first_source(),
        )
        .where(condition)
        .order_by(Article.id)
        .limit(limit)
    )
    return [
        ArticleText(row[0], row[1], row[2], row[3], row[4], row[5] or "")
        for row in session.execute(query)
    ]


def articles_by_id(session: Session, ids: Sequence[int]) -> list[ArticleText]:
    """The given articles, by ascending id (unknown ids are left out)."""
    wanted = sorted(set(ids))
    found: list[ArticleText] = []
    for start in range(0, len(wanted), CHUNK):
        found += _article_texts(session, Article.id.in_(wanted[start : start + CHUNK]))
    return found


def article_pages(
    session: Session, since: datetime, *, page_size: int = 1000
) -> Iterator[list[ArticleText]]:
    """Articles first seen at or after `since`, oldest id first, a page at a time.

    Keyset pages rather than one streamed cursor: the caller writes matches between
    pages, and no server-side cursor has to stay open meanwhile.
    """
    last_id = 0
    while True:
        page = _article_texts(
            session,
            (Article.first_seen_at >= since) & (Article.id > last_id)
            if last_id
            else Article.first_seen_at >= since,
            page_size,
        )
        if not page:
            return
        yield page
        last_id = page[-1].id
        if len(page) < page_size:
            return


def articles_since(session: Session, since: datetime) -> Iterator[ArticleText]:
    """Articles first seen at or after `since`, oldest id first, a page at a time."""
    for page in article_pages(session, since):
        yield from page


def undelivered_match_articles(
    session: Session, topic_ids: Sequence[int], before: datetime
) -> list[int]:
    """Articles first seen before `before` with a not yet delivered match of these topics.

    A backfill re-checks them too, so an edited topic leaves no stale match behind
    outside its window either.
    """
    delivered = select(DigestItem.id).where(DigestItem.match_id == Match.id).exists()
    rows = session.scalars(
        select(Match.article_id)
        .join(Article, Article.id == Match.article_id)
        .where(Match.topic_id.in_(list(topic_ids)), Article.first_seen_at < before, ~delivered)
        .distinct()
    )
    return sorted(rows)


def store_matches(
    session: Session, matches: Sequence[MatchRecord], now: datetime, *, replace: bool = False
) -> int:
    """Insert matches, once per (article, topic); returns how many rows were written.

    Without `replace` the first match stands and only new rows count. With `replace`
    (an edited query re-applied) an existing match gets the new score, terms and
    snippet but keeps its `matched_at`, and updated rows count too.
    """
    unique = {(m.article_id, m.topic_id): m for m in matches}
    if not unique:
        return 0
    # Sorted rows make concurrent writers lock in one order: they wait, not deadlock.
    ordered = [unique[key] for key in sorted(unique)]
    # One statement of constant shape on the Core table, executed with a list of rows:
    # compiled once per process. The ORM form with the rows inlined as a multi-row
    # VALUES was compiled again on every call (0.5 s of 200 calls under cProfile).
    statement = _MATCH_UPSERT[session.get_bind().dialect.name, replace]
    written = 0
    for start in range(0, len(ordered), CHUNK):
        rows = [
            {
                "article_id": m.article_id,
                "topic_id": m.topic_id,
                "score": m.score,
                "terms": list(m.terms),
                "snippet": m.snippet,
                "highlights": [list(span) for span in m.highlights],
                "matched_at": now,
            }
            for m in ordered[start : start + CHUNK]
        ]
        # RETURNING yields only the rows this statement wrote: a match another process
        # inserted first is not counted again.
        written += len(session.execute(statement, rows).all())
    return written


def _match_upsert(dialect: Any, replace: bool) -> Any:
    table = Match.__table__
    statement = dialect.insert(table)
    if replace:
        statement = statement.on_conflict_do_update(
            index_elements=["article_id", "topic_id"],
            set_={
                "score": statement.excluded.score,
                "terms": statement.excluded.terms,
                "snippet": statement.excluded.snippet,
                "highlights": statement.excluded.highlights,
            },
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=["article_id", "topic_id"])
    return statement.returning(table.c.id)  # type: ignore[attr-defined]


_MATCH_UPSERT = {
    (dialect.__name__.rsplit(".", 1)[-1], replace): _match_upsert(dialect, replace)
    for dialect in (postgresql, sqlite)
    for replace in (False, True)
}


def drop_stale_matches(session: Session, topic_id: int, keep_article_ids: set[int]) -> int:
    """After re-applying an edited topic: remove its undelivered matches that no longer hold.

    Every undelivered match of the topic whose article is not in `keep_article_ids`
    goes; delivered ones stay as the record of what was sent.
    """
    delivered = select(DigestItem.id).where(DigestItem.match_id == Match.id).exists()
    rows = session.execute(
        select(Match.id, Match.article_id).where(Match.topic_id == topic_id, ~delivered)
    )
    stale = sorted(match_id for match_id, article_id in rows if article_id not in keep_article_ids)
    for start in range(0, len(stale), CHUNK):
        session.execute(delete(Match).where(Match.id.in_(stale[start : start + CHUNK])))
    return len(stale)


def topic_summaries(session: Session, since: datetime) -> list[TopicSummary]:
    """Every known topic with its total and recent (matched since `since`) match counts."""
    recent = func.count(Match.id).filter(Match.matched_at >= since)
    rows = session.execute(
        select(Topic.name, Topic.query, Topic.active, func.count(Match.id), recent)
        .outerjoin(Match, Match.topic_id == Topic.id)
        .group_by(Topic.id, Topic.name, Topic.query, Topic.active)
        .order_by(Topic.active.desc(), Topic.name)
    )
    return [TopicSummary(r[0], r[1], bool(r[2]), r[3], r[4]) for r in rows]


def article_urls(session: Session, ids: Sequence[int]) -> dict[int, str | None]:
    """The link of each article, by id."""
    wanted = sorted(set(ids))
    urls: dict[int, str | None] = {}
    for start in range(0, len(wanted), CHUNK):
        rows = session.execute(
            select(Article.id, Article.url).where(Article.id.in_(wanted[start : start + CHUNK]))
        )
        urls.update((row[0], row[1]) for row in rows)
    return urls


@dataclass(frozen=True, slots=True)
class MatchLine:
    topic: str
    score: float
    title: str
    url: str | None
    source: str
    terms: tuple[str, ...]


def matches_for_articles(session: Session, article_ids: Sequence[int]) -> list[MatchLine]:
    """The matches of the given articles, by topic, best first (for a poll's report)."""
    lines: list[MatchLine] = []
    # Most new articles match nothing: find the few that do with the matches index
    # alone, then read titles and sources for those (a cold 1,000-feed poll: 4,725
    # of 49,962 articles, ten queries of the join below instead of a hundred).
    ids: list[int] = []
    wanted = sorted(set(article_ids))
    for start in range(0, len(wanted), CHUNK):
        ids += session.scalars(
            select(Match.article_id)
            .where(Match.article_id.in_(wanted[start : start + CHUNK]))
            .distinct()
        )
    ids.sort()
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        # Each article's first source by a grouped join, not a subquery per row: on a
        # freshly loaded PostgreSQL database the planner ran that one source by source.
        sources: dict[int, str] = {
            article_id: name
            for article_id, name in session.execute(
                select(Sighting.article_id, func.min(Source.name))
                .join(Source, Source.id == Sighting.source_id)
                .where(Sighting.article_id.in_(chunk))
                .group_by(Sighting.article_id)
            )
        }
        rows = session.execute(
            select(
                Match.article_id, Topic.name, Match.score, Article.title, Article.url, Match.terms
            )
            .join(Match, Match.topic_id == Topic.id)
            .join(Article, Article.id == Match.article_id)
            .where(Match.article_id.in_(chunk))
        )
        lines.extend(
            MatchLine(r[1], r[2], r[3], r[4], sources.get(r[0]) or "", tuple(r[5] or ()))
            for r in rows
        )
    lines.sort(key=lambda m: (m.topic, -m.score, m.title))
    return lines
