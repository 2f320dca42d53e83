"""Plain data passed between the source stages: fetch → parse → identity.

No I/O and no database here; `storage/` turns these into rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Entry:
    """One item of a feed, cleaned for storage.

    Text fields have NUL and control characters removed and whitespace normalised;
    `summary` and `content` are sanitized HTML (safe to display), `title` is plain text.
    `published` is UTC; it is None when the feed gave no usable date (the caller
    substitutes the time it first saw the entry).
    """

    title: str
    link: str | None
    guid: str | None
    summary: str = ""
    content: str | None = None
    author: str | None = None
    published: datetime | None = None
    updated: datetime | None = None
    language: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What `sources.parse.parse_feed` makes of a response body."""

    format: str  # rss20 | atom10 | jsonfeed11 | ... (feedparser's `version` or ours)
    title: str
    link: str | None
    language: str | None
    entries: list[Entry] = field(default_factory=list)
    # feedparser's "bozo" reason when the document was ill-formed but still yielded entries
    warning: str | None = None
