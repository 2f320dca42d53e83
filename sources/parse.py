"""Response bytes → a `ParsedFeed` of clean entries. No I/O: never the network, never a file.

RSS 0.9x/1.0/2.0 and Atom go through feedparser 6.0.14; JSON Feed through
`sources.jsonfeed`. Plain RSS 2.0 and Atom 1.0 documents take a fast path first
(`_fast_rss`, below): ElementTree and a mirror of feedparser's reading, several times
less CPU, declining anything unusual. Before feedparser sees the bytes, three things it
gets wrong or that are unsafe are fixed here:

- BOM-less UTF-16 (with or without an XML declaration) is transcoded to UTF-8; feedparser
  would guess UTF-8 and find nothing;
- whitespace before `<?xml` is removed, so the strict (expat) parser accepts the document
  instead of failing over to the slower loose parser;
- the DOCTYPE's internal subset is rebuilt from plain-text entity declarations only, and
  only while their total expansion stays under `ENTITY_EXPANSION_LIMIT`: external
  entities (SYSTEM/PUBLIC, parameter entities) are dropped before any parser sees them,
  so nothing is fetched or read from disk, and billion-laughs or quadratic-blowup
  documents never expand. (feedparser also strips unsafe declarations, but its patterns
  only see declarations at the start of a line; expat additionally never loads external
  entities here.)

feedparser runs with `sanitize_html=False` and `resolve_relative_uris=False` (its
sanitizer is ~40% of its time): entry links are still resolved against `url` and
xml:base by feedparser, and HTML is sanitized by nh3 in `sources.clean`, which also
resolves the relative links inside it. Bozo documents that still yield entries are kept,
with the reason in `ParsedFeed.warning`.
"""

from __future__ import annotations

import functools
import io
import re
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from html import escape
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
import feedparser.mixin
from feedparser.datetimes import _parse_date
from feedparser.html import _cp1252
from feedparser.urls import make_safe_absolute_uri

from sources.clean import clean_line, clean_text, parse_date, sanitize_html
from sources.errors import EmptyBody, NotAFeed, Unparsable
from sources.jsonfeed import looks_like_json, parse_json_feed
from sources.model import Entry, ParsedFeed

# Total characters internal entities may add to a document; a real feed needs a few dozen.
ENTITY_EXPANSION_LIMIT = 100_000

_XML_DECLARATION_AFTER_SPACE = re.compile(rb"\A(\xef\xbb\xbf)?[ \t\r\n]+(?=<\?xml)")
_XML_ENCODING = re.compile(rb"""(<\?xml[^>]*?encoding\s*=\s*["'])[^"']*""")
_DOCTYPE = re.compile(rb"<!DOCTYPE\s+([^\s\[>]+)[^\[>]*", re.IGNORECASE)
_SUBSET_END = re.compile(rb"\]\s*>")
_SAFE_ENTITY = re.compile(rb'<!ENTITY\s+(\w+)\s+"([^&"%<]*|&#x?[0-9a-fA-F]{1,6};)"\s*>')
# feedparser re-joins the base URI on every start tag and every link (a fifth of its time
# on a 50-entry feed) with pure functions of two strings; memoising them changes nothing
# but the time.
feedparser.mixin.make_safe_absolute_uri = functools.lru_cache(maxsize=4096)(
    feedparser.mixin.make_safe_absolute_uri
)
feedparser.mixin._urljoin = functools.lru_cache(maxsize=4096)(feedparser.mixin._urljoin)

# Plain application/json is left out: WordPress marks its REST API with
# <link rel="alternate" type="application/json">.
_FEED_TYPES = (
    "application/rss+xml",
    "application/atom+xml",
    "application/feed+json",
    "application/rdf+xml",
    "application/xml",
    "text/xml",
)


