"""Topics and their matches.

Topics come from the config and are synced by name. A topic's `backfilled_hash` is the
fingerprint of the query its stored matches reflect: when the config's fingerprint
differs (a new topic, an edited query or minimum score), the caller re-applies it to
recent articles and then records the new fingerprint.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.orm import Session

from storage.dialect import insert
from storage.models import Article, DigestItem, Match, Sighting, Source, Topic


@dataclass(frozen=True, slots=True)
class TopicSpecRecord:
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
    source: str


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
    """Upsert the configured topics by name; topics no longer configured become inactive."""
    existing = {t.name: t for t in session.scalars(select(Topic))}
    rows: list[TopicRow] = []
    for spec in specs:
        topic = existing.pop(spec.name, None)
        if topic is None:
            topic = Topic(
                name=spec.name,
                query=spec.query,
                min_score=spec.min_score,
                active=True,
                created_at=now,
                updated_at=now,
            )
            session.add(topic)
            session.flush()
        elif (topic.query, topic.min_score, topic.active) != (spec.query, spec.min_score, True):
            topic.query, topic.min_score, topic.active = spec.query, spec.min_score, True
            topic.updated_at = now
        rows.append(
            TopicRow(
                topic.id, topic.name, topic.backfilled_hash != spec.fingerprint, spec.fingerprint
            )
        )
    for topic in existing.values():
        topic.active = False
    session.flush()
    return rows


def mark_backfilled(session: Session, topic_id: int, fingerprint: str) -> None:
    session.execute(update(Topic).where(Topic.id == topic_id).values(backfilled_hash=fingerprint))


def _article_texts(session: Session, condition: object) -> Iterator[ArticleText]:
    first_source = (
        select(func.min(Source.name))
        .join(Sighting, Sighting.source_id == Source.id)
        .where(Sighting.article_id == Article.id)
        .scalar_subquery()
    )
    query = (
        select(
            Article.id,
            Article.title,
            Article.summary,
            Article.content,
            Article.published_at,
            first_source,
        )
        .where(condition)  # type: ignore[arg-type]
        .order_by(Article.id)
        .execution_options(yield_per=1000)
    )
    for row in session.execute(query):
        yield ArticleText(row[0], row[1], row[2], row[3], row[4], row[5] or "")


def articles_by_id(session: Session, ids: Sequence[int]) -> list[ArticleText]:
    if not ids:
        return []
    return list(_article_texts(session, Article.id.in_(ids)))


def articles_since(session: Session, since: datetime) -> Iterator[ArticleText]:
    """Articles first seen at or after `since`, oldest id first, streamed."""
    return _article_texts(session, Article.first_seen_at >= since)


def store_matches(
    session: Session, matches: Sequence[MatchRecord], now: datetime, *, replace: bool = False
) -> int:
    """Insert matches, once per (article, topic); returns how many were new.

    With `replace`, an existing match's score, terms and snippet are updated (an edited
    query re-applied); otherwise the first match stands.
    """
    if not matches:
        return 0
    values = [
        {
            "article_id": m.article_id,
            "topic_id": m.topic_id,
            "score": m.score,
            "terms": list(m.terms),
            "snippet": m.snippet,
            "highlights": [list(span) for span in m.highlights],
            "matched_at": now,
        }
        for m in matches
    ]
    statement = insert(session, Match).values(values)
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
    # RETURNING yields only the rows this statement inserted (or updated, with replace)
    return len(session.execute(statement.returning(Match.id)).all())


def drop_stale_matches(
    session: Session, topic_id: int, since: datetime, keep_article_ids: set[int]
) -> int:
    """After re-applying an edited topic: remove its undelivered matches that no longer hold."""
    delivered = select(DigestItem.match_id)
    stale = (
        select(Match.id)
        .join(Article, Article.id == Match.article_id)
        .where(
            and_(
                Match.topic_id == topic_id,
                Article.first_seen_at >= since,
                Match.id.not_in(delivered),
                Match.article_id.not_in(keep_article_ids) if keep_article_ids else True,
            )
        )
    )
    ids = list(session.scalars(stale))
    if ids:
        session.execute(delete(Match).where(Match.id.in_(ids)))
    return len(ids)


def topic_summaries(session: Session, since: datetime) -> list[TopicSummary]:
    """Every known topic with its total and recent (matched since `since`) match counts."""
    recent = func.count(Match.id).filter(Match.matched_at >= since)
    rows = session.execute(
        select(Topic.name, Topic.query, Topic.active, func.count(Match.id), recent)
        .outerjoin(Match, Match.topic_id == Topic.id)
        .group_by(Topic.id, Topic.name, Topic.query, Topic.active)
        .order_by(Topic.name)
    )
    return [TopicSummary(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def article_urls(session: Session, ids: Sequence[int]) -> dict[int, str | None]:
    """The link of each article, by id."""
    if not ids:
        return {}
    rows = session.execute(select(Article.id, Article.url).where(Article.id.in_(ids)))
    return {row[0]: row[1] for row in rows}


@dataclass(frozen=True, slots=True)
class MatchLine:
    topic: str
    score: float
    title: str
    url: str | None
    source: str
    terms: tuple[str, ...]


def matches_for_articles(session: Session, article_ids: Sequence[int]) -> list[MatchLine]:
    """The matches of the given articles, best first (for a poll's report)."""
    lines: list[MatchLine] = []
    ids = list(article_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        first_source = (
            select(func.min(Source.name))
            .join(Sighting, Sighting.source_id == Source.id)
            .where(Sighting.article_id == Article.id)
            .scalar_subquery()
        )
        rows = session.execute(
            select(Topic.name, Match.score, Article.title, Article.url, first_source, Match.terms)
            .join(Match, Match.topic_id == Topic.id)
            .join(Article, Article.id == Match.article_id)
            .where(Match.article_id.in_(chunk))
        )
        lines.extend(MatchLine(r[0], r[1], r[2], r[3], r[4] or "", tuple(r[5])) for r in rows)
    lines.sort(key=lambda m: (m.topic, -m.score, m.title))
    return lines
