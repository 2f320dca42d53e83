"""One poll of a batch of feeds, end to end.

The single place where the stages meet, for one feed at a time:
fetch → classify → parse → identify → store (articles, sightings, feed state in one
transaction) → match topics → cluster stories. The CLI, the Prefect flow and the tests
all call `poll_sources`.

A feed's articles, their topic matches and its new HTTP validators (ETag,
Last-Modified) are written in one SAVEPOINT of the transaction they are committed in:
a poll killed at any point either stored all of them or none, so the next poll fetches
the feed again and its ON CONFLICT inserts duplicate nothing. Several feeds share one
transaction (a commit per feed cost a quarter of storing it): it commits after
`GROUP_FEEDS` feeds, once it is `GROUP_SECONDS` old, and when no fetched feed is ready
to store within `GROUP_IDLE`, so it never holds SQLite's write lock long while waiting
(a Prefect poll's batches, in one process, take turns with it). A feed that fails rolls
back to its savepoint; the others of its group stay. A stored feed is reported
(`on_feed`, `PollReport.new_article_ids`) only once its group has committed.

Parsing and storing never run on the event loop: a 20 MB entry takes seconds to
parse, and on the loop it would stall every fetch in flight into a false read timeout.
Storing runs on one worker thread, which keeps feeds stored in the order they were
fetched and the database to one writer per poll. Parsing runs there too for the first
`parse_pool.POOL_FROM` bodies of the polls running in the process; later bodies are
parsed (and identified) in `parse_pool`'s worker process as soon as they arrive, so
the next feeds parse while this one is stored. At most `HELD_FEEDS` fetched feeds, with
`HELD_BYTES` of bodies, wait for their store. A feed whose parse or store fails in an
unexpected way gets that error stored and the poll goes on; only an unusable database
(`DatabaseError`) stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from array import array
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from newswatch import parse_pool
from newswatch.config import Config
from newswatch.parse_pool import ParsedBody, entry_record, parse_in_process, unexpected
from newswatch.processing import ArticleProcessor
from sources.backoff import next_poll_at
from sources.errors import FeedError, RateLimited
from sources.fetch import FetchOptions, FetchRequest, FetchResult, fetch_feeds
from storage.db import Database, DatabaseError, LockConflict
from storage.feeds import record_outcomes
from storage.ingest import store_articles
from storage.records import DueSource, FeedOutcome

__all__ = ["FeedReport", "PollReport", "entry_record", "feed_listener", "poll_sources"]

# Feed-state updates of feeds without new content are written in groups: losing one
# group to a crash only means those feeds are fetched again.
_OUTCOME_FLUSH = 200
# Stored feeds committed together, at most, and how long their transaction may stay
# open. A commit costs ~1.7 ms of CPU on SQLite in WAL mode (and an fsync on
# PostgreSQL), about a quarter of storing a feed; 50 feeds make that nothing, and
# 0.25 s bounds what a crash loses and how long another writer waits for the lock.
GROUP_FEEDS = 50
GROUP_SECONDS = 0.25
# How long an open group waits for the next feed: when parsing is the slower half
# (a feed every ~10 ms from the worker), the next feed is usually that close.
GROUP_IDLE = 0.02
# Fetched feeds a poll holds before they are stored (parsing, or parsed and waiting
# for the store thread), and their bodies' bytes, at most; one feed is always let in,
# whatever its size (`fetch_options` caps that). The store thread waits for SQLite's
# write lock while the story worker saves a page (up to ~0.2 s): with 4 feeds held,
# the parse worker and the fetching stopped meanwhile; with 16, a cold 1,000-feed poll
# took ~1 s less (bench/README.md). The byte bound keeps what 16 large feeds would hold
# (16 × 10 MB bodies, and their records) out of memory; 16 bench feeds hold ~1 MB.
HELD_FEEDS = 16
HELD_BYTES = 16 * 1024 * 1024
# Times a feed is stored again after PostgreSQL broke a deadlock by failing it.
_LOCK_RETRIES = 3

# Who wants to hear about each finished feed (the CLI's progress bar). A context
# variable, because a Prefect flow's tasks cannot take a callable as a parameter but do
# inherit the caller's context.
feed_listener: ContextVar[Callable[[FeedReport], None] | None] = ContextVar(
    "feed_listener", default=None
)


@dataclass(frozen=True, slots=True)
class FeedReport:
    """What happened to one feed in one poll."""

    source_id: int
    name: str
    url: str
    status: str  # ok | unchanged | an error kind from sources.errors | skipped
    new_articles: int = 0
    duplicates: int = 0
    http_status: int | None = None
    error: str | None = None


@dataclass(slots=True)
class PollReport:
    """The summary a poll prints and publishes."""

    started_at: datetime
    finished_at: datetime | None = None
    feeds: list[FeedReport] = field(default_factory=list)
    # An array, not a list: Prefect walks a flow's return value (each list, tuple and
    # dataclass in it) for futures, and the 50,000 ints of a cold poll took it 0.3 s.
    new_article_ids: array[int] = field(default_factory=lambda: array("q"))
    new_matches: int = 0
    stories_assigned: int = 0
    story_error: str | None = None  # clustering failed; the next poll assigns those articles

    @property
    def ok(self) -> int:
        return sum(1 for f in self.feeds if f.status == "ok")

    @property
    def unchanged(self) -> int:
        return sum(1 for f in self.feeds if f.status == "unchanged")

    @property
    def failed(self) -> int:
        return sum(1 for f in self.feeds if f.status not in ("ok", "unchanged", "skipped"))

    @property
    def skipped(self) -> int:
        return sum(1 for f in self.feeds if f.status == "skipped")

    @property
    def new_articles(self) -> int:
        return sum(f.new_articles for f in self.feeds)

    @property
    def duplicates(self) -> int:
        return sum(f.duplicates for f in self.feeds)

    def merge(self, other: PollReport) -> None:
        self.feeds.extend(other.feeds)
        self.new_article_ids.extend(other.new_article_ids)
        self.new_matches += other.new_matches
        self.stories_assigned += other.stories_assigned
        self.story_error = self.story_error or other.story_error
        if other.finished_at and (not self.finished_at or other.finished_at > self.finished_at):
            self.finished_at = other.finished_at


def fetch_options(config: Config) -> FetchOptions:
    poll = config.poll
    options = FetchOptions(
        concurrency=poll.concurrency,
        per_host=poll.per_host,
        connect_timeout=poll.connect_timeout,
        read_timeout=poll.read_timeout,
        total_timeout=poll.feed_timeout,
        max_bytes=poll.max_feed_bytes,
        max_redirects=poll.max_redirects,
    )
    if poll.user_agent:
        from dataclasses import replace

        options = replace(options, user_agent=poll.user_agent)
    return options


class _Poll:
    """State of one `poll_sources` call."""

    def __init__(
        self,
        db: Database,
        config: Config,
        processor: ArticleProcessor,
        now: datetime,
        on_feed: Callable[[FeedReport], None] | None,
    ) -> None:
        self.db = db
        self.config = config
        self.processor = processor
        self.now = now
        self.on_feed = on_feed
        self.rng = random.Random()
        self.report = PollReport(started_at=now)
        self.pending: list[FeedOutcome] = []
        self.group: _Group | None = None

    def interval(self, source: DueSource) -> timedelta:
        seconds = source.poll_interval_s or self.config.poll.interval_minutes * 60
        return timedelta(seconds=seconds)

    def outcome(
        self,
        source: DueSource,
        result: FetchResult,
        status: str,
        error: FeedError | None,
        new_items: int = 0,
    ) -> FeedOutcome:
        checked = datetime.now(UTC)
        failures_hint = source.consecutive_failures + 1 if error else 0
        return FeedOutcome(
            source_id=source.id,
            status=status,
            http_status=result.http_status,
            error=str(error) if error else None,
            etag=result.etag if error is None else None,
            last_modified=result.last_modified if error is None else None,
            checked_at=checked,
            next_poll_at=next_poll_at(
                checked, self.interval(source), failures_hint, error, self.rng
            ),
            retry_after=error.retry_after if isinstance(error, RateLimited) else None,
            gone=error is not None and error.kind == "gone",
            permanent_redirect=result.permanent_redirect,
            new_items=new_items,
        )

    def finish(self, feed: FeedReport) -> None:
        self.report.feeds.append(feed)
        if self.on_feed is not None:
            self.on_feed(feed)

    def flush(self) -> None:
        """Write the pending feed states and commit the open group with them."""
        if self.pending:
            with self.db.errors():
                record_outcomes(self.session(), self.pending)
            self.pending = []
        self.commit()

    def session(self) -> Session:
        """The open group's session; a new group if none is open."""
        return self.open_group().session

    def open_group(self) -> _Group:
        if self.group is None:
            self.group = _Group(self.db.begin(), time.monotonic())
        return self.group

    def commit_in(self) -> float | None:
        """Seconds until the open group is due to commit; None if no group is open."""
        if self.group is None:
            return None
        return max(0.0, self.group.started + GROUP_SECONDS - time.monotonic())

    def commit(self) -> None:
        """Commit the open group, then report its feeds (they are stored now)."""
        group, self.group = self.group, None
        if group is None:
            return
        try:
            with self.db.errors():
                group.session.commit()
        finally:
            group.session.close()
        for feed, new_article_ids, matches in group.stored:
            self.report.new_article_ids.extend(new_article_ids)
            self.report.new_matches += matches
            self.finish(feed)

    def abandon(self) -> None:
        """Roll the open group back: the database failed, its feeds are not stored."""
        group, self.group = self.group, None
        if group is not None:
            with contextlib.suppress(Exception):  # the error that brought us here counts
                group.session.rollback()
            group.session.close()

    def handle(
        self, source: DueSource, result: FetchResult, parsed: ParsedBody | FeedError | None
    ) -> None:
        """Store one fetched feed; `parsed` is its body's parse if the pool did it."""
        base = FeedReport(source.id, source.name, source.url, "ok", http_status=result.http_status)
        if result.status == "not_modified":
            self.pending.append(self.outcome(source, result, "unchanged", None))
            self.finish(_replace(base, status="unchanged"))
        elif result.status == "error":
            assert result.error is not None
            self.pending.append(self.outcome(source, result, result.error.kind, result.error))
            self.finish(_replace(base, status=result.error.kind, error=str(result.error)))
        else:
            self.store(source, result, base, parsed)
        if len(self.pending) >= _OUTCOME_FLUSH:
            self.flush()
        elif self.group is not None and (
            self.group.feeds >= GROUP_FEEDS or self.commit_in() == 0.0
        ):
            self.commit()

    def failed(
        self, source: DueSource, result: FetchResult, base: FeedReport, err: FeedError
    ) -> None:
        self.pending.append(self.outcome(source, result, err.kind, err))
        self.finish(_replace(base, status=err.kind, error=str(err)))

    def store(
        self,
        source: DueSource,
        result: FetchResult,
        base: FeedReport,
        parsed: ParsedBody | FeedError | None,
    ) -> None:
        assert result.body is not None
        if parsed is None:
            parsed = parse_in_process(result.body, result.final_url, result.content_type)
        if isinstance(parsed, FeedError):
            self.failed(source, result, base, parsed)
            return
        for attempt in range(_LOCK_RETRIES + 1):
            group = self.open_group()
            group.feeds += 1
            session = group.session
            try:
                with self.db.errors(), session.begin_nested():
                    stored = store_articles(session, source.id, parsed.records, self.now)
                    matches = self.processor.process_new(
                        session, stored.new_articles + stored.revised_articles, self.now
                    )
                    record_outcomes(
                        session,
                        [self.outcome(source, result, "ok", None, len(stored.new_article_ids))],
                    )
            except LockConflict:
                if attempt == _LOCK_RETRIES:
                    self.abandon()
                    raise
                # Another poll's group waits for rows this group wrote while this feed
                # waited for one of its rows. Commit the rest of the group so that it
                # goes on, then store this feed again (its savepoint was rolled back).
                self.commit()
                continue
            except DatabaseError:
                self.abandon()
                raise
            except Exception as exc:  # rolled back to the savepoint; e.g. a value refused
                self.failed(source, result, base, unexpected("storing", result.final_url, exc))
                return
            break
        feed = _replace(
            base,
            new_articles=len(stored.new_article_ids),
            duplicates=stored.duplicates,
            error=parsed.warning and f"recovered from: {parsed.warning}",
        )
        group.stored.append((feed, stored.new_article_ids, matches))


