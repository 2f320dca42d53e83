"""Parsing in the worker process pool (`newswatch.parse_pool`) through whole polls.

Real loopback feed servers, real databases, real spawned workers. `POOL_FROM` is set
to 0 where a test needs the pool, so that a few dozen feeds are enough to use it.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from newswatch import parse_pool
from newswatch.databases import close_databases
from newswatch.parse_pool import ParsedBody
from newswatch.poll import FeedReport, PollReport
from newswatch.processing import document
from newswatch.runs import plan_poll, poll_batch, poll_once
from sources.errors import FeedError, NotAFeed, RateLimited
from storage.db import Database
from storage.ingest import store_articles
from storage.models import Article, FeedState, Match, Sighting, Source, Topic
from storage.records import ArticleRecord, DueSource
from storage.stories import unclustered_articles
from storage.topics import articles_by_id
from tests.fixtures.db import add_source
from tests.fixtures.http import AfterEvent, Behaviour, FeedServer, Hang, html_with_feed_link
from tests.test_poll_pipeline import (
    cli,
    cli_env,
    count,
    load,
    reading,
    rss,
    story,
    write_config,
)
from watch.cluster import feed_sketches

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
BOZO_RSS = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
    b"<item><title>A &nope; b</title><link>https://bozo.example/1</link></item>"
    b"<item><title>B</title><link>https://bozo.example/2</link></item></channel></rss>"
)


@pytest.fixture(autouse=True)
def _no_pool_left() -> Iterator[None]:
    """Each test starts without a pool and leaves none behind (nor open databases)."""
    parse_pool.shutdown()
    yield
    parse_pool.shutdown()
    close_databases()


@pytest.fixture
def use_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse_pool, "POOL_FROM", 0)


def _feeds(
    feed_server: FeedServer, n: int, behaviours: Mapping[int, Behaviour] | None = None
) -> dict[str, str]:
    """`n` feeds of 6 entries (one repeated inside the feed, one undated), and one feed
    of each parse outcome: recovered from errors, not a feed, unparsable, empty.
    Feed `f` answers with `behaviours[f]`, if given."""
    feeds = {}
    for f in range(n):
        items = [story(f * 10 + k) for k in range(5)]
        items.append(items[0])
        items[1] = {"title": f"Undated {f}", "link": f"https://news.example/undated/{f}"}
        feeds[f"Feed {f:02}"] = feed_server.route(
            f"/pool/{f}.xml",
            rss(items),
            etag=f'"{f}"',
            behaviour=(behaviours or {}).get(f),
        )
    feeds["Bozo"] = feed_server.route("/pool/bozo.xml", BOZO_RSS)
    feeds["Page"] = feed_server.route(
        "/pool/page", html_with_feed_link("/feed.xml"), content_type="text/html"
    )
    feeds["Binary"] = feed_server.route("/pool/binary.xml", bytes(range(256)) * 10)
    feeds["Empty"] = feed_server.route("/pool/empty.xml", b"")
    return feeds


def _stored(database_url: str) -> tuple[object, ...]:
    """Everything a poll stores, without row ids."""
    with reading(database_url) as s:
        articles = s.execute(
            select(
                Article.key,
                Article.key_kind,
                Article.url,
                Article.canonical_url,
                Article.guid,
                Article.title,
                Article.summary,
                Article.content,
                Article.author,
                Article.language,
                Article.published_at,
            ).order_by(Article.key)
        ).all()
        sightings = s.execute(
            select(Source.name, Article.key, Sighting.entry_url)
            .join(Sighting, Sighting.source_id == Source.id)
            .join(Article, Article.id == Sighting.article_id)
            .order_by(Source.name, Article.key)
        ).all()
        states = s.execute(
            select(
                Source.name,
                FeedState.last_status,
                FeedState.last_error,
                FeedState.etag,
                FeedState.items_seen,
            )
            .join(FeedState)
            .order_by(Source.name)
        ).all()
        matches = s.execute(
            select(
                Article.key,
                Topic.name,
                Match.score,
                Match.terms,
                Match.snippet,
                Match.highlights,
                Match.matched_at,
            )
            .join(Match, Match.article_id == Article.id)
            .join(Topic, Topic.id == Match.topic_id)
            .order_by(Article.key, Topic.name)
        ).all()
    return tuple(articles), tuple(sightings), tuple(states), tuple(matches)


def _recording_workers(workers: set[int]) -> Callable[[FeedReport], None]:
    """A feed listener that adds the pids of this process's worker processes to `workers`."""

    def note_workers(feed: FeedReport) -> None:
        workers.update(p.pid or 0 for p in multiprocessing.active_children())

    return note_workers


