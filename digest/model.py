"""The digest view model: plain, frozen data that templates see and nothing else.

`digest/` builds a `DigestView` from stored matches (never handing ORM objects to a
template); `digest/render.py` turns it into HTML, text and Markdown. Every string in
here may come from a feed and is untrusted: the renderers escape it, drop non-http(s)
links and clamp highlight spans, so the view model itself carries no markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo


def _require_aware(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {value!r}")


@dataclass(frozen=True, slots=True)
class OutletLink:
    """An outlet (source) that carried a story, with its link to it if any."""

    name: str
    url: str | None = None


@dataclass(frozen=True, slots=True)
class StoryView:
    """One story in a topic section: its best article plus who else reported it.

    `highlights` are half-open `(start, end)` character spans into `snippet` that
    mark the matched terms; out-of-range or overlapping spans are tolerated (the
    renderer clamps and merges them).
    """

    title: str
    url: str | None
    outlets: tuple[OutletLink, ...]
    published: datetime
    snippet: str = ""
    highlights: tuple[tuple[int, int], ...] = ()
    score: float = 0.0
    terms: tuple[str, ...] = ()
    also_reported: tuple[OutletLink, ...] = ()

    def __post_init__(self) -> None:
        _require_aware(self.published, "StoryView.published")


@dataclass(frozen=True, slots=True)
class TopicSection:
    """The stories shown for one topic; `more` counts those left out ("and N more")."""

    name: str
    stories: tuple[StoryView, ...]
    more: int = 0

    def __post_init__(self) -> None:
        if self.more < 0:
            raise ValueError(f"TopicSection.more must be >= 0, got {self.more}")

    @property
    def total(self) -> int:
        """Stories in this section, shown or not."""
        return len(self.stories) + self.more


@dataclass(frozen=True, slots=True)
class DigestView:
    """A whole digest: its name, the reader's timezone, and one section per topic.

    `timezone` is an IANA name (validated here, so rendering cannot fail on it);
    `period_start` is when the previous digest of this name was delivered, or None
    for a first digest.
    """

    name: str
    timezone: str
    generated_at: datetime
    period_start: datetime | None = None
    sections: tuple[TopicSection, ...] = ()

    def __post_init__(self) -> None:
        ZoneInfo(self.timezone)  # raises ZoneInfoNotFoundError for a bad name
        _require_aware(self.generated_at, "DigestView.generated_at")
        if self.period_start is not None:
            _require_aware(self.period_start, "DigestView.period_start")

    @property
    def zone(self) -> ZoneInfo:
        """The digest's timezone as a tzinfo."""
        return ZoneInfo(self.timezone)

    @property
    def total(self) -> int:
        """Stories across all sections, shown or not."""
        return sum(section.total for section in self.sections)

    @property
    def is_empty(self) -> bool:
        """True when there is nothing new to report."""
        return self.total == 0