def parse_feed(body: bytes, url: str, content_type: str | None = None) -> ParsedFeed:
    """The feed in `body`, fetched from `url` and served as `content_type`.

    Raises EmptyBody (nothing but whitespace), NotAFeed (an HTML page, naming the feed it
    links to with <link rel="alternate"> resolved against `url`; or a JSON or XML
    document of another kind) or Unparsable (nothing could be read from it).
    """
    if not body or not body.strip(b" \t\r\n\x00\xef\xbb\xbf\xfe\xff"):
        raise EmptyBody("the response body is empty")
    if looks_like_json(body):
        return parse_json_feed(body, url)
    notes: list[str] = []
    data = _prepare(body, notes)
    if _bomless_utf16(body):
        # we transcoded: whatever charset was declared no longer describes the bytes
        mime = (content_type or "").split(";", 1)[0].strip() or "application/xml"
        content_type = f"{mime}; charset=utf-8"
    result = None if notes else _fast_rss(data, url, content_type)
    if result is None:
        result = _feedparser(data, url, content_type, notes)
    if not result.get("version") and not result.get("entries") and _looks_like_html(body):
        raise NotAFeed("an HTML page, not a feed", find_feed_link(body, url))
    return _to_parsed_feed(result, url)


def _feedparser(
    data: bytes, url: str, content_type: str | None, notes: list[str]
) -> feedparser.FeedParserDict:
    headers = {
        # Without a Content-Type feedparser assumes ISO-8859-1 for undeclared XML;
        # application/xml means: the XML declaration, else the BOM, else UTF-8.
        "content-type": content_type or "application/xml",
        "content-location": url,
    }
    # A BytesIO, never the bytes: feedparser.parse would treat bytes that name an
    # existing file as a path and read that file.
    try:
        result = feedparser.parse(
            io.BytesIO(data),
            response_headers=headers,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except (UnicodeError, ValueError, LookupError) as exc:
        # feedparser 6.0.14 lets these out for a damaged encoding name in the XML
        # declaration (a non-UTF-8 byte, a NUL)
        raise Unparsable(f"no feed could be read ({type(exc).__name__}: {exc})") from None
    result["newswatch_notes"] = notes
    return result


# --- The fast path: plain RSS 2.0 read with ElementTree, as feedparser would read it ---
#
# feedparser's SAX handlers cost ~25 ms of CPU for a 50-entry feed; the C-accelerated
# ElementTree builds the same document in ~1 ms. `_fast_rss` takes only the plain
# subset of RSS 2.0 whose reading it can mirror exactly (the handlers of feedparser
# 6.0.14's strict parser, step by step: strip, resolve, the UTF-8-read-as-Latin-1
# repair, the cp1252 map, the link `&amp;` fix, guid-as-link) and returns the same
# dict feedparser would, for the same `_to_parsed_feed`. Anything else — another
# format, a DOCTYPE, xml:base, xml:lang anywhere but on an Atom root, a charset other
# than UTF-8, an element or attribute it does not know, nested markup, a repeated
# field, a document expat rejects — returns None and feedparser reads the document.
# tests/test_parse_fast.py checks on every corpus file that whatever this path accepts
# reads as feedparser's.

_DC = "{http://purl.org/dc/elements/1.1/}"
_CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
_ATOM = "{http://www.w3.org/2005/Atom}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# Namespaced tags, built once: the readers below compare every element's tag with them.
_ATOM_AUTHOR = _ATOM + "author"
_ATOM_CATEGORY = _ATOM + "category"
_ATOM_CONTENT = _ATOM + "content"
_ATOM_CONTRIBUTOR = _ATOM + "contributor"
_ATOM_EMAIL = _ATOM + "email"
_ATOM_ENTRY = _ATOM + "entry"
_ATOM_FEED = _ATOM + "feed"
_ATOM_ID = _ATOM + "id"
_ATOM_LINK = _ATOM + "link"
_ATOM_NAME = _ATOM + "name"
_ATOM_PUBLISHED = _ATOM + "published"
_ATOM_RIGHTS = _ATOM + "rights"
_ATOM_SUMMARY = _ATOM + "summary"
_ATOM_TITLE = _ATOM + "title"
_ATOM_UPDATED = _ATOM + "updated"
_ATOM_URI = _ATOM + "uri"
_DC_CREATOR = _DC + "creator"
_DC_DATE = _DC + "date"
_CONTENT_ENCODED = _CONTENT + "encoded"
_XML_DECLARATION = re.compile(rb"""\A<\?xml\s[^>]*?\?>""")
_DECLARED_ENCODING = re.compile(rb"""encoding\s*=\s*["']([^"']*)["']""")
# Channel children that feed nothing read here; anything else sends the feed to feedparser.
_CHANNEL_IGNORED = frozenset(
    {
        "description", "lastBuildDate", "pubDate", "generator", "docs", "ttl", "copyright",
        "managingEditor", "webMaster", "category", "image", "cloud", "rating", "skipHours",
        "skipDays",
    }
)  # fmt: skip
_ITEM_ONCE = frozenset(
    {"title", "link", "description", "guid", "pubDate", "author", "comments",
     _DC_CREATOR, _DC_DATE, _CONTENT_ENCODED}
)  # fmt: skip
_ITEM_ATTRIBUTES = {
    "guid": {"isPermaLink"},
    "category": {"domain"},
    "enclosure": {"url", "length", "type"},
}
_NONE: frozenset[str] = frozenset()
_ENTITY_NAME = re.compile("&([A-Za-z0-9_]+);")
_C1_CONTROLS = re.compile("[\x80-\x9f]")  # the only characters feedparser's cp1252 map changes


class _NotPlain(Exception):
    """The document is outside what the fast path mirrors: feedparser reads it."""


def _fast_rss(data: bytes, url: str, content_type: str | None) -> dict[str, Any] | None:
    if not _utf8_declared(data, content_type):
        return None
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data or b"xml:base" in data:
        return None
    if data.count(b"xml:lang") > 1:  # one is allowed: on an Atom feed's root, read below
        return None
    start = data.find(b"<rss")
    if start < 0:
        start = data.find(b"<feed")
    # ElementTree drops comments and processing instructions, and with them the text
    # after them inside an element, which feedparser keeps
    if start < 0 or data.find(b"<!--", start) >= 0 or data.find(b"<?", start) >= 0:
        return None
    try:
        data.decode("utf-8")
        # no DOCTYPE, hence no entity declarations to expand and nothing external to load
        root = ET.fromstring(data)  # noqa: S314
        base = make_safe_absolute_uri("", url) or make_safe_absolute_uri(url) or ""
        if root.tag == _ATOM_FEED and set(root.attrib) <= {_XML_LANG}:
            return _read_atom_feed(root, base, root.get(_XML_LANG) or None)
        if root.tag != "rss" or root.attrib != {"version": "2.0"} or len(root) != 1:
            return None
        return _read_channel(root[0], base)
    except (ET.ParseError, UnicodeDecodeError, _NotPlain, ValueError):
        return None


def _utf8_declared(data: bytes, content_type: str | None) -> bool:
    if data[:3] == b"\xef\xbb\xbf":
        return False
    mime, _, params = (content_type or "application/xml").partition(";")
    mime = mime.strip().lower()
    charset = None
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip("\"'").lower()
    if charset is not None and charset not in ("utf-8", "utf8"):
        return False
    if not mime.endswith("xml"):
        return False  # feedparser flags any other type as bozo
    if charset is None and not mime.startswith("application/"):
        return False  # text/xml without a charset means US-ASCII to feedparser (RFC 3023)
    declaration = _XML_DECLARATION.match(data)
    if declaration is None:
        return not data.startswith(b"<?")
    encoding = _DECLARED_ENCODING.search(declaration.group())
    return encoding is None or encoding.group(1).lower() in (b"utf-8", b"utf8")


def _plain_text(element: ET.Element) -> str:
    """An element's text as feedparser's pop() returns it (no child elements allowed)."""
    if len(element):
        raise _NotPlain(element.tag)
    return _repair(element.text or "")


def _repair(output: str) -> str:
    output = output.strip()
    if output.isascii():
        return output  # both steps below only ever change non-ASCII text
    # feedparser's repair of UTF-8 that was read as ISO-8859-1 and re-encoded (try, not
    # contextlib.suppress: this runs for every non-ASCII text of a feed)
    try:  # noqa: SIM105
        output = output.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    if output.isprintable():  # C1 controls are unprintable: nothing for the map to change
        return output
    return output.translate(_cp1252) if _C1_CONTROLS.search(output) else output


def _read_channel(channel: ET.Element, base: str) -> dict[str, Any]:
    if channel.tag != "channel" or channel.attrib:
        raise _NotPlain("channel")
    feed: dict[str, Any] = {}
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for child in channel:
        tag = child.tag
        if tag == "item":
            entries.append(_read_item(child, base))
            continue
        if tag in ("title", "link", "language"):
            if tag in seen or child.attrib:
                raise _NotPlain(tag)
            seen.add(tag)
            text = _plain_text(child)
            if tag == "link":
                text = _urljoin(base, text) if text else text
                text = _ENTITY_NAME.sub(r"&\g<1>", text)
            feed[tag] = text
        elif tag == _ATOM_LINK:
            if child.get("rel") not in ("self", "hub") or len(child):
                raise _NotPlain(tag)
        elif tag not in _CHANNEL_IGNORED or (tag != "image" and len(child)):
            raise _NotPlain(tag)
    return {
        "version": "rss20",
        "bozo": False,
        "feed": feed,
        "entries": entries,
        "newswatch_notes": [],
    }


def _read_item(item: ET.Element, base: str) -> dict[str, Any]:
    if item.attrib:
        raise _NotPlain("item")
    entry: dict[str, Any] = {}
    seen: set[str] = set()
    guid_is_link = False
    tags: list[dict[str, Any]] = []
    for child in item:
        tag = child.tag
        if child.attrib and not child.attrib.keys() <= _ITEM_ATTRIBUTES.get(tag, _NONE):
            raise _NotPlain(tag)
        if tag in _ITEM_ONCE:
            if tag in seen:
                raise _NotPlain(tag)
            seen.add(tag)
        if len(child):
            raise _NotPlain(tag)
        # _plain_text, inlined; most text is ASCII, which _repair returns stripped
        text = child.text
        if text:
            text = text.strip()
            if not text.isascii():
                text = _repair(text)
        else:
            text = ""
        if tag == "title":
            entry["title"] = text
            # feedparser's <language> sets the language only until its own end tag
            entry["title_detail"] = {"language": None}
        elif tag == "link":
            if text:
                text = _urljoin(base, text)
            text = text.replace("&amp;", "&")
            if ";" in text:
                text = _ENTITY_NAME.sub(r"&\g<1>", text)
            entry["link"] = text
        elif tag == "guid":
            guid_is_link = child.get("isPermaLink", "true") == "true"
            if text and guid_is_link:
                text = _urljoin(base, text)
            entry["id"] = text
            if guid_is_link:
                entry.setdefault("link", text)
        elif tag == "description":
            entry["summary"] = text
            entry["summary_detail"] = {"type": "text/html"}
        elif tag == _CONTENT_ENCODED:
            entry["content"] = [{"type": "text/html", "value": text}]
            entry.setdefault("summary", text)
        elif tag == "pubDate":
            entry["published_parsed"] = _date(text)
        elif tag == _DC_DATE:
            entry["updated_parsed"] = _date(text)
        elif tag in ("author", _DC_CREATOR):
            if "author" in entry:
                raise _NotPlain(tag)
            entry["author"] = text
        elif tag == "category":
            _category(tags, text, None, child.get("domain"), None)
        elif tag not in ("comments", "enclosure"):
            raise _NotPlain(tag)
    entry["tags"] = tags
    return entry


# The two date layouts nearly every feed uses, read here as feedparser 6.0.14's first
# handler to accept them reads them (W3C-DTF: _parse_date_w3dtf; RFC 822:
# _parse_date_rfc822, after _parse_date_w3dtf declines it), for a fifth of the time.
_W3DTF = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:Z|([+-])([0-9]{2}):([0-9]{2}))"
)
_RFC822 = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([0-9]{4}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) (?:GMT|([+-])([0-9]{2})([0-9]{2}))"
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


