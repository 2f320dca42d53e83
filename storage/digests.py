"""Digest bookkeeping: which matches each configured digest has delivered, on which channel.

Every run of a digest (a `[[digests]]` name) on one channel (email, markdown, html,
text) is an *attempt*, a `digests` row, and every match it carries is a
`digest_items` row unique on (digest name, channel, match): a match is claimed once
per digest and channel, whatever runs race, because the INSERT says ON CONFLICT DO
NOTHING instead of looking first.

An attempt's status moves only forward, each step its own short transaction:

    (new) ──take_attempt + claim_matches──► pending ──mark_sending──► sending
    sending ──mark_sent──► sent            (the server took it / the file is written)
    sending ──mark_failed──► failed        (not delivered: the next run takes it over)
    pending ──mark_empty──► empty          (nothing to deliver and send_empty is off)
    sending ──resolve_interrupted──► sent  (a run died mid-send: it may have arrived)

`pending` exists only inside the transaction that claims and renders, so no other
run ever sees it. `take_attempt` takes failed attempts over with a compare-and-set
UPDATE (on PostgreSQL the row lock makes a concurrent run wait and then find the
rows gone), so two runs never hold the same attempt. `mark_sent` and `mark_failed`
check that the attempt still carries the caller's Message-ID, so an owner's final
word is never overwritten by another run's guess, and vice versa.

`claim_windows` decides how far back a run reaches: see its docstring.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    Integer,
    String,
    and_,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from storage.dialect import insert
from storage.models import Article, Digest, DigestItem, Match, Sighting, Source, Topic

CHUNK = 500  # ids per IN (...) list or multi-row INSERT


@dataclass(frozen=True, slots=True)
class Attempt:
    """One recorded delivery attempt of (digest name, channel)."""

    id: int
    name: str
    channel: str
    status: str  # pending | sending | sent | failed | empty
    message_id: str | None
    attempts: int
    created_at: datetime
    error: str | None
    output_path: str | None = None


@dataclass(frozen=True, slots=True)
class TopicWindow:
    """Claim the matches of topic `topic_id` whose article appeared at or after `since`."""

    topic_id: int
    topic: str
    since: datetime


@dataclass(frozen=True, slots=True)
class Sighted:
    """An outlet that carried an article, with the link its feed gave."""

    source: str
    url: str | None


@dataclass(frozen=True, slots=True)
class DigestEntry:
    """One claimed match with what a digest shows of its article.

    `url` is the link to show: the canonical URL (tracking parameters removed) when
    the article has one, else the link as the feed gave it.
    """

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
        row.output_path,
    )


def get_attempt(session: Session, attempt_id: int) -> Attempt | None:
    row = session.get(Digest, attempt_id, populate_existing=True)
    return _attempt(row) if row is not None else None


def attempts_of(session: Session, name: str, channel: str | None = None) -> list[Attempt]:
    """Every recorded attempt of digest `name` (on `channel`), oldest first."""
    query = select(Digest).where(Digest.name == name)
    if channel is not None:
        query = query.where(Digest.channel == channel)
    return [_attempt(row) for row in session.scalars(query.order_by(Digest.id))]


def last_delivery(session: Session, name: str, channel: str) -> datetime | None:
    """When (name, channel) last delivered something (the "since" a reader sees)."""
    return session.scalar(
        select(func.max(Digest.sent_at)).where(
            Digest.name == name, Digest.channel == channel, Digest.status == "sent"
        )
    )


def claim_windows(
    session: Session,
    name: str,
    channel: str,
    topics: Sequence[str] | None,
    now: datetime,
    catchup: timedelta,
) -> list[TopicWindow]:
    """How far back a run of (name, channel) reaches, per active topic it covers.

    - A first run reaches back `catchup` from `now`.
    - A later run reaches back `catchup` before the previous run began (any
      outcome): already delivered matches are excluded by `digest_items` anyway, and
      the margin catches matches a slow poll committed after that run claimed.
    - A topic reaches back at most `catchup` before it was created, so a topic added
      today (backfilled over days of stored articles) does not flood the digest.
    The same bound applies to the article's published date, so a feed added today
    does not bring its whole history: its backlog is first seen now, but was
    published long before. (An undated entry counts as published when first seen.)
    """
    previous = session.scalar(
        select(func.max(Digest.created_at)).where(Digest.name == name, Digest.channel == channel)
    )
    start = now if previous is None else min(now, previous)
    query = select(Topic.id, Topic.name, Topic.created_at).where(Topic.active.is_(True))
    if topics is not None:
        query = query.where(Topic.name.in_(list(topics)))
    return [
        TopicWindow(topic_id, topic, max(start, created_at) - catchup)
        for topic_id, topic, created_at in session.execute(query.order_by(Topic.id))
    ]


def _undelivered(name: str, channel: str, windows: Sequence[TopicWindow]) -> Select[int]:
    delivered = exists().where(
        DigestItem.digest_name == name,
        DigestItem.channel == channel,
        DigestItem.match_id == Match.id,
    )
    in_window = or_(
        *(
            and_(
                Match.topic_id == window.topic_id,
                # matched no earlier than first seen: lets (topic_id, matched_at) narrow the scan
                Match.matched_at >= window.since,
                Article.first_seen_at >= window.since,
                Article.published_at >= window.since,
            )
            for window in windows
        )
    )
    return (
        select(Match.id)
        .join(Article, Article.id == Match.article_id)
        .where(in_window, ~delivered)
        .order_by(Match.id)  # every run inserts in one order: no lock-order deadlocks
    )


def take_attempt(
    session: Session,
    name: str,
    channel: str,
    recipients: Sequence[str],
    now: datetime,
    *,
    reusable: Sequence[str] = ("failed",),
) -> Attempt:
    """A pending attempt of (name, channel) for this run alone.

    Takes over every attempt in a `reusable` status (an earlier failed delivery,
    and for files an interrupted one) and merges their matches into the oldest; or
    starts a new attempt when there is none. The takeover is an UPDATE … WHERE
    status IN (reusable): of two concurrent runs only one gets each row.
    """
    taken = sorted(
        session.scalars(
            update(Digest)
            .where(
                Digest.name == name,
                Digest.channel == channel,
                Digest.status.in_(list(reusable)),
            )
            .values(status="pending")
            .returning(Digest.id)
        )
    )
    if taken:
        keep, others = taken[0], taken[1:]
        if others:
            session.execute(
                update(DigestItem).where(DigestItem.digest_id.in_(others)).values(digest_id=keep)
            )
            session.execute(delete(Digest).where(Digest.id.in_(others)))
        session.execute(update(Digest).where(Digest.id == keep).values(recipients=list(recipients)))
        attempt = get_attempt(session, keep)
        assert attempt is not None
        return attempt
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


def claim_matches(session: Session, attempt: Attempt, windows: Sequence[TopicWindow]) -> int:
    """Put every match in `windows` that (name, channel) has not claimed into `attempt`.

    Returns how many this call claimed; a match another run claimed first is skipped.
    """
    if not windows:
        return 0
    # One INSERT … SELECT: the ids never travel through Python, and on PostgreSQL the
    # rows are locked in the SELECT's order, the same in every run.
    candidates = _undelivered(attempt.name, attempt.channel, windows).subquery()
    rows = (
        select(
            literal(attempt.id, Integer),
            literal(attempt.name, String),
            literal(attempt.channel, String),
            candidates.c.id,
        )
        .where(true())  # SQLite parses INSERT … SELECT … ON CONFLICT only with a WHERE
        .order_by(candidates.c.id)
    )
    statement = (
        insert(session, DigestItem)
        .from_select(["digest_id", "digest_name", "channel", "match_id"], rows)
        .on_conflict_do_nothing(index_elements=["digest_name", "channel", "match_id"])
        .returning(DigestItem.id)
    )
    return len(session.execute(statement).all())


def preview_matches(
    session: Session, name: str, channel: str, windows: Sequence[TopicWindow]
) -> list[DigestEntry]:
    """What a run would deliver now (claimable plus failed attempts' matches); writes nothing."""
    ids = set(session.scalars(_undelivered(name, channel, windows))) if windows else set()
    ids.update(
        session.scalars(
            select(DigestItem.match_id)
            .join(Digest, Digest.id == DigestItem.digest_id)
            .where(Digest.name == name, Digest.channel == channel, Digest.status == "failed")
        )
    )
    return _entries(session, sorted(ids))


def attempt_entries(session: Session, attempt: Attempt) -> list[DigestEntry]:
    """The matches claimed by `attempt`, with their articles and outlets."""
    ids = list(
        session.scalars(
            select(DigestItem.match_id)
            .where(DigestItem.digest_id == attempt.id)
            .order_by(DigestItem.match_id)
        )
    )
    return _entries(session, ids)


def _entries(session: Session, match_ids: list[int]) -> list[DigestEntry]:
    entries: list[DigestEntry] = []
    for start in range(0, len(match_ids), CHUNK):
        chunk = match_ids[start : start + CHUNK]
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
                func.coalesce(Article.canonical_url, Article.url),
                Article.published_at,
                Article.story_id,
            )
            .join(Topic, Topic.id == Match.topic_id)
            .join(Article, Article.id == Match.article_id)
            .where(Match.id.in_(chunk))
            .order_by(Match.id)
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
    unique = sorted(set(article_ids))
    for start in range(0, len(unique), CHUNK):
        rows = session.execute(
            select(Sighting.article_id, Source.name, Sighting.entry_url)
            .join(Source, Source.id == Sighting.source_id)
            .where(Sighting.article_id.in_(unique[start : start + CHUNK]))
            .order_by(Sighting.article_id, Sighting.first_seen_at, Source.name)
        )
        for article_id, source, url in rows:
            found[article_id].append(Sighted(source, url))
    return {key: tuple(value) for key, value in found.items()}


