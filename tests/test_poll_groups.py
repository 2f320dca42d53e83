"""Several feeds to a transaction: each feed in its own SAVEPOINT, the group committed
together (`newswatch.poll`, `GROUP_FEEDS` / `GROUP_SECONDS`).

What grouping must not change: a feed is stored whole or not at all, with its ETag; a
feed that fails leaves the rest of its group stored; a killed poll loses only feeds of
its open group, which the next poll fetches again without duplicating anything; two
polls whose groups wait on each other's rows (a PostgreSQL deadlock) both finish.
Real loopback feed servers, real SQLite and PostgreSQL, real `newswatch` processes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from newswatch import poll
from newswatch.databases import close_databases, database
from newswatch.poll import FeedReport, PollReport
from newswatch.processing import ArticleProcessor
from newswatch.runs import plan_poll, poll_batch, poll_once
from storage.models import Article, Sighting
from tests.fixtures.http import Delay, FeedServer
from tests.test_poll_pipeline import (
    count,
    feed_states,
    kill_poll_when,
    load,
    rss,
    sightings_by_source,
    story,
    write_config,
)


@pytest.fixture(autouse=True)
def _fresh_databases() -> Iterator[None]:
    yield
    close_databases()


@pytest.fixture
def one_group(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every feed of these small polls in one group: it commits only at the end."""
    monkeypatch.setattr(poll, "GROUP_SECONDS", 60.0)
    monkeypatch.setattr(poll, "GROUP_IDLE", 60.0)


