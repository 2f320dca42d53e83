"""The fixed digest view model behind the golden files (and the email and browser tests).

Everything is pinned: timezone, times, URLs. Change it only together with the
golden files (see tests/test_render.py for how to regenerate them).
"""

from __future__ import annotations

from datetime import UTC, datetime

from digest.model import DigestView, OutletLink, StoryView, TopicSection

TOPIC = "Israel–Turkey Syria deconfliction"


def _at(hour: int, minute: int, day: int = 25) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def _span(text: str, word: str) -> tuple[int, int]:
    start = text.index(word)
    return (start, start + len(word))


_S1 = (
    "Israeli and Turkish officials held a new round of deconfliction talks on Syria, "
    "aiming to avoid military friction near Palmyra & the T4 air base."
)
_S2 = 'Ankara says coordination with Israel over Syrian airspace is "technical, not political".'
_S3 = "Türkiye's defence ministry confirmed the İsrail hotline <24/7> is operating again."
_S4 = "Wildfires in the Aegean forced evacuations; the EU sent two Canadair planes."


def sample_view() -> DigestView:
    """A two-topic digest with links, an unlinked story, "also reported by" and "and N more"."""
    return DigestView(
        name="daily",
        timezone="Europe/Istanbul",
        generated_at=_at(4, 0),
        period_start=_at(4, 0, day=24),
        sections=(
            TopicSection(
                name=TOPIC,
                stories=(
                    StoryView(
                        title="Israel & Turkey hold deconfliction talks on Syria",
                        url="https://news.example.com/world/2026/11/25/deconfliction?id=7&lang=en",
                        outlets=(OutletLink("Kurdistan24", "https://www.kurdistan24.net/en"),),
                        published=_at(3, 12),
                        snippet=_S1,
                        highlights=(
                            _span(_S1, "Israeli"),
                            _span(_S1, "Turkish"),
                            _span(_S1, "deconfliction"),
                            _span(_S1, "Syria"),
                            _span(_S1, "military friction"),
                        ),
                        score=4.5,
                        terms=("israeli", "turkish", "deconfliction", "syria"),
                        also_reported=(
                            OutletLink("Al-Monitor", "https://www.al-monitor.com/x/123"),
                            OutletLink("Times of Israel", "https://www.timesofisrael.com/y"),
                            OutletLink("Anadolu", None),
                        ),
                    ),
                    StoryView(
                        title="Ankara: Syria coordination with Israel is <technical>",
                        url="https://example.org/ankara-coordination",
                        outlets=(
                            OutletLink("Daily Sabah", "https://www.dailysabah.com/"),
                            OutletLink("Hürriyet Daily News", None),
                        ),
                        published=_at(1, 5),
                        snippet=_S2,
                        highlights=(
                            _span(_S2, "Ankara"),
                            _span(_S2, "coordination"),
                            _span(_S2, "Israel"),
                            _span(_S2, "Syrian"),
                        ),
                        score=3.0,
                        terms=("coordination", "israel", "syrian"),
                    ),
                    StoryView(
                        title="Türkiye–İsrail hattı yeniden açıldı",
                        url=None,
                        outlets=(OutletLink("Anadolu Ajansı", "https://www.aa.com.tr/tr"),),
                        published=_at(22, 40, day=24),
                        snippet=_S3,
                        highlights=(_span(_S3, "Türkiye"), _span(_S3, "İsrail")),
                        score=2.0,
                        terms=("turkiye", "israil"),
                    ),
                ),
                more=4,
            ),
            TopicSection(
                name="Aegean wildfires",
                stories=(
                    StoryView(
                        title="Evacuations as wildfires spread on the Aegean coast",
                        url="https://example.net/fires",
                        outlets=(OutletLink("Ekathimerini", "https://www.ekathimerini.com/"),),
                        published=_at(2, 30),
                        snippet=_S4,
                        highlights=(_span(_S4, "Wildfires"), _span(_S4, "Aegean")),
                        score=1.5,
                        terms=("wildfires", "aegean"),
                    ),
                ),
            ),
        ),
    )


def empty_view() -> DigestView:
    """A digest with nothing new."""
    return DigestView(
        name="daily",
        timezone="Europe/Istanbul",
        generated_at=_at(4, 0),
        period_start=_at(4, 0, day=24),
        sections=(TopicSection(name=TOPIC, stories=()),),
    )