def story_members(session: Session, story_ids: Sequence[int]) -> dict[int, list[int]]:
    """The article ids of each story, oldest first."""
    members: dict[int, list[int]] = defaultdict(list)
    unique = sorted(set(story_ids))
    for start in range(0, len(unique), CHUNK):
        rows = session.execute(
            select(Article.story_id, Article.id)
            .where(Article.story_id.in_(unique[start : start + CHUNK]))
            .order_by(Article.story_id, Article.first_seen_at, Article.id)
        )
        for story_id, article_id in rows:
            if story_id is not None:
                members[story_id].append(article_id)
    return dict(members)


def article_links(session: Session, article_ids: Sequence[int]) -> dict[int, str | None]:
    """The link to show for each article: canonical URL when known, else the feed's link."""
    links: dict[int, str | None] = {}
    unique = sorted(set(article_ids))
    for start in range(0, len(unique), CHUNK):
        rows = session.execute(
            select(Article.id, func.coalesce(Article.canonical_url, Article.url)).where(
                Article.id.in_(unique[start : start + CHUNK])
            )
        )
        links.update((article_id, link) for article_id, link in rows)
    return links


def mark_sending(
    session: Session,
    attempt: Attempt,
    message_id: str | None,
    *,
    output_path: str | None = None,
) -> None:
    """The attempt is about to be handed over (SMTP DATA, file rename)."""
    session.execute(
        update(Digest)
        .where(Digest.id == attempt.id)
        .values(
            status="sending",
            message_id=message_id,
            output_path=output_path,
            attempts=Digest.attempts + 1,
            error=None,
        )
    )


