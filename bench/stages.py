"""Where a cold poll's CPU goes, stage by stage, on the generated bench feeds.

Runs the poll path's pure stages in one process on N feed files read from disk (no
HTTP): parse (`sources.parse.parse_feed`), identity (`newswatch.poll.entry_record`),
match text (`newswatch.parse_pool.with_derived_fields`; these three run in the poll's parse
worker process for all but a poll's first bodies),
store (`storage.ingest.store_articles` with the feed state, one SAVEPOINT per feed and
a commit per group of feeds as `poll_sources` does), match
(`ArticleProcessor.process_new` in the same savepoint),
cluster (`newswatch.stories.assign_stories` once at the end, as a poll does),
digest (`digest.run.digest_once`: a daily digest of every topic as Markdown + HTML).
Each stage is timed with `time.process_time` around its own calls, so the figures
are CPU seconds of this process and do not depend on the machine's load as much as
wall times do. Fetching, digests and Prefect are measured as whole
processes by `bench.run` (see `--prefect` and the README).

Usage: `uv run python -m bench.stages --n 200 [--db sqlite|postgresql]`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from bench import gen_feeds

BENCH = Path(__file__).resolve().parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


class Clock:
    """CPU seconds per stage."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    def timed(self, stage: str, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        t = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            self.spent[stage] += time.process_time() - t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--db", default="sqlite", choices=("sqlite", "postgresql"))
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    clock = Clock()

    t0 = time.process_time()
    from newswatch.config import load_config
    from newswatch.parse_pool import with_derived_fields
    from newswatch.poll import GROUP_FEEDS, GROUP_SECONDS, entry_record
    from newswatch.processing import ArticleProcessor
    from sources.parse import parse_feed
    from storage.db import open_database
    from storage.feeds import due_sources, record_outcomes, sync_sources
    from storage.ingest import store_articles
    from storage.records import FeedOutcome, SourceSpec

    clock.spent["import"] = time.process_time() - t0

    feed_dir = BENCH / "work" / f"feeds-{args.seed}-1000"
    feeds = gen_feeds.generate(feed_dir, max(args.n, 1000), seed=args.seed)[: args.n]
    bodies = [
        (f"http://127.0.0.2/f/{i:05d}.xml", (feed_dir / "base" / Path(f.path).name).read_bytes())
        for i, f in enumerate(feeds)
    ]

    tmp = Path(tempfile.mkdtemp(prefix="nw-stages-"))
    if args.db == "sqlite":
        url = f"sqlite:///{tmp / 'stages.db'}"
    else:
        import psycopg

        name = f"newswatch_stages_{os.getpid()}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    from bench.run import newswatch_config

    cfg_path = tmp / "newswatch.toml"
    # A daily digest of every topic, written as Markdown and HTML (what a digest run
    # renders; email adds only the SMTP conversation, measured in tests, not here).
    digest_dir = tmp / "digests"
    cfg_path.write_text(
        newswatch_config([u for u, _ in bodies], url)
        + f'\n[[digests]]\nname = "daily"\nformat = ["markdown", "html"]\n'
        f"output = {json.dumps(str(digest_dir) + '/')}\nmax_items_per_topic = 50\n"
    )
    config = load_config(str(cfg_path))
    now = datetime.now(UTC)
    db = clock.timed("open+migrate", open_database, url)
    with db.session() as session:
        sync_sources(
            session,
            [SourceSpec(name=f"s{i}", url=u) for i, (u, _) in enumerate(bodies)],
            origin="config",
        )
        due = {
            s.url: s for s in due_sources(session, now, all_sources=True, default_interval_s=900)
        }
    processor, _ = clock.timed("prepare topics", ArticleProcessor.prepare, db, config, now)
    entries = matches = 0
    # The poll's transaction shape: each feed in its own SAVEPOINT, GROUP_FEEDS feeds
    # (or GROUP_SECONDS of storing) to a commit, as when the next feed is always ready
    # (a poll also commits when none is within GROUP_IDLE). Parsing runs in the poll's
    # worker process, so a group's age counts only the time spent storing here.
    group = None
    group_feeds = 0
    group_age = 0.0
    for url, body in bodies:
        parsed = clock.timed("parse", parse_feed, body, url, "application/xml")
        t = time.process_time()
        records = [entry_record(e, url) for e in parsed.entries]
        clock.spent["identity"] += time.process_time() - t
        # The poll's parse worker also cleans the text topic matching reads.
        records = clock.timed("match text", with_derived_fields, records)
        entries += len(records)
        t = time.process_time()
        wall = time.monotonic()
        if group is None:
            group = db.begin()
        with group.begin_nested():
            stored = clock.timed("store", store_articles, group, due[url].id, records, now)
            matches += clock.timed("match", processor.process_new, group, stored.new_articles, now)
            outcome = FeedOutcome(
                source_id=due[url].id, status="ok", http_status=200, error=None, etag='"x"',
                last_modified=None, checked_at=now, next_poll_at=now, retry_after=None,
                gone=False, permanent_redirect=None, new_items=len(stored.new_article_ids),
            )  # fmt: skip
            clock.timed("feed state", record_outcomes, group, [outcome])
        group_feeds += 1
        group_age += time.monotonic() - wall
        if group_feeds >= GROUP_FEEDS or group_age >= GROUP_SECONDS or url == bodies[-1][0]:
            clock.timed("commit", group.commit)
            group.close()
            group, group_feeds, group_age = None, 0, 0.0
        clock.spent["transaction total"] += time.process_time() - t
    try:
        from newswatch.stories import assign_stories
    except ImportError:  # an older tree without story clustering
        pass
    else:
        clock.timed("cluster", assign_stories, db, config, now)
    from digest.run import digest_once

    digest = clock.timed("digest", digest_once, config, db, name="daily", now=now)
    db.dispose()
    out = {k: round(v, 3) for k, v in clock.spent.items()}
    out["feeds"] = args.n
    out["entries"] = entries
    out["matches"] = matches
    out["digest stories"] = max((c.stories for c in digest.channels), default=0)
    out["parse ms/feed"] = round(1000 * clock.spent["parse"] / args.n, 2)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