@dataclass(slots=True)
class _Group:
    """The open transaction of the feeds stored since the last commit."""

    session: Session
    started: float  # time.monotonic()
    feeds: int = 0  # stored or failed in it
    stored: list[tuple[FeedReport, list[int], int]] = field(default_factory=list)


def _replace(report: FeedReport, **changes: object) -> FeedReport:
    from dataclasses import replace

    return replace(report, **changes)  # type: ignore[arg-type]


async def poll_sources(
    db: Database,
    config: Config,
    due: Sequence[DueSource],
    *,
    processor: ArticleProcessor | None = None,
    now: datetime | None = None,
    on_feed: Callable[[FeedReport], None] | None = None,
) -> PollReport:
    """Fetch, parse and store every source in `due`; record each feed's outcome.

    Never raises for one feed's failure. Feeds still in flight when the poll deadline
    passes are reported as skipped and stay due for the next poll.
    """
    now = now or datetime.now(UTC)
    if processor is None:
        processor, _ = ArticleProcessor.prepare(db, config, now)
    with parse_pool.in_use():
        return await _poll_sources(db, config, due, processor, now, on_feed)


async def _poll_sources(
    db: Database,
    config: Config,
    due: Sequence[DueSource],
    processor: ArticleProcessor,
    now: datetime,
    on_feed: Callable[[FeedReport], None] | None,
) -> PollReport:
    state = _Poll(db, config, processor, now, on_feed or feed_listener.get())
    by_id = {source.id: source for source in due}
    requests = [
        FetchRequest(key=s.id, url=s.url, etag=s.etag, last_modified=s.last_modified) for s in due
    ]
    done: set[int] = set()
    loop = asyncio.get_running_loop()
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="newswatch-store")
    fetched: asyncio.Queue[_Fetched | None] = asyncio.Queue()
    held = _Held(HELD_FEEDS, HELD_BYTES)
    fetcher = asyncio.create_task(_fetch(requests, fetch_options(config), fetched, held))
    getting: asyncio.Task[_Ready | None] | None = None
    try:
        async with asyncio.timeout(config.poll.deadline):
            while True:
                getting = asyncio.create_task(_next(fetched))
                left_s = state.commit_in()
                if left_s is not None:
                    # The open group commits rather than wait long for the next feed.
                    ready, _ = await asyncio.wait({getting}, timeout=min(left_s, GROUP_IDLE))
                    if not ready:
                        await loop.run_in_executor(worker, state.commit)
                item = await getting
                if item is None:
                    break
                result, parsed = item
                source = by_id[result.request.key]
                done.add(source.id)
                await loop.run_in_executor(worker, state.handle, source, result, parsed)
                await held.release(result)
            await fetcher  # raises what stopped it, if anything did
    except TimeoutError:
        pass
    finally:
        if getting is not None:
            getting.cancel()  # its feed, taken from the queue, is skipped
            await asyncio.wait([getting])
        fetcher.cancel()
        await asyncio.wait([fetcher])
        # Fetched but not yet stored: skipped, like the feeds still being fetched.
        while not fetched.empty():
            left = fetched.get_nowait()
            if left is not None and left[1] is not None:
                left[1].cancel()
        # A feed being stored when the deadline passed is finished, not abandoned half-way.
        worker.shutdown(wait=True)
        state.flush()
    for source in due:
        if source.id not in done:
            state.finish(
                FeedReport(
                    source.id,
                    source.name,
                    source.url,
                    "skipped",
                    error=f"poll deadline of {config.poll.deadline:g} s passed",
                )
            )
    state.report.finished_at = datetime.now(UTC)
    return state.report


