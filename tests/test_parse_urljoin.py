"""`sources.parse._urljoin` returns exactly what feedparser's urljoin returns.

The fast path resolves links by returning plain absolute http(s) URLs unchanged and
hands everything else to feedparser's `_urljoin`; these tests compare the two on
generated near misses, hand-picked tricky references and every link in the corpus.
"""

from __future__ import annotations

from pathlib import Path

import feedparser.urls

from sources import parse
from tests.url_cases import BASES, RELATIVE, corpus_urls, random_urls


def _mismatches(bases: tuple[str, ...], uris: list[str]) -> list[tuple[str, str, str, str]]:
    return [
        (base, uri, got, expected)
        for base in bases
        for uri in uris
        if (got := parse._urljoin(base, uri)) != (expected := feedparser.urls._urljoin(base, uri))
    ]


def test_urljoin_matches_feedparser_on_tricky_references() -> None:
    assert _mismatches(BASES, list(RELATIVE)) == []


def test_urljoin_matches_feedparser_on_generated_urls() -> None:
    urls = random_urls(seed=1, count=4000)
    assert _mismatches(BASES, urls) == []
    # the generator reaches both sides: the shortcut and the general path
    plain = sum(1 for u in urls if parse._PLAIN_ABSOLUTE_URL.fullmatch(u))
    assert 500 < plain < 3500
    assert sum(1 for u in urls if parse._SCHEME_ONLY_URI.fullmatch(u)) > 50


def test_urljoin_matches_feedparser_on_every_corpus_link(corpus_dir: Path) -> None:
    urls = corpus_urls(corpus_dir)
    assert len(urls) > 1000
    assert _mismatches(BASES[:4], urls) == []


def test_urljoin_keeps_an_unsplittable_base_failing_as_feedparser_does() -> None:
    # urllib cannot split the base: feedparser's urljoin gives '' even for an absolute URL
    assert parse._urljoin("https://[bad/feed", "https://example.com/a") == ""
    assert parse._urljoin("https://[bad/feed", "tag:example.com,2026:1") == ""


def test_urljoin_resolves_a_scheme_only_uri_of_the_base_scheme_as_feedparser_does() -> None:
    # "http:a" against an http base is a relative reference; against https it is not
    assert parse._urljoin("http://example.com/x/y", "http:a") == "http://example.com/x/a"
    assert parse._urljoin("https://example.com/x/y", "http:a") == "http:a"