def _owned(attempt_id: int, message_id: str | None) -> object:
    return and_(Digest.id == attempt_id, Digest.message_id.is_not_distinct_from(message_id))


def mark_sent(
    session: Session,
    attempt_id: int,
    message_id: str | None,
    now: datetime,
    *,
    output_path: str | None = None,
    note: str | None = None,
) -> bool:
    """Delivered (or probably delivered, with `note` saying why it is not sure).

    Only while the attempt still carries `message_id`; False when another run has
    since taken it over.
    """
    values: dict[str, object] = {"status": "sent", "sent_at": now, "error": note}
    if output_path is not None:
        values["output_path"] = output_path
    result = session.execute(
        update(Digest).where(_owned(attempt_id, message_id)).values(**values)  # type: ignore[arg-type]
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_failed(session: Session, attempt_id: int, message_id: str | None, error: str) -> bool:
    """Not delivered: its matches stay claimed by the attempt for the next run to take over."""
    result = session.execute(
        update(Digest)
        .where(_owned(attempt_id, message_id))  # type: ignore[arg-type]
        .values(status="failed", error=error)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_empty(session: Session, attempt: Attempt) -> None:
    """Nothing to deliver: recorded all the same, so the next run knows this one happened."""
    session.execute(update(Digest).where(Digest.id == attempt.id).values(status="empty"))


def interrupted_attempts(session: Session, name: str, channel: str) -> list[Attempt]:
    """Attempts a run left in `sending`: handed over, outcome never recorded."""
    rows = session.scalars(
        select(Digest)
        .where(Digest.name == name, Digest.channel == channel, Digest.status == "sending")
        .order_by(Digest.id)
    )
    return [_attempt(row) for row in rows]


def resolve_interrupted(session: Session, attempt: Attempt, now: datetime, note: str) -> bool:
    """Record an interrupted send as sent with `note`, unless its owner has spoken since."""
    result = session.execute(
        update(Digest)
        .where(
            _owned(attempt.id, attempt.message_id),  # type: ignore[arg-type]
            Digest.status == "sending",
        )
        .values(status="sent", sent_at=now, error=note)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
