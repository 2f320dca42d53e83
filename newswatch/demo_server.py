"""A loopback HTTP server for the bundled demo feeds, so `newswatch demo` runs offline.

The six files in `newswatch/demo_feeds/` are fictional news written for newswatch, with
fixed dates in November 2026. A digest only shows recent items, so the server moves every
date in every file by one common delta, chosen so that the newest item of all is about an
hour old at `now`; the order of items, and the gaps between outlets reporting the same
story, stay as written. The bodies are built once per server, so ETag and Last-Modified
are stable for its lifetime and conditional requests get 304, like a real feed host.

It binds 127.0.0.1 on a free port and serves from a daemon thread; it is a fixture for
the demo and the tests, not something to expose. `python -m newswatch.demo_server`
serves the feeds until interrupted, to look at them in a browser or a feed reader.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"

# How old the newest demo item is when served: recent enough for any digest window.
NEWEST_AGE = timedelta(hours=1)

_DIR = Path(__file__).resolve().parent / "demo_feeds"

# file name, outlet name, Content-Type (the media types the formats register).
_MANIFEST: tuple[tuple[str, str, str], ...] = (
    ("kurdistan24.rss.xml", "Kurdistan24 (sample)", "application/rss+xml; charset=utf-8"),
    ("timesofisrael.rss.xml", "Times of Israel (sample)", "application/rss+xml; charset=utf-8"),
    ("dailysabah.atom.xml", "Daily Sabah (sample)", "application/atom+xml; charset=utf-8"),
    ("al-monitor.rss.xml", "Al-Monitor (sample)", "application/rss+xml; charset=utf-8"),
    ("middleeasteye.json", "Middle East Eye (sample)", "application/feed+json; charset=utf-8"),
    ("enabbaladi.atom.xml", "Enab Baladi (sample)", "application/atom+xml; charset=utf-8"),
)

# RSS 2.0 dates (RFC 822 with four-digit years, as RFC 1123 has them) and Atom / JSON
# Feed dates (RFC 3339). Both need a time of day and a zone, so prose such as
# "24 November" in a summary is never rewritten.
_RFC822 = re.compile(
    rb"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),\s*)?\d{1,2}\s+"
    rb"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+\d{4}\s+"
    rb"\d{2}:\d{2}(?::\d{2})?\s+(?:GMT|UTC?|[+-]\d{4})"
)
_RFC3339 = re.compile(rb"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")


@dataclass(frozen=True)
class DemoFeed:
    """One demo feed as served: the outlet's name, the packaged file, the loopback URL."""

    name: str
    path: str
    url: str


@dataclass(frozen=True)
class _Resource:
    body: bytes
    content_type: str
    etag: str
    last_modified: datetime


def demo_feed_files() -> list[Path]:
    """The packaged demo feed files, in the order the server lists them."""
    return [_DIR / file for file, _, _ in _MANIFEST]


def feed_dates(body: bytes) -> list[datetime]:
    """Every RFC 822 and RFC 3339 date in `body`, timezone-aware, in document order."""
    found = [(m.start(), _parse_rfc822(m.group())) for m in _RFC822.finditer(body)]
    found += [(m.start(), _parse_rfc3339(m.group())) for m in _RFC3339.finditer(body)]
    return [d for _, d in sorted(found, key=lambda pair: pair[0])]


def shift_dates(body: bytes, delta: timedelta) -> bytes:
    """`body` with every date moved by `delta`, each written in its original style and zone.

    Weekday names are recomputed, since a shift usually changes them.
    """

    def rfc822(m: re.Match[bytes]) -> bytes:
        moved = _parse_rfc822(m.group()) + delta
        if m.group().endswith(b"GMT"):
            return format_datetime(moved.astimezone(UTC), usegmt=True).encode()
        return format_datetime(moved).encode()

    def rfc3339(m: re.Match[bytes]) -> bytes:
        moved = _parse_rfc3339(m.group()) + delta
        text = moved.isoformat(timespec="seconds")
        if m.group().endswith(b"Z"):
            text = text.removesuffix("+00:00") + "Z"
        return text.encode()

    return _RFC3339.sub(rfc3339, _RFC822.sub(rfc822, body))


