"""Digest bookkeeping: which matches each configured digest has delivered.

A digest run for one (digest name, channel) goes:

    open_attempt    reuse the unfinished attempt (pending/failed) or start one
    claim_matches   INSERT the undelivered matches into it (ON CONFLICT DO NOTHING on
                    (digest name, channel, match): a match is claimed once, even by
                    two runs at the same time)
    mark_sending    before the send, in its own transaction, with the Message-ID
    mark_sent       after the send succeeded
    mark_failed     after the send failed: the items stay with the attempt, which the
                    next run reuses, so nothing is lost and nothing is sent twice

An attempt left in `sending` was interrupted between handing the message to the
server and recording the outcome; see `digest.run` for how it is resolved.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from storage.dialect import insert_for
from storage.models import Article, Digest, DigestItem, Match, Sighting, Source, Topic

UNFINISHED = ("pending", "sending", "failed")


@dataclass(frozen=True, slots=True)
class Attempt:
    id: int
    name: str
    channel: str
    status: str  # pending | sending | sent | failed
    message_id: str | None
    attempts: int
    created_at: datetime
    error: str | None


@dataclass(frozen=True, slots=True)
class Sighted:
    source: str
    url: str | None


@dataclass(frozen=True, slots=True)
class DigestEntry:
    """One claimed match with what a digest shows of its article."""

    match_id: int
    topic: str
    score: float
    terms: tuple[str, ...]
    snippet: str
    highlights: tuple[tuple[int, int], ...]
    article_id: int
    title: str
    url: str | None
    published_at: datetime
    story_id: int | None
    outlets: tuple[Sighted, ...]


def _attempt(row: Digest) -> Attempt:
    return Attempt(
        row.id,
        row.name,
        row.channel,
        row.status,
        row.message_id,
        row.attempts,
        row.created_at,
        row.error,
    )


def unfinished_attempt(session: Session, name: str, channel: str) -> Attempt | None:
    row = session.scalars(
        select(Digest)
        .where(Digest.name == name, Digest.channel == channel, Digest.status.in_(UNFINISHED))
        .order_by(Digest.id)
        .limit(1)
    ).first()
    return _attempt(row) if row else None


def open_attempt(
    session: Session, name: str, channel: str, recipients: Sequence[str], now: datetime
) -> Attempt:
    """The unfinished attempt for (name, channel), or a new pending one."""
    existing = unfinished_attempt(session, name, channel)
    if existing is not None:
        return existing
    row = Digest(
        name=name,
        channel=channel,
        status="pending",
        recipients=list(recipients),
        attempts=0,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return _attempt(row)


def last_delivery(session: Session, name: str, channel: str) -> datetime | None:
    """When the last successful delivery of (name, channel) was made."""
    return session.scalar(
        select(func.max(Digest.sent_at)).where(
            Digest.name == name, Digest.channel == channel, Digest.status == "sent"
        )
    )


def _undelivered(name: str, channel: str, topics: Sequence[str] | None, since: datetime):  # type: ignore[no-untyped-def]
    delivered = exists().where(
        DigestItem.digest_name == name,
        DigestItem.channel == channel,
        DigestItem.match_id == Match.id,
    )
    query = (
        select(Match.id)
        .join(Topic, Topic.id == Match.topic_id)
        .join(Article, Article.id == Match.article_id)
        .where(Topic.active.is_(True), Article.first_seen_at >= since, ~delivered)
    )
    if topics is not None:
        query = query.where(Topic.name.in_(list(topics)))
    return query


def claim_matches(
    session: Session,
    attempt: Attempt,
    topics: Sequence[str] | None,
    since: datetime,
) -> int:
    """Put every undelivered match of articles first seen since `since` into `attempt`."""
    ids = list(session.scalars(_undelivered(attempt.name, attempt.channel, topics, since)))
    claimed = 0
    insert = insert_for(session)
    for start in range(0, len(ids), 500):
        values = [
            {
                "digest_id": attempt.id,
                "digest_name": attempt.name,
                "channel": attempt.channel,
                "match_id": match_id,
            }
            for match_id in ids[start : start + 500]
        ]
        statement = insert(DigestItem).values(values).on_conflict_do_nothing()
        claimed += len(session.execute(statement.returning(DigestItem.id)).all())
    return claimed


def preview_matches(
    session: Session, name: str, channel: str, topics: Sequence[str] | None, since: datetime
) -> list[DigestEntry]:
    """What a run would deliver now, writing nothing (for --dry-run)."""
    attempt = unfinished_attempt(session, name, channel)
    ids = set(session.scalars(_undelivered(name, channel, topics, since)))
    if attempt is not None:
        ids.update(
            session.scalars(select(DigestItem.match_id).where(DigestItem.digest_id == attempt.id))
        )
    return _entries(session, sorted(ids))


def attempt_entries(session: Session, attempt: Attempt) -> list[DigestEntry]:
    ids = list(
        session.scalars(select(DigestItem.match_id).where(DigestItem.digest_id == attempt.id))
    )
    return _entries(session, ids)


def _entries(session: Session, match_ids: list[int]) -> list[DigestEntry]:
    entries: list[DigestEntry] = []
    for start in range(0, len(match_ids), 500):
        chunk = match_ids[start : start + 500]
        rows = session.execute(
            select(
                Match.id,
                Topic.name,
                Match.score,
                Match.terms,
                Match.snippet,
                Match.highlights,
                Article.id,
                Article.title,
                Article.url,
                Article.published_at,
                Article.story_id,
            )
            .join(Topic, Topic.id == Match.topic_id)
            .join(Article, Article.id == Match.article_id)
            .where(Match.id.in_(chunk))
        ).all()
        outlets = sightings(session, [row[6] for row in rows])
        entries.extend(
            DigestEntry(
                match_id=row[0],
                topic=row[1],
                score=row[2],
                terms=tuple(row[3] or ()),
                snippet=row[4],
                highlights=tuple((int(a), int(b)) for a, b in row[5] or ()),
                article_id=row[6],
                title=row[7],
                url=row[8],
                published_at=row[9],
                story_id=row[10],
                outlets=outlets.get(row[6], ()),
            )
            for row in rows
        )
    return entries


def sightings(session: Session, article_ids: Sequence[int]) -> dict[int, tuple[Sighted, ...]]:
    """Who carried each article, earliest first."""
    found: dict[int, list[Sighted]] = defaultdict(list)
    if not article_ids:
        return {}
    rows = session.execute(
        select(Sighting.article_id, Source.name, Sighting.entry_url)
        .join(Source, Source.id == Sighting.source_id)
        .where(Sighting.article_id.in_(list(set(article_ids))))
        .order_by(Sighting.article_id, Sighting.first_seen_at, Source.name)
    )
    for article_id, source, url in rows:
        found[article_id].append(Sighted(source, url))
    return {key: tuple(value) for key, value in found.items()}


def story_members(session: Session, story_ids: Sequence[int]) -> dict[int, list[int]]:
    """The article ids of each story, oldest first."""
    members: dict[int, list[int]] = defaultdict(list)
    if not story_ids:
        return {}
    rows = session.execute(
        select(Article.story_id, Article.id)
        .where(Article.story_id.in_(list(set(story_ids))))
        .order_by(Article.story_id, Article.first_seen_at, Article.id)
    )
    for story_id, article_id in rows:
        members[story_id].append(article_id)
    return dict(members)


def article_links(session: Session, article_ids: Sequence[int]) -> dict[int, str | None]:
    if not article_ids:
        return {}
    rows = session.execute(
        select(Article.id, Article.url).where(Article.id.in_(list(set(article_ids))))
    )
    return {row[0]: row[1] for row in rows}


def mark_sending(session: Session, attempt: Attempt, message_id: str | None) -> None:
    session.execute(
        update(Digest)
        .where(Digest.id == attempt.id)
        .values(status="sending", message_id=message_id, attempts=Digest.attempts + 1)
    )


def mark_sent(
    session: Session,
    attempt: Attempt,
    now: datetime,
    *,
    output_path: str | None = None,
    note: str | None = None,
) -> None:
    session.execute(
        update(Digest)
        .where(Digest.id == attempt.id)
        .values(status="sent", sent_at=now, output_path=output_path, error=note)
    )


def mark_failed(session: Session, attempt: Attempt, error: str) -> None:
    session.execute(
        update(Digest).where(Digest.id == attempt.id).values(status="failed", error=error)
    )


def discard_empty(session: Session, attempt: Attempt) -> None:
    """Forget an attempt that claimed nothing (an empty digest that is not sent)."""
    has_items = session.scalar(
        select(func.count()).select_from(DigestItem).where(DigestItem.digest_id == attempt.id)
    )
    if not has_items:
        session.execute(Digest.__table__.delete().where(Digest.id == attempt.id))
