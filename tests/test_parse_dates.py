"""`sources.parse._date` reads a date exactly as feedparser's `_parse_date` does.

The fast path reads the two common layouts (W3C-DTF, RFC 822 with a numeric or GMT
zone) itself; these tests compare it with feedparser on generated dates, valid and not
(day 31 of a short month, hour 24, second 61, year 0001 or 9999, zones up to ±99:99),
and on near misses that only feedparser's other handlers read.
"""

from __future__ import annotations

import random

import pytest
from feedparser.datetimes import _parse_date

from sources.parse import _date

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
YEARS = ("0000", "0001", "1970", "1999", "2024", "2026", "2100", "9999")
RFC822_ZONES = ("GMT", "+0000", "-0000", "-0500", "+0530", "+1400", "-1200", "+9959", "-9999")
W3DTF_ZONES = ("Z", "+00:00", "-00:00", "-05:00", "+05:30", "+14:00", "-12:00", "+99:59")


def _generated(count: int) -> list[str]:
    rng = random.Random(4)

    def two(low: int, high: int) -> str:
        return f"{rng.randint(low, high):02d}"

    dates = []
    for _ in range(count):
        year = rng.choice(YEARS) if rng.random() < 0.3 else str(rng.randint(1000, 3000))
        clock = f"{two(0, 25)}:{two(0, 61)}:{two(0, 61)}"
        if rng.random() < 0.5:
            day, month = rng.choice(DAYS), rng.choice(MONTHS)
            dates.append(f"{day}, {two(0, 32)} {month} {year} {clock} {rng.choice(RFC822_ZONES)}")
        else:
            dates.append(f"{year}-{two(0, 13)}-{two(0, 32)}T{clock}{rng.choice(W3DTF_ZONES)}")
    return dates


def test_generated_dates_read_as_feedparser_reads_them() -> None:
    dates = _generated(50_000)
    assert [_date(d) for d in dates] == [_parse_date(d) for d in dates]
    # valid and invalid dates are both well represented
    assert 3_000 < sum(1 for d in dates if _parse_date(d) is None) < 40_000


@pytest.mark.parametrize(
    "text",
    [
        "Wed, 02 Dec 2026 22:09:16 +0000",
        "Sat, 31 Oct 2026 23:59:59 -0500",
        "Thu, 01 Jan 1970 00:00:00 GMT",
        "Sun, 29 Feb 2025 10:00:00 +0000",  # no such day: feedparser's later handlers try
        "Mon, 01 Jan 0001 00:30:00 +0100",  # before year 1 in UTC
        "Fri, 31 Dec 9999 23:30:00 -0100",  # after 9999 in UTC
        "2026-12-02T22:09:16Z",
        "2026-12-02T22:09:16+05:30",
        "2026-12-02T24:00:00Z",
        "2026-02-30T10:00:00Z",
        "2026-12-02t22:09:16z",
        "2026-12-02T22:09:16.123Z",
        "2026-12-02T22:09Z",
        "2026-12-02",
        "Wed, 2 Dec 2026 22:09:16 +0000",
        "Wed, 02 Dec 26 22:09:16 EST",
        "Wed, 02 Sept 2026 22:09:16 +0000",
        "02 Dec 2026 22:09:16 +0000",
        "Wed,  02 Dec 2026 22:09:16 +0000",
        " 2026-12-02T22:09:16Z",
        "2026-12-02T22:09:16Z ",
        "",
        "tomorrow",
    ],
)
def test_a_date_reads_as_feedparser_reads_it(text: str) -> None:
    assert _date(text) == _parse_date(text)