def _parse_rfc822(raw: bytes) -> datetime:
    parsed = parsedate_to_datetime(raw.decode("ascii"))
    # "-0000" means UTC with an unknown local zone; the stdlib returns it naive.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _parse_rfc3339(raw: bytes) -> datetime:
    return datetime.fromisoformat(raw.decode("ascii"))


def _build_resources(now: datetime) -> dict[str, _Resource]:
    originals = {file: (_DIR / file).read_bytes() for file, _, _ in _MANIFEST}
    newest = max(d for body in originals.values() for d in feed_dates(body))
    # Whole seconds, so rewritten dates need no fractions.
    delta = timedelta(seconds=int((now - NEWEST_AGE - newest).total_seconds()))
    resources = {}
    for file, _, content_type in _MANIFEST:
        body = shift_dates(originals[file], delta)
        resources["/" + file] = _Resource(
            body=body,
            content_type=content_type,
            etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
            last_modified=max(feed_dates(body)).astimezone(UTC),
        )
    return resources


class DemoServer:
    """The demo feeds on http://127.0.0.1:<free port>/, served from a background thread.

    Use as a context manager; `feeds` is available inside the `with` block. `now`
    (timezone-aware, default: the current time) fixes the date shift, so the same `now`
    always serves the same bytes.
    """

    def __init__(self, *, now: datetime | None = None) -> None:
        if now is not None and now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self._now = now if now is not None else datetime.now(UTC)
        self._resources = _build_resources(self._now)
        self._server: _QuietServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> DemoServer:
        server = _QuietServer((HOST, 0), _handler_for(self._resources))
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="newswatch-demo-server",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port> while the server runs."""
        if self._server is None:
            raise RuntimeError("DemoServer is not running; use it in a `with` block")
        return f"http://{HOST}:{self._server.server_address[1]}"

    @property
    def feeds(self) -> list[DemoFeed]:
        """The demo feeds with their loopback URLs, in `demo_feed_files()` order."""
        base = self.base_url
        return [
            DemoFeed(name=name, path=str(_DIR / file), url=f"{base}/{file}")
            for file, name, _ in _MANIFEST
        ]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up mid-response (a fetch timeout) is not worth a traceback
        # on the demo's terminal; anything else still is.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def _handler_for(resources: dict[str, _Resource]) -> Callable[..., BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "newswatch-demo"
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; with Nagle's algorithm and delayed
        # ACKs each keep-alive response would stall for ~40 ms.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            self._respond(with_body=True)

        def do_HEAD(self) -> None:
            self._respond(with_body=False)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the demo prints its own summary; request lines would drown it

        def _respond(self, *, with_body: bool) -> None:
            resource = resources.get(self.path.split("?", 1)[0])
            if resource is None:
                body = b"not found\n"
                self.send_response(HTTPStatus.NOT_FOUND)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if with_body:
                    self.wfile.write(body)
                return
            not_modified = _not_modified(
                resource, self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
            )
            self.send_response(HTTPStatus.NOT_MODIFIED if not_modified else HTTPStatus.OK)
            self.send_header("ETag", resource.etag)
            self.send_header("Last-Modified", format_datetime(resource.last_modified, usegmt=True))
            self.send_header("Cache-Control", "no-cache")
            if not_modified:
                self.end_headers()
                return
            self.send_header("Content-Type", resource.content_type)
            self.send_header("Content-Length", str(len(resource.body)))
            self.end_headers()
            if with_body:
                self.wfile.write(resource.body)

    return Handler


def _not_modified(
    resource: _Resource, if_none_match: str | None, if_modified_since: str | None
) -> bool:
    # RFC 9110 §13.1.3: If-None-Match, when present, decides alone (weak comparison).
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or resource.etag in tags
    if if_modified_since is not None:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False  # an unparsable date is ignored, as §13.1.3 says
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return resource.last_modified <= since
    return False


def main() -> None:
    """Serve the demo feeds until Ctrl-C, printing their URLs."""
    with DemoServer() as server:
        for feed in server.feeds:
            print(f"{feed.name}: {feed.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
