"""`digest.build.build_view`: claimed entries → sections by topic, stories, "and N more"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from digest.build import StoryContext, build_view
from digest.model import DigestView, OutletLink
from storage.digests import DigestEntry, Sighted

NOW = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)


def entry(article_id: int, **fields: Any) -> DigestEntry:
    values: dict[str, Any] = {
        "match_id": article_id,
        "topic": "Syria",
        "score": 1.0,
        "terms": ("syria",),
        "snippet": "",
        "highlights": (),
        "article_id": article_id,
        "title": f"Article {article_id}",
        "url": f"https://news.example/{article_id}",
        "published_at": NOW - timedelta(hours=article_id),
        "story_id": None,
        "outlets": (Sighted("Outlet", f"https://news.example/{article_id}?utm_source=rss"),),
    }
    values.update(fields)
    return DigestEntry(**values)


def view(entries: list[DigestEntry], **kwargs: Any) -> DigestView:
    options: dict[str, Any] = {
        "name": "daily",
        "timezone": "Europe/Istanbul",
        "generated_at": NOW,
        "period_start": None,
        "topic_order": ["Syria", "Cyprus"],
        "max_items": 20,
    }
    options.update(kwargs)
    return build_view(entries=entries, **options)


def titles(digest: DigestView) -> list[list[str]]:
    return [[story.title for story in section.stories] for section in digest.sections]


def test_sections_follow_the_configured_topic_order() -> None:
    digest = view([entry(1, topic="Cyprus"), entry(2, topic="Syria"), entry(3, topic="Other")])

    assert [s.name for s in digest.sections] == ["Syria", "Cyprus", "Other"]


def test_stories_are_ordered_by_score_then_newest_first() -> None:
    digest = view([entry(1, score=1.0), entry(3, score=2.0), entry(2, score=2.0)])

    assert titles(digest) == [["Article 2", "Article 3", "Article 1"]]


def test_articles_of_one_story_become_one_story_led_by_the_best_score() -> None:
    digest = view(
        [
            entry(1, story_id=7, score=1.0, outlets=(Sighted("A", None),)),
            entry(2, story_id=7, score=3.0, outlets=(Sighted("B", None),), terms=("turkey",)),
        ]
    )

    (story,) = digest.sections[0].stories
    assert story.title == "Article 2"
    assert [o.name for o in story.also_reported] == ["A"]
    assert story.terms == ("turkey", "syria")


def test_also_reported_by_lists_every_other_outlet_of_the_story_once_with_its_link() -> None:
    context = StoryContext(
        members={7: [1, 2, 3]},
        sightings={
            1: [Sighted("A", "https://a.example/1?utm_source=x")],
            2: [Sighted("B", "https://b.example/2?fbclid=1"), Sighted("A", None)],
            3: [Sighted("C", "https://c.example/3")],
        },
        links={1: "https://a.example/1", 2: "https://b.example/2", 3: None},
    )

    digest = view([entry(1, story_id=7, outlets=(Sighted("A", None),))], context=context)

    (story,) = digest.sections[0].stories
    assert story.also_reported == (
        OutletLink("B", "https://b.example/2"),
        OutletLink("C", "https://c.example/3"),
    )


def test_outlets_link_to_the_clean_url_not_the_feed_copy_with_tracking() -> None:
    digest = view([entry(1)])

    (story,) = digest.sections[0].stories
    assert story.url == "https://news.example/1"
    assert story.outlets == (OutletLink("Outlet", "https://news.example/1"),)


def test_a_topic_shows_at_most_max_items_and_counts_the_rest() -> None:
    digest = view([entry(n, score=float(n)) for n in range(1, 6)], max_items=2)

    section = digest.sections[0]
    assert [s.title for s in section.stories] == ["Article 5", "Article 4"]
    assert section.more == 3
    assert digest.total == 5


def test_a_story_spread_over_two_topics_appears_in_each() -> None:
    digest = view([entry(1, topic="Syria"), entry(1, topic="Cyprus", match_id=99)])

    assert titles(digest) == [["Article 1"], ["Article 1"]]


def test_no_entries_make_an_empty_view() -> None:
    assert view([]).is_empty
