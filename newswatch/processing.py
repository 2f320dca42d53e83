"""What happens to articles right after they are stored: topic matching.

`ArticleProcessor.prepare` syncs the configured topics into the database and re-applies
new or edited topics to recent articles (the backfill); `process` then runs inside each
feed's transaction on the articles that feed just added.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from newswatch.config import Config
from sources.clean import clean_text
from storage.db import Database
from storage.topics import (
    ArticleText,
    MatchRecord,
    TopicSpecRecord,
    articles_by_id,
    articles_since,
    drop_stale_matches,
    mark_backfilled,
    store_matches,
    sync_topics,
)
from watch.matcher import Document, Matcher, TopicMatch, TopicSpec, topic_fingerprint


def document(article: ArticleText) -> Document:
    """The matcher's view of an article: title, and the plain text of summary + content."""
    body = clean_text(article.summary)
    if article.content:
        content = clean_text(article.content)
        if content and content not in body:
            body = f"{body}\n{content}" if body else content
    return Document(id=article.id, title=article.title, text=body)


@dataclass(slots=True)
class BackfillReport:
    topics: list[str]
    articles: int
    matches: int


class ArticleProcessor:
    """Matches newly stored articles against every active topic."""

    def __init__(self, matcher: Matcher | None, topic_ids: dict[str, int]) -> None:
        self.matcher = matcher
        self.topic_ids = topic_ids

    @classmethod
    def prepare(
        cls, db: Database, config: Config, now: datetime
    ) -> tuple[ArticleProcessor, BackfillReport]:
        """Sync topics, backfill new or edited ones, and return a ready processor."""
        specs = [TopicSpec(t.name, t.query, t.min_score) for t in config.topics]
        records = [
            TopicSpecRecord(s.name, s.query, s.min_score, topic_fingerprint(s, config.aliases))
            for s in specs
        ]
        with db.session() as session:
            rows = sync_topics(session, records, now)
        matcher = Matcher.compile(specs, config.aliases) if specs else None
        processor = cls(matcher, {row.name: row.id for row in rows})
        stale = [row for row in rows if row.needs_backfill]
        report = BackfillReport([row.name for row in stale], 0, 0)
        if stale and matcher is not None:
            since = now - timedelta(days=config.file.watch.backfill_days)
            stale_specs = [s for s in specs if s.name in report.topics]
            backfill = Matcher.compile(stale_specs, config.aliases)
            with db.session() as session:
                matched: dict[int, set[int]] = {row.id: set() for row in stale}
                batch: list[MatchRecord] = []
                for article in articles_since(session, since):
                    report.articles += 1
                    for match in backfill.match(document(article)):
                        record = processor._record(match)
                        matched[record.topic_id].add(record.article_id)
                        batch.append(record)
                    if len(batch) >= 500:
                        report.matches += store_matches(session, batch, now, replace=True)
                        batch = []
                report.matches += store_matches(session, batch, now, replace=True)
                for row in stale:
                    drop_stale_matches(session, row.id, since, matched[row.id])
                    mark_backfilled(session, row.id, row.fingerprint)
        return processor, report

    def _record(self, match: TopicMatch) -> MatchRecord:
        return MatchRecord(
            article_id=match.doc_id,
            topic_id=self.topic_ids[match.topic],
            score=match.score,
            terms=match.terms,
            snippet=match.snippet,
            highlights=match.highlights,
        )

    def matches(self, articles: Iterable[ArticleText]) -> list[MatchRecord]:
        if self.matcher is None:
            return []
        return [self._record(m) for m in self.matcher.match_many(document(a) for a in articles)]

    def process(self, session: Session, article_ids: Sequence[int], now: datetime) -> int:
        """Match the articles just stored in this transaction; returns new matches."""
        if self.matcher is None or not article_ids:
            return 0
        return store_matches(session, self.matches(articles_by_id(session, article_ids)), now)