class _Held:
    """Fetched feeds held until they are stored: at most `feeds` of them, and at most
    `size` bytes of their bodies unless there is only one."""

    def __init__(self, feeds: int, size: int) -> None:
        self._feeds = feeds
        self._size = size
        self._held_feeds = 0
        self._held_size = 0
        self._changed = asyncio.Condition()

    @property
    def held(self) -> tuple[int, int]:
        """(feeds, body bytes) held now."""
        return self._held_feeds, self._held_size

    def _room_for(self, size: int) -> bool:
        return self._held_feeds == 0 or (
            self._held_feeds < self._feeds and self._held_size + size <= self._size
        )

    async def acquire(self, result: FetchResult) -> None:
        """Wait until `result` may be held, and hold it."""
        size = _body_size(result)
        async with self._changed:
            await self._changed.wait_for(lambda: self._room_for(size))
            self._held_feeds += 1
            self._held_size += size

    async def release(self, result: FetchResult) -> None:
        """`result` is stored: make its room."""
        async with self._changed:
            self._held_feeds -= 1
            self._held_size -= _body_size(result)
            self._changed.notify_all()


def _body_size(result: FetchResult) -> int:
    return 0 if result.body is None else len(result.body)


# A fetched feed waiting for its store, with its body's parse if it went to the pool.
_Fetched = tuple[FetchResult, parse_pool.Parsing | None]


