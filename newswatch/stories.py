"""Story assignment after a poll: every stored article without a story gets one.

`assign_stories(db, config, now)` runs once at the end of each poll batch (after its
feeds' articles are committed), not inside each feed's transaction. Choices, and why:

- **One step, one transaction, one lock.** Feeds are stored in transactions of their
  own, possibly by several processes or threads at once. Clustering inside those
  would make the stories depend on which feed committed first and race on merges.
  Instead a run takes the story lock (`storage.stories.lock_stories`: a PostgreSQL
  advisory transaction lock; on SQLite the write lock BEGIN IMMEDIATE already holds),
  then reads every article with no story yet, oldest id first, assigns them, and
  commits the assignments, merges and story rows together. Runs are serialised, each
  sees everything committed before it, and a crash leaves the articles unassigned
  for the next run. Two processes clustering at once end where one would.
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
- **Memory bounded by the window.** The clusterer evicts articles published more
  than the window before `now`; unassigned articles are read in pages. Articles
  already older than the window when first clustered (a first run over an existing
  database) can only join stories within their page, as they would have had no
  window neighbours left anyway.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from newswatch.config import Config
from storage.db import Database
from storage.stories import (
    AssignedStory,
    StoryArticle,
    bump_story_clock,
    lock_stories,
    save_assignments,
    story_representatives,
    unclustered_articles,
    window_articles,
    window_story_ids,
)
from watch.cluster import DEFAULT_THRESHOLD, SKETCH_PREFIX, StoryCandidate, StoryClusterer

__all__ = ["StoryRun", "assign_stories", "forget_cached_clusterers"]

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


def assign_stories(
    db: Database, config: Config, now: datetime | None = None, *, page_size: int = PAGE
) -> StoryRun:
    """Give every stored article without a story one (see the module docstring).

    Call it after a poll's articles are committed. Does nothing when `[clustering]
    enabled = false`. Raises `DatabaseError` if the database fails; nothing is saved then.
    """
    settings = config.file.clustering
    if not settings.enabled:
        return StoryRun()
    now = now or datetime.now(UTC)
    window = timedelta(hours=settings.window_hours)
    threshold = settings.threshold or DEFAULT_THRESHOLD
    key = (db.url, window, threshold)
    assigned = joined = merged = 0
    with db.session() as session:
        token = lock_stories(session)
        page = unclustered_articles(
            session, after_id=0, limit=page_size, sketch_prefix=SKETCH_PREFIX
        )
        if not page:
            # Nothing to assign (a poll that found nothing new): loading the window
            # would re-read and re-fingerprint every article of the last window_hours.
            return StoryRun()
        with _cache_lock:
            cached = _cache.pop(key, None)
        reloaded = not (
            cached is not None and token is not None and cached.token == token and now >= cached.now
        )
        if cached is not None and not reloaded:
            clusterer = cached.clusterer
            clusterer.evict(now)
        else:
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
        while page:
            results = clusterer.add([_candidate(a) for a in page])
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
            assigned += len(results)
            merged += sum(len(r.merged_story_keys) for r in results)
            joined += sum(1 for r in results if r.story_key != r.article_id)
            clusterer.evict(now)
            page = unclustered_articles(
                session, after_id=page[-1].id, limit=page_size, sketch_prefix=SKETCH_PREFIX
            )
        if assigned:
            token = bump_story_clock(session)
    if token is not None:
        with _cache_lock:
            _cache[key] = _Cached(token, clusterer, now)
    return StoryRun(assigned, joined, merged, reloaded, len(clusterer))
