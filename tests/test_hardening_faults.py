"""Faults of our own (issue 8): an unusable database, a bad config.

Each must end `newswatch poll` with one line on stderr and a documented exit status
(3: database, 2: config), no traceback, nothing half-written, and for a bad config
no network traffic at all: the feed server must not have seen a request.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newswatch.cli import app
from newswatch.databases import close_databases
from newswatch.runs import poll_once
from storage.models import Article, FeedState
from tests.fixtures.http import SAMPLE_RSS, FeedServer
from tests.test_poll_pipeline import count, feed_states, load, rss, run_cli, story, write_config


@pytest.fixture(autouse=True)
def _fresh_databases() -> Iterator[None]:
    yield
    close_databases()


# The feed of the tests that must reach no server: a path no other test serves, since
# a request an earlier test left unread is logged after the server's reset.
UNTOUCHED = "/never-fetched.xml"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


def _one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_an_unreachable_database_ends_the_poll_with_one_line_and_exit_3(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    url = feed_server.route(UNTOUCHED, SAMPLE_RSS)
    config = write_config(tmp_path, {"News": url})
    database_url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/newswatch"

    result = run_cli(config, database_url, "poll")

    assert result.returncode == 3
    line = _one_line_error(result.stderr)
    assert line.startswith("newswatch: database error:") and "refused" in line
    assert feed_server.requests_to(UNTOUCHED) == []


def test_a_read_only_sqlite_database_ends_the_poll_with_one_line_and_nothing_written(
    tmp_path: Path, feed_server: FeedServer, sqlite_url: str
) -> None:
    first = feed_server.route("/first.xml", SAMPLE_RSS)
    poll_once(load(write_config(tmp_path, {"First": first}), sqlite_url))
    close_databases()
    second = feed_server.route("/second.xml", rss([story(n) for n in range(5)]))
    config = write_config(tmp_path, {"First": first, "Second": second})
    path = sqlite_url.removeprefix("sqlite:///")
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"

    code, stderr = _invoke(config, read_only, "poll", "--all")

    assert code == 3
    assert "readonly database" in _one_line_error(stderr)
    assert count(sqlite_url, Article) == 2
    assert list(feed_states(sqlite_url)) == ["First"]
    assert feed_server.requests_to("/second.xml") == []


def _invoke(config: Path, database_url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app,
        ["--no-prefect", "--config", str(config), *args],
        env={"NEWSWATCH_DATABASE_URL": database_url, "NEWSWATCH_CONFIG": ""},
    )
    assert isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr


BAD_CONFIGS = {
    "unknown key": ("[watch]\nbackfill_dayz = 5\n", "unknown key 'backfill_dayz' in [watch]"),
    "malformed query": (
        '[[topics]]\nname = "Broken"\nquery = "(Israel AND"\n',
        "[[topics]] #1 ('Broken') query",
    ),
    "bad URL": (
        '[[sources]]\nname = "Bad"\nurl = "ftp://example.org/feed"\n',
        "not an http(s) URL",
    ),
    "bad TOML": ("[poll\n", "invalid TOML"),
    "language too long": (
        '[[sources]]\nname = "Long"\nurl = "https://example.org/f"\nlanguage = "'
        + "x" * 40
        + '"\n',
        "[[sources]] #2 ('Long') language",
    ),
}


@pytest.mark.parametrize(("toml", "says"), BAD_CONFIGS.values(), ids=list(BAD_CONFIGS))
def test_a_bad_config_stops_the_poll_with_one_line_exit_2_and_no_network_traffic(
    tmp_path: Path, feed_server: FeedServer, sqlite_url: str, toml: str, says: str
) -> None:
    url = feed_server.route(UNTOUCHED, SAMPLE_RSS)
    good = write_config(tmp_path, {"News": url}).read_text(encoding="utf-8")
    config = tmp_path / "newswatch.toml"
    config.write_text(good + "\n" + toml, encoding="utf-8")

    code, stderr = _invoke(config, sqlite_url, "poll")

    assert code == 2
    line = _one_line_error(stderr)
    assert line.startswith("newswatch: config error:") and str(config) in line
    assert says in line
    assert feed_server.requests_to(UNTOUCHED) == []
    assert count(sqlite_url, FeedState) == 0