def _date(text: str) -> time.struct_time | None:
    """feedparser's `_parse_date(text)`: the UTC 9-tuple of a date string, or None."""
    if match := _W3DTF.fullmatch(text):
        year, month, day, hour, minute, second, sign, tz_hours, tz_minutes = match.groups()
    elif match := _RFC822.fullmatch(text):
        day, month, year, hour, minute, second, sign, tz_hours, tz_minutes = match.groups()
        month = _MONTHS[month]
    else:
        return _parse_date(text)  # type: ignore[no-any-return]
    try:
        stamp = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
        if sign:
            offset = timedelta(hours=int(tz_hours), minutes=int(tz_minutes))
            stamp = stamp - offset if sign == "+" else stamp + offset
        return stamp.utctimetuple()
    except (ValueError, OverflowError):
        # feedparser's handler gives None here and the next ones try: let them
        return _parse_date(text)  # type: ignore[no-any-return]


def _category(
    tags: list[dict[str, Any]],
    value: str,
    term: str | None,
    scheme: str | None,
    label: str | None,
) -> None:
    # feedparser's _start_category/_end_category, with their order of effects
    _add_category(tags, term, scheme, label)
    if not value:
        return
    if tags and not tags[-1]["term"]:
        tags[-1]["term"] = value
    else:
        _add_category(tags, value, None, None)


