"""Every way polling one feed can fail, as a small tree of exceptions.

Each failure is stored on the feed (`kind` becomes the feed's last status, `str(err)`
its last error) and decides when the feed is polled next. None of them stops the
other feeds.

    FeedError                  anything that stops one feed this time
    ├── TransientError         may work later: retry with exponential backoff and jitter
    │   ├── FetchTimeout       the connect, read or total deadline passed
    │   ├── ConnectionFailed   DNS failure, refused or reset connection, TLS error
    │   ├── ServerError        HTTP 5xx without Retry-After
    │   ├── HTTPStatusError    another unexpected status (401, 403, 404, ...)
    │   ├── RedirectError      a redirect loop or a chain longer than allowed
    │   └── RateLimited        429, or 503 with Retry-After: not polled before `retry_after`
    ├── PermanentError         will not work again: the feed is marked gone, no more polls
    │   └── Gone               HTTP 410
    ├── ContentError           the server answered, but not with a usable feed; feed kept
    │   ├── TooLarge           the body passed the size cap (counted after decompression)
    │   ├── EmptyBody          nothing to parse
    │   ├── NotAFeed           an HTML page or another document (names the feed it links to)
    │   └── Unparsable         looked like a feed but nothing could be read from it
    └── Refused                the URL or a redirect points where newswatch never goes
                               (link-local, cloud metadata, public → private redirect)
"""

from __future__ import annotations

from datetime import datetime


class FeedError(Exception):
    """Anything that stops one feed this time; stored on the feed."""

    kind = "error"


class TransientError(FeedError):
    """May work later: the feed is retried with exponential backoff and jitter."""

    kind = "transient"


class FetchTimeout(TransientError):
    """The connect, read or total deadline passed."""

    kind = "timeout"


class ConnectionFailed(TransientError):
    """DNS failure, refused or reset connection, TLS error."""

    kind = "connection"


class ServerError(TransientError):
    """The server answered 5xx."""

    kind = "server_error"


class HTTPStatusError(TransientError):
    """An unexpected HTTP status such as 401, 403 or 404."""

    kind = "http_error"


class RedirectError(TransientError):
    """A redirect loop, or a redirect chain longer than allowed."""

    kind = "redirect"


class RateLimited(TransientError):
    """429, or 503 with Retry-After: the feed is not polled again before `retry_after`."""

    kind = "rate_limited"

    def __init__(self, message: str, retry_after: datetime | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[type[RateLimited], tuple[str, datetime | None]]:
        # Exceptions pickle as cls(*args), and args holds only the message.
        return (type(self), (str(self), self.retry_after))


class PermanentError(FeedError):
    """Will not work again: the feed is marked gone and no longer polled."""

    kind = "permanent"


class Gone(PermanentError):
    """HTTP 410 Gone."""

    kind = "gone"


class ContentError(FeedError):
    """The server answered, but not with a usable feed; the feed is kept."""

    kind = "content"


class TooLarge(ContentError):
    """The body passed the size cap (counted after decompression)."""

    kind = "too_large"


class EmptyBody(ContentError):
    """The response had no body to parse."""

    kind = "empty"


class NotAFeed(ContentError):
    """An HTML page or another document that is not a feed."""

    kind = "not_a_feed"

    def __init__(self, message: str, alternate_url: str | None = None) -> None:
        if alternate_url:
            message = f"{message}; the page links to a feed at {alternate_url}"
        super().__init__(message)
        self.alternate_url = alternate_url


class Unparsable(ContentError):
    """Looked like a feed, but nothing could be read from it."""

    kind = "unparsable"


class Refused(FeedError):
    """The URL or a redirect points where newswatch never goes (SSRF guard)."""

    kind = "refused"
