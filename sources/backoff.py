"""When to poll a feed next, from the outcome of this poll: a pure function.

- success: after the feed's interval;
- `PermanentError` (e.g. 410 Gone): never (None);
- `RateLimited` with a `retry_after`: not before that time (nor before the interval);
- any other failure (transient, content, refused): exponential backoff from the
  interval, doubling with each consecutive failure, capped at `MAX_BACKOFF`, with
  "equal jitter" (a random point in the upper half of the delay) so that feeds that
  failed together (one host down) do not all come back at the same instant.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sources.errors import FeedError, PermanentError, RateLimited

MAX_BACKOFF = timedelta(hours=24)
_MAX_DOUBLINGS = 32  # 2**32 intervals is past any cap; keeps the arithmetic in range


def next_poll_at(
    now: datetime,
    interval: timedelta,
    consecutive_failures: int,
    error: FeedError | None,
    rng: random.Random,
    *,
    max_backoff: timedelta = MAX_BACKOFF,
) -> datetime | None:
    """The time to poll next, or None for never.

    `consecutive_failures` counts this poll's failure too (1 after the first failure);
    it is ignored on success. The delay after a failure is never shorter than
    `interval`: a failing feed is not polled more often than a healthy one.
    """
    if error is None:
        return now + interval
    if isinstance(error, PermanentError):
        return None
    if isinstance(error, RateLimited) and error.retry_after is not None:
        return max(error.retry_after, now + interval)
    doublings = min(max(consecutive_failures, 1), _MAX_DOUBLINGS)
    ceiling = max(min(interval * (1 << doublings), max_backoff), interval)
    floor = max(ceiling / 2, interval)
    delay = floor + (ceiling - floor) * rng.random()
    return now + delay