@pytest.fixture
def refuses_poison(database_url: str) -> Iterator[None]:
    """The database refuses to store an article titled "Poison" (a trigger), as a
    backend refuses a value it cannot hold: the store fails with an IntegrityError."""
    engine = create_engine(database_url)
    if engine.dialect.name == "sqlite":
        create = [
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON articles"
            " WHEN NEW.title = 'Poison' BEGIN SELECT RAISE(ABORT, 'poison refused'); END"
        ]
        drop = ["DROP TRIGGER refuse_poison"]
    else:
        create = [
            "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN"
            " IF NEW.title = 'Poison' THEN RAISE EXCEPTION 'poison refused'"
            " USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$"
            " LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON articles"
            " FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        ]
        # The PostgreSQL test database outlives this test: leave no trigger behind.
        drop = ["DROP TRIGGER refuse_poison ON articles", "DROP FUNCTION refuse_poison()"]
    try:
        with engine.begin() as conn:
            for statement in create:
                conn.execute(text(statement))
        yield
        with engine.begin() as conn:
            for statement in drop:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def test_a_feed_that_fails_to_store_leaves_the_other_feeds_of_its_group_stored(
    tmp_path: Path,
    feed_server: FeedServer,
    database_url: str,
    one_group: None,
    refuses_poison: None,
) -> None:
    feeds = {
        "A": feed_server.route("/a.xml", rss([story(k) for k in range(10)]), etag='"a"'),
        # Shares story 9 with A: rolling the failed feed back must keep A's article.
        "Bad": feed_server.route(
            "/bad.xml",
            rss([story(9), story(10), {"title": "Poison", "link": "https://news.example/p"}]),
            etag='"bad"',
        ),
        "C": feed_server.route("/c.xml", rss([story(k) for k in range(20, 30)]), etag='"c"'),
    }
    reported: list[FeedReport] = []

    report = poll_once(load(write_config(tmp_path, feeds), database_url), on_feed=reported.append)

    statuses = {f.name: (f.status, f.new_articles) for f in report.feeds}
    assert statuses == {"A": ("ok", 10), "C": ("ok", 10), "Bad": ("error", 0)}
    assert "poison refused" in (next(f for f in report.feeds if f.name == "Bad").error or "")
    assert sorted(f.name for f in reported) == ["A", "Bad", "C"]
    assert len(report.new_article_ids) == count(database_url, Article) == 20
    assert sightings_by_source(database_url) == {"A": 10, "C": 10}
    states = feed_states(database_url)
    assert {name: (s.last_status, s.etag) for name, s in states.items()} == {
        "A": ("ok", '"a"'),
        "C": ("ok", '"c"'),
        "Bad": ("error", None),
    }


def test_a_stored_feed_is_reported_only_once_its_group_is_committed(
    tmp_path: Path, feed_server: FeedServer, database_url: str, one_group: None
) -> None:
    feeds = {
        f"Feed {f}": feed_server.route(f"/f{f}.xml", rss([story(f * 10 + k) for k in range(5)]))
        for f in range(3)
    }
    committed_when_reported: list[int] = []

    def note(feed: FeedReport) -> None:
        committed_when_reported.append(sum(sightings_by_source(database_url).values()))

    poll_once(load(write_config(tmp_path, feeds), database_url), on_feed=note)

    # One group: when the first feed is heard of, all three are already committed.
    assert committed_when_reported == [15, 15, 15]


def test_an_open_group_commits_when_no_fetched_feed_is_ready_soon(
    tmp_path: Path, feed_server: FeedServer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(poll, "GROUP_SECONDS", 60.0)  # only GROUP_IDLE can end the group
    feeds = {
        "Fast": feed_server.route("/fast.xml", rss([story(k) for k in range(5)])),
        "Slow": feed_server.route(
            "/slow.xml", rss([story(k) for k in range(10, 15)]), behaviour=Delay(1.0)
        ),
    }
    stored_when_reported: dict[str, dict[str, int]] = {}

    def note(feed: FeedReport) -> None:
        stored_when_reported[feed.name] = sightings_by_source(database_url)

    poll_once(load(write_config(tmp_path, feeds), database_url), on_feed=note)

    # Fast was committed (and reported) while Slow was still on its way.
    assert stored_when_reported == {"Fast": {"Fast": 5}, "Slow": {"Fast": 5, "Slow": 5}}


def test_a_poll_killed_between_commits_loses_only_uncommitted_feeds_and_the_next_poll_gets_them(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    # 30 feeds of 20 stories, each sharing 10 with the next: many groups, many
    # articles that a feed fetched again after the kill finds already stored.
    feeds = {
        f"Feed {f:02}": feed_server.route(
            f"/feed{f}.xml", rss([story(f * 10 + k) for k in range(20)]), etag=f'"e{f}"'
        )
        for f in range(30)
    }
    config = write_config(tmp_path, feeds)
    kill_poll_when(config, database_url, lambda: count(database_url, Sighting) > 0)

    stored = sightings_by_source(database_url)
    committed = {name for name, state in feed_states(database_url).items() if state.etag}
    assert committed and set(stored) == committed  # whole feeds, with their ETags
    assert set(stored.values()) == {20}

    rerun = poll_once(load(config, database_url))

    assert sorted(f.name for f in rerun.feeds) == sorted(set(feeds) - committed)
    assert all(f.status == "ok" for f in rerun.feeds)
    assert count(database_url, Article) == 310
    assert sightings_by_source(database_url) == {name: 20 for name in feeds}


def test_two_polls_whose_groups_wait_on_each_others_rows_both_store_everything(
    tmp_path: Path, feed_server: FeedServer, database_url: str, one_group: None
) -> None:
    # Poll 1 stores X1 then, a second later, Y1; poll 2 stores Y2 then X2. X1 and X2
    # carry the same stories, Y1 and Y2 too: each group holds the rows the other one
    # needs next. PostgreSQL breaks the deadlock by failing one feed's statement; that
    # poll commits what it has and stores the feed again. SQLite takes one writer at a
    # time: the second poll waits for the first's group.
    xs = rss([story(k) for k in range(20)])
    ys = rss([story(k) for k in range(100, 120)])
    feeds = {
        "X1": feed_server.route("/x1.xml", xs),
        "Y1": feed_server.route("/y1.xml", ys, behaviour=Delay(1.0)),
        "Y2": feed_server.route("/y2.xml", ys),
        "X2": feed_server.route("/x2.xml", xs, behaviour=Delay(1.0)),
    }
    config = load(
        write_config(tmp_path, feeds, topics={"Stories": "story"}),
        database_url,
    )
    now = datetime.now(UTC)
    due = {source.name: source for source in plan_poll(config, all_sources=False, now=now)}
    processor, _ = ArticleProcessor.prepare(database(config), config, now)
    reports: dict[str, PollReport | BaseException] = {}

    def run(name: str, sources: list[str]) -> None:
        try:
            reports[name] = poll_batch(
                config, [due[s] for s in sources], now=now, processor=processor
            )
        except BaseException as exc:  # the test reports it below
            reports[name] = exc

    threads = [
        threading.Thread(target=run, args=("poll 1", ["X1", "Y1"])),
        threading.Thread(target=run, args=("poll 2", ["Y2", "X2"])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    outcomes = {
        name: r if isinstance(r, BaseException) else sorted((f.name, f.status) for f in r.feeds)
        for name, r in reports.items()
    }
    assert outcomes == {
        "poll 1": [("X1", "ok"), ("Y1", "ok")],
        "poll 2": [("X2", "ok"), ("Y2", "ok")],
    }
    assert count(database_url, Article) == 40
    assert sightings_by_source(database_url) == {"X1": 20, "Y1": 20, "Y2": 20, "X2": 20}
    polls = [r for r in reports.values() if isinstance(r, PollReport)]
    assert sum(len(r.new_article_ids) for r in polls) == 40  # each new to one poll
    assert sum(r.new_matches for r in polls) == 40  # and matched once
