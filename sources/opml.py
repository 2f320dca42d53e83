"""OPML subscription lists in and out: the feeds, their names, and their categories as tags.

Reading is forgiving and safe. The DOCTYPE is removed before parsing, so no entity is
ever declared, expanded or fetched; exported files often carry bare "&" and HTML
entities such as "&nbsp;" in titles, and those are repaired and parsed again rather than
rejected. Categories come from nesting (a feed inside outlines "News" > "Middle East"
gets the tags ("News", "Middle East")) and from OPML 2.0's `category` attribute
("/News/Middle East,Turkey").

Writing nests each feed under outlines named after its tags, in order, so that reading
the file back gives the same feeds with the same tags.
"""

from __future__ import annotations

import html.entities
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from sources.clean import clean_line

_DOCTYPE = re.compile(rb"<!DOCTYPE[^\[>]*(\[.*?\]\s*)?>", re.IGNORECASE | re.DOTALL)
_ENTITY_REF = re.compile(rb"&(#[0-9]+;|#x[0-9a-fA-F]+;|[A-Za-z][A-Za-z0-9]*;?)?")
_XML_ENTITIES = {b"amp;", b"lt;", b"gt;", b"quot;", b"apos;"}
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class OpmlError(ValueError):
    """The data is not an OPML document, even after repairs."""


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    """One subscription: display name, feed URL, and tags from its categories."""

    name: str
    url: str
    tags: tuple[str, ...] = ()


def read_opml(data: bytes) -> list[OpmlFeed]:
    """The feeds listed in the OPML document `data`, first occurrence of each URL only."""
    root = _parse(_DOCTYPE.sub(b"", data, count=1))
    if root.tag.lower() != "opml":
        raise OpmlError(f"not an OPML document (root element <{root.tag}>)")
    body = next((child for child in root if child.tag.lower() == "body"), None)
    feeds: list[OpmlFeed] = []
    seen: set[str] = set()
    if body is not None:
        _walk(body, (), feeds, seen)
    return feeds


def _walk(
    element: ET.Element, path: tuple[str, ...], feeds: list[OpmlFeed], seen: set[str]
) -> None:
    for outline in element:
        if not isinstance(outline.tag, str) or outline.tag.lower() != "outline":
            continue
        attrs = {k.lower(): v for k, v in outline.attrib.items()}
        label = clean_line(attrs.get("text") or attrs.get("title"))
        url = (attrs.get("xmlurl") or "").strip()
        if url:
            if url not in seen:
                seen.add(url)
                tags = _unique(path + _categories(attrs.get("category")))
                # a source name is at most 200 characters (the config's and the schema's limit)
                feeds.append(OpmlFeed(name=(label or url)[:200], url=url, tags=tags))
            continue
        _walk(outline, (*path, label) if label else path, feeds, seen)


def _categories(attribute: str | None) -> tuple[str, ...]:
    if not attribute:
        return ()
    parts = (clean_line(p) for c in attribute.split(",") for p in c.split("/"))
    return tuple(p for p in parts if p)


def _unique(tags: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(tags))


def _parse(data: bytes) -> ET.Element:
    try:
        return ET.fromstring(data)  # noqa: S314 (no DOCTYPE left: nothing to expand)
    except ET.ParseError as first:
        repaired = _ENTITY_REF.sub(_repair_reference, data)
        try:
            return ET.fromstring(repaired)  # noqa: S314
        except ET.ParseError:
            raise OpmlError(f"not a readable OPML document: {first}") from None


def _repair_reference(match: re.Match[bytes]) -> bytes:
    ref = match.group(1)
    if ref is None:
        return b"&amp;"  # a bare ampersand
    if ref.startswith(b"#") or ref in _XML_ENTITIES:
        return match.group(0)
    name = ref.decode("ascii")
    text = html.entities.html5.get(name) or html.entities.html5.get(name + ";")
    if text is None:
        return b"&amp;" + ref  # unknown: keep it as literal text
    return "".join(f"&#{ord(ch)};" for ch in text).encode("ascii")


def write_opml(feeds: Iterable[OpmlFeed], title: str) -> bytes:
    """An OPML 2.0 document (UTF-8) listing `feeds`, nested by their tags."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = _xml_text(title)
    ET.SubElement(head, "dateCreated").text = format_datetime(datetime.now(UTC), usegmt=True)
    body = ET.SubElement(root, "body")
    folders: dict[tuple[str, ...], ET.Element] = {(): body}
    for feed in feeds:
        parent = body
        for depth in range(1, len(feed.tags) + 1):
            path = feed.tags[:depth]
            folder = folders.get(path)
            if folder is None:
                name = _xml_text(path[-1])
                folder = ET.SubElement(parent, "outline", text=name, title=name)
                folders[path] = folder
            parent = folder
        name = _xml_text(feed.name)
        ET.SubElement(
            parent, "outline", type="rss", text=name, title=name, xmlUrl=_xml_text(feed.url)
        )
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def _xml_text(s: str) -> str:
    """`s` without the characters XML 1.0 cannot carry."""
    return _XML_INVALID.sub("", s)
