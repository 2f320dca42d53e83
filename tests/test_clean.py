"""Text cleaning: plain-text titles, sanitized HTML, and the date policy."""

from __future__ import annotations

import random
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import nh3
import pytest

from sources import clean
from sources.clean import (
    MAX_HTML_CHARS,
    MAX_TEXT_CHARS,
    clean_line,
    clean_text,
    parse_date,
    sanitize_html,
    strip_controls,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

# --- control characters -----------------------------------------------------------


def test_nul_and_control_characters_are_stripped() -> None:
    assert strip_controls("a\x00b\x01c\x1fd\x7fe\x85f\ufffeg") == "abcdefg"


def test_tab_newline_and_carriage_return_survive_strip_controls() -> None:
    assert strip_controls("a\tb\nc\rd") == "a\tb\nc\rd"


def test_lone_surrogates_are_stripped() -> None:
    assert strip_controls("a\ud800b") == "ab"


@pytest.mark.parametrize(
    "text",
    [
        "ישראל וטורקיה מתאמות בסוריה",  # Hebrew
        "إسرائيل وتركيا تنسقان في سوريا",  # Arabic
        "اسرائیل اور ترکی",  # Urdu
        "Türkiye ve İsrail Suriye'de",  # Turkish dotted İ
        "👩‍👩‍👧 🇹🇷 🇮🇱 ❤️",  # ZWJ sequence, flags, variation selector
        "mixed \u200fRTL mark\u200e and \u202bembedding\u202c",
    ],
)
def test_rtl_scripts_and_emoji_round_trip_exactly(text: str) -> None:
    assert clean_text(text) == text
    assert sanitize_html(text) == text


# --- plain text -------------------------------------------------------------------


def test_titles_lose_their_tags() -> None:
    assert clean_text("<b>Breaking:</b> <i>talks</i> resume") == "Breaking: talks resume"


def test_titles_have_entities_decoded_once() -> None:
    assert clean_text("AT&amp;T &lt;3 &#8220;quotes&#8221; &amp;amp;") == "AT&T <3 “quotes” &amp;"


def test_script_content_is_not_kept_as_title_text() -> None:
    assert clean_text("Title<script>alert(1)</script>") == "Title"


def test_a_less_than_sign_in_text_survives() -> None:
    assert clean_text("a < b and c > d") == "a < b and c > d"


def test_whitespace_collapses_to_single_spaces() -> None:
    assert clean_text("  one\t two\n\nthree\u00a0four  ") == "one two three four"


def test_crlf_header_injection_becomes_one_line() -> None:
    assert clean_text("Subject\r\nBcc: victim@example.org") == "Subject Bcc: victim@example.org"


def test_an_entity_never_decodes_to_a_control_character() -> None:
    cleaned = clean_text("a&#0;b&#7;c&#x1b;d")
    assert cleaned == strip_controls(cleaned)
    assert cleaned.replace("\ufffd", "") == "abcd"


def test_none_and_empty_become_empty() -> None:
    assert clean_text(None) == ""
    assert clean_text("") == ""
    assert clean_line(None) == ""


def test_clean_line_keeps_markup_as_text() -> None:
    assert clean_line(" Views & <News>\n") == "Views & <News>"


# --- HTML ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dirty", "forbidden"),
    [
        ("<p>hi</p><script>alert(1)</script>", "script"),
        ('<img src="x.png" onerror="alert(1)">', "onerror"),
        ('<a href="javascript:alert(1)">x</a>', "javascript"),
        ('<iframe src="https://evil.example/"></iframe>', "iframe"),
        ('<p style="background:expression(alert(1))">x</p>', "expression"),
        ("<style>body{}</style><p>x</p>", "style"),
        ('<form action="https://evil.example/"><input></form>', "form"),
        ('<object data="x.swf"></object>', "object"),
        ('<svg><use href="data:image/svg+xml,..."/></svg>', "svg"),
    ],
)
def test_sanitize_removes_active_content(dirty: str, forbidden: str) -> None:
    assert forbidden not in sanitize_html(dirty).lower()


def test_sanitize_keeps_formatting_links_and_images() -> None:
    cleaned = sanitize_html(
        '<p><b>Bold</b> <a href="https://e.org/a">link</a><img src="https://e.org/i.png"></p>'
    )
    assert "<b>Bold</b>" in cleaned
    assert 'href="https://e.org/a"' in cleaned
    assert 'src="https://e.org/i.png"' in cleaned


