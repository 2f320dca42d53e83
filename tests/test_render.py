"""Rendering digests: golden files, what each format shows, and hostile feed content.

Golden files: tests/golden/digest.{html,txt,md} are rendered from
`tests.golden.sample.sample_view()` and compared exactly. After an intended change
to the templates or the sample, regenerate them and review the diff:

    NEWSWATCH_UPDATE_GOLDEN=1 uv run pytest tests/test_render.py tests/test_email.py -q
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from digest.model import DigestView, OutletLink, StoryView, TopicSection
from digest.render import (
    MAX_SUBJECT,
    environment,
    flatten,
    highlight_segments,
    markdown_escape,
    one_line,
    render_html,
    render_markdown,
    render_text,
    safe_url,
    sanitize_html,
    snippet_markdown,
    subject,
)
from tests.golden.sample import empty_view, sample_view

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("NEWSWATCH_UPDATE_GOLDEN") == "1"
AT = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(actual, encoding="utf-8", newline="")
    assert path.exists(), f"{path} missing: run with NEWSWATCH_UPDATE_GOLDEN=1"
    assert actual == path.read_bytes().decode("utf-8")


def one_story_view(story: StoryView, *, timezone: str = "UTC", more: int = 0) -> DigestView:
    return DigestView("daily", timezone, AT, None, (TopicSection("Topic", (story,), more),))


def story(**fields: Any) -> StoryView:
    values: dict[str, Any] = {
        "title": "A title",
        "url": "https://example.com/a",
        "outlets": (OutletLink("Outlet", "https://outlet.example/"),),
        "published": AT,
    }
    values.update(fields)
    return StoryView(**values)


# -- golden files ---------------------------------------------------------------------


def test_html_matches_golden_file() -> None:
    check_golden("digest.html", render_html(sample_view()))


def test_text_matches_golden_file() -> None:
    check_golden("digest.txt", render_text(sample_view()))


def test_markdown_matches_golden_file() -> None:
    check_golden("digest.md", render_markdown(sample_view()))


# -- what a digest shows --------------------------------------------------------------


@pytest.mark.parametrize("render", [render_html, render_text, render_markdown])
def test_empty_digest_says_no_new_matches(render: Any) -> None:
    out = render(empty_view())
    assert "No new matches since 2026-11-24 07:00 +03" in out
    assert "Israel–Turkey" not in out  # an empty section is not shown


@pytest.mark.parametrize("render", [render_html, render_text, render_markdown])
def test_times_are_shown_in_the_digest_timezone(render: Any) -> None:
    late = story(published=datetime(2026, 11, 24, 21, 30, tzinfo=UTC))
    out = render(one_story_view(late, timezone="Asia/Tokyo"))
    assert "2026-11-25 06:30 JST" in out


@pytest.mark.parametrize("render", [render_html, render_text, render_markdown])
def test_and_n_more_is_shown(render: Any) -> None:
    assert "and 4 more" in render(sample_view())


def test_html_marks_highlighted_terms() -> None:
    s = story(snippet="Israel and Turkey talk", highlights=((0, 6), (11, 17)))
    html = render_html(one_story_view(s))
    assert re.search(r"<mark[^>]*>Israel</mark> and <mark[^>]*>Turkey</mark> talk", html)


def test_markdown_bolds_highlighted_terms() -> None:
    s = story(snippet="Israel and Turkey talk", highlights=((0, 6), (11, 17)))
    assert "**Israel** and **Turkey** talk" in render_markdown(one_story_view(s))


def test_text_shows_snippet_without_highlight_markup() -> None:
    s = story(snippet="Israel and Turkey talk", highlights=((0, 6), (11, 17)))
    out = render_text(one_story_view(s))
    assert "  Israel and Turkey talk\n" in out
    assert "*" not in out.split("Israel and Turkey")[1].splitlines()[0]


def test_highlight_over_markup_characters_escapes_them() -> None:
    s = story(snippet="<script>alert(1)</script>", highlights=((1, 7),))
    html = render_html(one_story_view(s))
    assert re.search(r"&lt;<mark[^>]*>script</mark>&gt;alert\(1\)&lt;/script&gt;", html)
    assert "<script" not in html


def test_also_reported_by_lists_linked_outlets() -> None:
    html = render_html(sample_view())
    assert re.search(
        r'Also reported by: <a href="https://www.al-monitor.com/x/123"[^>]*>Al-Monitor</a>', html
    )
    md = render_markdown(sample_view())
    assert "Also reported by: [Al-Monitor](https://www.al-monitor.com/x/123)" in md


def test_story_without_link_shows_an_unlinked_title() -> None:
    html = render_html(one_story_view(story(url=None, title="No link here")))
    assert re.search(r'<span class="title"[^>]*>No link here</span>', html)


def test_html_inlines_css_and_keeps_dark_mode_rules() -> None:
    html = render_html(sample_view())
    assert '<td class="story" style="' in html
    assert "@media (prefers-color-scheme: dark)" in html
    assert '<meta name="color-scheme" content="light dark">' in html


# -- highlight spans ----------------------------------------------------------------------


def test_highlight_spans_are_clamped_sorted_and_merged() -> None:
    runs = highlight_segments("abcdefghij", [(8, 50), (-3, 2), (1, 4), (6, 6), (7, 5)])
    assert runs == [("abcd", True), ("efgh", False), ("ij", True)]


def test_highlight_segments_keep_every_character_once() -> None:
    text = "Türkiye İsrail 🇹🇷 שלום"
    runs = highlight_segments(text, [(0, 7), (3, 12), (16, 18)])
    assert "".join(piece for piece, _ in runs) == text


# -- hostile feed content ---------------------------------------------------------------

HOSTILE_TITLE = (
    'Evil <script>alert(1)</script><img src=x onerror="alert(2)">'
    "<iframe src=//evil.example></iframe>\r\nBcc: x@y [click](javascript:alert(3)) "
    "![pixel](https://track.example/p.gif) *bold* _em_ `code` # | a | b | ~~s~~ &amp; \\"
)

HOSTILE_URLS = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "java\nscript:alert(1)",
    " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "//evil.example/x",
    "/relative/path",
    "https:///no-host",
    "http://[::1",
]


def hostile_view() -> DigestView:
    stories = tuple(
        StoryView(
            title=HOSTILE_TITLE,
            url=url,
            outlets=(OutletLink('Outlet "<b>x</b>"\r\nCc: y@z', url),),
            published=AT,
            snippet="<style>body{background:url(javascript:x)}</style> expression(alert(1))",
            highlights=((0, 7),),
            also_reported=(OutletLink("[also](javascript:alert(4))", url),),
        )
        for url in HOSTILE_URLS
    )
    return DigestView("daily", "UTC", AT, None, (TopicSection("<b>Topic</b>", stories),))


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend((tag, name, value or "") for name, value in attrs)


def test_hostile_html_has_only_template_tags_and_safe_attributes() -> None:
    parser = _Collector()
    parser.feed(render_html(hostile_view()))
    allowed = {"html", "head", "meta", "title", "style", "body", "table", "tbody", "tr", "td"}
    allowed |= {"h1", "h2", "p", "a", "span", "mark"}
    assert set(parser.tags) <= allowed
    assert parser.tags.count("style") == 1  # the template's own
    assert not [a for a in parser.attrs if a[1].startswith("on")]
    assert not [a for a in parser.attrs if a[1] in ("src", "srcset", "action", "formaction")]
    assert not [a for a in parser.attrs if "expression(" in a[2].lower()]


def test_hostile_html_drops_every_non_http_link() -> None:
    parser = _Collector()
    parser.feed(render_html(hostile_view()))
    hrefs = [value for tag, name, value in parser.attrs if name == "href"]
    assert hrefs == []  # none of HOSTILE_URLS is an absolute http(s) URL


def test_hostile_html_shows_the_title_as_text() -> None:
    html = render_html(hostile_view())
    assert "Evil &lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=" in html


COMMONMARK = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def _md_tokens(markdown: str) -> list[Any]:
    flat: list[Any] = []
    for token in COMMONMARK.parse(markdown):
        flat.append(token)
        flat.extend(token.children or [])
    return flat


def test_hostile_markdown_has_no_links_images_or_html() -> None:
    tokens = _md_tokens(render_markdown(hostile_view()))
    types = {t.type for t in tokens}
    assert not types & {"link_open", "image", "html_inline", "html_block", "code_inline"}
    assert not types & {"table_open", "s_open", "em_open"}
    headings = [t for t in tokens if t.type == "heading_open"]
    assert [h.tag for h in headings] == ["h1", "h2"]  # only the template's own


def test_hostile_markdown_title_reads_back_as_the_same_text() -> None:
    tokens = _md_tokens(render_markdown(hostile_view()))
    expected = " ".join(HOSTILE_TITLE.split())
    texts = [t.content for t in tokens if t.type == "text"]
    assert any(expected in text for text in texts)


def test_markdown_links_only_http_urls() -> None:
    view = one_story_view(story(url="https://example.com/a(b)c d?x=1&y=<2>"))
    links = [t for t in _md_tokens(render_markdown(view)) if t.type == "link_open"]
    hrefs = [t.attrGet("href") for t in links]
    assert "https://example.com/a%28b%29c%20d?x=1&y=%3C2%3E" in hrefs
    assert all(str(h).startswith(("http://", "https://")) for h in hrefs)


def test_hostile_text_keeps_each_title_on_one_line() -> None:
    text = render_text(hostile_view())
    assert "\r" not in text
    assert not [line for line in text.splitlines() if line.startswith(("Bcc:", "Cc:"))]
    assert "javascript:" not in "".join(re.findall(r"<([^>]*)>", text))


@pytest.mark.parametrize("char", list("[]()*_`<>#|!~&\\"))
def test_markdown_escape_escapes_control_character(char: str) -> None:
    assert markdown_escape(f"a{char}b") == f"a\\{char}b"


@pytest.mark.parametrize("text", ["1. item", "- item", "+ item", "= under", "12) x"])
def test_markdown_escape_defuses_line_start_blocks(text: str) -> None:
    tokens = _md_tokens(markdown_escape(text))
    assert [t.type for t in tokens if t.type.endswith("_open")] == ["paragraph_open"]


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_safe_url_drops_non_http_urls(url: str) -> None:
    assert safe_url(url) is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a?b=1&c=2#f", "https://example.com/a?b=1&c=2#f"),
        ("HTTP://Example.com/x", "HTTP://Example.com/x"),
        ("https://example.com/a b\"c'", "https://example.com/a%20b%22c'"),
        ("https://例え.jp/ü", "https://%E4%BE%8B%E3%81%88.jp/%C3%BC"),
    ],
)
def test_safe_url_keeps_and_encodes_http_urls(url: str, expected: str) -> None:
    assert safe_url(url) == expected


@pytest.mark.parametrize(
    ("html", "forbidden"),
    [
        ("<script>alert(1)</script>ok", "alert"),
        ('<img src=x onerror="alert(1)">', "onerror"),
        ('<a href="javascript:alert(1)">x</a>', "javascript"),
        ('<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>', "data:"),
        ('<iframe src="https://evil.example"></iframe>', "iframe"),
        ('<span style="width: expression(alert(1))">x</span>', "expression"),
        ("<svg><a xlink:href='javascript:x'>y</a></svg>", "javascript"),
    ],
)
def test_sanitize_html_removes(html: str, forbidden: str) -> None:
    assert forbidden not in sanitize_html(html)


def test_sanitize_html_keeps_http_links() -> None:
    cleaned = sanitize_html('<a href="https://example.com/">x</a>')
    assert 'href="https://example.com/"' in cleaned


# -- subject ----------------------------------------------------------------------------------


def test_subject_names_the_digest_count_and_top_story() -> None:
    assert subject(sample_view()) == (
        "newswatch daily: 8 new matches — Israel & Turkey hold deconfliction talks on Syria"
    )


def test_subject_of_an_empty_digest() -> None:
    assert subject(empty_view()) == "newswatch daily: no new matches"


def test_subject_with_crlf_title_stays_one_line() -> None:
    s = subject(one_story_view(story(title="Hi\r\nBcc: x@y\n\x00\u2028Z")))
    assert s == "newswatch daily: 1 new match — Hi Bcc: x@y Z"


def test_subject_is_length_capped() -> None:
    s = subject(one_story_view(story(title="word " * 500)))
    assert len(s) == MAX_SUBJECT and s.endswith("…")


# -- the environment and the view model --------------------------------------------------


def test_there_is_one_environment_with_strict_undefined() -> None:
    env = environment()
    assert env is environment()
    assert env.undefined is jinja2.StrictUndefined
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ nope }}").render()


def test_environment_autoescapes_html_and_strings() -> None:
    env = environment()
    assert env.from_string("{{ x }}").render(x="<b>") == "&lt;b&gt;"
    assert env.get_template("digest.html.j2").render is not None
    assert env.autoescape("digest.html.j2") is True  # type: ignore[operator]
    assert env.autoescape("digest.md.j2") is False  # type: ignore[operator]


def test_view_model_rejects_naive_times() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        story(published=datetime(2026, 1, 1))


def test_view_model_rejects_unknown_timezones() -> None:
    with pytest.raises(ZoneInfoNotFoundError):
        replace(sample_view(), timezone="Mars/Olympus_Mons")


def test_view_totals_count_shown_and_more() -> None:
    view = sample_view()
    assert (view.total, view.is_empty) == (8, False)
    assert (empty_view().total, empty_view().is_empty) == (0, True)


MARKDOWN_PIECES = st.sampled_from(
    [
        *("*", "**", "_", "__", "`", "[", "]", "(", ")", "<", ">", "#", "|", "!", "~~", "&"),
        *("&amp;", "\\", "-", "+", "=", "1.", "2)", "---", "a", "word", " ", "  ", "\t"),
        *("\r\n", "\x00", "http://example.com", "<b>", "</b>", "&#60;", "$x$", "{.c}"),
        *("é", "ş", "שלום", "🇹🇷"),
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(MARKDOWN_PIECES, st.text(max_size=3)), max_size=24).map("".join))
def test_markdown_escape_always_reads_back_as_plain_text(text: str) -> None:
    tokens = COMMONMARK.parse(markdown_escape(text))
    expected = one_line(text)
    if not expected:
        assert tokens == []
        return
    assert [t.type for t in tokens] == ["paragraph_open", "inline", "paragraph_close"]
    children = tokens[1].children or []
    assert {c.type for c in children} <= {"text"}
    assert "".join(c.content for c in children) == expected


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.one_of(MARKDOWN_PIECES, st.text(max_size=3)), max_size=24).map("".join),
    st.lists(st.tuples(st.integers(-5, 90), st.integers(-5, 90)), max_size=4),
)
def test_highlighted_markdown_snippet_has_only_text_and_bold(
    snippet: str, spans: list[tuple[int, int]]
) -> None:
    rendered = snippet_markdown(story(snippet=snippet, highlights=tuple(spans)))
    flat = _md_tokens(rendered)
    assert {t.type for t in flat} <= {
        "paragraph_open",
        "paragraph_close",
        "inline",
        "text",
        "strong_open",
        "strong_close",
    }
    # Bold markers next to punctuation may stay literal: compare without asterisks.
    shown = "".join(t.content for t in flat if t.type == "text").replace("*", "")
    assert shown == " ".join(flatten(snippet).split()).replace("*", "")