def _add_category(
    tags: list[dict[str, Any]], term: str | None, scheme: str | None, label: str | None
) -> None:
    if not term and not scheme and not label:
        return
    tag = {"term": term, "scheme": scheme, "label": label}
    if tag not in tags:
        tags.append(tag)


# Atom 1.0: what feedparser reads from a feed's and an entry's children.
_ATOM_TEXT_TYPES = {None: "text/plain", "text": "text/plain", "html": "text/html"}
_ATOM_FEED_IGNORED = frozenset(
    _ATOM + name for name in ("updated", "subtitle", "rights", "generator", "icon", "logo")
)
_ATOM_ENTRY_ONCE = frozenset(
    _ATOM + name
    for name in ("id", "title", "updated", "published", "summary", "content", "author", "rights")
)
_LINK_ATTRIBUTES = frozenset({"href", "rel", "type", "hreflang", "title", "length"})
_CATEGORY_ATTRIBUTES = frozenset({"term", "scheme", "label"})
_PERSON_CHILDREN = frozenset({_ATOM_NAME, _ATOM_EMAIL, _ATOM_URI})


def _atom_text_type(element: ET.Element, allowed: frozenset[str] = frozenset({"type"})) -> str:
    if not element.attrib.keys() <= allowed:
        raise _NotPlain(element.tag)
    kind = element.get("type")
    mapped = _ATOM_TEXT_TYPES.get(kind.lower() if kind is not None else None)
    if mapped is None:
        raise _NotPlain(f"{element.tag} type {kind}")
    return mapped


