"""Matching stored articles against topics: as they are stored, and by backfill.

`ArticleProcessor.prepare` syncs the configured topics and re-applies new or edited
ones to stored articles within `[watch] backfill_days`; `process` matches the articles
a poll just stored, in the poll's transaction. Real SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from newswatch.config import Config, load_config
from newswatch.databases import close_databases
from newswatch.processing import ArticleProcessor
from newswatch.runs import export_articles
from storage.db import Database, open_database
from storage.ingest import store_articles
from storage.models import Digest, DigestItem, Match, Topic
from storage.topics import articles_by_id
from tests.fixtures.db import _PRELOAD as PRELOAD
from tests.fixtures.db import add_source, article_record, process_context

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DECONFLICTION = "Israel AND Turkey AND deconfliction"


def write_config(
    path: Path,
    topics: dict[str, str | tuple[str, float]],
    *,
    aliases: dict[str, str] | None = None,
    backfill_days: float = 7,
) -> Path:
    """A config file with these topics (name → query, or (query, min_score))."""
    lines = [f"[watch]\nbackfill_days = {backfill_days}\n"]
    if aliases:
        lines.append("[aliases]")
        lines += [f"{name} = {json.dumps(query)}" for name, query in aliases.items()]
    for name, value in topics.items():
        query, min_score = value if isinstance(value, tuple) else (value, 0.0)
        lines.append(
            f"[[topics]]\nname = {json.dumps(name)}\nquery = {json.dumps(query)}\n"
            f"min_score = {min_score}\n"
        )
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def configure(tmp_path: Path, database: Database) -> Iterator[Any]:
    """`configure(topics, ...)`: a loaded Config for these topics on the test database."""

    def make(topics: dict[str, str | tuple[str, float]], **options: Any) -> Config:
        path = write_config(tmp_path / "newswatch.toml", topics, **options)
        return load_config(path, env={"NEWSWATCH_DATABASE_URL": database.url})

    yield make
    close_databases()


def store(db: Database, texts: dict[int, tuple[str, str]], now: datetime = NOW) -> list[int]:
    """Store article n with (title, summary) for each n, first seen at `now`; new ids."""
    source = add_source(db, "Wire")
    records = [
        article_record(n, title=title, summary=f"<p>{summary}</p>")
        for n, (title, summary) in texts.items()
    ]
    with db.session() as s:
        return store_articles(s, source, records, now).new_article_ids


def stored_matches(db: Database) -> list[tuple[str, str, float]]:
    """(topic, article title, score) of every stored match, sorted."""
    from storage.models import Article

    with db.session(readonly=True) as s:
        rows = s.execute(
            select(Topic.name, Article.title, Match.score)
            .join(Match, Match.topic_id == Topic.id)
            .join(Article, Article.id == Match.article_id)
        )
        return sorted((r[0], r[1], r[2]) for r in rows)


RELEVANT = ("Israel and Turkey agree on deconfliction in Syria", "A hotline for the two armies.")
OTHER = ("Football: Galatasaray win the derby", "Turkey's league resumes after the break.")


def test_a_new_article_is_matched_as_it_is_stored(database: Database, configure: Any) -> None:
    processor, _ = ArticleProcessor.prepare(database, configure({"D": DECONFLICTION}), NOW)
    source = add_source(database, "Wire")
    record = article_record(1, title=RELEVANT[0], summary=f"<p>{RELEVANT[1]}</p>")
    with database.session() as s:
        stored = store_articles(s, source, [record], NOW)
        assert processor.process(s, stored.new_article_ids, NOW) == 1
    with database.session(readonly=True) as s:
        match = s.scalars(select(Match)).one()
        topic = s.get(Topic, match.topic_id)
    assert topic is not None and topic.name == "D"
    assert match.article_id == stored.new_article_ids[0]
    assert match.score > 6  # three distinct words in the title, close together
    assert match.terms == ["israel", "turkey", "deconfliction"]
    assert match.snippet == RELEVANT[0]
    assert [RELEVANT[0][s:e] for s, e in match.highlights] == ["Israel", "Turkey", "deconfliction"]
    assert match.matched_at == NOW


def test_matching_just_stored_articles_from_memory_equals_matching_them_read_back(
    database: Database, configure: Any
) -> None:
    config = configure({"D": DECONFLICTION, "Turkey": "Turkey", "Football": "football"})
    processor, _ = ArticleProcessor.prepare(database, config, NOW)
    source = add_source(database, "Wire")
    records = [
        article_record(1, title=RELEVANT[0], summary=f"<p>{RELEVANT[1]}</p>"),
        article_record(2, title=OTHER[0], summary="<p>Turkey&#x27;s <b>league</b></p>"),
        article_record(3, title="Football", summary="", content="<p>Turkey at home.</p>"),
    ]
    with database.session() as s:
        stored = store_articles(s, source, records, NOW)
        from_memory = processor.matches(stored.new_articles)
        read_back = processor.matches(articles_by_id(s, stored.new_article_ids))
        assert processor.process_new(s, stored.new_articles, NOW) == len(read_back) == 6
    assert from_memory == read_back


def test_an_article_matching_no_topic_stores_no_match(database: Database, configure: Any) -> None:
    processor, _ = ArticleProcessor.prepare(database, configure({"D": DECONFLICTION}), NOW)
    ids = store(database, {1: OTHER})
    with database.session() as s:
        assert processor.process(s, ids, NOW) == 0
    assert stored_matches(database) == []


def test_every_topic_is_checked_against_each_new_article(
    database: Database, configure: Any
) -> None:
    config = configure({"D": DECONFLICTION, "Turkey": "Turkey", "Football": "football"})
    processor, _ = ArticleProcessor.prepare(database, config, NOW)
    ids = store(database, {1: RELEVANT, 2: OTHER})
    with database.session() as s:
        assert processor.process(s, ids, NOW) == 4
    assert [(t, title) for t, title, _ in stored_matches(database)] == [
        ("D", RELEVANT[0]),
        ("Football", OTHER[0]),
        ("Turkey", OTHER[0]),
        ("Turkey", RELEVANT[0]),
    ]


def test_min_score_keeps_weak_matches_out(database: Database, configure: Any) -> None:
    # "Turkey" in a title scores 2, in the text only 1.
    config = configure({"Strong": ("Turkey", 1.5)})
    processor, _ = ArticleProcessor.prepare(database, config, NOW)
    ids = store(database, {1: ("Turkey votes", ""), 2: ("Elections", "Turkey votes")})
    with database.session() as s:
        processor.process(s, ids, NOW)
    assert stored_matches(database) == [("Strong", "Turkey votes", 2.0)]


def test_processing_an_article_twice_stores_one_match(database: Database, configure: Any) -> None:
    processor, _ = ArticleProcessor.prepare(database, configure({"D": DECONFLICTION}), NOW)
    ids = store(database, {1: RELEVANT})
    with database.session() as s:
        assert processor.process(s, ids, NOW) == 1
    with database.session() as s:
        assert processor.process(s, ids, NOW) == 0
    assert len(stored_matches(database)) == 1


def test_a_new_topic_is_applied_to_articles_within_the_window(
    database: Database, configure: Any
) -> None:
    store(database, {1: RELEVANT}, NOW - timedelta(days=10))
    store(database, {2: (RELEVANT[0] + " (update)", RELEVANT[1])}, NOW - timedelta(days=2))
    _, report = ArticleProcessor.prepare(database, configure({"D": DECONFLICTION}), NOW)
    assert [title for _, title, _ in stored_matches(database)] == [RELEVANT[0] + " (update)"]
    assert (report.topics, report.articles, report.matches) == (["D"], 1, 1)


def test_preparing_twice_leaves_the_same_matches(database: Database, configure: Any) -> None:
    store(database, {1: RELEVANT, 2: OTHER}, NOW - timedelta(days=1))
    config = configure({"D": DECONFLICTION, "Turkey": "Turkey"})
    ArticleProcessor.prepare(database, config, NOW)
    first = stored_matches(database)
    ArticleProcessor.prepare(database, config, NOW + timedelta(hours=1))
    assert stored_matches(database) == first
    assert len(first) == 3


def test_an_unchanged_topic_is_not_scanned_again(database: Database, configure: Any) -> None:
    store(database, {1: RELEVANT}, NOW - timedelta(days=1))
    config = configure({"D": DECONFLICTION})
    ArticleProcessor.prepare(database, config, NOW)
    _, report = ArticleProcessor.prepare(database, config, NOW)
    assert (report.topics, report.articles) == ([], 0)


def test_only_new_or_edited_topics_are_backfilled(database: Database, configure: Any) -> None:
    store(database, {1: RELEVANT}, NOW - timedelta(days=1))
    ArticleProcessor.prepare(database, configure({"D": DECONFLICTION, "T": "Turkey"}), NOW)
    config = configure({"D": DECONFLICTION, "T": "Turkey OR Türkiye", "S": "Syria"})
    _, report = ArticleProcessor.prepare(database, config, NOW)
    assert sorted(report.topics) == ["S", "T"]


def test_an_edited_query_is_reapplied_and_drops_matches_that_no_longer_hold(
    database: Database, configure: Any
) -> None:
    store(database, {1: RELEVANT, 2: OTHER}, NOW - timedelta(days=1))
    ArticleProcessor.prepare(database, configure({"T": "Turkey"}), NOW)
    assert len(stored_matches(database)) == 2
    _, report = ArticleProcessor.prepare(database, configure({"T": "Turkey AND football"}), NOW)
    assert [title for _, title, _ in stored_matches(database)] == [OTHER[0]]
    assert report.removed == 1


def test_an_edited_query_updates_the_score_of_a_match_that_still_holds(
    database: Database, configure: Any
) -> None:
    store(database, {1: RELEVANT}, NOW - timedelta(days=1))
    ArticleProcessor.prepare(database, configure({"T": "Turkey"}), NOW)
    ArticleProcessor.prepare(database, configure({"T": "Turkey AND Israel"}), NOW)
    ((_, _, score),) = stored_matches(database)
    assert score > 4


def test_an_edited_alias_is_reapplied(database: Database, configure: Any) -> None:
    store(database, {1: ("Türkiye and Israel talk", "")}, NOW - timedelta(days=1))
    ArticleProcessor.prepare(database, configure({"T": "@tr"}, aliases={"tr": "Turkey"}), NOW)
    assert stored_matches(database) == []
    config = configure({"T": "@tr"}, aliases={"tr": "Turkey OR Türkiye"})
    _, report = ArticleProcessor.prepare(database, config, NOW)
    assert report.topics == ["T"]
    assert [title for _, title, _ in stored_matches(database)] == ["Türkiye and Israel talk"]


def test_a_raised_min_score_drops_matches_below_it(database: Database, configure: Any) -> None:
    store(database, {1: ("Turkey votes", ""), 2: ("Elections", "Turkey votes")}, NOW)
    ArticleProcessor.prepare(database, configure({"T": "Turkey"}), NOW)
    ArticleProcessor.prepare(database, configure({"T": ("Turkey", 1.5)}), NOW)
    assert [title for _, title, _ in stored_matches(database)] == ["Turkey votes"]


def test_a_delivered_match_survives_an_edit_that_drops_it(
    database: Database, configure: Any
) -> None:
    store(database, {1: RELEVANT, 2: OTHER}, NOW - timedelta(days=1))
    ArticleProcessor.prepare(database, configure({"T": "Turkey"}), NOW)
    with database.session() as s:
        digest = Digest(name="daily", channel="markdown", status="sent", created_at=NOW)
        s.add(digest)
        s.flush()
        for match in s.scalars(select(Match)):
            s.add(
                DigestItem(
                    digest_id=digest.id, digest_name="daily", channel="markdown", match_id=match.id
                )
            )
    ArticleProcessor.prepare(database, configure({"T": "Turkey AND football"}), NOW)
    assert len(stored_matches(database)) == 2


def test_an_edit_drops_stale_undelivered_matches_outside_the_window(
    database: Database, configure: Any
) -> None:
    store(database, {1: RELEVANT, 2: OTHER}, NOW - timedelta(days=30))
    ArticleProcessor.prepare(database, configure({"T": "Turkey"}, backfill_days=60), NOW)
    assert len(stored_matches(database)) == 2
    ArticleProcessor.prepare(database, configure({"T": "Turkey AND football"}), NOW)
    assert [title for _, title, _ in stored_matches(database)] == [OTHER[0]]


def test_a_topic_configured_again_is_backfilled(database: Database, configure: Any) -> None:
    ArticleProcessor.prepare(database, configure({"D": DECONFLICTION}), NOW)
    ArticleProcessor.prepare(database, configure({}), NOW)
    store(database, {1: RELEVANT}, NOW)  # stored while the topic was not configured
    _, report = ArticleProcessor.prepare(database, configure({"D": DECONFLICTION}), NOW)
    assert report.topics == ["D"]
    assert len(stored_matches(database)) == 1


def test_a_topic_no_longer_configured_is_kept_inactive(database: Database, configure: Any) -> None:
    ArticleProcessor.prepare(database, configure({"D": DECONFLICTION, "T": "Turkey"}), NOW)
    processor, _ = ArticleProcessor.prepare(database, configure({"T": "Turkey"}), NOW)
    with database.session(readonly=True) as s:
        active = {t.name: t.active for t in s.scalars(select(Topic))}
    assert active == {"D": False, "T": True}
    assert list(processor.topic_ids) == ["T"]


def _prepare_in_child(
    config_path: str, url: str, start: Any, answers: multiprocessing.Queue[str]
) -> None:
    config = load_config(config_path, env={"NEWSWATCH_DATABASE_URL": url})
    db = open_database(url)
    start.wait(60)
    _, report = ArticleProcessor.prepare(db, config, NOW)
    db.dispose()
    answers.put(",".join(report.topics))


def test_two_processes_preparing_at_once_store_each_match_once(
    database: Database, configure: Any, tmp_path: Path
) -> None:
    store(database, {n: RELEVANT if n % 2 else OTHER for n in range(200)}, NOW)
    configure({"D": DECONFLICTION, "T": "Turkey", "F": "football"})
    ctx = process_context()
    # Children fork from a server that has imported these already, so they start fast.
    ctx.set_forkserver_preload([*PRELOAD, "newswatch.processing", "newswatch.config"])
    start = ctx.Event()
    answers: multiprocessing.Queue[str] = ctx.Queue()
    children = [
        ctx.Process(
            target=_prepare_in_child,
            args=(str(tmp_path / "newswatch.toml"), database.url, start, answers),
        )
        for _ in range(2)
    ]
    for child in children:
        child.start()
    start.set()
    for child in children:
        child.join(120)
        assert child.exitcode == 0
    reports = sorted(answers.get(timeout=5) for _ in children)
    # Exactly one of them did the work; the other found it done once it got the lock.
    assert reports[0] == ""
    assert sorted(reports[1].split(",")) == ["D", "F", "T"]
    assert len(stored_matches(database)) == 100 + 200 + 100


def test_export_shows_each_articles_matches(database: Database, configure: Any) -> None:
    store(database, {1: RELEVANT, 2: OTHER}, NOW - timedelta(days=1))
    config = configure({"D": DECONFLICTION, "Turkey": "Turkey"})
    ArticleProcessor.prepare(database, config, NOW)
    lines: list[str] = []
    assert export_articles(config, lines.append) == 2
    exported = {a["title"]: a["matches"] for a in map(json.loads, lines)}
    assert [(m["topic"], m["terms"]) for m in exported[RELEVANT[0]]] == [
        ("D", ["israel", "turkey", "deconfliction"]),
        ("Turkey", ["turkey"]),
    ]
    assert [m["topic"] for m in exported[OTHER[0]]] == ["Turkey"]
    assert all(m["score"] > 0 for m in exported[RELEVANT[0]] + exported[OTHER[0]])