def _reported(report: PollReport) -> list[tuple[str, str, int, int, str | None]]:
    return sorted((f.name, f.status, f.new_articles, f.duplicates, f.error) for f in report.feeds)


def test_a_poll_through_the_pool_stores_exactly_what_an_in_process_poll_stores(
    tmp_path: Path, feed_server: FeedServer, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "in-process.db"
    shutil.copyfile(sqlite_url.removeprefix("sqlite:///"), other)
    in_process_url = f"sqlite:///{other}"
    # Topics too: a body parsed in the pool comes with the text matching reads.
    topics = {"Stories": "story AND happened", "Undated": "undated"}
    config = write_config(tmp_path, _feeds(feed_server, 30), topics=topics)

    monkeypatch.setattr(parse_pool, "POOL_FROM", 1000)
    before = parse_pool.starts()
    in_process = poll_once(load(config, in_process_url), now=NOW)
    assert parse_pool.starts() == before
    monkeypatch.setattr(parse_pool, "POOL_FROM", 0)
    pooled = poll_once(load(config, sqlite_url), now=NOW)

    assert parse_pool.starts() == before + 1
    assert _reported(pooled) == _reported(in_process)
    assert _stored(sqlite_url) == _stored(in_process_url)
    assert pooled.new_matches == in_process.new_matches == 4 * 30 + 30  # stories, undated
    statuses = {f.name: (f.status, f.error) for f in pooled.feeds}
    assert statuses["Page"][0] == "not_a_feed"
    assert statuses["Binary"][0] == "unparsable"
    assert statuses["Empty"][0] == "empty"
    assert (statuses["Bozo"][1] or "").startswith("recovered from: ")


def test_a_poll_of_a_few_bodies_parses_in_process(
    tmp_path: Path, feed_server: FeedServer, sqlite_url: str
) -> None:
    before = parse_pool.starts()
    report = poll_once(load(write_config(tmp_path, _feeds(feed_server, 10)), sqlite_url))

    assert report.ok == 11
    assert parse_pool.starts() == before


def test_a_warm_poll_does_not_start_the_pool(
    tmp_path: Path, feed_server: FeedServer, sqlite_url: str, use_the_pool: None
) -> None:
    feeds = {k: v for k, v in _feeds(feed_server, 30).items() if k.startswith("Feed")}
    config = load(write_config(tmp_path, feeds), sqlite_url)
    poll_once(config)
    before = parse_pool.starts()

    warm = poll_once(config, all_sources=True)

    assert warm.unchanged == 30
    assert parse_pool.starts() == before


def test_the_workers_stop_when_the_last_poll_ends(
    tmp_path: Path, feed_server: FeedServer, sqlite_url: str, use_the_pool: None
) -> None:
    feeds = {k: v for k, v in _feeds(feed_server, 30).items() if k.startswith("Feed")}
    before = parse_pool.starts()
    workers: set[int] = set()
    note_workers = _recording_workers(workers)

    poll_once(load(write_config(tmp_path, feeds), sqlite_url), on_feed=note_workers)

    assert parse_pool.starts() == before + 1 and workers
    assert not parse_pool.started()
    assert not {p.pid for p in multiprocessing.active_children()} & workers


def test_killed_workers_do_not_fail_the_poll_and_a_new_pool_parses_later_feeds(
    tmp_path: Path, feed_server: FeedServer, database_url: str, use_the_pool: None
) -> None:
    # The later half answer only once the workers are dead, so that they are parsed
    # after it however fast the first half was fetched and handed to the pool.
    workers_dead = threading.Event()
    later_half = dict.fromkeys(range(20, 40), AfterEvent(workers_dead))
    feeds = {k: v for k, v in _feeds(feed_server, 40, later_half).items() if k.startswith("Feed")}
    killed: list[int] = []
    before = parse_pool.starts()

    def kill_the_workers_once(feed: FeedReport) -> None:
        if not killed:
            workers = multiprocessing.active_children()
            for worker in workers:
                assert worker.pid is not None  # started; never kill(0), the process group
                os.kill(worker.pid, signal.SIGKILL)
                killed.append(worker.pid)
            for worker in workers:
                worker.join(10)
            workers_dead.set()

    # per_host above the feed count: waiting later feeds never hold up the first half
    config = write_config(tmp_path, feeds, poll={"per_host": 50})
    report = poll_once(load(config, database_url), on_feed=kill_the_workers_once)

    assert killed
    assert (report.ok, report.new_articles, report.duplicates) == (40, 40 * 5, 40)
    assert count(database_url, Article) == 40 * 5
    assert count(database_url, Sighting) == 40 * 5
    assert parse_pool.starts() == before + 2  # the killed pool, and the one after it
    assert not {p.pid for p in multiprocessing.active_children()} & set(killed)


def test_the_poll_deadline_holds_while_bodies_are_in_the_pool(
    tmp_path: Path, feed_server: FeedServer, sqlite_url: str, use_the_pool: None
) -> None:
    feeds = {k: v for k, v in _feeds(feed_server, 10).items() if k.startswith("Feed")}
    feeds["Hangs"] = feed_server.route("/pool/hang.xml", behaviour=Hang())
    config = write_config(
        tmp_path, feeds, poll={"read_timeout": 60, "feed_timeout": 60, "deadline": 5}
    )
    report = poll_once(load(config, sqlite_url))

    statuses = {f.name: f.status for f in report.feeds}
    assert statuses.pop("Hangs") == "skipped"
    assert set(statuses.values()) == {"ok"}
    assert count(sqlite_url, Article) == 10 * 5


def test_a_parse_error_from_a_worker_is_the_error_parsing_in_process_gives() -> None:
    page = html_with_feed_link("/feed.xml")
    in_process = parse_pool.parse_body(page, "http://news.example/", "text/html")
    parsing = parse_pool.submit(page, "http://news.example/", "text/html")
    assert parsing is not None
    parsing.result(timeout=60)

    from_worker = parse_pool.collect(parsing)

    assert isinstance(in_process, NotAFeed)
    assert isinstance(from_worker, NotAFeed)
    assert (str(from_worker), from_worker.alternate_url) == (
        str(in_process),
        in_process.alternate_url,
    )


def test_an_error_whose_init_takes_more_than_a_message_crosses_processes_whole() -> None:
    err = RateLimited("429 from http://news.example/", NOW)
    failure = parse_pool.Failure(type(err), err.args, dict(vars(err)))

    rebuilt = pickle.loads(pickle.dumps(failure)).error()

    assert isinstance(rebuilt, RateLimited) and isinstance(rebuilt, FeedError)
    assert (str(rebuilt), rebuilt.retry_after, rebuilt.kind) == (str(err), NOW, "rate_limited")


def test_a_rate_limited_error_pickles_with_its_retry_time() -> None:
    err = RateLimited("429 from http://news.example/", NOW)

    rebuilt = pickle.loads(pickle.dumps(err))

    assert (type(rebuilt), str(rebuilt), rebuilt.retry_after) == (RateLimited, str(err), NOW)


def test_an_article_record_crosses_processes_with_every_field_in_its_place() -> None:
    record = ArticleRecord(
        key="k" * 64,
        key_kind="guid",
        url="https://x.example/a",
        canonical_url="https://x.example/canonical",
        guid="urn:guid:1",
        title="Title",
        summary="<p>Summary</p>",
        content="<p>Content</p>",
        author="Author",
        language="tr",
        published_at=NOW,
        entry_url="https://x.example/a?utm_source=feed",
        match_text="Summary Content",
        sketch=b"\x01sketch",
    )

    rebuilt = pickle.loads(pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL))

    assert [getattr(rebuilt, f.name) for f in fields(ArticleRecord)] == [
        getattr(record, f.name) for f in fields(ArticleRecord)
    ]