def _atom_link(element: ET.Element, base: str) -> str | None:
    """The href an Atom <link> makes the context's link (feedparser: alternate HTML), or None."""
    if len(element) or (element.text or "").strip():
        raise _NotPlain("link")
    if not element.attrib.keys() <= _LINK_ATTRIBUTES or "href" not in element.attrib:
        raise _NotPlain("link")
    rel = (element.get("rel") or "alternate").lower()
    default_type = "application/atom+xml" if rel == "self" else "text/html"
    kind = (element.get("type") or default_type).lower()
    kind = {"text": "text/plain", "html": "text/html", "xhtml": "application/xhtml+xml"}.get(
        kind, kind
    )
    if rel == "alternate" and kind in ("text/html", "application/xhtml+xml"):
        return _urljoin(base, element.attrib["href"])
    return None


def _atom_person(element: ET.Element) -> str:
    """feedparser's `author` for an Atom person: 'name (email)', name, email or ''."""
    if element.attrib or (element.text or "").strip():
        raise _NotPlain("person")
    parts: dict[str, str] = {}
    for child in element:
        if child.tag not in _PERSON_CHILDREN or child.attrib or len(child) or child.tag in parts:
            raise _NotPlain("person")
        parts[child.tag] = (child.text or "").strip()  # read raw: expecting_text=0
        if (child.tail or "").strip():
            raise _NotPlain("person")
    name, email = parts.get(_ATOM_NAME), parts.get(_ATOM_EMAIL)
    if name and email:
        return f"{name} ({email})"
    return name or email or ""


