"""Benchmark story clustering: throughput and memory over a generated article stream.

    uv run python bench/bench_cluster.py            # 50,000 articles, 30 days, batches of 50
    uv run python bench/bench_cluster.py --days 60 --articles 100000
    uv run python bench/bench_cluster.py --integrated   # assign_stories on SQLite, per poll

The stream imitates a day of polling: stories are wire items carried by 1-5 outlets
(verbatim, retitled, lightly rewritten) within a few hours, over a Zipf-like
vocabulary with real stopwords, so common bigrams make long posting lists as they
do in real feeds. Articles arrive in publication order in batches of `--batch`;
after every batch the clusterer evicts what left the window (as a poll would).
Throughput counts `add` + `evict` only, in CPU time (the machine may be shared),
twice: from the sketches a poll's parse workers compute and store with each article
(what a poll's clustering step reads), and from the text alone (fingerprinting it too);
`load` (a restart restoring the window: from the stored sketches, or fingerprinting
every article again) is timed on all the articles at once.
Peak RSS is sampled after every batch in a fresh child process per window, which
generates the stream lazily so that only the clusterer grows.

`--integrated` measures what a poll pays: `newswatch.stories.assign_stories` on a
SQLite file holding the last 72 h of the same stream, after each poll stored 1,000
new articles, with the process's clusterer kept from the previous poll (the usual
case) and without it (after a restart, or another process's run: the window is
reloaded from the stored sketches).
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import itertools
import os
import random
import subprocess
import sys
import time
import timeit
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from watch.cluster import StoryCandidate, StoryClusterer, sketch

STOPWORDS = [
    "the",
    "of",
    "in",
    "on",
    "at",
    "to",
    "for",
    "and",
    "a",
    "by",
    "with",
    "from",
    "as",
    "is",
    "was",
    "said",
    "after",
    "over",
]
OUTLETS = [f"outlet{i}" for i in range(60)]
START = datetime(2026, 10, 1, tzinfo=UTC)


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choices(letters, k=rng.randint(3, 10))) for _ in range(size)]


def _sentence(rng: random.Random, vocab: list[str], cum_weights: list[float], n: int) -> list[str]:
    content = rng.choices(vocab, cum_weights=cum_weights, k=n)
    out: list[str] = []
    for word in content:
        if rng.random() < 0.3:
            out.append(rng.choice(STOPWORDS))
        else:
            out.append(word)
        if rng.random() < 0.05:
            out.append(str(rng.randint(1, 500)))
    return out


def _rewrite(rng: random.Random, text: list[str], vocab: list[str], rate: float) -> list[str]:
    out = []
    for word in text:
        r = rng.random()
        if r < rate / 2:
            continue  # dropped
        out.append(rng.choice(vocab) if r < rate else word)
    return out


def stream(articles: int, days: int, seed: int = 6) -> Iterator[StoryCandidate]:
    """Articles in publication order: stories of 1-5 versions over `days` days."""
    rng = random.Random(seed)
    vocab = _vocabulary(rng, 30_000)
    weights = itertools.accumulate(1.0 / (rank + 10) for rank in range(len(vocab)))  # Zipf-like
    cum = list(weights)
    span = days * 86_400
    pending: list[tuple[float, int, StoryCandidate]] = []
    article_id = 0
    emitted = 0
    story_gap = span / (articles / 2.2)  # mean 2.2 versions a story
    t = 0.0
    while emitted < articles:
        t += rng.expovariate(1.0 / story_gap)
        title = _sentence(rng, vocab, cum, rng.randint(7, 12))
        summary = _sentence(rng, vocab, cum, rng.randint(25, 45))
        for version in range(rng.choice((1, 1, 1, 2, 2, 3, 3, 4, 5))):
            at = t + (rng.uniform(0, 6 * 3600) if version else 0.0)
            if version == 0 or rng.random() < 0.4:
                v_title, v_summary = title, summary
            else:
                v_title = _rewrite(rng, title, vocab, 0.5)
                v_summary = _rewrite(rng, summary, vocab, 0.1)
            article_id += 1
            item = StoryCandidate(
                article_id,
                START + timedelta(seconds=at),
                " ".join(v_title).capitalize(),
                " ".join(v_summary).capitalize() + ".",
                rng.choice(OUTLETS),
            )
            heapq.heappush(pending, (at, article_id, item))
        while pending and pending[0][0] <= t and emitted < articles:
            yield heapq.heappop(pending)[2]
            emitted += 1
    while pending and emitted < articles:
        yield heapq.heappop(pending)[2]
        emitted += 1


def _rss_mib() -> float:
    # VmRSS now, not ru_maxrss: a child's high-water mark starts at its parent's.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Result:
    cpu_rate: float
    wall_rate: float
    peak_held: int
    peak_rss_mib: float
    clusterer: StoryClusterer
    story_keys: dict[int, int]  # article id -> story key after its batch


def run(items: Iterable[StoryCandidate], window: timedelta, batch: int, rss: bool) -> Result:
    clusterer = StoryClusterer(window=window)
    cpu = wall = 0.0
    count = peak_held = 0
    peak_rss = 0.0
    buf: list[StoryCandidate] = []
    story_keys: dict[int, int] = {}

    def flush() -> None:
        nonlocal cpu, wall, count, peak_held, peak_rss
        started_cpu, started_wall = time.process_time(), time.perf_counter()
        assignments = clusterer.add(buf)
        clusterer.evict(max(c.published_at for c in buf))
        cpu += time.process_time() - started_cpu
        wall += time.perf_counter() - started_wall
        story_keys.update((a.article_id, a.story_key) for a in assignments)
        count += len(buf)
        peak_held = max(peak_held, len(clusterer))
        if rss:
            peak_rss = max(peak_rss, _rss_mib())
        buf.clear()

    for item in items:
        buf.append(item)
        if len(buf) == batch:
            flush()
    if buf:
        flush()
    return Result(count / cpu, count / wall, peak_held, peak_rss, clusterer, story_keys)


def load_rate(items: list[StoryCandidate], story_keys: dict[int, int]) -> float:
    """Articles/s of CPU time for `StoryClusterer.load` of all `items` (a restart
    whose window holds them all: every article is fingerprinted again)."""
    span = items[-1].published_at - items[0].published_at
    clusterer = StoryClusterer(window=span + timedelta(days=1))
    known = [(c, story_keys[c.article_id]) for c in items]
    started = time.process_time()
    clusterer.load(known)
    return len(known) / (time.process_time() - started)


def _yardstick_ms() -> float:
    """bench.run's yardstick (feedparser on 20 generated feeds), ms of CPU a feed."""
    import tempfile

    from bench import gen_feeds
    from bench.run import calibrate

    with tempfile.TemporaryDirectory() as tmp:
        gen_feeds.generate(Path(tmp), 20)
        return calibrate(Path(tmp))["feedparser_ms_per_feed_cpu"]


