"""The operations behind each command, as plain functions over a loaded `Config`.

The CLI calls these; so do the Prefect flows (through `poll_once` and `digest_once`)
and the tests. They open the database named by the config (migrating it on first use)
through `newswatch.databases`, which keeps one `Database` per URL per process.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from newswatch.config import Config, ConfigError
from newswatch.databases import database
from storage.records import DueSource, FeedHealth, SourceSpec

if TYPE_CHECKING:  # the poll's modules load with a poll: `status` or `export` never uses them
    from newswatch.poll import FeedReport, PollReport
    from newswatch.processing import ArticleProcessor


def source_specs(config: Config) -> list[SourceSpec]:
    return [
        SourceSpec(
            name=s.name,
            url=s.url,
            tags=tuple(s.tags),
            language=s.language,
            poll_interval_s=int(s.poll_interval_minutes * 60) if s.poll_interval_minutes else None,
        )
        for s in config.sources
    ]


def plan_poll(config: Config, *, all_sources: bool, now: datetime) -> list[DueSource]:
    """Sync the configured sources and return the ones to poll now."""
    from storage.feeds import due_sources, sync_sources

    with database(config).session() as session:
        sync_sources(session, source_specs(config), origin="config")
        return due_sources(
            session,
            now,
            all_sources=all_sources,
            default_interval_s=int(config.poll.interval_minutes * 60),
        )


def poll_batch(
    config: Config,
    due: Sequence[DueSource],
    *,
    now: datetime,
    processor: ArticleProcessor | None = None,
    on_feed: Callable[[FeedReport], None] | None = None,
) -> PollReport:
    """Poll one batch of sources end to end (what each Prefect poll task runs).

    `processor`: topics already prepared for this poll (by `plan_poll`'s caller);
    without it they are synced and backfilled here.
    """
    from newswatch.poll import poll_sources
    from newswatch.processing import ArticleProcessor

    db = database(config)
    if processor is None:
        processor, _ = ArticleProcessor.prepare(db, config, now)
    return asyncio.run(poll_sources(db, config, due, processor=processor, now=now, on_feed=on_feed))


def poll_once(
    config: Config,
    *,
    all_sources: bool = False,
    on_feed: Callable[[FeedReport], None] | None = None,
    now: datetime | None = None,
) -> PollReport:
    """One whole poll without Prefect."""
    from newswatch.story_worker import StoryWorker

    now = now or datetime.now(UTC)
    due = plan_poll(config, all_sources=all_sources, now=now)
    stories = StoryWorker(config, now)
    try:
        report = poll_batch(config, due, now=now, on_feed=stories.listener(on_feed))
        report.stories_assigned, report.story_error = stories.finish()
    finally:
        stories.abandon()  # if the poll failed; its articles are assigned by the next one
    return report


def cluster_new_articles(config: Config, *, now: datetime) -> tuple[int, str | None]:
    """Assign every unassigned article to a story; (articles assigned, error or None).

    Once per poll, after every batch has stored its feeds: one step under one lock
    (see newswatch/stories.py). When it fails, the articles stay unassigned and the
    next poll picks them up.
    """
    from newswatch.stories import assign_stories
    from storage.db import DatabaseError

    try:
        return assign_stories(database(config), config, now).assigned, None
    except DatabaseError as err:
        return 0, str(err)


def run_poll(
    config: Config,
    *,
    all_sources: bool,
    prefect: bool,
    on_feed: Callable[[FeedReport], None] | None = None,
) -> PollReport:
    """The `poll` command: the Prefect flow, or the same work directly."""
    from newswatch.startup import loading

    if not prefect:
        with loading():
            importlib.import_module("newswatch.poll")  # what poll_once runs
        return poll_once(config, all_sources=all_sources, on_feed=on_feed)
    with loading():
        from flows.poll_flow import poll_flow
        from newswatch.poll import feed_listener

    token = feed_listener.set(on_feed)
    try:
        return asyncio.run(poll_flow(config_path=str(config.path), all_sources=all_sources))
    finally:
        feed_listener.reset(token)


def run_digest(
    config: Config,
    *,
    name: str | None,
    fmt: str | None,
    output: str | None,
    dry_run: bool,
    prefect: bool,
) -> Any:
    """The `digest` command: the Prefect flow, or the same work directly."""
    from digest.run import digest_once

    if not prefect or dry_run:
        return digest_once(
            config, database(config), name=name, fmt=fmt, output=output, dry_run=dry_run
        )
    from newswatch.startup import loading

    with loading():
        from flows.digest_flow import digest_flow

    return asyncio.run(digest_flow(config_path=str(config.path), name=name, fmt=fmt, output=output))


def feed_health(config: Config) -> list[FeedHealth]:
    """Every configured feed's health, in name order."""
    from storage.feeds import feed_health as stored_health

    with database(config).session() as session:
        sync_sources_quietly(session, config)
        return stored_health(session)


def health_json(row: FeedHealth) -> dict[str, Any]:
    """One feed's health as JSON-ready values (datetimes in ISO 8601)."""
    return {k: _json_default(v) if isinstance(v, datetime) else v for k, v in asdict(row).items()}


def sync_sources_quietly(session: Any, config: Config) -> None:
    from storage.feeds import sync_sources

    sync_sources(session, source_specs(config), origin="config")


def export_articles(config: Config, write: Callable[[str], object]) -> int:
    """Write every stored article as one JSON line; returns the count."""
    from storage.export import iter_articles

    count = 0
    # a read-only transaction: a long export must not hold SQLite's write lock
    with database(config).session(readonly=True) as session:
        for article in iter_articles(session):
            write(json.dumps(asdict(article), ensure_ascii=False, default=_json_default) + "\n")
            count += 1
    return count


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot export {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class QueryHit:
    score: float
    title: str
    source: str
    published: datetime
    terms: tuple[str, ...]
    snippet_marked: str
    url: str | None


@dataclass(frozen=True, slots=True)
class QueryTestResult:
    scanned: int
    total: int
    shown: list[QueryHit]


def test_query(config: Config, query: str, *, days: float, limit: int) -> QueryTestResult:
    """What `query` matches among articles first seen in the last `days` days."""
    from newswatch.processing import document
    from storage.topics import article_pages, article_urls
    from watch.matcher import Matcher, TopicSpec
    from watch.query import parse_query

    parse_query(query, config.aliases)  # a bad query's error names the query, not a topic
    matcher = Matcher.compile([TopicSpec("query", query)], config.aliases)
    since = datetime.now(UTC) - timedelta(days=days)
    scanned = 0
    hits: list[tuple[float, int, Any, Any]] = []
    with database(config).session(readonly=True) as session:
        for page in article_pages(session, since):
            scanned += len(page)
            by_id = {article.id: article for article in page}
            for match in matcher.match_many(document(a) for a in page):
                hits.append((match.score, match.doc_id, by_id[match.doc_id], match))
        hits.sort(key=lambda h: (-h[0], -h[1]))
        urls = article_urls(session, [h[1] for h in hits[:limit]])
    shown = [
        QueryHit(
            score=match.score,
            title=article.title,
            source=article.source,
            published=article.published_at,
            terms=match.terms,
            snippet_marked=_marked(match.snippet, match.highlights),
            url=urls.get(article.id),
        )
        for _, _, article, match in hits[:limit]
    ]
    return QueryTestResult(scanned=scanned, total=len(hits), shown=shown)


def _marked(snippet: str, spans: Sequence[tuple[int, int]]) -> str:
    out, last = [], 0
    for start, end in sorted(spans):
        out.append(snippet[last:start])
        out.append(f"[{snippet[start:end]}]")
        last = end
    out.append(snippet[last:])
    return "".join(out)


def list_topics(config: Config, *, days: float) -> list[Any]:
    from newswatch.processing import ArticleProcessor
    from storage.topics import topic_summaries

    now = datetime.now(UTC)
    db = database(config)
    ArticleProcessor.prepare(db, config, now)  # the configured topics, synced
    with db.session() as session:
        return topic_summaries(session, now - timedelta(days=days))


def import_opml(config: Config, data: bytes) -> tuple[int, int]:
    from sources.opml import OpmlError, read_opml
    from storage.feeds import add_sources

    try:
        feeds = read_opml(data)
    except OpmlError as err:
        raise ConfigError(f"not a usable OPML file: {err}") from None
    specs = [SourceSpec(name=f.name, url=f.url, tags=tuple(f.tags)) for f in feeds]
    with database(config).session() as session:
        added = add_sources(session, specs, origin="opml")
    return added, len(specs)


def export_opml(config: Config) -> bytes:
    from sources.opml import OpmlFeed, write_opml
    from storage.feeds import all_sources

    with database(config).session() as session:
        sync_sources_quietly(session, config)
        sources = all_sources(session)
    feeds = [OpmlFeed(name=s.name, url=s.url, tags=tuple(s.tags)) for s in sources]
    return write_opml(feeds, title="newswatch sources")
