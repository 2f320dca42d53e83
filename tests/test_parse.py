"""parse_feed: bytes → clean entries, for RSS, Atom and JSON Feed, hostile input included."""

from __future__ import annotations

import contextlib
import json
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sources.errors import ContentError, EmptyBody, NotAFeed, Unparsable
from sources.parse import parse_feed
from tests.fixtures.http import FeedServer

URL = "https://news.example/feeds/world.xml"


def rss(items: str, channel: str = "<title>World</title>", prolog: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>{prolog}<rss version="2.0"><channel>{channel}'
        f"{items}</channel></rss>"
    ).encode()


def item(**fields: str) -> str:
    return "<item>" + "".join(f"<{k}>{v}</{k}>" for k, v in fields.items()) + "</item>"


# --- formats ------------------------------------------------------------------------


def test_rss_entries_come_out_clean(corpus_dir: Path) -> None:
    feed = parse_feed(
        (corpus_dir / "miniflux-testdata/reader/parser/testdata/urdu_UTF8.xml").read_bytes(),
        "https://feeds.bbci.co.uk/urdu/rss.xml",
        "application/rss+xml",
    )
    assert feed.format == "rss20"
    assert len(feed.entries) == 26
    first = feed.entries[0]
    assert first.title.startswith("امریکی عسکری امداد کی بندش")
    assert first.link == "http://www.bbc.com/urdu/pakistan-42575603"
    assert first.published == datetime(2018, 1, 5, 16, 51, tzinfo=UTC)
    assert first.language == "ur"


def test_atom_entries_come_out_clean() -> None:
    body = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">
  <title>Atom World</title><link href="https://news.example/"/>
  <entry>
    <title type="html">Talks &lt;b&gt;resume&lt;/b&gt;</title>
    <link rel="alternate" href="/world/talks"/>
    <id>tag:news.example,2026:talks</id>
    <updated>2026-11-24T10:00:00+03:00</updated>
    <author><name>Ayşe Yılmaz</name></author>
    <category term="syria"/><category term="turkey" label="Türkiye"/>
    <summary>Short.</summary>
    <content type="html">&lt;p&gt;Long &lt;a href="/more"&gt;more&lt;/a&gt;&lt;/p&gt;</content>
  </entry>