def _read_atom_feed(root: ET.Element, base: str, lang: str | None) -> dict[str, Any]:
    feed: dict[str, Any] = {}
    if lang:
        # feedparser: the root's xml:lang, '_' as '-', is the feed's and every title's
        lang = lang.replace("_", "-")
        feed["language"] = lang
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for child in root:
        tag = child.tag
        if tag == _ATOM_ENTRY:
            entries.append(_read_atom_entry(child, base, lang))
        elif tag == _ATOM_LINK:
            href = _atom_link(child, base)
            if href is not None:
                feed["link"] = href
        elif tag in (_ATOM_TITLE, _ATOM_ID):
            if tag in seen:
                raise _NotPlain(tag)
            seen.add(tag)
            if tag == _ATOM_TITLE:
                _atom_text_type(child)
                feed["title"] = _plain_text(child)
            else:
                if child.attrib:
                    raise _NotPlain(tag)
                text = _plain_text(child)
                feed.setdefault("link", _urljoin(base, text) if text else text)
        elif tag in (_ATOM_AUTHOR, _ATOM_CONTRIBUTOR):
            _atom_person(child)
        elif tag == _ATOM_CATEGORY:
            if len(child) or not child.attrib.keys() <= _CATEGORY_ATTRIBUTES:
                raise _NotPlain(tag)
        elif tag in _ATOM_FEED_IGNORED:
            if len(child):
                raise _NotPlain(tag)
        else:
            raise _NotPlain(tag)
    return {
        "version": "atom10",
        "bozo": False,
        "feed": feed,
        "entries": entries,
        "newswatch_notes": [],
    }


def _read_atom_entry(element: ET.Element, base: str, lang: str | None) -> dict[str, Any]:
    if element.attrib:
        raise _NotPlain("entry")
    entry: dict[str, Any] = {}
    seen: set[str] = set()
    tags: list[dict[str, Any]] = []
    for child in element:
        tag = child.tag
        if tag in _ATOM_ENTRY_ONCE:
            if tag in seen:
                raise _NotPlain(tag)
            seen.add(tag)
        if tag == _ATOM_LINK:
            href = _atom_link(child, base)
            if href is not None:
                entry["link"] = href
        elif tag == _ATOM_ID:
            if child.attrib:
                raise _NotPlain(tag)
            text = _plain_text(child)
            if text:
                text = _urljoin(base, text)
            entry["id"] = text
            entry.setdefault("link", text)  # feedparser: an Atom id is a permalink guid
        elif tag == _ATOM_TITLE:
            _atom_text_type(child)
            entry["title"] = _plain_text(child)
            entry["title_detail"] = {"language": lang}
        elif tag == _ATOM_SUMMARY:
            kind = _atom_text_type(child)
            entry["summary"] = _plain_text(child)
            entry["summary_detail"] = {"type": kind}
        elif tag == _ATOM_CONTENT:
            kind = _atom_text_type(child)
            text = _plain_text(child)
            entry["content"] = [{"type": kind, "value": text}]
            entry.setdefault("summary", text)  # feedparser copies it, without its type
        elif tag in (_ATOM_PUBLISHED, _ATOM_UPDATED):
            if child.attrib:
                raise _NotPlain(tag)
            key = "published_parsed" if tag == _ATOM_PUBLISHED else "updated_parsed"
            entry[key] = _date(_plain_text(child))
        elif tag == _ATOM_AUTHOR:
            entry["author"] = _atom_person(child)
        elif tag == _ATOM_CATEGORY:
            if not child.attrib.keys() <= _CATEGORY_ATTRIBUTES:
                raise _NotPlain(tag)
            _category(
                tags, _plain_text(child), child.get("term"), child.get("scheme"), child.get("label")
            )
        elif tag == _ATOM_RIGHTS:
            _atom_text_type(child)
            _plain_text(child)
        else:
            raise _NotPlain(tag)
    entry["tags"] = tags
    return entry


# An absolute http(s) URL that urllib's urljoin gives back unchanged whatever the base:
# a lower-case scheme, a host without brackets, no ";" in the path (urlparse would split
# off params), no empty "?" or "#" (urlunparse would drop them), printable ASCII only
# (nothing for urlsplit to strip), and no extra "/" after "//" (feedparser's fix-up).
_PLAIN_ABSOLUTE_URL = re.compile(
    r"https?://[^\x00-\x20\x7f-\U0010ffff/?#\[\]\\]+"
    r"(?:/[^\x00-\x20\x7f-\U0010ffff?#;\\]*)?"
    r"(?:\?[^\x00-\x20\x7f-\U0010ffff#\\]+)?"
    r"(?:#[^\x00-\x20\x7f-\U0010ffff]+)?"
)
# A URI with a scheme and no authority ("tag:", "urn:", "mailto:"): urljoin returns it
# as it is when its scheme is not the base's.
_SCHEME_ONLY_URI = re.compile(r"([a-z][a-z0-9+.-]*):(?!//)[^\x00-\x20\x7f-\U0010ffff]*")


