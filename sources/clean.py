"""Text cleaning for storage and display: plain-text titles, sanitized HTML, UTC dates.

Everything a feed says passes through here before it becomes an `Entry`:

- `clean_text`: one line of plain text (titles, authors, tags). HTML tags are removed and
  entities decoded, so "<b>AT&amp;T</b>" becomes "AT&T"; every run of whitespace, CR and LF
  included, becomes one space, which also keeps "\\r\\nBcc:" out of an email header.
- `clean_line`: the same without HTML processing, for text that is not HTML (GUIDs,
  OPML names).
- `sanitize_html`: summary and content HTML, through nh3 (the ammonia sanitizer): no
  script, style, iframe, event handler, `javascript:` URL or style attribute survives.
- All three strip what PostgreSQL or UTF-8 cannot store or a reader should never see: NUL and
  the other C0/C1 control characters, lone surrogates, U+FFFE/U+FFFF. Format characters
  (ZWJ in emoji sequences, RTL/LTR marks) are kept, so right-to-left scripts and emoji
  round-trip exactly.
- `parse_date`: UTC or None, by the policy in its docstring.
- `match_text`: the plain text of an article's summary and content that topic
  matching reads.
"""

from __future__ import annotations

import functools
import html
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import nh3

# C0 controls except TAB/LF/CR, DEL, C1 controls, surrogates, and the two noncharacters.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# Block-level boundaries read as a space, so "<p>airspace.</p><p>Share" keeps its words apart.
_BLOCK_BOUNDARY = re.compile(
    r"<(?:br|hr|/?(?:p|div|li|ul|ol|dl|dt|dd|h[1-6]|tr|td|th|table|blockquote|pre|section"
    r"|article|aside|header|footer|figure|figcaption|nav|main))\b[^>]*>",
    re.IGNORECASE,
)
_STRIP_ALL_TAGS = nh3.Cleaner(tags=set(), attributes={}, clean_content_tags={"script", "style"})

# Longer input is cut before cleaning: a news item is a few thousand characters, and a
# 20 MB entry would otherwise cost seconds of sanitizing and pass megabytes downstream.
MAX_HTML_CHARS = 500_000
MAX_TEXT_CHARS = 100_000  # also what newswatch/processing.py matches topics against

# Dates before the first public web page are epoch-zero or parse bugs, not news.
EARLIEST_DATE = datetime(1991, 1, 1, tzinfo=UTC)
# Clocks and time zones are often a little wrong; beyond this a date is a lie.
FUTURE_TOLERANCE = timedelta(days=1)


def strip_controls(s: str) -> str:
    """`s` without NUL, other control characters, surrogates and noncharacters.

    TAB, LF and CR are kept (whitespace policy is the caller's).
    """
    # Every character _CONTROL matches is unprintable (Cc, Cs or Cn): most one-line text
    # (titles, names) is printable, and str's check is faster than the regex's scan.
    # Multi-line text (HTML) fails it anyway, so it goes straight to the regex.
    if "\n" not in s and s.isprintable():
        return s
    return _CONTROL.sub("", s)


def _one_line(s: str) -> str:
    # the same as re.sub(r"\s+", " ", s).strip(): str.split, re's \s and str.strip
    # all use Unicode's whitespace (Py_UNICODE_ISSPACE)
    return " ".join(s.split())


def clean_line(s: str | None) -> str:
    """`s` as one line: controls stripped, whitespace collapsed; no HTML processing."""
    if not s:
        return ""
    return _one_line(strip_controls(s))


def clean_text(s: str | None) -> str:
    """`s` as one line of plain text: tags removed, entities decoded, whitespace collapsed.

    Only the first `MAX_TEXT_CHARS` characters are read.
    """
    if not s:
        return ""
    s = strip_controls(s[:MAX_TEXT_CHARS])
    if "<" in s or "&" in s:
        # nh3 parses like a browser (so "a < b" stays text) and escapes what it keeps;
        # unescaping afterwards decodes entities exactly once.
        s = html.unescape(_STRIP_ALL_TAGS.clean(_BLOCK_BOUNDARY.sub(" ", s)))
        s = strip_controls(s)  # an entity such as &#0; may decode to a control character
    return _one_line(s)


def match_text(summary: str, content: str | None) -> str:
    """What topic matching reads of an article besides its title: the plain text of
    its summary, then of its content unless the summary holds it already."""
    body = clean_text(summary)
    if content:
        text = clean_text(content)
        if text and text not in body:
            body = f"{body}\n{text}" if body else text
    return body


_CLEANERS: dict[str | None, nh3.Cleaner] = {}
# An href/src/data attribute whose value has no scheme: relative, or protocol-relative.
_RELATIVE_URL = re.compile(
    r"""\b(?:href|src|data)\s*=\s*["']?\s*(?![a-zA-Z][a-zA-Z0-9+.-]*:)""", re.IGNORECASE
)


def _has_relative_url(s: str) -> bool:
    """`_RELATIVE_URL.search(s) is not None`, several times faster.

    The regex tries its case-insensitive alternation at every character of the HTML;
    this looks only where it can match. A match ends its attribute name at an "=",
    right before the whitespace run that precedes it, so it starts 3 ("src") or 4
    ("href", "data") characters before that run (IGNORECASE matches one character
    for one). `match` at that position is the regex's own verdict: `\b` still sees
    the character before it.
    """
    at = s.find("=")
    while at >= 0:
        name_end = at
        while name_end and s[name_end - 1].isspace():  # re's \s is str.isspace
            name_end -= 1
        if name_end >= 4 and _RELATIVE_URL.match(s, name_end - 4):
            return True
        if name_end >= 3 and _RELATIVE_URL.match(s, name_end - 3):
            return True
        at = s.find("=", at + 1)
    return False