</feed>""".encode()
    feed = parse_feed(body, URL, "application/atom+xml")
    assert (feed.format, feed.title, feed.language) == ("atom10", "Atom World", "en")
    (entry,) = feed.entries
    assert entry.title == "Talks resume"
    assert entry.link == "https://news.example/world/talks"
    assert entry.guid == "tag:news.example,2026:talks"
    assert entry.published == datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    assert entry.author == "Ayşe Yılmaz"
    assert entry.tags == ("syria", "Türkiye")
    assert entry.summary == "Short."
    assert entry.content == (
        '<p>Long <a href="https://news.example/more" rel="noopener noreferrer">more</a></p>'
    )


def test_rdf_rss_is_read(corpus_dir: Path) -> None:
    feed = parse_feed(
        (corpus_dir / "miniflux-testdata/reader/parser/testdata/rdf_UTF8.xml").read_bytes(), URL
    )
    assert feed.format == "rss090"
    assert len(feed.entries) == 60


def test_json_feed_1_1_fields_are_read() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "JSON World",
        "home_page_url": "https://news.example/",
        "language": "he",
        "authors": [{"name": "Desk"}],
        "items": [
            {
                "id": "17",
                "url": "/world/17",
                "title": "שיחות <i>חודשו</i>",
                "content_html": '<p onclick="x()">Body <img src="a.png"></p>',
                "summary": "Plain <summary>",
                "date_published": "2026-11-24T10:00:00+02:00",
                "date_modified": "2026-11-24T11:00:00Z",
                "tags": ["syria", "", 3],
            }
        ],
    }
    feed = parse_feed(json.dumps(doc).encode(), "https://news.example/feed.json")
    assert (feed.format, feed.title, feed.link, feed.language) == (
        "jsonfeed11",
        "JSON World",
        "https://news.example/",
        "he",
    )
    (entry,) = feed.entries
    assert entry.guid == "17"
    assert entry.link == "https://news.example/world/17"
    assert entry.title == "שיחות חודשו"
    assert entry.content == '<p>Body <img src="https://news.example/world/a.png"></p>'
    assert entry.summary == "Plain &lt;summary&gt;"
    assert entry.published == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert entry.updated == datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
    assert (entry.author, entry.language, entry.tags) == ("Desk", "he", ("syria",))


def test_json_feed_1_0_author_and_external_url_are_read() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1",
        "title": "t",
        "items": [
            {
                "id": 5,
                "external_url": "https://other.example/story",
                "content_text": "line 1\nline <2>",
                "author": {"name": "Old style"},
            }
        ],
    }
    (entry,) = parse_feed(json.dumps(doc).encode(), URL).entries
    assert (entry.guid, entry.link, entry.author) == (
        "5",
        "https://other.example/story",
        "Old style",
    )
    assert entry.content == "<p>line 1<br>line &lt;2&gt;</p>"


def test_json_feed_is_recognised_without_a_json_content_type(corpus_dir: Path) -> None:
    body = (corpus_dir / "rsparser-resources/3960.json").read_bytes()
    feed = parse_feed(body, URL, "text/plain")
    assert feed.format == "jsonfeed11"
    assert len(feed.entries) == 20


def test_rss_in_json_is_not_a_feed(corpus_dir: Path) -> None:
    with pytest.raises(NotAFeed):
        parse_feed((corpus_dir / "rsparser-resources/ScriptingNews.json").read_bytes(), URL)


def test_truncated_json_feed_keeps_the_items_that_arrived_whole(corpus_dir: Path) -> None:
    feed = parse_feed((corpus_dir / "rsparser-resources/allthis-partial.json").read_bytes(), URL)
    assert [e.title for e in feed.entries] == ["Last thoughts on modifier keys", "My next Mac"]
    assert feed.warning is not None
    assert "truncated" in feed.warning


def test_json_cut_before_any_item_is_unparsable() -> None:
    with pytest.raises(Unparsable):
        parse_feed(
            b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "1", "ti', URL
        )


# --- what feedparser 6.0.14 gets wrong ------------------------------------------------


@pytest.mark.parametrize("name", ["feed-utf16be.xml", "feed-utf16le.xml"])
def test_bomless_declarationless_utf16_is_read(corpus_dir: Path, name: str) -> None:
    feed = parse_feed((corpus_dir / "simplepie-tests-data" / name).read_bytes(), URL)
    assert feed.title == "Test feed"
    assert [e.title for e in feed.entries] == ["Test feed title 1"]
    assert feed.entries[0].guid == "http://example.net/tests/#1.1"


def test_whitespace_before_the_xml_declaration_is_tolerated(corpus_dir: Path) -> None:
    body = (corpus_dir / "prof18-rss-parser-resources/feed-test-malformed.xml").read_bytes()
    assert body.startswith(b"\n")
    feed = parse_feed(body, URL)
    assert feed.entries


def test_a_bozo_feed_that_yields_entries_is_kept_with_a_warning(corpus_dir: Path) -> None:
    feed = parse_feed((corpus_dir / "node-feedparser-feeds/saxerror.xml").read_bytes(), URL)
    assert feed.entries
    assert feed.warning


def test_declared_utf8_carrying_windows_1252_still_yields_entries() -> None:
    body = rss(item(title="Caf\xe9 \x93quoted\x94", link="https://n.example/1")).replace(
        "é".encode(), b"\xe9"
    )
    body = body.replace("\x93".encode(), b"\x93").replace("\x94".encode(), b"\x94")
    feed = parse_feed(body, URL, "application/rss+xml; charset=utf-8")
    assert len(feed.entries) == 1
    assert feed.warning


# --- hostile input --------------------------------------------------------------------


def test_external_entities_never_read_local_files(corpus_dir: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    attack = (corpus_dir / "laminas-feed-reader/_files/Reader/xxe-atom10.xml").read_bytes()
    body = attack.replace(b"XXE_URI", f"file://{secret}".encode())
    try:
        feed = parse_feed(body, URL)
    except (NotAFeed, Unparsable):
        return
    assert "TOP-SECRET-VALUE" not in repr(feed)


def test_external_entities_on_their_own_lines_never_read_local_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    prolog = f'\n<!DOCTYPE rss [\n<!ENTITY xxe SYSTEM "file://{secret}">\n]>\n'
    feed = parse_feed(rss(item(title="&xxe;", description="&xxe;"), prolog=prolog), URL)
    assert "TOP-SECRET-VALUE" not in repr(feed)


@pytest.mark.parametrize("kind", ["general", "parameter", "dtd"])
def test_external_http_entities_are_never_fetched(feed_server: FeedServer, kind: str) -> None:
    secret = feed_server.route("/secret.ent", body=b"TOP-SECRET-VALUE", content_type="text/plain")
    prolog = {
        "general": f'\n<!DOCTYPE rss [\n<!ENTITY leak SYSTEM "{secret}">\n]>\n',
        "parameter": f'\n<!DOCTYPE rss [\n<!ENTITY % ext SYSTEM "{secret}">\n%ext;\n]>\n',
        "dtd": f'\n<!DOCTYPE rss SYSTEM "{secret}">\n',
    }[kind]
    feed = parse_feed(rss(item(title="&leak;"), prolog=prolog), URL)
    assert "TOP-SECRET-VALUE" not in repr(feed)
    assert feed_server.requests_to("/secret.ent") == []


def test_parameter_entities_never_read_local_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.dtd"
    secret.write_text('<!ENTITY leak "TOP-SECRET-VALUE">')
    prolog = f'\n<!DOCTYPE rss [\n<!ENTITY % ext SYSTEM "file://{secret}">\n%ext;\n]>\n'
    feed = parse_feed(rss(item(title="&leak;"), prolog=prolog), URL)
    assert "TOP-SECRET-VALUE" not in repr(feed)


def test_body_bytes_naming_a_local_file_are_not_read_as_a_path(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(rss(item(title="from disk")))
    with pytest.raises((NotAFeed, Unparsable)):
        parse_feed(str(path).encode(), URL)


@pytest.mark.parametrize("layout", ["one line", "one declaration per line"])
def test_a_billion_laughs_document_never_expands(layout: str) -> None:
    decls = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    ]
    sep = "" if layout == "one line" else "\n"
    prolog = f"{sep}<!DOCTYPE rss [{sep}{sep.join(decls)}{sep}]>{sep}"
    body = rss(item(title="&lol9;", description="&lol9;"), "<title>&lol9;</title>", prolog)
    tracemalloc.start()
    try:
        feed = parse_feed(body, URL)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "lollollol" not in repr(feed)
    assert peak < 5_000_000


def test_a_quadratic_blowup_document_never_expands() -> None:
    prolog = '\n<!DOCTYPE rss [\n<!ENTITY a "' + "A" * 20_000 + '">\n]>\n'
    feed = parse_feed(rss(item(title="&a;" * 2_000), prolog=prolog), URL)
    assert "A" * 1000 not in repr(feed)


def test_a_small_plain_internal_entity_is_still_honoured(corpus_dir: Path) -> None:
    body = (corpus_dir / "feedparser-tests/wellformed/rss/entity_in_doctype.xml").read_bytes()
    feed = parse_feed(body, URL)
    assert feed.entries[0].guid == "tag:example.com,2006-05-04:/blog/"
    assert feed.warning is None


def test_script_handlers_and_javascript_links_never_survive() -> None:
    description = (
        '&lt;p onmouseover="steal()"&gt;Hi&lt;/p&gt;&lt;script&gt;steal()&lt;/script&gt;'
        '&lt;a href="javascript:steal()"&gt;x&lt;/a&gt;&lt;iframe src="https://e.example"&gt;'
        '&lt;/iframe&gt;&lt;p style="width:expression(steal())"&gt;y&lt;/p&gt;'
    )
    (entry,) = parse_feed(rss(item(title="t", description=description)), URL).entries
    for bad in ("steal", "script", "javascript", "iframe", "expression", "onmouseover"):
        assert bad not in entry.summary


def test_a_title_with_crlf_and_bcc_stays_on_one_line() -> None:
    (entry,) = parse_feed(rss(item(title="News&#13;&#10;Bcc: victim@example.org")), URL).entries
    assert entry.title == "News Bcc: victim@example.org"


def test_nul_and_control_characters_never_reach_an_entry() -> None:
    (entry,) = parse_feed(rss(item(title="a&#1;b", description="c\x0bd")), URL).entries
    assert "\x01" not in entry.title
    assert "\x0b" not in entry.summary


def test_rtl_text_and_emoji_round_trip_exactly() -> None:
    title = "ישראל וטורקיה 🇮🇱🇹🇷 — إسرائيل وتركيا 👩‍👩‍👧"
    (entry,) = parse_feed(rss(item(title=title, description=title)), URL).entries
    assert entry.title == title
    assert entry.summary == title


def test_five_hundred_entries_with_one_guid_are_all_returned() -> None:
    items = "".join(item(title=f"n{i}", guid="same") for i in range(500))
    assert len(parse_feed(rss(items), URL).entries) == 500


def test_an_entry_with_neither_guid_nor_link_is_kept() -> None:
    (entry,) = parse_feed(rss(item(title="orphan")), URL).entries
    assert (entry.title, entry.link, entry.guid) == ("orphan", None, None)


def test_a_10000_character_link_is_kept_whole() -> None:
    link = "https://news.example/" + "a" * 10_000
    (entry,) = parse_feed(rss(item(title="long", link=link)), URL).entries
    assert entry.link == link


@pytest.mark.parametrize(
    "date", ["Fri, 31 Dec 9999 23:59:59 GMT", "Thu, 01 Jan 1970 00:00:00 GMT", "garbage", ""]
)
def test_unusable_dates_leave_published_empty(date: str) -> None:
    (entry,) = parse_feed(rss(item(title="t", pubDate=date)), URL).entries
    assert entry.published is None


def test_relative_entry_links_resolve_against_the_feed_url() -> None:
    (entry,) = parse_feed(rss(item(title="t", link="/world/1")), URL).entries
    assert entry.link == "https://news.example/world/1"


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"   \r\n\t ", b"\xef\xbb\xbf"])
def test_an_empty_body_is_empty_body(body: bytes) -> None:
    with pytest.raises(EmptyBody):
        parse_feed(body, URL)


def test_an_html_page_is_not_a_feed_and_names_the_feed_it_links_to() -> None:
    page = b"""<!DOCTYPE html><html><head><title>News</title>
    <link rel="stylesheet" href="/s.css">
    <link rel="alternate" type="application/rss+xml" title="RSS" href="/rss/world.xml">
    </head><body><p>Hello</p></body></html>"""
    with pytest.raises(NotAFeed) as caught:
        parse_feed(page, "https://news.example/world/", "text/html; charset=utf-8")
    assert caught.value.alternate_url == "https://news.example/rss/world.xml"
    assert "https://news.example/rss/world.xml" in str(caught.value)


def test_an_html_page_without_a_feed_link_is_not_a_feed(corpus_dir: Path) -> None:
    with pytest.raises(NotAFeed) as caught:
        parse_feed((corpus_dir / "node-feedparser-feeds/notafeed.html").read_bytes(), URL)
    assert caught.value.alternate_url is None


def test_another_xml_document_is_not_a_feed(corpus_dir: Path) -> None:
    with pytest.raises(NotAFeed):
        parse_feed(
            (corpus_dir / "gofeed-testdata/parser/universal/unknown_feed.xml").read_bytes(), URL
        )


@pytest.mark.parametrize(
    "body", [bytes(range(256)) * 4, b"\x1f\x8b\x08\x00" + b"\x00" * 100, b"<<<>>>&&&;;;"]
)
def test_random_binary_is_unparsable(body: bytes) -> None:
    with pytest.raises((Unparsable, NotAFeed)):
        parse_feed(body, URL)


def test_a_gzip_body_is_a_content_error(corpus_dir: Path) -> None:
    with pytest.raises(Unparsable):
        parse_feed((corpus_dir / "node-feedparser-feeds/compressed.xml").read_bytes(), URL)


def test_an_empty_but_valid_feed_has_no_entries() -> None:
    feed = parse_feed(rss(""), URL)
    assert (feed.format, feed.title, feed.entries) == ("rss20", "World", [])


def test_an_html_page_offers_its_first_feed_and_skips_json_api_links() -> None:
    page = b"""<html><head>
    <link rel="alternate" type="application/json" href="/wp-json/wp/v2/pages/2">
    <link rel="alternate" hreflang="de" href="/de/">
    <link rel="alternate" type="application/atom+xml" href="/atom.xml">
    <link rel="alternate" type="application/rss+xml" href="/rss.xml">
    </head></html>"""
    with pytest.raises(NotAFeed) as caught:
        parse_feed(page, "https://news.example/")
    assert caught.value.alternate_url == "https://news.example/atom.xml"


def test_guids_are_kept_verbatim_not_read_as_html() -> None:
    guid = "https://news.example/?id=1&amp;notice=2"
    (entry,) = parse_feed(rss(item(title="t", guid=guid)), URL).entries
    assert entry.guid == "https://news.example/?id=1&notice=2"


def test_bomless_utf16_served_with_a_utf16_charset_is_read(corpus_dir: Path) -> None:
    body = (corpus_dir / "simplepie-tests-data/feed-utf16le.xml").read_bytes()
    feed = parse_feed(body, URL, "text/xml; charset=utf-16le")
    assert [e.title for e in feed.entries] == ["Test feed title 1"]


@pytest.mark.parametrize("codec", ["utf-16", "utf-32"])
def test_a_feed_with_a_byte_order_mark_is_read(codec: str) -> None:
    body = rss(item(title="Türkiye 🇹🇷")).decode().replace('encoding="utf-8"', f'encoding="{codec}"')
    (entry,) = parse_feed(body.encode(codec), URL).entries
    assert entry.title == "Türkiye 🇹🇷"


def test_only_leading_whitespace_is_removed_before_an_xml_declaration() -> None:
    cdata = "<![CDATA[<pre>a\n    <?xml version='1.0'?>b</pre>]]>"
    body = rss(item(title="t", description=cdata))
    (entry,) = parse_feed(body, URL).entries
    assert entry.summary.startswith("<pre>a\n    ")


_SAMPLE = rss(
    item(title="A &amp; B", link="/a", description="&lt;p&gt;x&lt;/p&gt;", pubDate="garbage")
    + item(title="C", guid="c")
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_nothing_but_content_errors(body: bytes) -> None:
    with contextlib.suppress(ContentError):
        parse_feed(body, URL)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_SAMPLE) - 1), st.binary(max_size=3)), max_size=8))
def test_a_damaged_feed_raises_nothing_but_content_errors(
    damage: list[tuple[int, bytes]],
) -> None:
    body = bytearray(_SAMPLE)
    for position, replacement in damage:
        body[position : position + len(replacement)] = replacement
    with contextlib.suppress(ContentError):
        parse_feed(bytes(body), URL)
