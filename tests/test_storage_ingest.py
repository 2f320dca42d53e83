"""Storing articles: once per article, one sighting per source, any text that fits."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import func, select

from storage.db import Database
from storage.ingest import CHUNK, store_articles
from storage.models import Article, Sighting
from tests.fixtures.db import add_source, article_record

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _count(db: Database, model: type[Article] | type[Sighting]) -> int:
    with db.session(readonly=True) as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_new_articles_are_stored_and_reported(database: Database) -> None:
    source = add_source(database)
    with database.session() as s:
        result = store_articles(s, source, [article_record(n) for n in range(5)], NOW)
    assert len(result.new_article_ids) == 5
    assert result.new_sightings == 5
    assert result.duplicates == 0
    assert _count(database, Article) == 5


def test_storing_the_same_records_twice_stores_nothing_new(database: Database) -> None:
    source = add_source(database)
    records = [article_record(n) for n in range(5)]
    with database.session() as s:
        store_articles(s, source, records, NOW)
    with database.session() as s:
        again = store_articles(s, source, records, NOW + timedelta(hours=1))
    assert again.new_article_ids == []
    assert again.new_sightings == 0
    assert again.duplicates == 5
    assert _count(database, Article) == 5
    assert _count(database, Sighting) == 5


def test_a_fuller_copy_from_another_source_replaces_the_stored_text(database: Database) -> None:
    first, second = add_source(database, "Feed A"), add_source(database, "Feed B")
    short = article_record(1, summary="<p>Short.</p>")
    full = article_record(1, source="b", title="Retitled", summary="<p>Short. And more.</p>")
    with database.session() as s:
        (article_id,) = store_articles(s, first, [short], NOW).new_article_ids
    with database.session() as s:
        result = store_articles(s, second, [full], NOW)
    assert (result.new_article_ids, [a.id for a in result.revised_articles]) == ([], [article_id])
    assert result.revised_articles[0].summary == "<p>Short. And more.</p>"
    with database.session(readonly=True) as s:
        stored = s.get_one(Article, article_id)
        assert (stored.title, stored.summary) == ("Retitled", "<p>Short. And more.</p>")


def test_a_shorter_or_equally_long_copy_leaves_the_stored_text_as_it_is(
    database: Database,
) -> None:
    first, second = add_source(database, "Feed A"), add_source(database, "Feed B")
    full = article_record(1, summary="<p>Short. And more.</p>")
    with database.session() as s:
        store_articles(s, first, [full], NOW)
    with database.session() as s:
        shorter = store_articles(s, second, [article_record(1, summary="<p>Short.</p>")], NOW)
        same = store_articles(
            s, second, [article_record(1, summary="<p>Other. And more.</p>")], NOW
        )
    assert shorter.revised_articles == same.revised_articles == []
    with database.session(readonly=True) as s:
        assert s.scalars(select(Article.summary)).one() == "<p>Short. And more.</p>"


def _stored_sketch(db: Database) -> bytes | None:
    with db.session(readonly=True) as s:
        return s.scalars(select(Article.sketch)).one()


def test_of_two_equal_copies_the_article_keeps_the_sketch_that_sorts_first_in_any_order(
    database: Database,
) -> None:
    first, second = add_source(database, "Outlet"), add_source(database, "Aggregator")
    # One text, two sketches: its outlet's feed left its sign-off out of one of them.
    lean = article_record(1, sketch=b"\x03\x05lean")
    full = article_record(1, sketch=b"\x03\x09full")
    with database.session() as s:
        store_articles(s, second, [full], NOW)
        store_articles(s, first, [lean], NOW)
    assert _stored_sketch(database) == b"\x03\x05lean"
    with database.session() as s:
        store_articles(s, second, [full], NOW)
    assert _stored_sketch(database) == b"\x03\x05lean"


def test_an_equally_long_copy_with_other_text_leaves_the_sketch_as_it_is(
    database: Database,
) -> None:
    source = add_source(database)
    with database.session() as s:
        store_articles(s, source, [article_record(1, sketch=b"\x03\x09mine")], NOW)
        store_articles(s, source, [article_record(1, title="Other", sketch=b"\x03\x01")], NOW)
    assert _stored_sketch(database) == b"\x03\x09mine"


def test_repeats_inside_one_batch_are_one_article(database: Database) -> None:
    source = add_source(database)
    with database.session() as s:
        result = store_articles(s, source, [article_record(7)] * 500, NOW)
    assert len(result.new_article_ids) == 1
    assert result.duplicates == 499
    assert _count(database, Article) == 1


def test_one_article_from_two_sources_is_one_article_with_two_sightings(
    database: Database,
) -> None:
    first, second = add_source(database, "Feed A"), add_source(database, "Feed B")
    with database.session() as s:
        a = store_articles(s, first, [article_record(1, source="a")], NOW)
    with database.session() as s:
        b = store_articles(s, second, [article_record(1, source="b")], NOW)
    assert len(a.new_article_ids) == 1
    assert b.new_article_ids == []
    assert b.new_sightings == 1
    assert _count(database, Article) == 1
    with database.session(readonly=True) as s:
        entry_urls = s.scalars(select(Sighting.entry_url).order_by(Sighting.source_id)).all()
    assert entry_urls == ["https://news.example/1?from=a", "https://news.example/1?from=b"]


def test_returned_ids_are_the_stored_articles(database: Database) -> None:
    source = add_source(database)
    with database.session() as s:
        result = store_articles(s, source, [article_record(n) for n in range(3)], NOW)
    with database.session(readonly=True) as s:
        titles = s.scalars(
            select(Article.title).where(Article.id.in_(result.new_article_ids)).order_by(Article.id)
        ).all()
    assert sorted(titles) == ["Article 0", "Article 1", "Article 2"]


def test_batches_larger_than_a_chunk_are_stored_whole(database: Database) -> None:
    source = add_source(database)
    count = CHUNK * 2 + 17
    with database.session() as s:
        result = store_articles(s, source, [article_record(n) for n in range(count)], NOW)
    assert len(result.new_article_ids) == count
    assert result.new_sightings == count
    assert _count(database, Article) == count


def test_missing_publication_date_becomes_first_seen_time(database: Database) -> None:
    source = add_source(database)
    with database.session() as s:
        store_articles(s, source, [article_record(1, published_at=None)], NOW)
    with database.session(readonly=True) as s:
        article = s.scalars(select(Article)).one()
    assert article.published_at == NOW
    assert article.first_seen_at == NOW


def test_timestamps_read_back_as_aware_utc(database: Database) -> None:
    source = add_source(database)
    istanbul = datetime(2026, 3, 1, 15, 0, tzinfo=timezone(timedelta(hours=3)))
    with database.session() as s:
        store_articles(s, source, [article_record(1, published_at=istanbul)], NOW)
    with database.session(readonly=True) as s:
        published = s.scalars(select(Article.published_at)).one()
    assert published == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert published.utcoffset() == timedelta(0)


def test_ten_thousand_character_url_is_stored_whole(database: Database) -> None:
    source = add_source(database)
    url = "https://news.example/long?" + "a" * 10_000
    key = hashlib.sha256(url.encode()).hexdigest()
    record = article_record(1, key=key, url=url, canonical_url=url, entry_url=url)
    with database.session() as s:
        result = store_articles(s, source, [record], NOW)
    assert len(result.new_article_ids) == 1
    with database.session(readonly=True) as s:
        assert s.scalars(select(Article.canonical_url)).one() == url


def test_nul_bytes_never_reach_the_database(database: Database) -> None:
    source = add_source(database)
    record = article_record(
        1, title="Ankara\x00 talks", summary="<p>a\x00b</p>", author="\x00", guid="g\x00"
    )
    with database.session() as s:
        store_articles(s, source, [record], NOW)
    with database.session(readonly=True) as s:
        article = s.scalars(select(Article)).one()
    assert (article.title, article.summary, article.author, article.guid) == (
        "Ankara talks",
        "<p>ab</p>",
        "",
        "g",
    )


def test_scripts_emoji_and_control_characters_round_trip_exactly(database: Database) -> None:
    source = add_source(database)
    title = "إسرائيل وتركيا — ישראל וטורקיה — Türkiye 🇹🇷📰 \u200f\u202e\x01\x1f"
    with database.session() as s:
        store_articles(s, source, [article_record(1, title=title, summary=title)], NOW)
    with database.session(readonly=True) as s:
        article = s.scalars(select(Article)).one()
    assert article.title == title
    assert article.summary == title


def test_empty_batch_stores_nothing(database: Database) -> None:
    source = add_source(database)
    with database.session() as s:
        result = store_articles(s, source, [], NOW)
    assert (result.new_article_ids, result.new_sightings, result.duplicates) == ([], 0, 0)


def test_new_articles_carry_the_text_topic_matching_reads_exactly_as_stored(
    database: Database,
) -> None:
    source = add_source(database)
    records = [
        article_record(1, title="Ankara\x00 talks", summary="<p>a\x00b</p>", content="<p>c</p>"),
        article_record(2),
    ]
    with database.session() as s:
        store_articles(s, source, records[1:], NOW)
    with database.session() as s:
        result = store_articles(s, source, records, NOW)
    with database.session(readonly=True) as s:
        stored = s.execute(select(Article.id, Article.title, Article.summary, Article.content))
        by_id = {row[0]: tuple(row[1:]) for row in stored}
    assert [a.id for a in result.new_articles] == result.new_article_ids  # only the new one
    assert [(a.title, a.summary, a.content) for a in result.new_articles] == [
        by_id[result.new_article_ids[0]]
    ]
    assert by_id[result.new_article_ids[0]] == ("Ankara talks", "<p>ab</p>", "<p>c</p>")