@functools.lru_cache(maxsize=256)
def _base_scheme(base: str) -> str | None:
    """The scheme urljoin reads from `base`, or None if urllib cannot split it (feedparser's
    urljoin then gives '')."""
    try:
        return urlsplit(base).scheme
    except ValueError:
        return None


def _urljoin(base: str, uri: str) -> str:
    # feedparser's urljoin costs ~40 us a call; most links and ids come back from it as
    # they went in (tests/test_parse_urljoin.py compares the two)
    if _PLAIN_ABSOLUTE_URL.fullmatch(uri):
        if not base or _base_scheme(base) is not None:
            return uri
    elif (other := _SCHEME_ONLY_URI.fullmatch(uri)) and (
        not base or _base_scheme(base) not in (None, other.group(1))
    ):
        return uri
    joined: str = feedparser.mixin._urljoin(base, uri)
    return joined


def _prepare(data: bytes, notes: list[str]) -> bytes:
    utf16 = _bomless_utf16(data)
    if utf16:
        text = data.decode(utf16, "replace").encode("utf-8")
        data = _XML_ENCODING.sub(rb"\1utf-8", text, count=1)
        notes.append(f"BOM-less {utf16.upper()} transcoded to UTF-8")
    stripped = _XML_DECLARATION_AFTER_SPACE.sub(lambda m: m.group(1) or b"", data, count=1)
    if len(stripped) != len(data):
        notes.append("whitespace before the XML declaration removed")
        data = stripped
    return _defuse_doctype(data, notes)


def _looks_like_html(body: bytes) -> bool:
    head = body[:4096]
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        head = head.decode("utf-16", "replace").encode("utf-8", "replace")
    head = head.lower()
    return any(tag in head for tag in (b"<html", b"<!doctype html", b"<head", b"<body"))


def _bomless_utf16(data: bytes) -> str | None:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or len(data) < 4:
        return None  # a BOM: feedparser reads those itself
    b0, b1, b2, b3 = data[0], data[1], data[2], data[3]
    if b0 == 0 and b1 != 0 and b2 == 0 and b3 != 0:
        return "utf-16-be"
    if b0 != 0 and b1 == 0 and b2 != 0 and b3 == 0:
        return "utf-16-le"
    return None


def _defuse_doctype(data: bytes, notes: list[str]) -> bytes:
    doctype = _DOCTYPE.search(data, 0, 65536)
    if doctype is None or data[doctype.end() : doctype.end() + 1] != b"[":
        return data  # none, or only an external DTD reference, which is never loaded
    end = _SUBSET_END.search(data, doctype.end())
    if end is None:
        notes.append("unterminated DOCTYPE removed")
        return data[: doctype.start()] + data[doctype.end() + 1 :]
    subset = data[doctype.end() + 1 : end.start()]
    entities = _SAFE_ENTITY.findall(subset)[:64]
    expansion = sum(len(value) * data.count(b"&" + name + b";") for name, value in entities)
    if expansion > ENTITY_EXPANSION_LIMIT:
        notes.append("entity declarations dropped: they would expand too far")
        entities = []
    elif len(entities) != subset.count(b"<!"):
        notes.append("external or nested entity declarations dropped")
    replacement = b""
    if entities:
        # one declaration per line, the layout feedparser's own DOCTYPE handling expects
        lines = b"".join(b'<!ENTITY %s "%s">\n' % (name, value) for name, value in entities)
        replacement = b"\n<!DOCTYPE " + doctype.group(1) + b" [\n" + lines + b"]>"
    return data[: doctype.start()] + replacement + data[end.end() :]


