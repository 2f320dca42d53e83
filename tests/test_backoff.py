"""sources.backoff: when a feed is polled next, for each kind of outcome."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from sources.backoff import MAX_BACKOFF, next_poll_at
from sources.errors import (
    EmptyBody,
    FeedError,
    FetchTimeout,
    Gone,
    PermanentError,
    RateLimited,
    Refused,
    ServerError,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def rng() -> random.Random:
    return random.Random(1)


def test_success_polls_again_after_the_interval() -> None:
    assert next_poll_at(NOW, HOUR, 0, None, rng()) == NOW + HOUR


def test_success_ignores_earlier_failures() -> None:
    assert next_poll_at(NOW, HOUR, 7, None, rng()) == NOW + HOUR


@pytest.mark.parametrize("error", [Gone("HTTP 410 Gone"), PermanentError("dead")])
def test_permanent_error_means_never(error: FeedError) -> None:
    assert next_poll_at(NOW, HOUR, 1, error, rng()) is None


# (failures, interval, lowest, highest): the delay doubles from the interval and is
# jittered within the upper half, never below the interval, never above the cap.
BACKOFF_TABLE = [
    (1, 10 * MINUTE, 10 * MINUTE, 20 * MINUTE),
    (2, 10 * MINUTE, 20 * MINUTE, 40 * MINUTE),
    (3, 10 * MINUTE, 40 * MINUTE, 80 * MINUTE),
    (4, 10 * MINUTE, 80 * MINUTE, 160 * MINUTE),
    (20, 10 * MINUTE, MAX_BACKOFF / 2, MAX_BACKOFF),
    (10_000, 10 * MINUTE, MAX_BACKOFF / 2, MAX_BACKOFF),
    (3, 48 * HOUR, 48 * HOUR, 48 * HOUR),  # an interval beyond the cap stays the interval
]


@pytest.mark.parametrize(("failures", "interval", "lowest", "highest"), BACKOFF_TABLE)
def test_transient_failure_backs_off_exponentially_with_jitter_and_a_cap(
    failures: int, interval: timedelta, lowest: timedelta, highest: timedelta
) -> None:
    generator = random.Random(42)
    delays = [
        next_poll_at(NOW, interval, failures, ServerError("HTTP 500"), generator)
        for _ in range(200)
    ]
    assert all(d is not None and NOW + lowest <= d <= NOW + highest for d in delays)


def test_feeds_failing_together_come_back_at_different_times() -> None:
    generator = random.Random(7)
    times = {next_poll_at(NOW, HOUR, 3, FetchTimeout("t"), generator) for _ in range(100)}
    assert len(times) > 90


@pytest.mark.parametrize("error", [EmptyBody("empty"), Refused("refused"), FeedError("?")])
def test_other_failures_back_off_like_transient_ones(error: FeedError) -> None:
    assert next_poll_at(NOW, HOUR, 2, error, rng()) == next_poll_at(
        NOW, HOUR, 2, ServerError("HTTP 500"), rng()
    )


def test_rate_limited_waits_until_retry_after() -> None:
    later = NOW + timedelta(hours=6)
    assert next_poll_at(NOW, HOUR, 1, RateLimited("HTTP 429", later), rng()) == later


def test_rate_limited_with_a_short_retry_after_still_waits_the_interval() -> None:
    soon = NOW + timedelta(seconds=30)
    assert next_poll_at(NOW, HOUR, 1, RateLimited("HTTP 429", soon), rng()) == NOW + HOUR


def test_rate_limited_without_retry_after_backs_off() -> None:
    when = next_poll_at(NOW, HOUR, 3, RateLimited("HTTP 429", None), rng())
    assert when is not None
    assert NOW + 4 * HOUR <= when <= NOW + 8 * HOUR
