"""What happens to articles right after they are stored: topic matching.

`ArticleProcessor.prepare` syncs the configured topics into the database and re-applies
new or edited topics to stored articles (the backfill); `process` then runs inside each
feed's transaction on the articles that feed just added, so an article and its matches
are committed together.

A backfill covers the articles first seen in the last `[watch] backfill_days` days,
plus every older article with an undelivered match of the topic (so an edited topic
leaves no stale match behind). Matches that still hold are updated in place, ones that
no longer hold are removed unless they were delivered, and the topic's fingerprint is
recorded last, in the same transaction: a crash leaves the topic to be backfilled again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session

from newswatch.config import Config
from sources.clean import match_text
from storage.db import Database
from storage.records import NewArticle
from storage.topics import (
    ArticleText,
    MatchRecord,
    TopicRow,
    TopicSpecRecord,
    article_pages,
    articles_by_id,
    drop_stale_matches,
    lock_topics,
    mark_backfilled,
    store_matches,
    sync_topics,
    undelivered_match_articles,
)
from watch.matcher import Document, Matcher, TopicMatch, TopicSpec, topic_fingerprint

__all__ = ["ArticleProcessor", "BackfillReport", "document"]


class _Text(Protocol):
    """What `document` reads: an `ArticleText` read back, or a `NewArticle` just stored."""

    @property
    def id(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def content(self) -> str | None: ...


def document(article: _Text) -> Document:
    """The matcher's view of an article: title, and the plain text of summary + content
    (`match_text`, computed by the parse worker for a new article parsed there)."""
    text = article.match_text if isinstance(article, NewArticle) else None
    if text is None:
        text = match_text(article.summary, article.content)
    return Document(id=article.id, title=article.title, text=text)


@dataclass(slots=True)
class BackfillReport:
    """What `prepare` re-applied: topic names, articles read, matches written, removed."""

    topics: list[str] = field(default_factory=list)
    articles: int = 0
    matches: int = 0
    removed: int = 0


class ArticleProcessor:
    """Matches newly stored articles against every configured topic."""

    def __init__(self, matcher: Matcher | None, topic_ids: dict[str, int]) -> None:
        self.matcher = matcher
        self.topic_ids = topic_ids

    @classmethod
    def prepare(
        cls, db: Database, config: Config, now: datetime
    ) -> tuple[ArticleProcessor, BackfillReport]:
        """Sync topics, backfill new or edited ones, and return a ready processor.

        Safe to run in several processes at once: each topic is backfilled once.
        """
        specs = [TopicSpec(t.name, t.query, t.min_score) for t in config.topics]
        records = [
            TopicSpecRecord(s.name, s.query, s.min_score, topic_fingerprint(s, config.aliases))
            for s in specs
        ]
        with db.session() as session:
            rows = sync_topics(session, records, now)
        processor = cls(
            Matcher.compile(specs, config.aliases) if specs else None,
            {row.name: row.id for row in rows},
        )
        report = BackfillReport()
        stale = [row for row in rows if row.needs_backfill]
        if stale:
            since = now - timedelta(days=config.file.watch.backfill_days)
            by_name = {s.name: s for s in specs}
            with db.session() as session:
                processor._backfill(session, stale, by_name, config, since, now, report)
        return processor, report

    def _backfill(
        self,
        session: Session,
        stale: Sequence[TopicRow],
        specs: dict[str, TopicSpec],
        config: Config,
        since: datetime,
        now: datetime,
        report: BackfillReport,
    ) -> None:
        current = lock_topics(session, [row.id for row in stale])
        # Another process may have done it while we waited for the lock.
        todo = [row for row in stale if current.get(row.id) != row.fingerprint]
        if not todo:
            return
        matcher = Matcher.compile([specs[row.name] for row in todo], config.aliases)
        kept: dict[int, set[int]] = {row.id: set() for row in todo}

        def apply(articles: Sequence[ArticleText]) -> None:
            records = self._records(matcher.match_many(document(a) for a in articles))
            for record in records:
                kept[record.topic_id].add(record.article_id)
            report.articles += len(articles)
            report.matches += store_matches(session, records, now, replace=True)

        for page in article_pages(session, since):
            apply(page)
        older = undelivered_match_articles(session, [row.id for row in todo], since)
        for start in range(0, len(older), 1000):
            apply(articles_by_id(session, older[start : start + 1000]))
        for row in todo:
            report.removed += drop_stale_matches(session, row.id, kept[row.id])
            mark_backfilled(session, row.id, row.fingerprint)
        report.topics = [row.name for row in todo]

    def _records(self, matches: Iterable[TopicMatch]) -> list[MatchRecord]:
        return [
            MatchRecord(
                article_id=m.doc_id,
                topic_id=self.topic_ids[m.topic],
                score=m.score,
                terms=m.terms,
                snippet=m.snippet,
                highlights=m.highlights,
            )
            for m in matches
        ]

    def matches(self, articles: Iterable[_Text]) -> list[MatchRecord]:
        """Every match of `articles` against the configured topics (nothing is stored)."""
        if self.matcher is None:
            return []
        return self._records(self.matcher.match_many(document(a) for a in articles))

    def process(self, session: Session, article_ids: Sequence[int], now: datetime) -> int:
        """Match stored articles by id; returns the new matches."""
        if self.matcher is None or not article_ids:
            return 0
        return store_matches(session, self.matches(articles_by_id(session, article_ids)), now)

    def process_new(self, session: Session, articles: Sequence[NewArticle], now: datetime) -> int:
        """Match the articles `store_articles` just inserted or revised in this
        transaction, from the text it stored (no read back); returns the new matches."""
        if self.matcher is None or not articles:
            return 0
        return store_matches(session, self.matches(articles), now)