def integrated(per_poll: int, polls: int) -> None:
    import tempfile

    from newswatch.config import load_config
    from newswatch.stories import assign_stories, forget_cached_clusterers
    from storage.db import open_database
    from storage.ingest import store_articles
    from storage.records import ArticleRecord, SourceSpec

    # 3 days of history at the same rate as the polls below, then `polls` polls.
    days = 3
    history = list(stream(per_poll * (polls + 8), days + 1))
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "newswatch.toml"
        config_path.write_text(f'[storage]\nurl = "sqlite:///{tmp}/bench.db"\n')
        config = load_config(config_path, {})
        db = open_database(config.database_url)
        from storage.feeds import add_sources

        with db.session() as session:
            add_sources(session, [SourceSpec("bench", "https://bench.example/rss")])
        source_id = 1

        def store(items: list[StoryCandidate]) -> None:
            records = [
                ArticleRecord(
                    key=f"{c.article_id:064d}",
                    key_kind="url",
                    url=f"https://bench.example/{c.article_id}",
                    canonical_url=None,
                    guid=None,
                    title=c.title,
                    summary=c.summary,
                    content=None,
                    author=None,
                    language="en",
                    published_at=c.published_at,
                    entry_url=None,
                    sketch=sketch(c.title, c.summary),  # as the parse workers give it
                )
                for c in items
            ]
            with db.session() as session:
                store_articles(session, source_id, records, items[-1].published_at)

        first = per_poll * 8
        store(history[:first])
        assign_stories(db, config, history[first - 1].published_at)
        warm: list[tuple[float, float]] = []
        cold: list[tuple[float, float]] = []
        for poll in range(polls):
            chunk = history[first + poll * per_poll : first + (poll + 1) * per_poll]
            store(chunk)
            now = chunk[-1].published_at
            if poll % 2:
                forget_cached_clusterers()
            started_cpu, started_wall = time.process_time(), time.perf_counter()
            run = assign_stories(db, config, now)
            took = (time.process_time() - started_cpu, time.perf_counter() - started_wall)
            (cold if run.reloaded else warm).append(took)
        held = run.held
        db.dispose()
    for name, runs in (("kept clusterer", warm), ("reloaded window", cold)):
        cpu, wall = min(runs)
        print(
            f"integrated, SQLite, {per_poll:,} new articles a poll, {held:,} in the window, "
            f"{name}: {cpu * 1000:,.0f} ms CPU ({wall * 1000:,.0f} ms wall), best of {len(runs)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--rss-window-hours", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--integrated", action="store_true", help="assign_stories per poll")
    args = parser.parse_args()
    if args.integrated:
        integrated(1000, 6)
        return
    common = ["--articles", str(args.articles), "--days", str(args.days)]
    common += ["--batch", str(args.batch)]

    if args.rss_window_hours is not None:  # child process: memory of one window
        baseline = _rss_mib()
        window = timedelta(hours=args.rss_window_hours)
        result = run(stream(args.articles, args.days), window, args.batch, rss=True)
        print(f"{baseline:.1f} {result.peak_rss_mib:.1f} {result.peak_held}")
        return

    # Memory first, in children started before this process holds the whole stream.
    for hours in (24, 72):
        child = [sys.executable, __file__, *common, "--rss-window-hours", str(hours)]
        out = subprocess.run(child, check=True, capture_output=True, text=True).stdout.split()
        baseline, peak, held = float(out[0]), float(out[1]), int(out[2])
        print(
            f"memory, {hours} h window, {args.days}-day stream: peak RSS {peak:.1f} MiB "
            f"(before clustering {baseline:.1f} MiB), peak held articles {held:,}"
        )

    items = list(stream(args.articles, args.days))
    started = time.process_time()
    sketched = [dataclasses.replace(c, sketch=sketch(c.title, c.summary)) for c in items]
    sketch_us = (time.process_time() - started) / len(items) * 1e6
    print(
        f"sketch (computed in the parse worker processes, stored with the article): "
        f"{sketch_us:.1f} µs of CPU an article"
    )
    for label, stream_items in (("from stored sketches", sketched), ("from text", items)):
        result = run(stream_items, timedelta(hours=72), args.batch, rss=False)
        stories = {result.clusterer.story_of(c.article_id) for c in items[-2000:]}
        load = os.getloadavg()[0]
        print(
            f"throughput {label}, {len(items):,} articles in batches of {args.batch}, "
            f"72 h window: {result.cpu_rate:,.0f} articles/s of CPU time on one core "
            f"({result.wall_rate:,.0f}/s wall clock; load average {load:.1f} "
            f"on {os.cpu_count()} CPUs); the last 2,000 articles form {len(stories):,} stories"
        )
        loaded = load_rate(stream_items, result.story_keys)
        print(
            f"load {label} (window restored after a restart), {len(items):,} articles: "
            f"{loaded:,.0f} articles/s of CPU time"
        )
    # A fixed pure-Python workload, to compare runs across machines and loads.
    reference = min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6
    yardstick = _yardstick_ms()
    print(
        f"yardstick (bench.run's): feedparser {yardstick:.0f} ms of CPU a generated feed, "
        f"{yardstick / 25:.1f}x the 25 ms of issue 7's quiet machine"
    )
    print(f"reference: sum(range(1000)) takes {reference:.1f} µs on this machine now")


if __name__ == "__main__":
    main()
