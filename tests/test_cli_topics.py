"""`newswatch topics test QUERY` and `newswatch topics list`, through the real CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from newswatch.cli import app
from newswatch.databases import close_databases
from storage.db import Database
from storage.ingest import store_articles
from tests.fixtures.db import add_source, article_record

RELEVANT = (
    "Israel and Turkey agree on deconfliction in Syria",
    "Officials said the Israeli and Turkish militaries set up a hotline.",
)
TRADE = ("Israel–Turkey trade slumps", "Exports fell for a third month.")
SPORT = ("Galatasaray win the derby", "The league resumes after the break.")


@pytest.fixture
def config_path(tmp_path: Path, database: Database) -> Iterator[Path]:
    """A config with two topics; articles stored an hour ago in the test database."""
    path = tmp_path / "newswatch.toml"
    path.write_text(
        "[aliases]\n"
        'turkey = "Turkey OR Türkiye OR Turkish"\n\n'
        "[[topics]]\n"
        'name = "Deconfliction"\n'
        'query = "Israel AND @turkey AND (deconfliction OR hotline)"\n\n'
        "[[topics]]\n"
        'name = "Sport"\n'
        'query = "league OR derby"\n',
        encoding="utf-8",
    )
    source = add_source(database, "Wire")
    records = [
        article_record(n, title=title, summary=f"<p>{summary}</p>")
        for n, (title, summary) in enumerate([RELEVANT, TRADE, SPORT])
    ]
    with database.session() as s:
        store_articles(s, source, records, datetime.now(UTC) - timedelta(hours=1))
    yield path
    close_databases()


def newswatch(config_path: Path, database: Database, *args: str) -> Result:
    return CliRunner().invoke(
        app,
        ["--no-prefect", "--config", str(config_path), *args],
        env={"NEWSWATCH_DATABASE_URL": database.url},
    )


def test_topics_test_shows_matches_with_scores_and_highlighted_snippets(
    config_path: Path, database: Database
) -> None:
    result = newswatch(config_path, database, "topics", "test", "Israel AND @turkey")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "2 of 3 articles match (showing 2):"
    scores = [float(line.split()[0]) for line in lines if line.endswith(RELEVANT[0])]
    assert scores and scores[0] > 4
    assert "[Israel]–[Turkey] trade slumps" in result.stdout
    assert "Israeli and [Turkish] militaries" in result.stdout  # the text, where it hit
    assert "terms: israel, turkey" in result.stdout
    assert TRADE[0] in result.stdout and SPORT[0] not in result.stdout


def test_topics_test_lists_the_best_match_first(config_path: Path, database: Database) -> None:
    result = newswatch(config_path, database, "topics", "test", "Israel OR hotline OR Syria")
    titles = [line for line in result.stdout.splitlines() if line.endswith((RELEVANT[0], TRADE[0]))]
    assert [t.split(None, 1)[1] for t in titles] == [RELEVANT[0], TRADE[0]]


def test_topics_test_saves_nothing(config_path: Path, database: Database) -> None:
    assert newswatch(config_path, database, "topics", "test", "Israel").exit_code == 0
    exported = newswatch(config_path, database, "export").stdout.splitlines()
    assert len(exported) == 3
    assert [json.loads(line)["matches"] for line in exported] == [[], [], []]


def test_a_malformed_query_is_one_line_with_its_position_and_exit_2(
    config_path: Path, database: Database
) -> None:
    result = newswatch(config_path, database, "topics", "test", "Israel AND (Turkey OR")
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "at column 20" in line and "Israel AND (Turkey >>>OR" in line


def test_topics_list_shows_each_topic_with_its_recent_match_count(
    config_path: Path, database: Database
) -> None:
    result = newswatch(config_path, database, "topics", "list")
    assert result.exit_code == 0, result.output
    assert "Deconfliction: 1 in 7 days, 1 total" in result.stdout
    assert "Sport: 1 in 7 days, 1 total" in result.stdout
    assert "Israel AND @turkey AND (deconfliction OR hotline)" in result.stdout
