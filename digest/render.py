"""Render a `DigestView` to HTML email, plain text and Markdown, plus its subject line.

One Jinja environment (strict undefined) loads `templates/`. HTML templates are
autoescaped; the text and Markdown templates are not HTML, so they escape for their
own format through the filters defined here (`md`, `mdurl`, `line`), and a test
feeds hostile strings through every field of every format.

Everything in the view model comes from feeds and is untrusted:
- links survive only if they are absolute http(s) URLs without control characters
  (`safe_url`); anything else (javascript:, data:, relative, mangled) is dropped
  and the title is shown unlinked;
- text is flattened to one line (CR, LF, other control characters become spaces)
  and length-capped, so a title cannot forge structure in any format;
- highlights are applied by escaping the text between spans and wrapping the
  escaped pieces, never by inserting markup into raw text; the result is also
  passed through nh3 (`sanitize_html`) as a second line of defence;
- Markdown escapes its control characters and only emits http(s) links.

The HTML is email-safe: table layout, CSS inlined by css-inline (the dark-mode
`@media` rule stays in a `<style>` tag for clients that honour it), explicit
foreground and background colours everywhere so forced dark modes invert it
consistently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime, tzinfo
from functools import cache, lru_cache
from pathlib import Path
from urllib.parse import quote, urlsplit

import css_inline
import jinja2
import nh3
from markupsafe import Markup, escape

from digest.model import DigestView, StoryView

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"

# Display caps: a feed can send a 20 MB title; nobody reads past these.
MAX_TITLE = 300
MAX_NAME = 120
MAX_SNIPPET = 600
MAX_SUBJECT = 160

_ELLIPSIS = "…"

# ---------------------------------------------------------------------------
# Text hygiene


# C0 and C1 controls (CR, LF, NUL, ESC, NEL...) and U+2028/U+2029, the line and
# paragraph separators some clients and parsers treat as line breaks.
_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES = re.compile(r"\s+")


def flatten(text: str) -> str:
    """Replace every control or line-breaking character by a space (same length)."""
    return _BREAKING.sub(" ", text)


def one_line(text: str, limit: int = MAX_TITLE) -> str:
    """`text` as a single trimmed line with runs of whitespace collapsed, capped to `limit`."""
    line = " ".join(flatten(text).split())
    if len(line) > limit:
        line = line[: limit - 1].rstrip() + _ELLIPSIS
    return line


# ---------------------------------------------------------------------------
# Links

_SCHEMES = frozenset({"http", "https"})
# Reserved and unreserved characters stay as they are (so does %, keeping existing
# escapes); everything else (space, quotes, <, >, backslash, non-ASCII...) is
# percent-encoded as UTF-8.
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~-._"


@lru_cache(maxsize=8192)  # one digest shows each outlet's URL many times
def safe_url(url: str | None) -> str | None:
    """`url` if it is an absolute http(s) URL with a host, percent-encoded; else None.

    Control characters anywhere mean None rather than stripping them: browsers drop
    tabs and newlines inside URLs, which is how `java\\nscript:` sneaks past naive
    scheme checks.
    """
    if not url:
        return None
    url = url.strip(" ")
    if not url or len(url) > 8192 or _BREAKING.search(url):
        return None
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:  # e.g. an invalid IPv6 literal
        return None
    if parts.scheme.lower() not in _SCHEMES or not hostname:
        return None
    return quote(url, safe=_URL_SAFE)


@lru_cache(maxsize=8192)
def markdown_url(url: str | None) -> str | None:
    """`safe_url` made safe as a Markdown inline link destination."""
    link = safe_url(url)
    if link is None:
        return None
    # A destination ends at whitespace or an unbalanced ")": encode parentheses.
    return link.replace("(", "%28").replace(")", "%29")


# ---------------------------------------------------------------------------
# Markdown escaping

# CommonMark lets any ASCII punctuation be backslash-escaped; these are the ones
# that can start or end inline structure (links, images, emphasis, code, raw HTML,
# entities, tables, strikethrough, math in some renderers).
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#|!~&$])")
# Block structure that only counts at the start of a line (lists, headings,
# thematic breaks, setext underlines, block quotes are escaped above).
_MD_LINE_START = re.compile(r"^(\d{1,9})([.)])|^([-+=])")


def _backslash(match: re.Match[str]) -> str:
    # A function, not r"\\\1": template expansion is slower per match.
    return "\\" + match.group()


def markdown_escape(text: str, limit: int = MAX_TITLE) -> str:
    """`text` on one line with every Markdown control character backslash-escaped."""
    return _defuse_line_start(_MD_SPECIAL.sub(_backslash, one_line(text, limit)))


def _defuse_line_start(text: str) -> str:
    match = _MD_LINE_START.match(text)
    if match is None:
        return text
    if match.group(3):
        return "\\" + text
    return f"{match.group(1)}\\{text[match.end(1) :]}"


def _markdown_inline(text: str) -> str:
    # Like markdown_escape but without trimming or the line-start rule: used for
    # pieces in the middle of a snippet.
    return _MD_SPECIAL.sub(_backslash, _SPACES.sub(" ", flatten(text)))


# ---------------------------------------------------------------------------
# HTML sanitising

_CLEANER = nh3.Cleaner(
    tags={"a", "b", "strong", "i", "em", "mark", "p", "br", "span", "ul", "ol", "li", "blockquote"},
    attributes={"a": {"href", "title"}},
    url_schemes=set(_SCHEMES),
    clean_content_tags={"script", "style"},
    link_rel="noopener noreferrer",
    strip_comments=True,
)


def sanitize_html(html: str) -> Markup:
    """A small allowlist of inline HTML: no script, styles, event handlers, iframes,
    forms, images or non-http(s) links."""
    return Markup(_CLEANER.clean(html))  # noqa: S704 - nh3 output is the sanitised form


# ---------------------------------------------------------------------------
# Highlights


def highlight_segments(text: str, spans: Iterable[tuple[int, int]]) -> list[tuple[str, bool]]:
    """Split `text` into `(piece, highlighted)` runs.

    Spans are clamped to the text, empty or inverted ones dropped, and overlapping
    or touching ones merged, so whatever the matcher stored, every character
    appears exactly once, in order.
    """
    size = len(text)
    clamped = sorted(
        (max(0, min(size, int(start))), max(0, min(size, int(end)))) for start, end in spans
    )
    merged: list[tuple[int, int]] = []
    for start, end in clamped:
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    runs: list[tuple[str, bool]] = []
    pos = 0
    for start, end in merged:
        if start > pos:
            runs.append((text[pos:start], False))
        runs.append((text[start:end], True))
        pos = end
    if pos < size:
        runs.append((text[pos:], False))
    return runs


def _snippet_runs(story: StoryView) -> list[tuple[str, bool]]:
    text = flatten(story.snippet)
    runs = highlight_segments(text[:MAX_SNIPPET], story.highlights)
    if len(text) > MAX_SNIPPET:
        runs.append((_ELLIPSIS, False))
    return runs


def snippet_html(story: StoryView) -> Markup:
    """The snippet as HTML with matched terms in `<mark>`; every piece escaped."""
    pieces = [
        f"<mark>{escape(piece)}</mark>" if marked else str(escape(piece))
        for piece, marked in _snippet_runs(story)
    ]
    return sanitize_html(" ".join("".join(pieces).split()))


def snippet_markdown(story: StoryView) -> str:
    """The snippet as Markdown with matched terms in bold; every piece escaped."""
    out: list[str] = []
    for piece, marked in _snippet_runs(story):
        if not marked:
            out.append(_markdown_inline(piece))
            continue
        # "**" only opens/closes emphasis next to non-space text: keep the spaces
        # of a span outside the delimiters.
        core = piece.strip()
        if not core:
            out.append(_markdown_inline(piece))
            continue
        lead = piece[: len(piece) - len(piece.lstrip())]
        trail = piece[len(piece.rstrip()) :]
        out.append(f"{_markdown_inline(lead)}**{_markdown_inline(core)}**{_markdown_inline(trail)}")
    return _defuse_line_start(" ".join("".join(out).split()))


def snippet_text(story: StoryView) -> str:
    """The snippet as one plain line."""
    return " ".join("".join(piece for piece, _ in _snippet_runs(story)).split())


# ---------------------------------------------------------------------------
# Times


@lru_cache(maxsize=4096)  # the three formats show the same times
def local_time(value: datetime, zone: tzinfo) -> str:
    """`value` in `zone`, as "2026-11-25 07:00 +03" (locale-independent)."""
    local = value.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or local.strftime('%z')}"


# ---------------------------------------------------------------------------
# Subject


def subject(view: DigestView) -> str:
    """The email subject: one line, no control characters, at most MAX_SUBJECT chars."""
    name = one_line(view.name, MAX_NAME) or "digest"
    if view.is_empty:
        return one_line(f"newswatch {name}: no new matches", MAX_SUBJECT)
    count = view.total
    noun = "match" if count == 1 else "matches"
    head = f"newswatch {name}: {count} new {noun}"
    top = next((s.stories[0].title for s in view.sections if s.stories), "")
    top_line = one_line(top, MAX_SUBJECT)
    return one_line(f"{head} — {top_line}" if top_line else head, MAX_SUBJECT)


# ---------------------------------------------------------------------------
# The environment


@cache
def environment() -> jinja2.Environment:
    """The one Jinja environment for every digest template."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        # Only the text and Markdown templates opt out of HTML escaping; they escape
        # for their own format with the filters above. Anything else is escaped.
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2", "css.j2"),
            disabled_extensions=("txt.j2", "md.j2"),
            default_for_string=True,
            default=True,
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    filters: dict[str, Callable[..., object]] = {
        "line": one_line,
        "md": markdown_escape,
        "url": safe_url,
        "mdurl": markdown_url,
        "localtime": local_time,
        "snippet_html": snippet_html,
        "snippet_md": snippet_markdown,
        "snippet_text": snippet_text,
        "sanitize": sanitize_html,
    }
    env.filters.update(filters)
    return env


@cache
def _inliner() -> css_inline.CSSInliner:
    return css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


def _render(template: str, view: DigestView) -> str:
    tmpl = environment().get_template(template)
    return tmpl.render(view=view, subject=subject(view), zone=view.zone)


def render_html(view: DigestView) -> str:
    """The digest as a complete, email-safe HTML document with inlined CSS."""
    return _inliner().inline(_render("digest.html.j2", view))


def render_text(view: DigestView) -> str:
    """The digest as plain text (the text/plain part of the email)."""
    return _render("digest.txt.j2", view)


def render_markdown(view: DigestView) -> str:
    """The digest as CommonMark (GitHub-flavoured tables and strikethrough escaped too)."""
    return _render("digest.md.j2", view)
