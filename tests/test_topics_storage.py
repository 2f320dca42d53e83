"""storage.topics: topics synced by name, matches stored once, summaries. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from storage.db import Database
from storage.ingest import store_articles
from storage.models import Article, Digest, DigestItem, Match
from storage.topics import (
    CHUNK,
    MatchRecord,
    TopicSpecRecord,
    article_pages,
    drop_stale_matches,
    lock_topics,
    mark_backfilled,
    matches_for_articles,
    store_matches,
    sync_topics,
    topic_summaries,
)
from tests.fixtures.db import add_source, article_record

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def spec(name: str, query: str = "Turkey", fingerprint: str = "f1") -> TopicSpecRecord:
    return TopicSpecRecord(name, query, 0.0, fingerprint)


def articles(db: Database, count: int, now: datetime = NOW, first: int = 0) -> list[int]:
    """Store articles number first, first + 1, ...; their ids in that order."""
    source = add_source(db, "Wire")
    records = [article_record(n) for n in range(first, first + count)]
    with db.session() as s:
        store_articles(s, source, records, now)
        ids = {row[0]: row[1] for row in s.execute(select(Article.key, Article.id))}
    return [ids[r.key] for r in records]


def topic(db: Database, name: str = "T") -> int:
    with db.session() as s:
        (row,) = sync_topics(s, [spec(name)], NOW)
    return row.id


def record(article_id: int, topic_id: int, score: float = 1.0) -> MatchRecord:
    return MatchRecord(article_id, topic_id, score, ("turkey",), "Turkey votes", ((0, 6),))


def test_sync_creates_topics_that_need_a_backfill(database: Database) -> None:
    with database.session() as s:
        rows = sync_topics(s, [spec("A"), spec("B")], NOW)
    assert [(r.name, r.needs_backfill, r.fingerprint) for r in rows] == [
        ("A", True, "f1"),
        ("B", True, "f1"),
    ]


def test_a_recorded_fingerprint_means_no_backfill(database: Database) -> None:
    with database.session() as s:
        (row,) = sync_topics(s, [spec("A")], NOW)
        mark_backfilled(s, row.id, row.fingerprint)
    with database.session() as s:
        (again,) = sync_topics(s, [spec("A", "Turkey OR Türkiye")], NOW)
        assert lock_topics(s, [row.id]) == {row.id: "f1"}
    assert (again.id, again.needs_backfill) == (row.id, False)


def test_a_changed_fingerprint_needs_a_backfill(database: Database) -> None:
    with database.session() as s:
        (row,) = sync_topics(s, [spec("A")], NOW)
        mark_backfilled(s, row.id, row.fingerprint)
    with database.session() as s:
        (again,) = sync_topics(s, [spec("A", fingerprint="f2")], NOW)
    assert again.needs_backfill


def test_a_topic_left_out_of_the_config_becomes_inactive_and_forgets_its_fingerprint(
    database: Database,
) -> None:
    with database.session() as s:
        a, _ = sync_topics(s, [spec("A"), spec("B")], NOW)
        mark_backfilled(s, a.id, a.fingerprint)
    with database.session() as s:
        sync_topics(s, [spec("B")], NOW)
    with database.session() as s:
        assert lock_topics(s, [a.id]) == {a.id: None}
        assert [(t.name, t.active) for t in topic_summaries(s, NOW)] == [
            ("B", True),
            ("A", False),
        ]


def test_store_matches_writes_each_article_topic_pair_once(database: Database) -> None:
    ids, topic_id = articles(database, 2), topic(database)
    with database.session() as s:
        assert store_matches(s, [record(ids[0], topic_id), record(ids[1], topic_id)], NOW) == 2
    with database.session() as s:
        assert store_matches(s, [record(ids[0], topic_id, 5.0)], NOW) == 0
        assert s.scalars(select(Match.score).order_by(Match.article_id)).all() == [1.0, 1.0]


def test_store_matches_with_replace_updates_a_match_but_keeps_when_it_matched(
    database: Database,
) -> None:
    (article_id,), topic_id = articles(database, 1), topic(database)
    with database.session() as s:
        store_matches(s, [record(article_id, topic_id)], NOW)
    changed = MatchRecord(article_id, topic_id, 3.5, ("turkey", "syria"), "Turkey, Syria", ())
    with database.session() as s:
        assert store_matches(s, [changed], NOW + timedelta(days=1), replace=True) == 1
    with database.session() as s:
        match = s.scalars(select(Match)).one()
    assert (match.score, match.terms, match.snippet, match.highlights) == (
        3.5,
        ["turkey", "syria"],
        "Turkey, Syria",
        [],
    )
    assert match.matched_at == NOW


def test_store_matches_takes_more_rows_than_one_statement_holds(database: Database) -> None:
    ids, topic_id = articles(database, CHUNK + 20), topic(database)
    with database.session() as s:
        assert store_matches(s, [record(i, topic_id) for i in ids], NOW) == CHUNK + 20


def test_store_matches_keeps_highlights(database: Database) -> None:
    (article_id,), topic_id = articles(database, 1), topic(database)
    with database.session() as s:
        store_matches(s, [record(article_id, topic_id)], NOW)
    with database.session() as s:
        assert s.scalars(select(Match.highlights)).one() == [[0, 6]]


def test_drop_stale_matches_keeps_the_listed_and_the_delivered(database: Database) -> None:
    ids, topic_id = articles(database, 3), topic(database)
    with database.session() as s:
        store_matches(s, [record(i, topic_id) for i in ids], NOW)
        digest = Digest(name="daily", channel="email", status="sent", created_at=NOW)
        s.add(digest)
        s.flush()
        delivered = s.scalars(select(Match.id).where(Match.article_id == ids[2])).one()
        s.add(
            DigestItem(
                digest_id=digest.id, digest_name="daily", channel="email", match_id=delivered
            )
        )
    with database.session() as s:
        assert drop_stale_matches(s, topic_id, {ids[0]}) == 1
        assert set(s.scalars(select(Match.article_id))) == {ids[0], ids[2]}


def test_topic_summaries_count_all_and_recent_matches(database: Database) -> None:
    ids, topic_id = articles(database, 3), topic(database)
    with database.session() as s:
        store_matches(s, [record(ids[0], topic_id)], NOW - timedelta(days=10))
        store_matches(s, [record(i, topic_id) for i in ids[1:]], NOW)
        sync_topics(s, [spec("T"), spec("Quiet")], NOW)
    with database.session() as s:
        summaries = topic_summaries(s, NOW - timedelta(days=7))
    assert [(t.name, t.query, t.matches_recent, t.matches_total) for t in summaries] == [
        ("Quiet", "Turkey", 0, 0),
        ("T", "Turkey", 2, 3),
    ]


def test_article_pages_cover_the_window_in_id_order(database: Database) -> None:
    articles(database, 5, NOW - timedelta(days=3))
    recent = articles(database, 7, NOW, first=5)
    with database.session() as s:
        pages = list(article_pages(s, NOW - timedelta(days=1), page_size=3))
    ordered = sorted(recent)
    assert [[a.id for a in page] for page in pages] == [ordered[0:3], ordered[3:6], ordered[6:]]
    assert pages[0][0].source == "Wire"


def test_matches_for_articles_lists_each_topic_best_first(database: Database) -> None:
    ids = articles(database, 3)
    with database.session() as s:
        a, b = sync_topics(s, [spec("A"), spec("B")], NOW)
        store_matches(
            s, [record(ids[0], b.id, 1.0), record(ids[1], b.id, 4.0), record(ids[2], a.id)], NOW
        )
    with database.session() as s:
        lines = matches_for_articles(s, ids)
    assert [(m.topic, m.score, m.title, m.source) for m in lines] == [
        ("A", 1.0, "Article 2", "Wire"),
        ("B", 4.0, "Article 1", "Wire"),
        ("B", 1.0, "Article 0", "Wire"),
    ]
