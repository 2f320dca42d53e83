"""Story assignment after a poll: every stored article without a story gets one.

`assign_stories(db, config, now)` runs at the end of each poll (after its feeds'
articles are committed), not inside each feed's transaction; while a poll is still
storing, `assign_next_page` (run by `newswatch.story_worker`) assigns what is already
committed, a page at a time. Choices, and why:

- **One step, one transaction, one lock.** Feeds are stored in transactions of their
  own, possibly by several processes or threads at once. Clustering inside those
  would make the stories depend on which feed committed first and race on merges.
  Instead a run takes the story lock (`storage.stories.lock_stories`: a PostgreSQL
  advisory transaction lock; on SQLite the write lock BEGIN IMMEDIATE already holds),
  then reads every article with no story yet, oldest id first, assigns them, and
  commits the assignments, merges and story rows together. Runs are serialised, each
  sees everything committed before it, and a crash leaves the articles unassigned
  for the next run. Two processes clustering at once end where one would.
  `assign_next_page` reads and clusters its page before it takes the lock, and saves
  only if no run saved in between (the story clock's token says so); otherwise it
  throws the page's work away and runs `assign_stories`.
- **Deterministic.** The clusterer's stories are connected components of a
  near-duplicate graph (`watch.cluster`), so they do not depend on arrival order
  (except through phrases closed as boilerplate, see `watch.cluster`); a story's
  id is the smallest article id it ever held and its representative the earliest
  published article, so every process computes the same rows.
- **Cached between polls, verified by a token.** Reloading the window means
  reading and re-fingerprinting every article of the last `window_hours`. A process
  keeps its clusterer (one per database URL, window and threshold) after a run, with
  the story clock token that run wrote. The next run reuses it only if the token in
  the database is still that one, i.e. no other process clustered in between;
  otherwise, or after a failed run, it reloads. The cache entry is taken out while a
  run uses it and put back only after the commit, so it never holds uncommitted work.
- **Memory bounded by the window.** Unassigned articles are read in pages. While a
  run goes through them, the clusterer keeps articles published up to two windows
  before `now`; when it ends, one window. The slack is for a first poll, whose feeds
  carry entries days old: with one window, an article older than that joined only
  articles of its own page, so the stories depended on where pages began, which for
  a poll clustering as it stores (`newswatch.story_worker`) is a matter of timing.
  Articles older than two windows when first clustered can still only join stories
  within their page, as they would have had no window neighbours left anyway.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from newswatch.config import Config
from storage.db import Database
from storage.stories import (
    AssignedStory,
    StoryArticle,
    bump_story_clock,
    lock_stories,
    save_assignments,
    story_clock,
    story_representatives,
    unclustered_articles,
    window_articles,
    window_story_ids,
)
from watch.cluster import (
    DEFAULT_THRESHOLD,
    SKETCH_PREFIX,
    StoryAssignment,
    StoryCandidate,
    StoryClusterer,
)

__all__ = ["StoryRun", "assign_next_page", "assign_stories", "forget_cached_clusterers"]

PAGE = 5000  # unassigned articles read, clustered and saved at a time


@dataclass(frozen=True, slots=True)
class StoryRun:
    """What one `assign_stories` call did.

    `assigned`: articles given a story; `joined`: of those, the ones in a story that
    another article started (its id is not theirs); `merged`: stories absorbed into
    others; `reloaded`: the window was read from the database (no current cached
    clusterer); `held`: articles of the window the clusterer holds afterwards.
    """

    assigned: int = 0
    joined: int = 0
    merged: int = 0
    reloaded: bool = False
    held: int = 0


@dataclass(slots=True)
class _Cached:
    token: int
    clusterer: StoryClusterer
    now: datetime


_cache: dict[tuple[str, timedelta, float], _Cached] = {}
_cache_lock = threading.Lock()


def forget_cached_clusterers() -> None:
    """Drop every cached clusterer (the next run of each database reloads its window)."""
    with _cache_lock:
        _cache.clear()


def _candidate(article: StoryArticle) -> StoryCandidate:
    return StoryCandidate(
        article.id, article.published_at, article.title, article.summary, sketch=article.sketch
    )


def _key(db: Database, config: Config) -> tuple[str, timedelta, float]:
    """The cache key of the clusterer for this database and settings."""
    settings = config.file.clustering
    window = timedelta(hours=settings.window_hours)
    return (db.url, window, settings.threshold or DEFAULT_THRESHOLD)


def _unclustered(session: Session, page_size: int, after_id: int = 0) -> list[StoryArticle]:
    """The next page of articles without a story, oldest id first, read by their sketch."""
    return unclustered_articles(
        session, after_id=after_id, limit=page_size, sketch_prefix=SKETCH_PREFIX
    )


def _clusterer(
    session: Session,
    key: tuple[str, timedelta, float],
    token: int | None,
    now: datetime,
) -> tuple[StoryClusterer, bool]:
    """The cached clusterer if it is current (`token`), else one loaded from the
    window; and whether it was loaded. Taken out of the cache: the caller puts it back
    once its work is committed."""
    _, window, threshold = key
    with _cache_lock:
        cached = _cache.pop(key, None)
    if cached is not None and token is not None and cached.token == token and now >= cached.now:
        cached.clusterer.evict(now - window)
        return cached.clusterer, False
    clusterer = StoryClusterer(window=window, threshold=threshold)
    since = now - window
    # Streamed into the clusterer, never held as a list: a 1,000-feed window is
    # ~50,000 articles, over 100 MB as Python objects where texts are read.
    representatives = story_representatives(session, window_story_ids(session, since))
    clusterer.load(
        (
            (_candidate(a), a.story_id)
            for a in window_articles(session, since, sketch_prefix=SKETCH_PREFIX)
            if a.story_id is not None
        ),
        representatives,
    )
    return clusterer, True


def _save(session: Session, results: list[StoryAssignment], now: datetime) -> tuple[int, int]:
    """Save one page's assignments; (articles joined to another's story, stories merged)."""
    save_assignments(
        session,
        [
            AssignedStory(
                r.article_id, r.story_key, r.representative_article_id, r.merged_story_keys
            )
            for r in results
        ],
        now,
    )
    merged = sum(len(r.merged_story_keys) for r in results)
    joined = sum(1 for r in results if r.story_key != r.article_id)
    return joined, merged


def _keep(
    key: tuple[str, timedelta, float], token: int, clusterer: StoryClusterer, now: datetime
) -> None:
    with _cache_lock:
        _cache[key] = _Cached(token, clusterer, now)


def assign_stories(
    db: Database, config: Config, now: datetime | None = None, *, page_size: int = PAGE
) -> StoryRun:
    """Give every stored article without a story one (see the module docstring).

    Call it after a poll's articles are committed. Does nothing when `[clustering]
    enabled = false`. Raises `DatabaseError` if the database fails; nothing is saved then.
    """
    if not config.file.clustering.enabled:
        return StoryRun()
    now = now or datetime.now(UTC)
    key = _key(db, config)
    window = key[1]
    assigned = joined = merged = 0
    with db.session() as session:
        token = lock_stories(session)
        page = _unclustered(session, page_size)
        if not page:
            # Nothing to assign (a poll that found nothing new): loading the window
            # would re-read and re-fingerprint every article of the last window_hours.
            return StoryRun()
        clusterer, reloaded = _clusterer(session, key, token, now)
        while page:
            results = clusterer.add([_candidate(a) for a in page])
            page_joined, page_merged = _save(session, results, now)
            assigned += len(results)
            joined += page_joined
            merged += page_merged
            clusterer.evict(now - window)
            page = _unclustered(session, page_size, after_id=page[-1].id)
        if assigned:
            token = bump_story_clock(session)
    if token is not None:
        clusterer.evict(now)
        _keep(key, token, clusterer, now)
    return StoryRun(assigned, joined, merged, reloaded, len(clusterer))


def assign_next_page(
    db: Database, config: Config, now: datetime, *, page_size: int = PAGE
) -> StoryRun:
    """Give up to `page_size` articles without a story one, locking only to save.

    For a poll that is still storing articles (`newswatch.story_worker`): the page is
    read and clustered in a read-only transaction, without the story lock, which on
    SQLite is the database's write lock, so the poll's writes go on meanwhile. Then
    the lock is taken, and the page saved only if the story clock's token is still the
    one read with the page: no other run saved in between, so the clusterer's state
    and the page's articles (none of them assigned since) are what a locked run would
    have seen. Otherwise nothing is saved and `assign_stories` runs instead.
    """
    if not config.file.clustering.enabled:
        return StoryRun()
    key = _key(db, config)
    window = key[1]
    with db.session(readonly=True) as session:
        token = story_clock(session)
        page = _unclustered(session, page_size)
        if not page:
            return StoryRun()
        clusterer, reloaded = _clusterer(session, key, token, now)
        results = clusterer.add([_candidate(a) for a in page])
    saved: int | None = None
    with db.session() as session:
        if lock_stories(session) == token:
            joined, merged = _save(session, results, now)
            saved = bump_story_clock(session)
    if saved is None:  # another run saved first: this page's clustering is stale
        return assign_stories(db, config, now)
    clusterer.evict(now - window)  # a poll's later pages may hold articles as old as these
    _keep(key, saved, clusterer, now)
    return StoryRun(len(results), joined, merged, reloaded, len(clusterer))
