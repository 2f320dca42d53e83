"""The newswatch schema as SQLAlchemy 2 typed models.

Only `storage/` imports this module. Everything above storage talks in plain
dataclasses; the functions in `storage/` translate.

Keys are fixed-size hex SHA-256 digests (`CHAR(64)`), so an article whose URL is
10,000 characters long still fits a B-tree index on both SQLite and PostgreSQL.
All timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names so Alembic migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

KEY_LENGTH = 64  # hex SHA-256


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware.

    SQLite has no time zones: without this, values read back naive and compare
    wrongly with aware ones.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class Source(Base):
    """A feed to poll: declared in the config file (synced every run) or imported from OPML."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    url: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    language: Mapped[str | None] = mapped_column(String(35))
    poll_interval_s: Mapped[int | None] = mapped_column(Integer)
    origin: Mapped[str] = mapped_column(String(10), default="config")  # config | opml
    active: Mapped[bool] = mapped_column(Boolean, default=True)  # False: removed from the config
    created_at: Mapped[datetime]


class FeedState(Base):
    """Health and HTTP cache state of one source, updated after every fetch."""

    __tablename__ = "feed_states"

    source_id: Mapped[int] = mapped_column(
        ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True
    )
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    last_status: Mapped[str | None] = mapped_column(String(20))  # ok | unchanged | an error kind
    last_http_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_checked_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    next_poll_at: Mapped[datetime | None]
    retry_after: Mapped[datetime | None]  # a server's Retry-After: never polled before it
    gone: Mapped[bool] = mapped_column(Boolean, default=False)
    final_url: Mapped[str | None] = mapped_column(Text)  # after permanent redirects
    pending_redirect_url: Mapped[str | None] = mapped_column(Text)
    pending_redirect_count: Mapped[int] = mapped_column(Integer, default=0)
    items_seen: Mapped[int] = mapped_column(Integer, default=0)


class Story(Base):
    """Near-duplicate articles from different outlets: one wire story, many URLs."""

    __tablename__ = "stories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    representative_article_id: Mapped[int | None] = mapped_column(
        ForeignKey("articles.id", ondelete="SET NULL", use_alter=True)
    )
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    article_count: Mapped[int] = mapped_column(Integer, default=1)


class StoryClock(Base):
    """One row whose `version` every clustering run that assigned an article sets to a
    new random token (`storage.stories.bump_story_clock`).

    A process that keeps its story clusterer between polls reuses it only while the
    token is the one it wrote last; any other run in between means reloading.
    """

    __tablename__ = "story_clock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class Article(Base):
    """One distinct news item, stored once however many feeds carry it."""

    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_LENGTH), unique=True)
    key_kind: Mapped[str] = mapped_column(String(8))  # url | guid | content
    url: Mapped[str | None] = mapped_column(Text)  # the link as the feed gave it
    canonical_url: Mapped[str | None] = mapped_column(Text)
    guid: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[str] = mapped_column(Text, default="")  # sanitized HTML
    content: Mapped[str | None] = mapped_column(Text)  # sanitized HTML
    author: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(35))
    published_at: Mapped[datetime]  # feed date, or first-seen time when missing or absurd
    first_seen_at: Mapped[datetime]
    story_id: Mapped[int | None] = mapped_column(ForeignKey("stories.id", ondelete="SET NULL"))
    fingerprint: Mapped[int | None] = mapped_column(BigInteger)  # unused
    # watch.cluster.sketch of the title and summary: clustering reads it, nothing else
    sketch: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)

    __table_args__ = (
        Index("ix_articles_first_seen_at", "first_seen_at"),
        Index("ix_articles_published_at", "published_at"),
        Index("ix_articles_story_id", "story_id"),
    )


class Sighting(Base):
    """Article × source: who carried an article, and when we first saw it there."""

    __tablename__ = "sightings"

    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    source_id: Mapped[int] = mapped_column(
        ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True
    )
    entry_url: Mapped[str | None] = mapped_column(Text)
    first_seen_at: Mapped[datetime]

    __table_args__ = (Index("ix_sightings_source_id", "source_id"),)


class Topic(Base):
    """A watch topic from the config: a named query."""

    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    query: Mapped[str] = mapped_column(Text)
    min_score: Mapped[float] = mapped_column(Float, default=0.0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # hash of the compiled query (after alias expansion) that stored matches reflect;
    # a different hash means the topic is new or edited and needs a backfill
    backfilled_hash: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Match(Base):
    """Article × topic, with why it matched."""

    __tablename__ = "matches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(Float)
    terms: Mapped[list[str]] = mapped_column(JSON)
    snippet: Mapped[str] = mapped_column(Text)  # plain text; highlight spans in `highlights`
    highlights: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [[start, end], ...]
    matched_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("article_id", "topic_id"),
        Index("ix_matches_topic_id_matched_at", "topic_id", "matched_at"),
    )


class Digest(Base):
    """One delivery attempt of a configured digest (`[[digests]]` name)."""

    __tablename__ = "digests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(10))  # email | markdown | html | text
    status: Mapped[str] = mapped_column(String(10))  # pending | sent | failed
    message_id: Mapped[str | None] = mapped_column(Text)
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    output_path: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_digests_name_status", "name", "status"),)


class DigestItem(Base):
    """A match placed in a digest. Unique per (digest name, channel, match): delivered once."""

    __tablename__ = "digest_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"))
    digest_name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(10))
    match_id: Mapped[int] = mapped_column(ForeignKey("matches.id", ondelete="CASCADE"))

    __table_args__ = (
        UniqueConstraint("digest_name", "channel", "match_id"),
        Index("ix_digest_items_digest_id", "digest_id"),
    )