def test_sanitize_resolves_relative_links_against_the_base() -> None:
    cleaned = sanitize_html('<a href="/story/1">x</a><img src="pic.jpg">', "https://e.org/news/")
    assert 'href="https://e.org/story/1"' in cleaned
    assert 'src="https://e.org/news/pic.jpg"' in cleaned


def test_sanitize_accepts_a_base_it_cannot_parse() -> None:
    assert sanitize_html('<a href="/x">x</a>', "not a url") == (
        '<a href="/x" rel="noopener noreferrer">x</a>'
    )


def test_sanitize_strips_nul_bytes() -> None:
    assert "\x00" not in sanitize_html("<p>a\x00b</p>")


def test_sanitize_of_nothing_is_empty() -> None:
    assert sanitize_html(None) == ""


# --- dates --------------------------------------------------------------------------


def test_an_rfc822_date_becomes_utc() -> None:
    assert parse_date("Wed, 25 Nov 2026 14:00:00 +0200", NOW) == datetime(
        2026, 11, 25, 12, 0, tzinfo=UTC
    )


def test_an_rfc3339_date_becomes_utc() -> None:
    assert parse_date("2026-11-24T10:30:00-05:00", NOW) == datetime(
        2026, 11, 24, 15, 30, tzinfo=UTC
    )


def test_a_date_without_a_zone_is_taken_as_utc() -> None:
    assert parse_date("2026-11-24T10:30:00", NOW) == datetime(2026, 11, 24, 10, 30, tzinfo=UTC)


def test_feedparser_struct_times_are_utc() -> None:
    parsed = time.struct_time((2026, 11, 24, 10, 30, 0, 1, 328, 0))
    assert parse_date(parsed, NOW) == datetime(2026, 11, 24, 10, 30, tzinfo=UTC)


def test_aware_datetimes_are_converted_to_utc() -> None:
    istanbul = timezone(timedelta(hours=3))
    assert parse_date(datetime(2026, 11, 24, 13, 0, tzinfo=istanbul), NOW) == datetime(
        2026, 11, 24, 10, 0, tzinfo=UTC
    )


@pytest.mark.parametrize("value", [None, "", "   ", "yesterday-ish", "32/13/2026", "x" * 500])
def test_missing_or_garbage_dates_are_none(value: str | None) -> None:
    assert parse_date(value, NOW) is None


@pytest.mark.parametrize(
    "value", ["Thu, 01 Jan 1970 00:00:00 GMT", "1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z"]
)
def test_epoch_and_other_ancient_dates_are_none(value: str) -> None:
    assert parse_date(value, NOW) is None


def test_year_9999_is_none() -> None:
    assert parse_date("9999-12-31T23:59:59Z", NOW) is None


def test_a_date_slightly_in_the_future_is_clamped_to_now() -> None:
    assert parse_date("2026-11-25T18:00:00Z", NOW) == NOW


def test_a_date_days_in_the_future_is_none() -> None:
    assert parse_date("2026-11-28T12:00:00Z", NOW) is None


def test_a_date_from_1995_is_kept() -> None:
    assert parse_date("1995-06-01T00:00:00Z", NOW) == datetime(1995, 6, 1, tzinfo=UTC)


def test_sanitize_gives_protocol_relative_links_the_base_scheme() -> None:
    cleaned = sanitize_html('<img src="//cdn.e.org/p.png">', "https://e.org/a")
    assert 'src="https://cdn.e.org/p.png"' in cleaned


def test_huge_html_is_cut_to_the_limit() -> None:
    cleaned = sanitize_html("<p>" + "x" * (MAX_HTML_CHARS * 2) + "</p>")
    assert MAX_HTML_CHARS - 10 < len(cleaned) <= MAX_HTML_CHARS + 10


def test_huge_text_is_cut_to_the_limit() -> None:
    assert len(clean_text("y" * (MAX_TEXT_CHARS * 3))) == MAX_TEXT_CHARS


def test_clean_text_keeps_words_of_adjacent_blocks_apart() -> None:
    assert clean_text("<p>airspace.</p><p>Share</p>line<br/>two<li>x</li>") == (
        "airspace. Share line two x"
    )


# --- shortcuts that must give exactly what the general code gives ---------------------


def test_every_character_strip_controls_removes_is_unprintable() -> None:
    # strip_controls returns printable text untouched without running its regex
    for code in range(0x110000):
        char = chr(code)
        if clean._CONTROL.match(char):
            assert not char.isprintable(), hex(code)


def test_str_split_whitespace_is_the_regex_whitespace() -> None:
    # clean_text and clean_line collapse whitespace with str.split instead of re's \s+
    for code in range(0x110000):
        char = chr(code)
        assert char.isspace() == bool(re.fullmatch(r"\s", char)), hex(code)
        assert (char.strip() == "") == char.isspace(), hex(code)