def _cleaner(base_url: str | None) -> nh3.Cleaner:
    cleaner = _CLEANERS.get(base_url)
    if cleaner is None:
        if len(_CLEANERS) > 256:  # one per feed URL; keep the cache bounded
            _CLEANERS.clear()
        try:
            cleaner = (
                nh3.Cleaner(url_relative=("rewrite_with_base", base_url))
                if base_url
                else nh3.Cleaner()
            )
        except ValueError:  # a base URL nh3 cannot parse: leave relative links alone
            cleaner = nh3.Cleaner()
        _CLEANERS[base_url] = cleaner
    return cleaner


def sanitize_html(s: str | None, base_url: str | None = None) -> str:
    """`s` as HTML that is safe to display; relative links resolved against `base_url`.

    Input beyond `MAX_HTML_CHARS` is cut off first (an open tag at the cut is dropped).

    nh3's default allow-list: formatting, links, images, lists and tables stay; script,
    style, iframe, object, form, event handlers, `style` attributes and URLs with schemes
    other than http(s), mailto and a few more are removed; links get
    rel="noopener noreferrer".
    """
    if not s:
        return ""
    s = strip_controls(s[:MAX_HTML_CHARS])
    if "\r" in s:
        s = s.replace("\r\n", "\n").replace("\r", "\n")
    # A cleaner costs as much to build as one clean: build one per base only when needed.
    if base_url and not _has_relative_url(s):
        base_url = None
    if base_url and (marker_cleaner := _MARKER_CLEANERS.get(_plain_base_scheme(base_url))):
        # Bases are nearly all different (each entry's link) and most HTML has only
        # absolute links: clean against a marker base of the same scheme, and keep that
        # unless a link was resolved against its host (see _MARKER_HOST).
        cleaned: str = marker_cleaner.clean(s)
        if _MARKER_HOST not in cleaned:
            return cleaned.strip()
    return _cleaner(base_url).clean(s).strip()


# nh3 rewrites only relative URLs. One that resolves against the base's host shows that
# host in the output; the others are scheme-relative ("//host/x") and take only the
# base's scheme. So when a marker base of the same scheme leaves no trace of its host,
# the real base would have given the same output.
_MARKER_HOST = "newswatch-base.invalid"
_MARKER_CLEANERS: dict[str | None, nh3.Cleaner] = {
    scheme: nh3.Cleaner(url_relative=("rewrite_with_base", f"{scheme}://{_MARKER_HOST}/"))
    for scheme in ("http", "https")
}
# An http(s) base nh3 certainly accepts (it falls back to no base for one it rejects, which
# would treat scheme-relative URLs differently): a host of letter-digit-hyphen labels, the
# last starting with a letter (so never read as an IPv4 number) and none punycode, no
# userinfo, no port; then any printable ASCII.
_PLAIN_BASE = re.compile(r"(https?)://(?:[A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*(?:[/?#][!-~]*)?")


def _plain_base_scheme(base_url: str) -> str | None:
    match = _PLAIN_BASE.fullmatch(base_url)
    if match is None or "xn--" in base_url.lower():
        return None
    return match.group(1)


def parse_date(
    value: str | time.struct_time | datetime | None, now: datetime | None = None
) -> datetime | None:
    """`value` as an aware UTC datetime, or None when it gives no usable date.

    Policy (the caller substitutes the time it first saw the entry for None):
    - missing or unparsable → None; a date without a zone is taken as UTC;
    - before 1991-01-01 (the Unix epoch, "0001-01-01" and similar bugs) → None;
    - up to one day in the future (wrong clocks, wrong zones) → clamped to `now`;
    - further in the future (year 9999 and similar) → None.
    Strings are read by feedparser's date parser (RFC 822, ISO 8601/RFC 3339, W3C-DTF
    and a dozen regional formats).
    """
    if value is None or value == "":
        return None
    moment: datetime | None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, time.struct_time):
        moment = _from_struct(value)
    else:
        moment = _parse_string(value)
    if moment is None:
        return None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    now = now or datetime.now(UTC)
    if moment < EARLIEST_DATE or moment > now + FUTURE_TOLERANCE:
        return None
    return min(moment, now)


@functools.cache
def _feedparser_date_parser() -> Callable[[str], time.struct_time | None]:
    """feedparser's date parser, imported when first needed: the commands that read
    stored text (`topics`, through `match_text`) never parse a date."""
    from feedparser.datetimes import _parse_date

    parse: Callable[[str], time.struct_time | None] = _parse_date
    return parse


def _from_struct(value: time.struct_time) -> datetime | None:
    # feedparser's *_parsed fields are already UTC
    try:
        return datetime(*value[:6], tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


def _parse_string(value: str) -> datetime | None:
    value = value.strip()
    if not value or len(value) > 200:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        pass
    try:
        parsed = _feedparser_date_parser()(value)
    except (ValueError, OverflowError, IndexError, TypeError):
        return None
    return _from_struct(parsed) if parsed else None
