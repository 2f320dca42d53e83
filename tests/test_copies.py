"""One article, several outlets' copies: the article keeps the fullest copy.

The same article (one canonical URL) often reaches us through several feeds: the
publisher's own, a partner's syndication with a shorter summary, an aggregator. Which
feed answers first in a poll is a matter of network timing, so which copy's text an
article keeps, and with it which topics it matches, must not depend on it. The rule:
the longest summary + content wins (ties broken by the text itself); a fuller copy
arriving later replaces the text and the article is matched again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from newswatch.runs import poll_once
from storage.models import Article, Match, Sighting
from tests.fixtures.http import FeedServer
from tests.test_poll_pipeline import count, load, reading, rss, write_config

LINK = "https://english.enabbaladi.example/2026/11/t4-air-base/"
TITLE = "Turkish military teams survey Syria's T4 air base"
SHORT = "Turkish military engineers inspected runways at the T4 air base in Homs."
FULL = SHORT + " Israel has struck the base several times and warned Ankara against it."
TOPICS = {"Israel–Turkey": "(Israel OR Israeli) AND (Turkey OR Turkish) AND Syria"}


def _copy(summary: str, link: str) -> bytes:
    return rss(
        [
            {
                "title": TITLE,
                "link": link,
                "description": summary,
                "pubDate": "Sun, 22 Nov 2026 11:20:00 GMT",
            }
        ]
    )


def _serve(feed_server: FeedServer) -> dict[str, str]:
    """The publisher's full copy and a partner's shorter one, under tracking variants."""
    return {
        "Publisher": feed_server.route("/publisher.xml", _copy(FULL, f"{LINK}?utm_source=rss")),
        "Partner": feed_server.route("/partner.xml", _copy(SHORT, f"{LINK}?utm_source=partner")),
    }


def _poll_in_order(
    tmp_path: Path, feed_server: FeedServer, database_url: str, order: tuple[str, str]
) -> None:
    """Poll the first outlet alone, then both: the first outlet's copy is stored first."""
    feeds = _serve(feed_server)
    first, _ = order
    poll_once(load(write_config(tmp_path, {first: feeds[first]}, topics=TOPICS), database_url))
    config = load(write_config(tmp_path, feeds, topics=TOPICS), database_url)
    poll_once(config, all_sources=True)


def _stored(database_url: str) -> tuple[str, str, list[str]]:
    with reading(database_url) as s:
        article = s.scalars(select(Article)).one()
        topics = [m.snippet for m in s.scalars(select(Match))]
        return article.title, article.summary, topics


@pytest.mark.parametrize("order", [("Publisher", "Partner"), ("Partner", "Publisher")])
def test_an_article_keeps_its_fullest_copy_whichever_outlet_came_first(
    tmp_path: Path, feed_server: FeedServer, database_url: str, order: tuple[str, str]
) -> None:
    _poll_in_order(tmp_path, feed_server, database_url, order)

    assert (count(database_url, Article), count(database_url, Sighting)) == (1, 2)
    assert _stored(database_url)[1] == FULL


@pytest.mark.parametrize("order", [("Publisher", "Partner"), ("Partner", "Publisher")])
def test_an_article_matches_what_its_fullest_copy_matches_whichever_outlet_came_first(
    tmp_path: Path, feed_server: FeedServer, database_url: str, order: tuple[str, str]
) -> None:
    _poll_in_order(tmp_path, feed_server, database_url, order)

    snippets = _stored(database_url)[2]
    assert len(snippets) == 1
    assert "Israel has struck the base" in snippets[0]
