"""Plain dataclasses that go in and out of `storage/`.

Everything above storage (sources, watch, digest, flows, the CLI) speaks these,
never ORM objects, so no caller ever holds a row bound to a closed session.
All datetimes are timezone-aware UTC.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field, fields
from datetime import datetime


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A feed as declared in the config file or an OPML outline."""

    name: str
    url: str
    tags: tuple[str, ...] = ()
    language: str | None = None
    poll_interval_s: int | None = None


@dataclass(frozen=True, slots=True)
class SourceRow:
    """A stored source, as `all_sources` lists it (for export-opml)."""

    id: int
    name: str
    url: str
    tags: tuple[str, ...]
    language: str | None
    poll_interval_s: int | None
    origin: str
    active: bool
    final_url: str | None


@dataclass(frozen=True, slots=True)
class DueSource:
    """What one poll of one feed needs: where to fetch and the HTTP cache validators.

    `url` is the adopted permanent-redirect target when there is one, else the
    configured URL. `poll_interval_s` is the source's own interval or the default.
    """

    id: int
    name: str
    url: str
    etag: str | None
    last_modified: str | None
    poll_interval_s: int
    consecutive_failures: int = 0


@dataclass(frozen=True, slots=True)
class ArticleRecord:
    """One article to store, already identified and cleaned by `sources/`.

    `key` is the fixed-size identity hash and `key_kind` says what it hashes
    (url | guid | content). `published_at` None means "no usable date": storage
    uses the time it first saw the article.
    """

    key: str
    key_kind: str
    url: str | None
    canonical_url: str | None
    guid: str | None
    title: str
    summary: str
    content: str | None
    author: str | None
    language: str | None
    published_at: datetime | None
    entry_url: str | None
    # The plain text topic matching reads (`sources.clean.match_text` of the
    # summary and content as stored), when the parse worker process computed it.
    match_text: str | None = None
    # The story clustering signature of the title and summary as stored, without what
    # most entries of its feed carry (`watch.cluster.feed_sketches`), where the feed
    # was parsed.
    sketch: bytes | None = None

    # A poll's parse worker sends every record back to the storing process. Pickled as
    # its field values, a record unpickles through `__init__`: a slotted dataclass's own
    # `__getstate__`/`__setstate__` look up its fields on every call (pickling and
    # unpickling a feed's 50 records: 0.40 → 0.26 ms).
    def __reduce__(self) -> tuple[type[ArticleRecord], tuple[object, ...]]:
        return ArticleRecord, _record_values(self)


# The fields in `__init__`'s order, read in one C call.
_record_values = operator.attrgetter(*(f.name for f in fields(ArticleRecord)))


@dataclass(frozen=True, slots=True)
class NewArticle:
    """An article a `store_articles` call inserted: its id and the text topic matching
    reads, exactly as stored (so matching needs no read back)."""

    id: int
    title: str
    summary: str
    content: str | None
    match_text: str | None = None  # the record's, if it came with one


def without_nul(value: str | None) -> str | None:
    """`value` as stored: PostgreSQL refuses NUL in text (sources/ strips it already,
    so one stray NUL must not fail a whole batch here either)."""
    if value is None or "\x00" not in value:
        return value
    return value.replace("\x00", "")


@dataclass(frozen=True, slots=True)
class StoreResult:
    """What one `store_articles` call did.

    `new_article_ids` are the articles this call inserted (not ones a concurrent
    poll inserted first), so topic matching runs once per article; `new_articles`
    are the same articles with their text, in the same (id) order.
    `duplicates` counts records that were not new articles, repeats inside the batch
    included.
    """

    new_article_ids: list[int]
    new_sightings: int
    duplicates: int
    new_articles: list[NewArticle] = field(default_factory=list)
    # Articles stored before whose text this call replaced with a fuller copy's (see
    # `storage.ingest`): topic matching reads them again.
    revised_articles: list[NewArticle] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FeedOutcome:
    """The result of polling one feed, to be recorded on its feed state.

    `status` is "ok", "unchanged" (304) or an error kind from `sources.errors`;
    only "ok" and "unchanged" count as success. `next_poll_at` and `retry_after`
    are decided by the caller (backoff, Retry-After). `permanent_redirect` is the
    target of a 301/308 seen on this fetch; the same target three fetches in a row
    is adopted as the feed's URL. `gone` marks the feed as never polled again (410).
    """

    source_id: int
    status: str
    http_status: int | None
    error: str | None
    etag: str | None
    last_modified: str | None
    checked_at: datetime
    next_poll_at: datetime | None
    retry_after: datetime | None = None
    gone: bool = False
    permanent_redirect: str | None = None
    new_items: int = 0


SUCCESS_STATUSES = frozenset({"ok", "unchanged"})


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """One row of `newswatch status`. `articles` counts distinct articles sighted in the feed."""

    name: str
    url: str
    last_status: str | None
    last_error: str | None
    consecutive_failures: int
    last_checked_at: datetime | None
    last_success_at: datetime | None
    next_poll_at: datetime | None
    gone: bool
    articles: int
    source_id: int = 0
    active: bool = True
    last_http_status: int | None = None
    retry_after: datetime | None = None
    final_url: str | None = None


@dataclass(frozen=True, slots=True)
class ExportedSighting:
    """A source that carried an exported article."""

    name: str
    url: str
    first_seen: datetime
    entry_url: str | None = None


@dataclass(frozen=True, slots=True)
class ExportedMatch:
    """A topic an exported article matched."""

    topic: str
    score: float
    terms: tuple[str, ...]
    matched_at: datetime


@dataclass(frozen=True, slots=True)
class ExportedArticle:
    """One stored article with everything `newswatch export` prints about it."""

    id: int
    key: str
    key_kind: str
    url: str | None
    canonical_url: str | None
    guid: str | None
    title: str
    summary: str
    content: str | None
    author: str | None
    language: str | None
    published_at: datetime
    first_seen_at: datetime
    sources: tuple[ExportedSighting, ...] = ()
    matches: tuple[ExportedMatch, ...] = field(default_factory=tuple)
    story_id: int | None = None  # the article's story (None until clustering has run)
