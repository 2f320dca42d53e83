"""Feeds that fail, move, throttle us or attack us (issue 8), through the whole poll.

Each hostile case is one feed among many in a single poll per backend (the
`hostile` fixture): that feed must end with a clear stored error, and every other
feed in the same poll must still finish and store. Feed-state rules (gone, Retry-After,
permanent redirects, backoff) have one poll sequence per test.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from newswatch.cli import app
from newswatch.databases import close_databases
from newswatch.poll import PollReport
from newswatch.runs import export_articles, poll_once
from storage.models import Article, FeedState, Sighting, Source
from tests.fixtures.http import (
    SAMPLE_RSS,
    Drip,
    Endless,
    FeedServer,
    Hang,
    LoggedRequest,
    ResetMidBody,
    html_with_feed_link,
)
from tests.test_poll_pipeline import (
    count,
    feed_states,
    load,
    reading,
    rss,
    sightings_by_source,
    story,
    write_config,
)

HOSTILE_DATA = Path(__file__).parent / "data" / "hostile"


@pytest.fixture(autouse=True)
def _fresh_databases() -> Iterator[None]:
    yield
    close_databases()


# --- feed state: gone, Retry-After, permanent moves, backoff ---------------------------


def test_410_marks_the_feed_gone_and_it_is_never_polled_again_even_with_all(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    url = feed_server.route("/old.xml", status=410)
    config = load(write_config(tmp_path, {"Old": url}), database_url)
    poll_once(config)

    again = poll_once(config, all_sources=True, now=datetime.now(UTC) + timedelta(days=30))

    assert feed_states(database_url)["Old"].gone
    assert again.feeds == []
    assert len(feed_server.requests_to("/old.xml")) == 1


@pytest.mark.parametrize(
    "retry_after",
    [
        pytest.param(lambda: "3600", id="seconds"),
        pytest.param(
            lambda: format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True),
            id="http-date",
        ),
    ],
)
def test_429_with_retry_after_is_not_polled_before_that_time(
    tmp_path: Path, feed_server: FeedServer, database_url: str, retry_after: object
) -> None:
    url = feed_server.route("/busy.xml", status=429, headers={"Retry-After": retry_after()})  # type: ignore[operator]
    config = load(write_config(tmp_path, {"Busy": url}), database_url)
    poll_once(config)
    state = feed_states(database_url)["Busy"]

    early = poll_once(config, all_sources=True, now=datetime.now(UTC) + timedelta(minutes=50))
    late = poll_once(config, all_sources=True, now=datetime.now(UTC) + timedelta(minutes=70))

    assert state.last_status == "rate_limited"
    assert state.retry_after is not None
    assert early.feeds == []
    assert [f.name for f in late.feeds] == ["Busy"]
    assert len(feed_server.requests_to("/busy.xml")) == 2


def test_a_permanent_redirect_seen_three_times_updates_the_stored_url(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    new = feed_server.route("/new.xml", SAMPLE_RSS)
    old = feed_server.redirect("/old.xml", new, status=301)
    config = load(write_config(tmp_path, {"Moved": old}), database_url)
    urls_after = []
    for _ in range(3):
        poll_once(config, all_sources=True)
        urls_after.append(feed_states(database_url)["Moved"].final_url)

    poll_once(config, all_sources=True)

    assert urls_after == [None, None, new]
    assert len(feed_server.requests_to("/old.xml")) == 3  # the fourth poll went straight there
    assert len(feed_server.requests_to("/new.xml")) == 4
    assert count(database_url, Article) == 2


def test_server_errors_back_off_with_growing_failure_count(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    url = feed_server.route("/flaky.xml", status=503)
    config = load(write_config(tmp_path, {"Flaky": url}), database_url)
    states = []
    for _ in range(3):
        before = datetime.now(UTC)
        poll_once(config, all_sources=True)
        state = feed_states(database_url)["Flaky"]
        assert state.next_poll_at is not None and state.next_poll_at > before
        states.append((state.last_status, state.consecutive_failures))

    assert states == [("server_error", 1), ("server_error", 2), ("server_error", 3)]


def test_a_success_after_failures_resets_the_failure_count(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    url = feed_server.route("/flaky.xml", status=500)
    config = load(write_config(tmp_path, {"Flaky": url}), database_url)
    poll_once(config, all_sources=True)
    poll_once(config, all_sources=True)
    feed_server.route("/flaky.xml", SAMPLE_RSS)

    poll_once(config, all_sources=True)

    state = feed_states(database_url)["Flaky"]
    assert (state.last_status, state.consecutive_failures, state.last_error) == ("ok", 0, None)
    assert state.last_success_at is not None


def test_status_json_shows_failures_gone_and_errors(
    tmp_path: Path, feed_server: FeedServer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    feeds = {
        "Fine": feed_server.route("/fine.xml", SAMPLE_RSS),
        "Gone": feed_server.route("/gone.xml", status=410),
        "Broken": feed_server.route("/broken.xml", status=500),
    }
    path = write_config(tmp_path, feeds)
    poll_once(load(path, database_url))
    monkeypatch.setenv("NEWSWATCH_DATABASE_URL", database_url)

    result = CliRunner().invoke(app, ["--no-prefect", "--config", str(path), "status", "--json"])

    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["Fine"]["last_status"] == "ok" and rows["Fine"]["articles"] == 2
    assert rows["Gone"]["gone"] is True and "410" in rows["Gone"]["last_error"]
    assert rows["Broken"]["consecutive_failures"] == 1
    assert rows["Broken"]["last_status"] == "server_error"
    assert rows["Broken"]["next_poll_at"] is not None


# --- the poll deadline and the size cap -----------------------------------------------


def test_the_poll_deadline_bounds_a_poll_whatever_the_servers_do(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    feeds = {
        "Fine": feed_server.route("/fine.xml", SAMPLE_RSS),
        "Hangs": feed_server.route("/hang.xml", behaviour=Hang()),
        "Drips": feed_server.route("/drip.xml", SAMPLE_RSS, behaviour=Drip(0.2)),
    }
    config = load(
        write_config(
            tmp_path, feeds, poll={"read_timeout": 60, "feed_timeout": 60, "deadline": 1.5}
        ),
        database_url,
    )
    report = poll_once(config)

    statuses = {f.name: f.status for f in report.feeds}
    assert statuses == {"Fine": "ok", "Hangs": "skipped", "Drips": "skipped"}
    assert feed_states(database_url)["Hangs"].last_status is None  # still due next time
    assert count(database_url, Article) == 2


def test_a_body_over_the_cap_is_refused_and_the_feed_kept(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    big = rss([{**story(n), "description": "x" * 1000} for n in range(200)])
    feeds = {
        "Fine": feed_server.route("/fine.xml", SAMPLE_RSS),
        "Big": feed_server.route("/big.xml", big),
    }
    config = load(write_config(tmp_path, feeds, poll={"max_feed_bytes": 64 * 1024}), database_url)
    poll_once(config)

    states = feed_states(database_url)
    assert states["Big"].last_status == "too_large"
    assert "larger than" in (states["Big"].last_error or "")
    assert not states["Big"].gone
    assert sightings_by_source(database_url) == {"Fine": 2}


def test_a_20_mb_entry_over_the_cap_is_refused(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    huge = rss([{**story(1), "description": "<p>" + "word " * 4_000_000 + "</p>"}])
    feeds = {
        "Huge": feed_server.route("/huge.xml", huge),
        "Fine": feed_server.route("/fine.xml", SAMPLE_RSS),
    }
    config = load(
        write_config(tmp_path, feeds, poll={"max_feed_bytes": 10 * 1024 * 1024}), database_url
    )
    poll_once(config)

    assert feed_states(database_url)["Huge"].last_status == "too_large"
    assert sightings_by_source(database_url) == {"Fine": 2}


# --- one poll of hostile servers and hostile content, per backend ----------------------

HOSTILE_POLL = {
    "connect_timeout": 1,
    "read_timeout": 1.5,
    "feed_timeout": 3,
    "deadline": 60,
    "per_host": 100,
    "concurrency": 100,
    "max_feed_bytes": 24 * 1024 * 1024,
}
RTL_TITLES = ["سوريا وتركيا: محادثات 🇸🇾🇹🇷 👩🏽\u200d💻", "ישראל \u200eו־טורקיה ✡️ 🕊️"]
LONG_LINK = "https://long.example/" + "a" * 10_000
LONG_LANGUAGE = "en-" + "x" * 100  # the column holds 35: PostgreSQL refused the whole feed
CP1252_TITLE = "Café crème – “quoted” €5"
UTF16_TITLE = "Ünïcödé über alles ☃"


@dataclass
class HostilePoll:
    """What one poll of the hostile feeds left behind."""

    report: PollReport
    database_url: str
    requests: list[LoggedRequest]
    secret: str
    workdir: Path

    def export(self) -> list[str]:
        """`newswatch export` of this database, one JSON line per article."""
        lines: list[str] = []
        config = load(write_config(self.workdir, {}), self.database_url)
        export_articles(config, lines.append)
        return lines

    def state(self, name: str) -> FeedState:
        return feed_states(self.database_url)[name]

    def articles(self, name: str) -> list[Article]:
        with reading(self.database_url) as s:
            return list(
                s.scalars(
                    select(Article)
                    .join(Sighting, Sighting.article_id == Article.id)
                    .join(Source, Source.id == Sighting.source_id)
                    .where(Source.name == name)
                    .order_by(Article.id)
                )
            )


def _hostile_feeds(server: FeedServer, secret_path: Path, entity_url: str) -> dict[str, str]:
    def fixture(name: str) -> bytes:
        text = (HOSTILE_DATA / name).read_text(encoding="utf-8")
        return (
            text.replace("{SECRET_PATH}", str(secret_path))
            .replace("{ENTITY_URL}", entity_url)
            .encode()
        )

    def feed_of(title: str, n: int = 1) -> bytes:
        return rss([{**story(n), "title": title}])

    utf16 = feed_of(UTF16_TITLE, 1003).decode().replace('encoding="utf-8"', 'encoding="utf-16"')
    chain = [server.redirect(f"/chain{i}", server.url(f"/chain{i + 1}"), 302) for i in range(8)]
    server.route("/chain8", SAMPLE_RSS)
    server.redirect("/loop2", server.url("/loop1"), 302)
    same_guid = [
        {"title": f"Item {i}", "guid": "urn:same", "description": f"{i}"} for i in range(500)
    ]
    no_ids = [{"title": f"Anonymous {i}", "description": f"Text {i}"} for i in range(3)]
    random_bytes = secrets.token_bytes(8192).replace(b"<", b"\x00")
    return {
        "Good A": server.route("/good-a.xml", SAMPLE_RSS),
        "Good B": server.route("/good-b.xml", rss([story(n) for n in range(10)])),
        # hostile servers
        "Bomb": server.gzip_bomb("/bomb", 200 * 1024 * 1024),
        "Nested bomb": server.gzip_bomb("/bomb2", 200 * 1024 * 1024, layers=2),
        "Endless": server.route("/endless", b"x", behaviour=Endless()),
        "Drip": server.route("/drip", SAMPLE_RSS, behaviour=Drip(0.3)),
        "Hang": server.route("/hang", behaviour=Hang()),
        "Reset": server.route("/reset", SAMPLE_RSS, behaviour=ResetMidBody(after=60)),
        "Billion laughs": server.route("/laughs", fixture("billion-laughs.xml")),
        "XXE file": server.route("/xxe-file", fixture("xxe-file.xml")),
        "XXE http": server.route("/xxe-http", fixture("xxe-http.xml")),
        "Redirect loop": server.redirect("/loop1", server.url("/loop2"), 302),
        "Long chain": chain[0],
        "HTML page": server.route(
            "/page.html", html_with_feed_link("/news/feed.xml"), content_type="text/html"
        ),
        "Empty": server.route("/empty", b""),
        "Binary": server.route("/binary", random_bytes, content_type="application/octet-stream"),
        "404": server.route("/404", b"not here", status=404),
        "410": server.route("/410", status=410),
        "429": server.route("/429", status=429, headers={"Retry-After": "120"}),
        "500": server.route("/500", b"oops", status=500),
        "503": server.route("/503", b"busy", status=503),
        # hostile content
        "CP1252 as UTF-8": server.route(
            "/cp1252",
            feed_of(CP1252_TITLE, 1002).decode().encode("windows-1252"),
            content_type="application/rss+xml; charset=utf-8",
        ),
        "UTF-16 BOM": server.route(
            "/utf16", utf16.encode("utf-16"), content_type="application/xml"
        ),
        "UTF-16 no BOM": server.route(
            "/utf16le", utf16.encode("utf-16-le"), content_type="application/xml"
        ),
        "Controls": server.route("/controls", HOSTILE_DATA / "controls.xml"),
        "RTL emoji": server.route("/rtl", HOSTILE_DATA / "rtl-emoji.xml"),
        "Same GUID": server.route("/same-guid", rss(same_guid)),
        "No GUID no link": server.route("/no-ids", rss(no_ids)),
        "Long link": server.route("/long-link", rss([story(1004, LONG_LINK)])),
        "20 MB entry": server.route(
            "/huge", rss([{**story(1005), "description": "<p>" + "word " * 4_000_000 + "</p>"}])
        ),
        "Dates": server.route("/dates", HOSTILE_DATA / "dates.xml"),
        "Long language": server.route(
            "/long-language",
            rss([story(1006)]).replace(
                b"<title>Feed</title>", b"<language>" + LONG_LANGUAGE.encode() + b"</language>"
            ),
        ),
        "Script": server.route("/script", HOSTILE_DATA / "script.xml"),
    }


def _hostile_database(request: pytest.FixtureRequest, tmp: Path) -> Generator[str, None, None]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp / 'hostile.db'}"
        return
    server = request.getfixturevalue("_pg_server")
    if server.unavailable:
        request.getfixturevalue("_pg_database")  # skips, or fails under CI, with the reason
    name = f"newswatch_hostile_{secrets.token_hex(4)}"
    with server.admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.url(name)
    finally:
        with server.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def hostile(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _feed_server_session: FeedServer,
) -> Iterator[HostilePoll]:
    """One poll of every hostile feed at once, on this backend."""
    server = _feed_server_session
    server.reset()
    tmp = tmp_path_factory.mktemp("hostile")
    secret = f"SECRET-{secrets.token_hex(8)}"
    secret_path = tmp / "secret.txt"
    secret_path.write_text(secret)
    entity_url = server.url("/entity-target")
    server.route("/entity-target", secret)
    feeds = _hostile_feeds(server, secret_path, entity_url)
    databases = _hostile_database(request, tmp)
    url = next(databases)
    try:
        config = load(write_config(tmp, feeds, poll=HOSTILE_POLL), url)
        report = poll_once(config)
        (tmp / "export").mkdir()
        yield HostilePoll(report, url, list(server.requests), secret, tmp / "export")
    finally:
        close_databases()
        server.reset()
        databases.close()


SERVER_ERRORS = {
    "Bomb": ("too_large", "larger than"),
    "Nested bomb": ("too_large", "larger than"),
    # whichever comes first: the size cap, or the feed's deadline on a loaded machine
    "Endless": ("too_large|timeout", "/endless"),
    "Drip": ("timeout", "total deadline"),
    "Hang": ("timeout", "timed out"),
    "Reset": ("connection", "/reset"),
    "Redirect loop": ("redirect", "loop"),
    "Long chain": ("redirect", "more than 5 redirects"),
    "HTML page": ("not_a_feed", "/news/feed.xml"),
    "Empty": ("empty", "empty"),
    "404": ("http_error", "404"),
    "410": ("gone", "410"),
    "429": ("rate_limited", "429"),
    "500": ("server_error", "500"),
    "503": ("server_error", "503"),
}


@pytest.mark.parametrize(("feed", "expected"), SERVER_ERRORS.items(), ids=list(SERVER_ERRORS))
def test_a_hostile_server_gets_a_clear_stored_error(
    hostile: HostilePoll, feed: str, expected: tuple[str, str]
) -> None:
    kind, words = expected
    state = hostile.state(feed)
    assert state.last_status in kind.split("|"), state.last_error
    assert words in (state.last_error or "")
    assert "Traceback" not in (state.last_error or "")
    assert hostile.articles(feed) == []


def test_random_binary_is_stored_as_a_content_error(hostile: HostilePoll) -> None:
    state = hostile.state("Binary")
    assert state.last_status in ("unparsable", "not_a_feed"), state.last_error
    assert state.last_error and not state.gone


def test_the_other_feeds_of_a_hostile_poll_finish_and_store(hostile: HostilePoll) -> None:
    assert sightings_by_source(hostile.database_url)["Good A"] == 2
    assert sightings_by_source(hostile.database_url)["Good B"] == 10
    assert not [f for f in hostile.report.feeds if f.status == "skipped"]


def test_entity_expansion_is_never_performed(hostile: HostilePoll) -> None:
    articles = hostile.articles("Billion laughs")
    assert all(len(a.title) < 200 and len(a.summary) < 1000 for a in articles)
    assert "lollollol" not in json.dumps([(a.title, a.summary) for a in articles])


def test_a_file_external_entity_never_reaches_the_database(hostile: HostilePoll) -> None:
    exported = hostile.export()
    states = json.dumps(
        [(s.last_error, s.last_status) for s in feed_states(hostile.database_url).values()]
    )
    assert hostile.secret not in "".join(exported) + states


def test_an_http_external_entity_is_never_fetched(hostile: HostilePoll) -> None:
    assert not [r for r in hostile.requests if r.path.startswith("/entity-target")]


def test_windows_1252_declared_as_utf8_is_read_as_windows_1252(hostile: HostilePoll) -> None:
    assert [a.title for a in hostile.articles("CP1252 as UTF-8")] == [CP1252_TITLE]


@pytest.mark.parametrize("feed", ["UTF-16 BOM", "UTF-16 no BOM"])
def test_utf16_with_or_without_bom_is_decoded(hostile: HostilePoll, feed: str) -> None:
    assert [a.title for a in hostile.articles(feed)] == [UTF16_TITLE]


def test_nul_and_control_characters_never_reach_the_database(hostile: HostilePoll) -> None:
    articles = hostile.articles("Controls")
    assert len(articles) == 2
    text = "".join(f"{a.title}{a.summary}{a.content or ''}" for a in articles)
    assert not [c for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F]
    titles = sorted(a.title for a in articles)
    assert titles[0].startswith("Nulhereand[31mred") and titles[0].endswith(" end")
    assert titles[1] == "RawNUL"


def test_right_to_left_scripts_and_emoji_round_trip_through_store_and_export(
    hostile: HostilePoll,
) -> None:
    assert [a.title for a in hostile.articles("RTL emoji")] == RTL_TITLES
    exported = {json.loads(line)["title"] for line in hostile.export()}
    assert set(RTL_TITLES) <= exported


def test_500_entries_with_one_guid_and_no_links_are_one_article(hostile: HostilePoll) -> None:
    assert hostile.state("Same GUID").last_status == "ok"
    assert len(hostile.articles("Same GUID")) == 1


def test_entries_with_neither_guid_nor_link_are_stored_by_content(hostile: HostilePoll) -> None:
    articles = hostile.articles("No GUID no link")
    assert sorted(a.title for a in articles) == ["Anonymous 0", "Anonymous 1", "Anonymous 2"]
    assert {a.key_kind for a in articles} == {"content"}


def test_a_10000_character_link_is_stored_whole_under_a_fixed_size_key(
    hostile: HostilePoll,
) -> None:
    [article] = hostile.articles("Long link")
    assert article.url == LONG_LINK
    assert len(article.key) == 64


def test_a_20_mb_entry_under_the_cap_is_stored_cut_down(hostile: HostilePoll) -> None:
    [article] = hostile.articles("20 MB entry")
    assert hostile.state("20 MB entry").last_status == "ok"
    assert 0 < len(article.summary) <= 600_000


def test_a_language_longer_than_any_tag_is_dropped_not_fatal(hostile: HostilePoll) -> None:
    assert hostile.state("Long language").last_status == "ok"
    assert [a.language for a in hostile.articles("Long language")] == [None]


def test_absurd_garbage_and_missing_dates_fall_back_to_first_seen(hostile: HostilePoll) -> None:
    articles = {a.title: a for a in hostile.articles("Dates")}
    for title in ("Far future", "Epoch", "Garbage", "Missing"):
        assert articles[title].published_at == articles[title].first_seen_at, title
    assert articles["Normal"].published_at == datetime(2026, 11, 24, 8, tzinfo=UTC)


def test_scripts_handlers_javascript_iframes_and_css_expressions_are_never_stored(
    hostile: HostilePoll,
) -> None:
    articles = hostile.articles("Script")
    stored = "\n".join(f"{a.title}\n{a.summary}\n{a.content}\n{a.url}" for a in articles).lower()
    for bad in (
        "<script",
        "steal(",
        "onclick",
        "onerror",
        "onload",
        "onmouseover",
        "javascript:",
        "vbscript:",
        "<iframe",
        "expression(",
        "<style",
        "<object",
        "<embed",
    ):
        assert bad not in stored, bad
    assert "talks" in stored and "resume" in stored


def test_javascript_and_data_links_never_become_an_article_url(hostile: HostilePoll) -> None:
    links = {a.title: a.url for a in hostile.articles("Script")}
    assert links["Scripted link"] is None and links["Data link"] is None
    assert links["Ceasefire talks Bcc: victim@example.org Subject: spam"] == "https://xss.example/1"
    with reading(hostile.database_url) as s:
        entry_urls = s.scalars(select(Sighting.entry_url)).all()
    assert not [u for u in entry_urls if u and ":" in u and not u.startswith("http")]


def test_a_title_with_crlf_and_bcc_is_stored_on_one_line(hostile: HostilePoll) -> None:
    [article] = [a for a in hostile.articles("Script") if a.title.startswith("Ceasefire")]
    assert "\r" not in article.title and "\n" not in article.title
    assert article.title.startswith("Ceasefire talks Bcc:")
