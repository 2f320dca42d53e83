"""The fast path of `sources.parse` reads every feed it accepts as feedparser does.

`parse_feed` reads plain RSS 2.0 and Atom 1.0 with ElementTree instead of feedparser
(several times less CPU); it must give the same `ParsedFeed` — every field that is
stored — and hand anything it does not mirror exactly to feedparser.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import pytest
from feedparser.html import _cp1252

from sources import parse
from sources.errors import ContentError
from sources.model import ParsedFeed

URL = "https://news.example.com/feeds/world.xml"
CONTENT_TYPES = ("application/xml", "application/rss+xml; charset=utf-8", None)


def _both(body: bytes, content_type: str | None) -> tuple[ParsedFeed | None, ParsedFeed | str]:
    """(fast path's result, feedparser's result or its error); (None, ...) if declined."""
    notes: list[str] = []
    data = parse._prepare(body, notes)
    fast = None if notes else parse._fast_rss(data, URL, content_type)
    if fast is None:
        return None, "declined"
    try:
        reference: ParsedFeed | str = parse._to_parsed_feed(
            parse._feedparser(data, URL, content_type, []), URL
        )
    except ContentError as err:
        reference = repr(err)
    return parse._to_parsed_feed(fast, URL), reference


def _corpus_files(corpus_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in corpus_dir.rglob("*")
        if p.is_file() and (b"<rss" in (body := p.read_bytes()) or b"<feed" in body)
    )


def test_every_corpus_feed_the_fast_path_accepts_reads_as_with_feedparser(
    corpus_dir: Path,
) -> None:
    accepted, different = 0, []
    for path in _corpus_files(corpus_dir):
        # served as XML without a charset: feedparser then goes by the XML declaration
        fast, reference = _both(path.read_bytes(), "application/xml")
        if fast is None:
            continue
        accepted += 1
        if fast != reference:
            different.append(str(path.relative_to(corpus_dir)))
    assert not different, different[:10]
    assert accepted > 300  # the path is really taken on real feeds, not declined every time


def _rss(items: str, channel: str = "<title>World</title><language>en_GB</language>") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>{channel}'
        f"{items}</channel></rss>"
    ).encode()


PLAIN = _rss(
    "<item><title>A &amp; B</title><link>/a?x=1&amp;y=2</link><guid>g-1</guid>"
    "<pubDate>Tue, 24 Nov 2026 22:09:16 +0000</pubDate><dc:creator xmlns:dc="
    '"http://purl.org/dc/elements/1.1/">Desk</dc:creator><category domain="d">Cat</category>'
    "<description><![CDATA[<p>Hi <a href='/x'>there</a></p>]]></description></item>"
    '<item><guid isPermaLink="false">g-2</guid><title>No link</title>'
    "<description>&lt;b&gt;bold&lt;/b&gt;</description></item>"
    "<item><guid>https://news.example.com/story/3</guid><title>Guid as link</title></item>"
)


ATOM = (
    b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
    b'<title>World</title><id>tag:news.example.com,2026:world</id><link href="/"/>'
    b'<link rel="self" href="/feeds/world.atom"/><updated>2026-11-24T22:09:16Z</updated>'
    b"<entry><id>tag:news.example.com,2026:1</id><title type='html'>A &amp;amp; B</title>"
    b'<link href="/a?x=1&amp;y=2"/><link rel="enclosure" href="/a.mp3"/>'
    b"<published>2026-11-24T20:00:00+01:00</published><updated>2026-11-24T22:09:16Z</updated>"
    b"<author><name>Desk</name><email>desk@example.com</email></author>"
    b'<category term="world" label="World"/><summary>1 &lt; 2</summary>'
    b'<content type="html">&lt;p&gt;Hi &lt;a href="/x"&gt;there&lt;/a&gt;&lt;/p&gt;</content>'
    b"</entry><entry><id>https://news.example.com/story/2</id><title>Id as link</title>"
    b"<content>plain &lt;b&gt;text&lt;/b&gt;</content></entry></feed>"
)


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize(
    "body",
    [PLAIN, ATOM, ATOM.replace(b'Atom">', b'Atom" xml:lang="en_GB">', 1)],
    ids=["rss", "atom", "atom-xml-lang"],
)
def test_a_plain_feed_takes_the_fast_path_and_reads_as_with_feedparser(
    body: bytes, content_type: str | None
) -> None:
    fast, reference = _both(body, content_type)
    assert fast is not None
    assert fast == reference


@pytest.mark.parametrize(
    "body",
    [
        _rss('<item><title>t</title><media:title xmlns:media="urn:m">m</media:title></item>'),
        _rss("<item><title>t</title><title>again</title></item>"),
        _rss("<item><title>t <b>bold</b></title></item>"),
        _rss('<item xml:lang="fr"><title>t</title></item>'),
        _rss("<item><title>t<!-- a comment -->u</title></item>"),
        _rss("<item><title>t</title></item>").replace(b"utf-8", b"iso-8859-1"),
        b'<!DOCTYPE rss [<!ENTITY a "b">]>' + _rss("<item><title>&a;</title></item>"),
        _rss("<item><title>t</title></item>").replace(b'"2.0"', b'"0.91"'),
        _rss("<item><title>t</title>").replace(b"</channel>", b""),
        ATOM.replace(b"<title>Id as link</title>", b'<title type="xhtml"><div>x</div></title>'),
        ATOM.replace(b"<content>", b'<content src="/elsewhere">'),
        ATOM.replace(b"<title>Id as link", b'<title xml:lang="fr">Id as link'),
        ATOM.replace(b"</entry></feed>", b"<source><title>s</title></source></entry></feed>"),
    ],
    ids=[
        "unknown-element", "repeated-field", "markup-in-title", "xml-lang", "comment",
        "latin-1", "doctype", "rss-0.91", "ill-formed", "atom-xhtml", "atom-content-src",
        "atom-inner-xml-lang", "atom-source",
    ],
)  # fmt: skip
def test_anything_unusual_is_left_to_feedparser(body: bytes) -> None:
    notes: list[str] = []
    assert parse._fast_rss(parse._prepare(body, notes), URL, "application/xml") is None


def test_text_xml_without_a_charset_is_left_to_feedparser() -> None:
    assert parse._fast_rss(PLAIN, URL, "text/xml") is None


def test_parse_feed_gives_the_fast_paths_reading() -> None:
    fast, _ = _both(PLAIN, "application/rss+xml")
    assert parse.parse_feed(PLAIN, URL, "application/rss+xml") == fast


_SAME_HTML = "&lt;p&gt;Hi &lt;b&gt;there&lt;/b&gt; &lt;a href='/x'&gt;x&lt;/a&gt;&lt;/p&gt;"
_CONTENT_NS = 'xmlns:content="http://purl.org/rss/1.0/modules/content/"'


def _atom_entry(inner: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>World</title><entry><id>https://news.example.com/s/1</id>{inner}</entry></feed>"
    ).encode()


@pytest.mark.parametrize(
    ("body", "summary_type", "content_type"),
    [
        (
            _rss(
                f"<item><link>/a</link><description>{_SAME_HTML}</description>"
                f"<content:encoded {_CONTENT_NS}>{_SAME_HTML}</content:encoded></item>"
            ),
            "text/html",
            "text/html",
        ),
        (
            _atom_entry(
                f'<summary type="html">{_SAME_HTML}</summary>'
                f'<content type="html">{_SAME_HTML}</content>'
            ),
            "text/html",
            "text/html",
        ),
        (
            _atom_entry(
                f'<summary>{_SAME_HTML}</summary><content type="html">{_SAME_HTML}</content>'
            ),
            "text/plain",
            "text/html",
        ),
    ],
    ids=["rss", "atom-same-type", "atom-text-summary-html-content"],
)
def test_content_repeating_the_summary_is_cleaned_as_its_own_type(
    body: bytes, summary_type: str, content_type: str
) -> None:
    raw = parse._fast_rss(body, URL, "application/xml")
    assert raw is not None
    raw_entry = raw["entries"][0]
    text = raw_entry["summary"]
    assert raw_entry["content"][0]["value"] == text  # the content repeats the summary
    entry = parse.parse_feed(body, URL, "application/xml").entries[0]
    base = entry.link or URL
    assert entry.summary == parse._html(text, {"type": summary_type}, base)
    assert entry.content == parse._html(text, {"type": content_type}, base)
    assert (entry.summary == entry.content) == (summary_type == content_type)


def test_repair_changes_text_exactly_as_feedparsers_steps_do() -> None:
    # feedparser's pop(): strip, the UTF-8-read-as-Latin-1 repair, then the cp1252 map
    def reference(text: str) -> str:
        text = text.strip()
        with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
            text = text.encode("iso-8859-1").decode("utf-8")
        return text.translate(_cp1252)

    rng = random.Random(8)
    alphabet = [chr(c) for c in [*range(0x250), 0x2014, 0x2019, 0x200B, 0x2028, 0xFFFD]]
    texts = ["".join(rng.choices(alphabet, k=rng.randint(0, 6))) for _ in range(100_000)]
    texts += ["caf\u00c3\u00a9", " \u0080x\u009f ", "\u00e2\u0080\u0094", "Tr\u00fcrkiye"]
    assert [parse._repair(t) for t in texts] == [reference(t) for t in texts]
