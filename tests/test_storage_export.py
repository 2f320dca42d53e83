"""Reading articles back out for `newswatch export`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage.db import Database
from storage.export import iter_articles
from storage.ingest import store_articles
from storage.models import Match, Topic
from tests.fixtures.db import add_source, article_record

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_exported_article_lists_every_source_that_carried_it(database: Database) -> None:
    alpha, beta = add_source(database, "Alpha"), add_source(database, "Beta")
    with database.session() as s:
        store_articles(s, alpha, [article_record(1, source="alpha")], NOW)
        store_articles(s, beta, [article_record(1, source="beta")], NOW + timedelta(hours=1))
    with database.session(readonly=True) as s:
        (article,) = list(iter_articles(s))
    assert article.title == "Article 1"
    assert [(src.name, src.first_seen) for src in article.sources] == [
        ("Alpha", NOW),
        ("Beta", NOW + timedelta(hours=1)),
    ]
    assert article.sources[0].entry_url == "https://news.example/1?from=alpha"


def test_export_pages_through_every_article_in_order(database: Database) -> None:
    source = add_source(database)
    with database.session() as s:
        store_articles(s, source, [article_record(n) for n in range(25)], NOW)
    with database.session(readonly=True) as s:
        exported = list(iter_articles(s, page_size=7))
    assert len(exported) == 25
    assert [a.id for a in exported] == sorted(a.id for a in exported)
    assert all(len(a.sources) == 1 for a in exported)


def test_export_since_skips_older_articles(database: Database) -> None:
    source = add_source(database)
    with database.session() as s:
        store_articles(s, source, [article_record(1)], NOW - timedelta(days=2))
        store_articles(s, source, [article_record(2)], NOW)
    with database.session(readonly=True) as s:
        titles = [a.title for a in iter_articles(s, since=NOW - timedelta(days=1))]
    assert titles == ["Article 2"]


def test_exported_article_carries_its_topic_matches(database: Database) -> None:
    source = add_source(database)
    with database.session() as s:
        (article_id,) = store_articles(s, source, [article_record(1)], NOW).new_article_ids
        topic = Topic(name="Deconfliction", query="x", created_at=NOW, updated_at=NOW)
        s.add(topic)
        s.flush()
        s.add(
            Match(
                article_id=article_id,
                topic_id=topic.id,
                score=2.5,
                terms=["israel", "turkey"],
                snippet="…",
                matched_at=NOW,
            )
        )
    with database.session(readonly=True) as s:
        (article,) = list(iter_articles(s))
    assert [(m.topic, m.score, m.terms) for m in article.matches] == [
        ("Deconfliction", 2.5, ("israel", "turkey"))
    ]


def test_empty_database_exports_nothing(database: Database) -> None:
    with database.session(readonly=True) as s:
        assert list(iter_articles(s)) == []