@pytest.mark.parametrize(
    "text", ["", " a  b ", "\ta\r\n\u3000b\u00a0c\u2028", "a\x00b\x85 c", "\ud800x", "x\ufeff y"]
)
def test_clean_line_collapses_whitespace_as_the_regex_does(text: str) -> None:
    expected = re.sub(r"\s+", " ", clean._CONTROL.sub("", text)).strip()
    assert clean_line(text) == expected


_HTML_PIECES = (
    "href", "HREF", "Href", "src", "SRC", "\u017frc", "data", "DATA", "data-src", "xsrc",
    "metadata", "dataset", "=", " = ", "\t", "\n", "\u3000", '"', "'", "/a", "//b", "http:",
    "https://x.example/", "javascript:", "mailto:x", "a1+.-:", "1:", "<a ", "<img ", ">",
    "x", "\u00e9", "\u212a", " ", "#f", "?q", "..",
)  # fmt: skip


def test_the_relative_url_check_agrees_with_its_regex_on_generated_html() -> None:
    rng = random.Random(3)
    texts = ["".join(rng.choices(_HTML_PIECES, k=rng.randint(0, 14))) for _ in range(100_000)]
    verdicts = [clean._has_relative_url(t) for t in texts]
    assert verdicts == [clean._RELATIVE_URL.search(t) is not None for t in texts]
    assert 3_000 < sum(verdicts) < 97_000  # both answers are well exercised


def test_the_relative_url_check_agrees_with_its_regex_on_the_corpus(corpus_dir: Path) -> None:
    chunks = []
    for path in sorted(corpus_dir.rglob("*")):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", "replace")
            chunks += [text[i : i + 300] for i in range(0, min(len(text), 30_000), 300)]
    verdicts = [clean._has_relative_url(c) for c in chunks]
    assert verdicts == [clean._RELATIVE_URL.search(c) is not None for c in chunks]
    assert sum(verdicts) > 1000


def _reference_sanitize(s: str, base_url: str | None) -> str:
    """sanitize_html as it was before the marker-base shortcut: one cleaner per base."""
    s = clean._CONTROL.sub("", s[:MAX_HTML_CHARS]).replace("\r\n", "\n").replace("\r", "\n")
    if base_url and clean._RELATIVE_URL.search(s) is None:
        base_url = None
    try:
        cleaner = (
            nh3.Cleaner(url_relative=("rewrite_with_base", base_url)) if base_url else nh3.Cleaner()
        )
    except ValueError:
        cleaner = nh3.Cleaner()
    return str(cleaner.clean(s)).strip()


_LINKS = (
    "https://example.com/a", "http://example.com/a?b=1&amp;c=2", "HTTPS://Example.COM",
    "/a/b", "a/b", "../up", "?q=1", "#frag", "", "//other.example/p q", "\\\\other.example/x",
    "http:foo", "https:foo", "mailto:x@example.com", "javascript:alert(1)", "data:text/html,x",
    "&#47;x", "&#x2F;&#x2F;o.example/", " /spaced ", "//[bad", "tel:+1", "ftp://f.example/",
)  # fmt: skip
_BASES = (
    "https://news.example.com/world/2026/story?id=1#c",
    "http://news.example.com/a/b/",
    "https://Example.COM/x",
    "http://127.0.0.2/f/00001.xml",
    "https://example.com:8443/a",
    "https://user@example.com/a",
    "https://xn--bcher-kva.example/a",
    "https://xn--invalid-.example/a",
    "https://bücher.example/a",
    "https://1.2.3.999/a",
    "https://0x7f/a",
    "https://exa mple.com/a",
    "HTTPS://example.com/a",
    "ftp://example.com/a",
    "https://example.com/newswatch-base.invalid",
    "not a url",
)


def test_sanitize_resolves_links_as_a_cleaner_per_base_does() -> None:
    rng = random.Random(6)
    for _ in range(3000):
        parts = []
        for _ in range(rng.randint(1, 4)):
            tag = rng.choice(('<a href="{}">x</a>', "<img src='{}'>", "<a href={}>y</a>",
                              '<blockquote cite="{}">q</blockquote>', "<a HREF = \"{}\">z</a>",
                              "<a href>bare</a>", "text src={} data={}"))  # fmt: skip
            parts.append(tag.format(rng.choice(_LINKS), rng.choice(_LINKS)))
        html = "<p>" + " ".join(parts) + "</p>"
        base = rng.choice(_BASES)
        assert sanitize_html(html, base) == _reference_sanitize(html, base), (html, base)
