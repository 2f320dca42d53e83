"""The `newswatch` command line as a user meets it (typer's CliRunner, in process;
as a program where what a command loads is the point).

Every command has help text and a row in README.md's command table; each command's
output is what the README promises. Processes (`newswatch` as a real program) are
tested in test_poll_pipeline.py and test_hardening_faults.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from newswatch import __version__
from newswatch.cli import app
from newswatch.databases import close_databases
from tests.fixtures.http import SAMPLE_RSS, FeedServer
from tests.test_poll_pipeline import rss, story, write_config

README = Path(__file__).resolve().parent.parent / "README.md"
TOPICS = {"Border": "border OR crossing"}


@pytest.fixture(autouse=True)
def _fresh_databases() -> Iterator[None]:
    yield
    close_databases()


def _commands() -> list[tuple[str, Any]]:
    """Every leaf command as ("group command", command)."""
    found: list[tuple[str, Any]] = []

    def walk(prefix: str, command: Any) -> None:
        # typer ships its own click: a group is whatever has sub-commands
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(f"{prefix} {name}".strip(), sub)
        else:
            found.append((prefix, command))

    walk("", typer.main.get_command(app))
    return found


def _readme_commands() -> list[str]:
    rows = [
        line
        for line in README.read_text(encoding="utf-8").splitlines()
        if line.startswith("| `newswatch")
    ]
    # the first cell; "\|" inside backticks is an escaped pipe, not a cell boundary
    return [" ".join(re.findall(r"`([^`]*)`", re.split(r"(?<!\\)\|", row)[1])) for row in rows]


def invoke(config: Path, database_url: str, *args: str) -> Result:
    return CliRunner().invoke(
        app,
        ["--no-prefect", "--config", str(config), *args],
        env={"NEWSWATCH_DATABASE_URL": database_url, "COLUMNS": "200"},
    )


@pytest.fixture
def polled(tmp_path: Path, feed_server: FeedServer, sqlite_url: str) -> tuple[Path, str]:
    """A config with two feeds and a topic, polled once; (config path, database URL)."""
    feeds = {
        "Sample": feed_server.route("/sample.xml", SAMPLE_RSS),
        "Other": feed_server.route("/other.xml", rss([story(1), story(2)])),
    }
    config = write_config(tmp_path, feeds, topics=TOPICS)
    result = invoke(config, sqlite_url, "poll")
    assert result.exit_code == 0, result.output
    return config, sqlite_url


@pytest.mark.parametrize(("path", "command"), _commands(), ids=[p for p, _ in _commands()])
def test_every_command_has_help_text(path: str, command: Any) -> None:
    assert (command.help or "").strip(), path


@pytest.mark.parametrize("path", [p for p, _ in _commands()])
def test_every_command_is_in_the_readme_command_table(path: str) -> None:
    assert path
    *group, name = path.split()
    rows = [row for row in _readme_commands() if all(g in row.split() for g in group)]
    assert any(re.search(rf"(^|\s){re.escape(name)}(\s|$)", row) for row in rows), path


def test_version_prints_the_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert (result.exit_code, result.stdout) == (0, f"newswatch {__version__}\n")


def test_poll_prints_a_summary_line(
    tmp_path: Path, feed_server: FeedServer, sqlite_url: str
) -> None:
    feeds = {
        "Sample": feed_server.route("/sample.xml", SAMPLE_RSS),
        "Broken": feed_server.route("/broken.xml", status=500),
    }
    result = invoke(write_config(tmp_path, feeds), sqlite_url, "poll")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "2 feeds: 1 ok, 0 unchanged, 1 failed; 2 new articles, 0 duplicates skipped, 0 new matches"
    )
    assert lines[1].startswith("  Broken: server_error: HTTP 500")


def test_status_shows_a_row_per_feed(polled: tuple[Path, str]) -> None:
    result = invoke(*polled, "status")
    assert result.exit_code == 0, result.output
    assert re.search(r"Sample\s.*\bok\b", result.stdout)
    assert re.search(r"Other\s.*\bok\b", result.stdout)


_LOADED_AFTER = """
import atexit, sys
from newswatch.cli import main
poll_stack = ("aiohttp", "httpx", "feedparser", "newswatch.poll", "newswatch.parse_pool")
atexit.register(lambda: print(sorted(m for m in poll_stack if m in sys.modules), file=sys.stderr))
main()
"""


@pytest.mark.parametrize("command", [["status"], ["export"], ["topics", "list"]])
def test_commands_that_do_not_poll_do_not_load_the_poll(
    polled: tuple[Path, str], command: list[str]
) -> None:
    """Loading the fetching and parsing modules cost such a command up to ~0.5 s of
    start-up (`status`, on a slow machine) for nothing."""
    config, database_url = polled
    finished = subprocess.run(
        [sys.executable, "-c", _LOADED_AFTER, "--config", str(config), *command],
        env={**os.environ, "NEWSWATCH_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert (finished.returncode, finished.stderr.splitlines()[-1:]) == (0, ["[]"])


_FROZEN_AT_EXIT = """
import atexit, gc, sys
from newswatch.cli import main
atexit.register(lambda: print("frozen" if gc.get_freeze_count() else "tracked"))
main(["--version"])
"""


def test_the_command_line_leaves_what_it_holds_out_of_the_last_garbage_collection() -> None:
    """The interpreter's last collection walks every object still alive: after a
    Prefect poll ~0.3 s of Prefect's, pydantic's and SQLAlchemy's objects."""
    finished = subprocess.run(
        [sys.executable, "-c", _FROZEN_AT_EXIT], capture_output=True, text=True, timeout=60
    )

    assert (finished.returncode, finished.stdout.splitlines()[-1:]) == (0, ["frozen"])


