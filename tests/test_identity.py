"""Article identity: canonical URLs, GUID scoping, the content-hash fallback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sources import identity
from sources.identity import ArticleIdentity, article_identity, canonical_url
from sources.model import Entry
from tests.url_cases import corpus_urls, random_urls

FEED_A = "https://feeds.example-a.com/world.xml"
FEED_B = "https://example-b.org/rss"
STORY = "https://www.example.com/world/2026/11/25/deconfliction-talks"


def entry(
    link: str | None = None, guid: str | None = None, title: str = "", summary: str = ""
) -> Entry:
    return Entry(title=title, link=link, guid=guid, summary=summary)


# --- canonical_url -----------------------------------------------------------------


def test_scheme_and_host_are_lower_cased() -> None:
    assert canonical_url("HTTPS://WWW.Example.COM/Path") == "https://www.example.com/Path"


def test_default_ports_are_dropped() -> None:
    assert canonical_url("http://example.com:80/a") == "http://example.com/a"
    assert canonical_url("https://example.com:443/a") == "https://example.com/a"


def test_other_ports_are_kept() -> None:
    assert canonical_url("https://example.com:8443/a") == "https://example.com:8443/a"


def test_the_fragment_is_removed() -> None:
    assert canonical_url("https://example.com/a#comments") == "https://example.com/a"


@pytest.mark.parametrize(
    "param",
    [
        "utm_source=rss",
        "utm_medium=feed&utm_campaign=x",
        "UTM_Content=y",
        "fbclid=IwAR0",
        "gclid=abc",
        "mc_cid=1&mc_eid=2",
        "igshid=q",
        "msclkid=m",
        "pk_campaign=c",
        "at_medium=RSS",
    ],
)
def test_tracking_parameters_are_removed(param: str) -> None:
    assert canonical_url(f"https://example.com/a?id=7&{param}") == "https://example.com/a?id=7"


def test_the_query_is_sorted() -> None:
    assert canonical_url("https://example.com/a?b=2&a=1") == "https://example.com/a?a=1&b=2"


def test_repeated_parameters_are_kept() -> None:
    assert canonical_url("https://example.com/a?t=2&t=1") == "https://example.com/a?t=1&t=2"


def test_an_empty_path_becomes_slash() -> None:
    assert canonical_url("https://example.com") == "https://example.com/"


def test_an_international_host_is_in_punycode() -> None:
    assert canonical_url("https://Bücher.example/ä") == "https://xn--bcher-kva.example/%C3%A4"


@pytest.mark.parametrize(
    "url",
    [None, "", "/relative/path", "mailto:a@example.com", "javascript:alert(1)", "https://", "1234"],
)
def test_anything_but_an_absolute_http_url_has_no_canonical_form(url: str | None) -> None:
    assert canonical_url(url) is None


def test_a_bad_port_has_no_canonical_form() -> None:
    assert canonical_url("https://example.com:99999/a") is None


# --- article_identity: URLs --------------------------------------------------------


def test_tracking_variants_of_one_story_share_one_key() -> None:
    variants = [
        STORY,
        STORY + "?utm_source=rss&utm_medium=feed",
        STORY + "#comments",
        STORY.replace("https://www.example.com", "HTTPS://WWW.EXAMPLE.COM:443") + "?fbclid=x",
        STORY.replace("https://", "http://") + "?gclid=1&mc_cid=2",
    ]
    keys = {article_identity(entry(link=v), FEED_A).key for v in variants}
    assert len(keys) == 1


def test_the_same_link_in_two_feeds_is_one_article() -> None:
    assert article_identity(entry(link=STORY), FEED_A) == article_identity(
        entry(link=STORY, guid="other-guid"), FEED_B
    )


def test_different_stories_have_different_keys() -> None:
    a = article_identity(entry(link=STORY), FEED_A)
    b = article_identity(entry(link=STORY + "-update"), FEED_A)
    c = article_identity(entry(link=STORY + "?page=2"), FEED_A)
    assert len({a.key, b.key, c.key}) == 3


def test_a_url_identity_says_so_and_carries_the_canonical_url() -> None:
    identity = article_identity(entry(link=STORY + "?utm_source=x"), FEED_A)
    assert identity.kind == "url"
    assert identity.canonical_url == STORY


def test_a_10000_character_url_gives_a_64_character_key() -> None:
    identity = article_identity(entry(link="https://example.com/" + "a" * 10_000), FEED_A)
    assert re.fullmatch(r"[0-9a-f]{64}", identity.key)


# --- article_identity: GUIDs -------------------------------------------------------


def test_without_a_link_the_guid_is_the_identity() -> None:
    identity = article_identity(entry(guid="1234"), FEED_A)
    assert identity.kind == "guid"
    assert identity.canonical_url is None


def test_a_plain_guid_is_scoped_to_its_feed() -> None:
    assert (
        article_identity(entry(guid="1234"), FEED_A).key
        != article_identity(entry(guid="1234"), FEED_B).key
    )


def test_a_plain_guid_is_stable_within_its_feed() -> None:
    assert article_identity(entry(guid="1234", title="v1"), FEED_A) == article_identity(
        entry(guid="1234", title="v2 (updated)"), FEED_A
    )


@pytest.mark.parametrize(
    "guid",
    ["tag:example.com,2026-11-25:/story/17", "urn:uuid:4c2b0f2e-8e0c-4f4e-9a52-1a2b3c4d5e6f"],
)
def test_a_globally_unique_guid_is_shared_across_feeds(guid: str) -> None:
    assert article_identity(entry(guid=guid), FEED_A) == article_identity(entry(guid=guid), FEED_B)


def test_a_permalink_guid_without_a_link_is_keyed_as_the_url() -> None:
    by_guid = article_identity(entry(guid=STORY + "?utm_source=rss"), FEED_A)
    assert by_guid.kind == "url"
    assert by_guid == article_identity(entry(link=STORY), FEED_B)


def test_an_unusable_link_falls_back_to_the_guid() -> None:
    assert article_identity(entry(link="/relative", guid="g-1"), FEED_A).kind == "guid"


# --- article_identity: content ------------------------------------------------------


def test_without_link_or_guid_the_content_is_the_identity() -> None:
    identity = article_identity(
        entry(title="Talks resume", summary="<p>Officials met.</p>"), FEED_A
    )
    assert identity.kind == "content"
    assert identity.canonical_url is None


def test_the_content_key_ignores_whitespace_case_and_markup_noise() -> None:
    a = article_identity(entry(title="Talks Resume", summary="<p>Officials  met.</p>"), FEED_A)
    b = article_identity(entry(title=" talks\nresume ", summary="officials met."), FEED_B)
    assert a.key == b.key


def test_different_content_gives_different_keys() -> None:
    a = article_identity(entry(title="Talks resume", summary="Officials met."), FEED_A)
    b = article_identity(entry(title="Talks stall", summary="Officials met."), FEED_A)
    assert a.key != b.key


def test_entries_with_nothing_at_all_are_one_article_per_feed() -> None:
    a = article_identity(entry(), FEED_A)
    assert a == article_identity(entry(), FEED_A)
    assert a.key != article_identity(entry(), FEED_B).key


def test_keys_of_different_kinds_never_collide() -> None:
    # a GUID equal to some URL text and content equal to a GUID still key differently
    by_guid = article_identity(entry(guid="x"), FEED_A)
    by_content = article_identity(entry(title="x"), FEED_A)
    assert by_guid.key != by_content.key


def test_identity_is_a_frozen_value() -> None:
    identity = article_identity(entry(link=STORY), FEED_A)
    with pytest.raises(AttributeError):
        identity.key = "x"  # type: ignore[misc]
    assert isinstance(identity, ArticleIdentity)


@pytest.mark.parametrize(
    "url",
    [
        STORY + "?utm_source=x&b=2&a=1#frag",
        "HTTP://Bücher.Example:80/ä ö?q=a b&fbclid=1",
        "https://example.com/%7Euser/?x=%2F&y",
        "https://[2001:db8::1]:8080/a?b",
    ],
)
def test_canonical_form_is_stable_when_applied_twice(url: str) -> None:
    once = canonical_url(url)
    assert once is not None
    assert canonical_url(once) == once


# --- the plain-URL shortcut gives exactly w3lib's canonical form ---------------------

TRICKY_URLS = [
    STORY,
    f"{STORY}?utm_source=rss&utm_medium=feed&utm_campaign=world",
    f"{STORY}?b=2&a=1&b=1&fbclid=IwAR0#comments",
    f"{STORY}?UTM_Source=x&id=",
    f"{STORY}?id=&&x&=v&utm_=1",
    f"{STORY}?a=b=c",
    f"{STORY}?",
    f"{STORY}#",
    f"{STORY}?#",
    "https://example.com",
    "https://example.com?a=1",
    "https://Example.COM/A/B",
    "HTTPS://example.com/a",
    "https://example.com./a",
    "https://example.com:443/a",
    "https://example.com:8080/a",
    "https://user@example.com/a",
    "https://bücher.example/a",
    "https://xn--bcher-kva.example/a",
    "https://" + "a" * 70 + ".example/a",
    "https://example.com/caf%c3%a9?q=%e9",
    "https://example.com/café?q=é",
    "https://example.com/a/./b/../c",
    "https://example.com/.well-known/x",
    "https://example.com//a//b",
    "https://example.com/a;p?q",
    "https://example.com/a+b?q=a+b",
    "https://example.com/a b?q=a b",
    "https://example.com/a|b",
    "https://example.com/a'b?q=a'b",
    "https://example.com/(a)*!$,=:@~",
    "https://127.0.0.1/a",
    "https://[::1]/a",
    "https://123/a",
    "https://exa_mple.com/a",
]


def _disagreements(urls: list[str]) -> list[tuple[str, str | None, str | None]]:
    out = []
    for url in urls:
        url = url.strip()
        plain = identity._plain_canonical_url(url)
        if plain is not None and plain != (general := identity._w3lib_canonical_url(url)):
            out.append((url, plain, general))
    return out


def test_the_plain_url_shortcut_agrees_with_w3lib_on_tricky_urls() -> None:
    assert _disagreements(TRICKY_URLS) == []
    assert [canonical_url(u) for u in TRICKY_URLS] == [
        identity._w3lib_canonical_url(u) for u in TRICKY_URLS
    ]


def test_the_plain_url_shortcut_agrees_with_w3lib_on_generated_urls() -> None:
    urls = random_urls(seed=2, count=20_000)
    assert _disagreements(urls) == []
    taken = [u for u in urls if identity._plain_canonical_url(u.strip()) is not None]
    # both sides are reached, and the shortcut also sorts and drops tracking parameters
    assert 2_000 < len(taken) < 18_000
    assert sum(1 for u in taken if "utm_" in u.split("#")[0]) > 100
    assert sum(1 for u in taken if u.count("=") > 1) > 500


def test_the_plain_url_shortcut_agrees_with_w3lib_on_every_corpus_url(corpus_dir: Path) -> None:
    urls = corpus_urls(corpus_dir)
    assert _disagreements(urls) == []
    assert sum(1 for u in urls if identity._plain_canonical_url(u) is not None) > 1000


def test_the_plain_url_shortcut_declines_what_w3lib_must_rewrite() -> None:
    for url in (
        "HTTPS://example.com/a",
        "https://example.com:443/a",
        "https://bücher.example/a",
        "https://example.com/caf%c3%a9",
        "https://example.com/a/../b",
        "https://example.com/a;p",
        "https://example.com/a?q=a+b",
        "https://example.com/a?a=b=c",
    ):
        assert identity._plain_canonical_url(url) is None, url