async def _fetch(
    requests: list[FetchRequest],
    options: FetchOptions,
    fetched: asyncio.Queue[_Fetched | None],
    held: _Held,
) -> None:
    """Fetch every request into `fetched`, in the order they complete, then None.

    The first `POOL_FROM` bodies of the polls running in this process are left for the
    store thread to parse; later ones go to the parse pool right away, so they parse
    while earlier feeds are stored."""
    try:
        async with contextlib.aclosing(fetch_feeds(requests, options)) as results:
            async for result in results:
                await held.acquire(result)
                parsing = None
                if result.status == "ok" and result.body is not None and parse_pool.take_body():
                    parsing = parse_pool.submit(result.body, result.final_url, result.content_type)
                fetched.put_nowait((result, parsing))
    finally:
        fetched.put_nowait(None)


# A fetched feed ready to store, with its body's parse if the pool did it.
_Ready = tuple[FetchResult, ParsedBody | FeedError | None]


async def _next(fetched: asyncio.Queue[_Fetched | None]) -> _Ready | None:
    """The next fetched feed once its parse (if it went to the pool) is done; None
    after the last."""
    item = await fetched.get()
    if item is None:
        return None
    result, parsing = item
    return result, None if parsing is None else await _parsed(parsing)


async def _parsed(
    parsing: parse_pool.Parsing,
) -> ParsedBody | FeedError | None:
    try:
        with contextlib.suppress(Exception):  # `collect` tells what became of it
            await asyncio.wrap_future(parsing)
    except asyncio.CancelledError:
        parsing.cancel()  # skipped: no need to finish it
        raise
    return parse_pool.collect(parsing)