def test_status_json_has_every_health_field(polled: tuple[Path, str]) -> None:
    result = invoke(*polled, "status", "--json")
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == ["Other", "Sample"]
    assert set(rows[0]) >= {
        "last_status",
        "last_error",
        "consecutive_failures",
        "last_success_at",
        "next_poll_at",
        "articles",
        "gone",
    }


def test_export_jsonl_writes_one_article_per_line_with_sources_and_matches(
    polled: tuple[Path, str],
) -> None:
    result = invoke(*polled, "export", "--format", "jsonl")

    assert result.exit_code == 0, result.output
    articles = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(articles) == 4
    by_title = {a["title"]: a for a in articles}
    border = by_title["Border crossing reopens"]
    assert [s["name"] for s in border["sources"]] == ["Sample"]
    assert [m["topic"] for m in border["matches"]] == ["Border"]
    assert by_title["Story number 1"]["matches"] == []


def test_topics_test_shows_what_a_query_matches(polled: tuple[Path, str]) -> None:
    result = invoke(*polled, "topics", "test", "Ankara")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("1 of 4 articles match")
    assert "Talks resume in Ankara" in result.stdout


def test_topics_test_refuses_a_malformed_query_with_exit_2(polled: tuple[Path, str]) -> None:
    result = invoke(*polled, "topics", "test", "(Ankara AND")
    assert result.exit_code == 2
    assert result.stderr.startswith("newswatch: bad query:")


def test_topics_list_shows_each_topic_with_its_counts(polled: tuple[Path, str]) -> None:
    result = invoke(*polled, "topics", "list")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "Border: 1 in 7 days, 1 total"


def test_opml_export_then_import_round_trips_the_sources(
    polled: tuple[Path, str], tmp_path: Path, sqlite_url: str
) -> None:
    config, _ = polled
    exported = invoke(config, sqlite_url, "sources", "export-opml")
    opml = tmp_path / "feeds.opml"
    opml.write_text(exported.stdout, encoding="utf-8")
    other_db = f"sqlite:///{tmp_path / 'other.db'}"
    (tmp_path / "empty").mkdir()
    empty = write_config(tmp_path / "empty", {})

    imported = invoke(empty, other_db, "sources", "import-opml", str(opml))
    again = invoke(empty, other_db, "sources", "export-opml")

    assert imported.stdout == "2 of 2 feeds added\n"
    urls = sorted(re.findall(r'xmlUrl="([^"]+)"', exported.stdout))
    assert sorted(re.findall(r'xmlUrl="([^"]+)"', again.stdout)) == urls
    assert len(urls) == 2


def test_import_opml_keeps_a_source_name_longer_than_the_column_cut_to_200(
    tmp_path: Path, database_url: str
) -> None:
    opml = tmp_path / "long.opml"
    opml.write_text(
        '<?xml version="1.0"?><opml version="2.0"><head><title>x</title></head><body>'
        f'<outline type="rss" text="{"N" * 300}" xmlUrl="https://example.org/feed"/>'
        "</body></opml>",
        encoding="utf-8",
    )
    config = write_config(tmp_path, {})

    imported = invoke(config, database_url, "sources", "import-opml", str(opml))
    exported = invoke(config, database_url, "sources", "export-opml")

    assert imported.stdout == "1 of 1 feeds added\n", imported.output
    assert f'text="{"N" * 200}"' in exported.stdout


def test_import_opml_of_a_file_that_is_not_opml_says_so_in_one_line(
    tmp_path: Path, sqlite_url: str
) -> None:
    junk = tmp_path / "junk.opml"
    junk.write_text("<html><body>not OPML</body></html>", encoding="utf-8")

    result = invoke(write_config(tmp_path, {}), sqlite_url, "sources", "import-opml", str(junk))

    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert result.stderr.startswith("newswatch: ") and "not an OPML document" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_export_to_a_path_that_cannot_be_written_is_one_line_and_exit_1(
    polled: tuple[Path, str], tmp_path: Path
) -> None:
    target = tmp_path / "missing" / "dir" / "out.jsonl"
    result = invoke(*polled, "export", "--output", str(target))
    assert result.exit_code == 1
    assert result.stderr == f"newswatch: cannot use {target}: No such file or directory\n"