# FeedParserDict.get maps legacy key names on every call (most of the conversion time);
# the canonical keys read here are stored as they are, so plain dict.get finds them.
_get = dict.get


def _to_parsed_feed(result: feedparser.FeedParserDict, url: str) -> ParsedFeed:
    version = _get(result, "version") or ""
    raw_entries = _get(result, "entries") or []
    feed = _get(result, "feed") or {}
    warnings: list[str] = list(_get(result, "newswatch_notes") or [])
    if _get(result, "bozo"):
        exc = _get(result, "bozo_exception")
        warnings.insert(0, f"{type(exc).__name__}: {exc}" if exc else "ill-formed document")
    if not version and not raw_entries:
        if _get(result, "bozo"):
            raise Unparsable(f"no feed could be read ({'; '.join(warnings)})")
        raise NotAFeed("an XML document that is neither RSS nor Atom")
    language = (
        _str(_get(feed, "language"))
        or _str(_get(_get(result, "headers") or {}, "content-language"))
        or None
    )
    entries = [_entry(e, url, language) for e in raw_entries]
    return ParsedFeed(
        format=version or "unknown",
        title=clean_text(_str(_get(feed, "title"))),
        link=_str(_get(feed, "link")) or None,
        language=language or None,
        entries=entries,
        warning="; ".join(warnings) or None,
    )


def _entry(e: dict[str, Any], url: str, feed_language: str | None) -> Entry:
    link = _str(_get(e, "link")) or None
    base = link or url
    raw_summary, summary_detail = _get(e, "summary"), _get(e, "summary_detail")
    summary = _html(raw_summary, summary_detail, base)
    content = None
    contents = _get(e, "content") or []
    if contents:
        # prefer the HTML rendition when a feed offers several
        best = next((c for c in contents if "html" in (_get(c, "type") or "")), contents[0])
        value = _get(best, "value")
        if (
            value == raw_summary
            and isinstance(value, str)
            and (_html_type(best) == _html_type(summary_detail))
        ):
            content = summary or None  # the same HTML (feeds often repeat it): cleaned once
        else:
            content = _html(value, best, base) or None
    if not summary and content:
        summary = content
    tags = []
    for tag in _get(e, "tags") or []:
        term = clean_text(_str(_get(tag, "label")) or _str(_get(tag, "term")))
        if term and term not in tags:
            tags.append(term)
    published = parse_date(_get(e, "published_parsed")) or parse_date(_get(e, "created_parsed"))
    updated = parse_date(_get(e, "updated_parsed"))
    title_detail = _get(e, "title_detail") or {}
    return Entry(
        title=clean_text(_str(_get(e, "title"))),
        link=link,
        guid=clean_line(_str(_get(e, "id"))) or None,
        summary=summary,
        content=content,
        author=clean_text(_str(_get(e, "author"))) or None,
        # Atom feeds often carry only <updated>: it is the best publication date they give
        published=published or updated,
        updated=updated,
        language=_str(_get(title_detail, "language")) or feed_language or None,
        tags=tuple(tags),
    )


def _html(value: object, detail: object, base: str) -> str:
    text = _str(value)
    if not text:
        return ""
    if _html_type(detail) == "text/plain":
        text = escape(text)
    return sanitize_html(text, base)


def _html_type(detail: object) -> object:
    return detail.get("type") if isinstance(detail, dict) else None


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


class _FeedLinkFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "link":
            return
        a = {k.lower(): (v or "") for k, v in attrs}
        rels = a.get("rel", "").lower().split()
        kind = a.get("type", "").split(";", 1)[0].strip().lower()
        if "alternate" in rels and kind in _FEED_TYPES and a.get("href", "").strip():
            self.hrefs.append(a["href"].strip())


def find_feed_link(page: bytes, url: str) -> str | None:
    """The first feed an HTML page names with <link rel="alternate">, absolute, or None."""
    finder = _FeedLinkFinder()
    try:
        finder.feed(page[:262_144].decode("utf-8", "replace"))
        finder.close()
    except (AssertionError, ValueError):
        pass
    for href in finder.hrefs:  # the page's first feed is its main one
        try:
            absolute = urljoin(url, href)
        except ValueError:
            continue
        if absolute.startswith(("http://", "https://")):
            return absolute
    return None
