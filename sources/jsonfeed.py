"""JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1) into plain entries.

feedparser 6.0.14 has no JSON Feed support, so this is the JSON path of
`sources.parse.parse_feed`. No I/O. Fields read, per item: id, url, external_url, title,
content_html / content_text, summary, date_published / date_modified, authors (1.1) or
author (1.0), language, tags. A JSON document that is not a JSON Feed (for example Dave
Winer's RSS-in-JSON) is `NotAFeed`; JSON that does not decode is `Unparsable`, except that
a truncated feed keeps the items that arrived whole (ParsedFeed.warning says so).
"""

from __future__ import annotations

import html
import json
import re
from typing import Any
from urllib.parse import urljoin

from sources.clean import clean_line, clean_text, parse_date, sanitize_html
from sources.errors import NotAFeed, Unparsable
from sources.model import Entry, ParsedFeed

_VERSION = re.compile(r"jsonfeed\.org/version/(\d+(?:\.\d+)?)")
_ITEMS_START = re.compile(r'"items"\s*:\s*\[')


def looks_like_json(body: bytes) -> bool:
    """True when the first significant character of `body` opens a JSON object."""
    head = body[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{")


def parse_json_feed(body: bytes, url: str) -> ParsedFeed:
    """The JSON Feed in `body` (bytes in UTF-8/16/32), its relative URLs resolved against `url`."""
    warning = None
    try:
        doc = json.loads(body, strict=False)  # raw control characters are common
    except (ValueError, RecursionError) as err:
        doc = _salvage_truncated(body)
        if doc is None:
            raise Unparsable(f"invalid JSON: {err}") from None
        warning = f"truncated JSON, kept the {len(doc['items'])} complete items ({err})"
    if not isinstance(doc, dict):
        raise NotAFeed("JSON document that is not a JSON Feed (not an object)")
    version = doc.get("version")
    match = _VERSION.search(version) if isinstance(version, str) else None
    items = doc.get("items")
    if not isinstance(items, list):
        raise NotAFeed("JSON document that is not a JSON Feed (no items list)")
    if match is None:
        if "rss" in doc or not all(isinstance(i, dict) for i in items):
            raise NotAFeed("JSON document that is not a JSON Feed (no jsonfeed.org version)")
        warning = warning or "JSON Feed without a jsonfeed.org version"
    fmt = "jsonfeed" + (match.group(1).replace(".", "") if match else "")
    feed_language = _str(doc.get("language"))
    feed_authors = _authors(doc)
    base = _str(doc.get("home_page_url")) or url
    entries = [
        _entry(item, url, feed_language, feed_authors) for item in items if isinstance(item, dict)
    ]
    return ParsedFeed(
        format=fmt,
        title=clean_text(_str(doc.get("title"))),
        link=_absolute(_str(doc.get("home_page_url")), base),
        language=feed_language,
        entries=entries,
        warning=warning,
    )


def _entry(
    item: dict[str, Any], url: str, feed_language: str | None, feed_authors: list[str]
) -> Entry:
    link = _absolute(_str(item.get("url")), url) or _absolute(_str(item.get("external_url")), url)
    content_html = _str(item.get("content_html"))
    content_text = _str(item.get("content_text"))
    if content_html:
        content: str | None = sanitize_html(content_html, link or url)
    elif content_text:
        content = "<p>" + html.escape(content_text).replace("\n", "<br>") + "</p>"
        content = sanitize_html(content)
    else:
        content = None
    summary_text = _str(item.get("summary"))
    summary = sanitize_html(html.escape(summary_text)) if summary_text else (content or "")
    item_id = item.get("id")
    # ids may be numbers in the wild; the spec says strings
    guid = clean_line(str(item_id)) if isinstance(item_id, str | int | float) else None
    authors = _authors(item) or feed_authors
    raw_tags = item.get("tags")
    tags = (
        tuple(t for t in (clean_text(x) for x in raw_tags if isinstance(x, str)) if t)
        if isinstance(raw_tags, list)
        else ()
    )
    return Entry(
        title=clean_text(_str(item.get("title"))),
        link=link,
        guid=guid or None,
        summary=summary,
        content=content,
        author=", ".join(authors) or None,
        published=parse_date(_str(item.get("date_published"))),
        updated=parse_date(_str(item.get("date_modified"))),
        language=_str(item.get("language")) or feed_language,
        tags=tags,
    )


def _authors(obj: dict[str, Any]) -> list[str]:
    # 1.1 "authors" wins over the deprecated 1.0 "author"
    raw = obj.get("authors")
    if not isinstance(raw, list) or not raw:
        raw = [obj.get("author")]
    names = (clean_text(_str(a.get("name"))) for a in raw if isinstance(a, dict))
    return [n for n in names if n]


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _absolute(link: str | None, base: str) -> str | None:
    if not link:
        return None
    try:
        return urljoin(base, link.strip())
    except ValueError:
        return None


def _salvage_truncated(body: bytes) -> dict[str, Any] | None:
    """The complete items of a JSON Feed cut off mid-way, or None if there are none."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    start = _ITEMS_START.search(text)
    if start is None:
        return None
    decoder = json.JSONDecoder(strict=False)
    items: list[Any] = []
    pos = start.end()
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        try:
            item, pos = decoder.raw_decode(text, pos)
        except ValueError:
            break
        items.append(item)
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    return {"items": items, "version": "https://jsonfeed.org/version/1"}
