"""The whole poll path for a user: fetch → parse → identify → store → feed state.

Real loopback feed servers, real SQLite and PostgreSQL, real `newswatch` processes
where the behaviour is about processes (two polls at once, a poll killed mid-way).
The helpers at the top (`write_config`, `load`, `run_cli`, `rss`, counting queries)
are shared by the other poll test files.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from newswatch.config import Config, load_config
from newswatch.databases import close_databases
from newswatch.runs import poll_once
from storage.models import Article, FeedState, Sighting, Source
from tests.fixtures.http import SAMPLE_RSS, Drip, FeedServer, Gate
from tests.test_cluster import LEDE, OUTLET_STORIES, SIGN_OFF

NEWSWATCH = str(Path(sys.executable).with_name("newswatch"))

# Small enough that a hostile server costs a test a few seconds at most.
FAST_POLL: Mapping[str, float | int] = {
    "connect_timeout": 2,
    "read_timeout": 2,
    "feed_timeout": 4,
    "deadline": 15,
}


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(value)


def write_config(
    directory: Path,
    feeds: Mapping[str, str],
    *,
    poll: Mapping[str, object] | None = None,
    topics: Mapping[str, str] | None = None,
    extra: str = "",
) -> Path:
    """A newswatch.toml in `directory` with these sources (name → URL) and topics."""
    lines = ["[poll]"]
    for key, value in {**FAST_POLL, **(poll or {})}.items():
        lines.append(f"{key} = {_toml(value)}")
    for name, url in feeds.items():
        lines += ["", "[[sources]]", f"name = {_toml(name)}", f"url = {_toml(url)}"]
    for name, query in (topics or {}).items():
        lines += ["", "[[topics]]", f"name = {_toml(name)}", f"query = {_toml(query)}"]
    path = directory / "newswatch.toml"
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


def load(path: Path, database_url: str) -> Config:
    return load_config(path, env={"NEWSWATCH_DATABASE_URL": database_url})


def cli_env(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(NEWSWATCH_DATABASE_URL=database_url, NEWSWATCH_PREFECT="0", COLUMNS="200")
    env.pop("NEWSWATCH_CONFIG", None)
    return env


def cli(config: Path, *args: str) -> list[str]:
    return [NEWSWATCH, "--no-prefect", "--config", str(config), *args]


def run_cli(
    config: Path, database_url: str, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`newswatch --no-prefect --config CONFIG ARGS...` as a real process."""
    return subprocess.run(
        cli(config, *args),
        env=cli_env(database_url),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def rss(items: Sequence[Mapping[str, str]], title: str = "Feed") -> bytes:
    """An RSS 2.0 document; each item maps element names (title, link, guid, ...) to text."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<rss version="2.0"><channel><title>{title}</title>'
    ]
    for item in items:
        fields = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in item.items())
        parts.append(f"<item>{fields}</item>")
    parts.append("</channel></rss>\n")
    return "".join(parts).encode()


def story(n: int, link: str | None = None) -> dict[str, str]:
    return {
        "title": f"Story number {n}",
        "link": link or f"https://news.example/story/{n}",
        "description": f"What happened in story {n}.",
        "pubDate": "Tue, 24 Nov 2026 08:00:00 GMT",
    }


@contextmanager
def reading(database_url: str) -> Iterator[Session]:
    """A plain read session: no migration, no write probe, so it never takes SQLite's
    write lock away from a poll running in another process."""
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def count(database_url: str, table: type[object]) -> int:
    with reading(database_url) as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def feed_states(database_url: str) -> dict[str, FeedState]:
    """Each source's feed state, by source name."""
    with reading(database_url) as s:
        rows = s.execute(select(Source.name, FeedState).join(FeedState)).all()
        return {name: state for name, state in rows}


def sightings_by_source(database_url: str) -> dict[str, int]:
    with reading(database_url) as s:
        rows = s.execute(
            select(Source.name, func.count(Sighting.article_id))
            .join(Sighting, Sighting.source_id == Source.id)
            .group_by(Source.name)
        ).all()
        return {name: int(n) for name, n in rows}


@pytest.fixture(autouse=True)
def _fresh_databases() -> Iterator[None]:
    """`newswatch.runs` keeps one Database per URL per process: none survive a test."""
    yield
    close_databases()


# --- dedupe and conditional GET -------------------------------------------------------


def test_story_under_tracking_variants_in_two_feeds_is_one_article_with_two_sightings(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    a = feed_server.route(
        "/a.xml",
        rss([story(1, "https://news.example/story?id=7&utm_source=feed-a&utm_medium=rss")]),
    )
    b = feed_server.route(
        "/b.xml", rss([story(1, "https://NEWS.example/story?fbclid=xyz&id=7&gclid=1#comments")])
    )
    report = poll_once(load(write_config(tmp_path, {"A": a, "B": b}), database_url))

    assert (report.ok, report.new_articles, report.duplicates) == (2, 1, 1)
    assert count(database_url, Article) == 1
    assert sightings_by_source(database_url) == {"A": 1, "B": 1}


def test_second_poll_sends_if_none_match_gets_304_and_stores_nothing(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    url = feed_server.route("/news.xml", SAMPLE_RSS, etag='"v1"')
    config = load(write_config(tmp_path, {"News": url}), database_url)
    first = poll_once(config)

    second = poll_once(config, all_sources=True)

    assert (first.new_articles, second.unchanged, second.new_articles) == (2, 1, 0)
    assert feed_server.requests_to("/news.xml")[1].headers["if-none-match"] == '"v1"'
    assert count(database_url, Article) == 2
    assert count(database_url, Sighting) == 2
    assert feed_states(database_url)["News"].last_status == "unchanged"


def test_a_due_feed_is_not_polled_again_before_its_interval(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    url = feed_server.route("/news.xml", SAMPLE_RSS)
    config = load(write_config(tmp_path, {"News": url}), database_url)
    poll_once(config)

    again = poll_once(config)

    assert again.feeds == []
    assert len(feed_server.requests_to("/news.xml")) == 1


# --- stories: what an outlet puts on every entry is not the story ----------------------

# The first five of test_cluster.OUTLET_STORIES: one outlet, short ledes, one sign-off.
LEVANT_DAILY = OUTLET_STORIES[:5]


def poll_levant_daily_and_a_copy(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> dict[str | None, int | None]:
    """Poll an outlet whose summaries all end in its sign-off, and another outlet with a
    copy of its first story; each article's story, by link."""
    from newswatch.stories import forget_cached_clusterers

    forget_cached_clusterers()  # each test's database is new, even at the same URL
    items = [
        {
            "title": title,
            "link": f"https://levant.example/{n}",
            "description": f"<p>{lede}</p><p>{SIGN_OFF}</p>",
            "pubDate": "Tue, 24 Nov 2026 08:00:00 GMT",
        }
        for n, (title, lede) in enumerate(LEVANT_DAILY)
    ]
    title, lede = LEVANT_DAILY[0]
    copy = {
        "title": title,
        "link": "https://wire.example/baku",
        "description": f"{lede} Officials said.",
        "pubDate": "Tue, 24 Nov 2026 09:00:00 GMT",
    }
    levant = feed_server.route("/levant.xml", rss(items))
    wire = feed_server.route("/wire.xml", rss([copy, story(99)]))
    report = poll_once(load(write_config(tmp_path, {"Levant": levant, "Wire": wire}), database_url))
    assert (report.new_articles, report.stories_assigned, report.story_error) == (7, 7, None)
    with reading(database_url) as s:
        return {url: story for url, story in s.execute(select(Article.url, Article.story_id))}


def test_an_outlets_stories_ending_in_the_same_sign_off_stay_apart(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    story_of = poll_levant_daily_and_a_copy(tmp_path, feed_server, database_url)

    assert len({story_of[f"https://levant.example/{n}"] for n in range(5)}) == 5


def test_a_copy_without_the_outlets_sign_off_joins_the_outlets_story(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    story_of = poll_levant_daily_and_a_copy(tmp_path, feed_server, database_url)

    assert story_of["https://wire.example/baku"] == story_of["https://levant.example/0"]


def test_a_poll_clusters_its_stored_feeds_in_a_story_worker(
    tmp_path: Path, feed_server: FeedServer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newswatch import story_worker
    from newswatch.stories import forget_cached_clusterers

    forget_cached_clusterers()  # each test's database is new, even at the same URL
    monkeypatch.setattr(story_worker, "START_AFTER", 1)  # a worker from the first feed on
    starts = story_worker.starts()
    an_hour_ago = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    outlets = ["AFP", "France 24", "Al Arabiya"]
    feeds = {
        outlet: feed_server.route(
            f"/{n}.xml",
            rss(
                [
                    {
                        "title": "Israeli strike kills three in south Lebanon",
                        "link": f"https://outlet{n}.example/strike",
                        "description": f"<p>{LEDE}</p>",
                        "pubDate": an_hour_ago,
                    },
                    story(10 + n),
                ]
            ),
        )
        for n, outlet in enumerate(outlets)
    }

    report = poll_once(load(write_config(tmp_path, feeds), database_url))

    assert (report.new_articles, report.stories_assigned, report.story_error) == (6, 6, None)
    assert story_worker.starts() == starts + 1
    with reading(database_url) as s:
        story_of = {url: story for url, story in s.execute(select(Article.url, Article.story_id))}
    copies = {story_of[f"https://outlet{n}.example/strike"] for n in range(3)}
    assert len(copies) == 1 and None not in copies
    assert len(set(story_of.values())) == 4  # the copies' story and three others


# --- processes: two polls at once, a poll killed mid-way -------------------------------


def _overlapping_feeds(feed_server: FeedServer, n_feeds: int, until: int) -> dict[str, str]:
    """Feeds whose stories overlap (story k is in feeds k % n and (k + 1) % n), each held
    by a gate until `until` requests are in flight, so the pollers store at once."""
    feeds: dict[str, str] = {}
    for f in range(n_feeds):
        items = [story(k) for k in range(40) if f in (k % n_feeds, (k + 1) % n_feeds)]
        feeds[f"Feed {f}"] = feed_server.route(
            f"/feed{f}.xml", rss(items), behaviour=Gate(until=until, timeout=10)
        )
    return feeds


def test_two_polls_at_once_store_each_article_once_without_lock_errors(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    feeds = _overlapping_feeds(feed_server, 4, until=8)
    config = write_config(tmp_path, feeds, poll={"read_timeout": 20, "feed_timeout": 30})
    env = cli_env(database_url)
    procs = [
        subprocess.Popen(
            cli(config, "poll", "--all"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=90) for p in procs]

    assert [p.returncode for p in procs] == [0, 0], outputs
    assert all("locked" not in out + err for out, err in outputs)
    assert all(out.startswith("4 feeds: 4 ok") for out, _ in outputs), outputs
    assert count(database_url, Article) == 40
    assert count(database_url, Sighting) == 80
    # each article was new to exactly one of the two polls (so matched once)
    new = [re.search(r"(\d+) new articles", out) for out, _ in outputs]
    assert sum(int(m[1]) for m in new if m) == 40


def _wait_for(condition: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.2)


def kill_poll_when(
    config: Path, database_url: str, condition: Callable[[], bool], timeout: float = 60
) -> None:
    """Run `newswatch poll` as its own process and SIGKILL it once `condition()` holds."""
    proc = subprocess.Popen(
        cli(config, "poll"),
        env=cli_env(database_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(condition, timeout)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_poll_killed_mid_way_then_run_again_loses_and_duplicates_nothing(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    fast = {
        f"Fast {f}": feed_server.route(
            f"/fast{f}.xml", rss([story(k) for k in range(f * 5, f * 5 + 10)]), etag=f'"f{f}"'
        )
        for f in range(3)
    }
    slow = feed_server.route(
        "/slow.xml", rss([story(k) for k in range(100, 110)]), behaviour=Drip(0.2)
    )
    config = write_config(
        tmp_path,
        {**fast, "Slow": slow},
        poll={"read_timeout": 60, "feed_timeout": 60, "deadline": 60},
    )
    # Killed once the fast feeds are stored, while the slow one is still dripping.
    kill_poll_when(
        config, database_url, lambda: sum(sightings_by_source(database_url).values()) == 30
    )
    assert feed_server.requests_to("/slow.xml")
    killed = feed_states(database_url)
    assert {name: s.etag for name, s in killed.items() if s.etag} == {
        f"Fast {f}": f'"f{f}"' for f in range(3)
    }
    assert killed["Slow"].last_status is None  # never recorded half-way

    feed_server.route("/slow.xml", rss([story(k) for k in range(100, 110)]))
    rerun = poll_once(load(config, database_url))

    assert [(f.name, f.status) for f in rerun.feeds] == [("Slow", "ok")]  # the rest: not due
    assert count(database_url, Article) == 30
    assert sightings_by_source(database_url) == {
        "Fast 0": 10,
        "Fast 1": 10,
        "Fast 2": 10,
        "Slow": 10,
    }
    assert feed_states(database_url)["Slow"].last_status == "ok"


def test_after_a_kill_the_stored_etag_always_comes_with_the_feeds_articles(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    feeds = {
        f"Feed {f}": feed_server.route(
            f"/feed{f}.xml", rss([story(f * 100 + k) for k in range(50)]), etag=f'"e{f}"'
        )
        for f in range(6)
    }
    config = write_config(tmp_path, feeds)
    kill_poll_when(config, database_url, lambda: count(database_url, Sighting) > 0)

    stored = sightings_by_source(database_url)
    for name, state in feed_states(database_url).items():
        assert (state.etag is not None) == (stored.get(name) == 50), name
    assert set(stored.values()) <= {50}  # a feed is stored whole or not at all

    rerun = poll_once(load(config, database_url), all_sources=True)
    assert rerun.unchanged == len(stored)  # their ETags were committed with their articles
    assert count(database_url, Article) == 300
    assert count(database_url, Sighting) == 300


# --- the corpus: real news captures through the whole path ----------------------------

CORPUS_NEWS = [
    "codehollow-feedreader-tests/Feeds/Rss20Reuters.xml",
    "codehollow-feedreader-tests/Feeds/Rss20NYTimes.xml",
    "codehollow-feedreader-tests/Feeds/Rss20LeMonde.xml",
    "feed-rs-fixture/rss2/rss_2.0_bbc.xml",
    "feed-rs-fixture/rss2/rss_2.0_spiegel.xml",
    "rss-parser-test/input/guardian.rss",
    "rsparser-resources/DaringFireball.json",
]


def test_real_news_captures_from_the_corpus_poll_and_store(
    tmp_path: Path, feed_server: FeedServer, database_url: str, corpus_dir: Path
) -> None:
    present = [p for p in CORPUS_NEWS if (corpus_dir / p).is_file()]
    assert len(present) == len(CORPUS_NEWS), f"corpus captures moved: {CORPUS_NEWS}"
    feeds = {
        Path(p).stem: feed_server.route(f"/corpus/{i}", corpus_dir / p, content_type=None)
        for i, p in enumerate(present)
    }
    report = poll_once(load(write_config(tmp_path, feeds), database_url))

    assert report.ok == len(present), [(f.name, f.error) for f in report.feeds]
    assert all(f.new_articles > 0 for f in report.feeds)
    assert count(database_url, Article) == report.new_articles
    assert all(
        s.last_status == "ok" and s.last_error is None for s in feed_states(database_url).values()
    )
