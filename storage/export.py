"""Reading articles back out, for `newswatch export`: streamed, memory bounded.

Articles come in pages by id (keyset pagination), each page with its sightings
and matches fetched in two queries, so memory stays flat however big the
database is and no server-side cursor has to stay open between pages.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Article, Match, Sighting, Source, Topic
from storage.records import ExportedArticle, ExportedMatch, ExportedSighting

PAGE = 500


def iter_articles(
    session: Session, *, since: datetime | None = None, page_size: int = PAGE
) -> Iterator[ExportedArticle]:
    """Every stored article (first seen at or after `since`), oldest first, with its
    sources and matches."""
    last_id = 0
    while True:
        stmt = select(Article).where(Article.id > last_id).order_by(Article.id).limit(page_size)
        if since is not None:
            stmt = stmt.where(Article.first_seen_at >= since)
        page = list(session.scalars(stmt))
        if not page:
            return
        ids = [a.id for a in page]
        sightings: defaultdict[int, list[ExportedSighting]] = defaultdict(list)
        for article_id, name, url, first_seen, entry_url in session.execute(
            select(
                Sighting.article_id,
                Source.name,
                Source.url,
                Sighting.first_seen_at,
                Sighting.entry_url,
            )
            .join(Source, Source.id == Sighting.source_id)
            .where(Sighting.article_id.in_(ids))
            .order_by(Sighting.article_id, Sighting.first_seen_at, Source.name)
        ):
            sightings[article_id].append(ExportedSighting(name, url, first_seen, entry_url))
        matches: defaultdict[int, list[ExportedMatch]] = defaultdict(list)
        for article_id, topic, score, terms, matched_at in session.execute(
            select(Match.article_id, Topic.name, Match.score, Match.terms, Match.matched_at)
            .join(Topic, Topic.id == Match.topic_id)
            .where(Match.article_id.in_(ids))
            .order_by(Match.article_id, Topic.name)
        ):
            matches[article_id].append(ExportedMatch(topic, score, tuple(terms or ()), matched_at))
        for a in page:
            yield ExportedArticle(
                id=a.id,
                key=a.key,
                key_kind=a.key_kind,
                url=a.url,
                canonical_url=a.canonical_url,
                guid=a.guid,
                title=a.title,
                summary=a.summary,
                content=a.content,
                author=a.author,
                language=a.language,
                published_at=a.published_at,
                first_seen_at=a.first_seen_at,
                sources=tuple(sightings.get(a.id, ())),
                matches=tuple(matches.get(a.id, ())),
                story_id=a.story_id,
            )
        last_id = ids[-1]
        # Drop the page's ORM objects so the identity map does not grow with the export.
        session.expunge_all()