def test_batches_polled_at_once_in_threads_share_one_worker(
    tmp_path: Path, feed_server: FeedServer, sqlite_url: str, use_the_pool: None
) -> None:
    feeds = {k: v for k, v in _feeds(feed_server, 30).items() if k.startswith("Feed")}
    config = load(write_config(tmp_path, feeds), sqlite_url)
    due = plan_poll(config, all_sources=False, now=NOW)
    workers: set[int] = set()
    note_workers = _recording_workers(workers)

    with ThreadPoolExecutor(3) as threads:  # as the Prefect flow runs its batches
        reports = list(
            threads.map(
                lambda batch: poll_batch(config, batch, now=NOW, on_feed=note_workers),
                [due[0::3], due[1::3], due[2::3]],
            )
        )

    assert sum(r.ok for r in reports) == 30
    assert len(workers) == parse_pool.WORKERS


def test_the_bodies_of_batches_polled_at_once_count_together_for_the_pool(
    tmp_path: Path, feed_server: FeedServer, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    feeds = {k: v for k, v in _feeds(feed_server, 30).items() if k.startswith("Feed")}
    config = load(write_config(tmp_path, feeds), sqlite_url)
    due = plan_poll(config, all_sources=False, now=NOW)
    monkeypatch.setattr(parse_pool, "POOL_FROM", 12)  # more than any batch's 10 bodies
    before = parse_pool.starts()
    started = threading.Barrier(3)

    def poll(batch: list[DueSource]) -> PollReport:
        started.wait(timeout=30)  # all three polls running, as a Prefect flow's batches
        return poll_batch(config, batch, now=NOW)

    with ThreadPoolExecutor(3) as threads:
        reports = list(threads.map(poll, [due[0::3], due[1::3], due[2::3]]))

    assert sum(r.ok for r in reports) == 30
    assert parse_pool.starts() == before + 1


def test_the_cli_exits_cleanly_after_a_poll_that_used_the_pool(
    tmp_path: Path, feed_server: FeedServer, sqlite_url: str
) -> None:
    config = write_config(tmp_path, _feeds(feed_server, parse_pool.POOL_FROM + 6))
    env = {**cli_env(sqlite_url), "PYTHONWARNINGS": "error::ResourceWarning"}

    done = subprocess.run(
        cli(config, "poll"), env=env, capture_output=True, text=True, timeout=120, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert count(sqlite_url, Sighting) == (parse_pool.POOL_FROM + 6) * 5 + 2


def _stat(pid: int | str) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (Linux): state, parent, ...
    Empty once the process is gone."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _children(pid: int) -> set[int]:
    """The processes whose parent is `pid`."""
    return {
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _stat(entry.name)[1:2] == [str(pid)]
    }


def _running(pid: int) -> bool:
    """Whether `pid` still runs (a zombie nobody reaped has ended)."""
    return _stat(pid)[:1] not in ([], ["Z"])


def test_nothing_a_killed_poll_started_outlives_it(
    tmp_path: Path, feed_server: FeedServer, sqlite_url: str
) -> None:
    """SIGKILL (or the OOM killer, or Prefect cancelling the run) leaves the pool
    unshut: a parse worker waiting for its next body would wait, and hold its memory,
    forever."""
    n = parse_pool.POOL_FROM + 6
    feeds = _feeds(feed_server, n)
    feeds["Hangs"] = feed_server.route("/pool/hangs-till-killed.xml", behaviour=Hang())
    config = write_config(tmp_path, feeds, poll={"read_timeout": 60, "feed_timeout": 60})
    poll = subprocess.Popen(
        cli(config, "poll"),
        env=cli_env(sqlite_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started: set[int] = set()
    try:
        # every process the poll starts, until it has stored all but the hanging feed
        for _ in range(1200):
            started |= _children(poll.pid)
            if count(sqlite_url, Sighting) == n * 5 + 2:
                break
            time.sleep(0.05)
        started |= _children(poll.pid)
    finally:
        poll.kill()
        poll.wait()

    outliving = set(started)
    for _ in range(300):
        outliving = {pid for pid in outliving if _running(pid)}
        if not outliving:
            break
        time.sleep(0.05)
    for pid in outliving:  # not left behind by a failing run
        os.kill(pid, signal.SIGKILL)
    assert len(started) >= 2  # the parse worker and the story worker at least
    assert outliving == set()


@pytest.mark.parametrize("name", ["HuffPostCanada.xml", "AtomEscapedHTMLInPreTag.xml"])
def test_the_story_sketches_a_worker_computes_are_those_of_the_stored_titles_and_summaries(
    database: Database, corpus_dir: Path, name: str
) -> None:
    body = (corpus_dir / "feedjira-sample-feeds" / name).read_bytes()
    parsed = parse_pool._parse_in_worker(body, "https://corpus.example/feed", None)
    assert isinstance(parsed, ParsedBody)
    source = add_source(database)
    with database.session() as s:
        store_articles(s, source, parsed.records, NOW)
    with database.session(readonly=True) as s:
        stored = unclustered_articles(s, limit=1000)
    assert len(stored) == len(parsed.records) > 0
    assert [a.sketch for a in stored] == feed_sketches([(a.title, a.summary) for a in stored])


def test_the_text_a_worker_computes_for_matching_is_what_the_stored_article_gives(
    database: Database,
) -> None:
    body = rss(
        [
            {
                "title": "A",
                "link": "https://x.example/1",
                "description": "<p>Ankara &amp; <b>Damascus</b></p>",
            },
            {
                "title": "B",
                "link": "https://x.example/2",
                "description": "",
                "content:encoded": "<p>Only content</p>",
            },
            {"title": "C", "link": "https://x.example/3"},
        ]
    ).replace(
        b'<rss version="2.0">',
        b'<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">',
    )
    parsed = parse_pool._parse_in_worker(body, "https://x.example/feed", "application/rss+xml")
    assert isinstance(parsed, ParsedBody)
    source = add_source(database)
    with database.session() as s:
        stored = store_articles(s, source, parsed.records, NOW)
        read_back = articles_by_id(s, stored.new_article_ids)
    assert [a.match_text for a in stored.new_articles] == [document(a).text for a in read_back]
    assert sorted(a.match_text or "" for a in stored.new_articles) == [
        "",
        "Ankara & Damascus",
        "Only content",
    ]
