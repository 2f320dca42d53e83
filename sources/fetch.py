"""Fetch many feeds concurrently, politely and safely: bytes and HTTP metadata, no parsing.

`fetch_feeds` takes `FetchRequest`s and yields one `FetchResult` per request as each
completes. It never raises for one feed's failure: every failure becomes a
`FeedError` from `sources.errors` on that feed's result.

How each guarantee is kept:

- Bounded work: at most `concurrency` requests (and so bodies) in flight, at most
  `per_host` per host name (keyed on the URL's host; redirect hops elsewhere are also
  held to `per_host` by the aiohttp connector). Requests for a busy host wait without
  holding a slot, so one big host does not starve the others.
- Deadlines: connect and read timeouts go to the transport; the total deadline is an
  `asyncio.timeout` around the whole chain of hops and the body, so it holds against
  a server that drips a byte a second or never answers.
- Redirects are followed here, not by httpx, so each hop passes the SSRF guard
  (`sources.netguard`), loops and long chains are caught, and a chain of only 301/308
  is reported as `permanent_redirect` (the caller updates the stored URL after seeing
  it repeatedly).
- Bodies are read raw and decoded here (gzip, deflate, br, stacked encodings, and a
  gzip body the server forgot to declare), in pieces of at most 64 KiB, counting
  against `max_bytes` after decompression: a decompression bomb stops at the cap with
  `TooLarge` and memory stays near `max_bytes` per request. All bodies being read
  share `max_bytes_in_flight`; a body that would pass it fails as a `TransientError`
  (retried later), so 50 hostile feeds at once cannot take 50 × `max_bytes`.
- Conditional GET: If-None-Match / If-Modified-Since from the request; 304 gives
  "not_modified".

The default transport is httpx's API over aiohttp (`httpx_aiohttp`): on loopback it
costs a fraction of the CPU per request of httpx's own pool. Pass `transport=` to use
another (`httpx.AsyncHTTPTransport()`, or `httpx.MockTransport` in unit tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http
import ssl
import time
import zlib
from collections import Counter, deque
from collections.abc import AsyncGenerator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from importlib import metadata
from typing import Literal, Protocol
from urllib.parse import urldefrag, urljoin, urlsplit

import aiohttp
import brotli
import httpx
from httpx_aiohttp import AiohttpTransport

from sources.errors import (
    ConnectionFailed,
    EmptyBody,
    FeedError,
    FetchTimeout,
    Gone,
    HTTPStatusError,
    RateLimited,
    RedirectError,
    ServerError,
    TooLarge,
    TransientError,
    Unparsable,
)
from sources.netguard import GuardedResolver, NetGuard


def _version() -> str:
    try:
        return metadata.version("newswatch")
    except metadata.PackageNotFoundError:
        return "0"


USER_AGENT = f"newswatch/{_version()} (+https://github.com/newswatch/newswatch)"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
ACCEPT_ENCODING = "gzip, deflate, br"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT_REDIRECTS = frozenset({301, 308})
_PIECE = 64 * 1024  # most bytes any decoder produces at once
_SNIFFED_GZIP_LAYERS = 2  # undeclared gzip inside the declared encodings, at most


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchOptions:
    """How to fetch: limits and deadlines (seconds), sized for the real web."""

    concurrency: int = 50
    per_host: int = 4
    connect_timeout: float = 10
    read_timeout: float = 20
    total_timeout: float = 60  # per feed: every hop and the whole body
    max_bytes: int = 10 * 1024 * 1024  # after decompression
    max_bytes_in_flight: int = 128 * 1024 * 1024  # all bodies being read at once
    max_redirects: int = 5
    user_agent: str = USER_AGENT

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.per_host < 1:
            raise ValueError("concurrency and per_host must be at least 1")
        if min(self.connect_timeout, self.read_timeout, self.total_timeout) <= 0:
            raise ValueError("timeouts must be positive")
        if self.max_bytes < 1 or self.max_redirects < 0:
            raise ValueError("max_bytes must be positive and max_redirects not negative")
        if self.max_bytes_in_flight < self.max_bytes:
            raise ValueError("max_bytes_in_flight must be at least max_bytes")


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """One feed to fetch, with the validators stored from its last fetch."""

    key: int  # the source id; echoed back
    url: str
    etag: str | None = None
    last_modified: str | None = None
    trusted: bool = True  # URL listed by the operator: may point at private/loopback addresses


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What came of one `FetchRequest`."""

    request: FetchRequest
    status: Literal["ok", "not_modified", "error"]
    http_status: int | None
    body: bytes | None  # only for "ok"
    content_type: str | None
    etag: str | None
    last_modified: str | None
    final_url: str  # after redirects
    permanent_redirect: str | None  # target when the chain was only 301/308
    error: FeedError | None  # for "error"
    elapsed_s: float


async def fetch_feeds(
    requests: Iterable[FetchRequest],
    options: FetchOptions,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    guard: NetGuard | None = None,
) -> AsyncGenerator[FetchResult, None]:
    """Fetch every request, yielding results as they complete (not in request order).

    `transport` and `guard` are seams: by default an aiohttp-backed transport sized
    by `options` (created and closed here), and a guard using the system resolver.
    An injected transport is left open, so a caller may reuse its connections for
    several batches; it then owns closing it.
    """
    guard = guard or NetGuard()
    budget = _Budget(options.max_bytes_in_flight)
    own_transport = transport is None
    if transport is None:
        transport = _aiohttp_transport(options)
    # Requests go to the transport directly, not through an httpx.AsyncClient: the
    # client's redirects, cookies, auth and proxies are all things we turn off or do
    # ourselves, and its per-request bookkeeping (merging URLs and headers, a cookie
    # jar consulted on every response) cost about as much CPU as the transport itself.
    sender = _Sender(transport, options)
    scheduler = _Scheduler(requests, options.per_host)
    running: dict[asyncio.Task[FetchResult], str] = {}
    try:
        while True:
            while len(running) < options.concurrency:
                picked = scheduler.pop()
                if picked is None:
                    break
                host, request = picked
                task = asyncio.create_task(_fetch_one(sender, request, options, guard, budget))
                running[task] = host
            if not running:
                break
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                scheduler.release(running.pop(task))
                yield task.result()
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        if own_transport:
            await transport.aclose()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA store costs tens of milliseconds: once per process, not per poll.
    return ssl.create_default_context()


def _aiohttp_transport(options: FetchOptions) -> httpx.AsyncBaseTransport:
    connector = aiohttp.TCPConnector(
        ssl=_tls_context(),
        resolver=GuardedResolver(),
        limit=options.concurrency,
        limit_per_host=options.per_host,
        ttl_dns_cache=300,
    )
    session = aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,  # we decode, with a cap
        trust_env=False,
    )
    # `verify` only stops the transport from building a context of its own: ours is used.
    return AiohttpTransport(client=session, verify=_tls_context())


class _Scheduler:
    """Hands out requests so no host has more than `per_host` in flight.

    Requests wait in one queue per host; hosts take turns, so a feed list dominated
    by one host still lets the others through.
    """

    def __init__(self, requests: Iterable[FetchRequest], per_host: int) -> None:
        self._per_host = per_host
        self._queues: dict[str, deque[FetchRequest]] = {}
        for request in requests:
            host = (urlsplit(request.url).hostname or "").lower()
            self._queues.setdefault(host, deque()).append(request)
        self._turns: deque[str] = deque(self._queues)
        self._active: Counter[str] = Counter()

    def pop(self) -> tuple[str, FetchRequest] | None:
        # Busy hosts are rotated past; at most `concurrency / per_host` of them are busy.
        for _ in range(len(self._turns)):
            host = self._turns[0]
            if self._active[host] < self._per_host:
                queue = self._queues[host]
                request = queue.popleft()
                self._active[host] += 1
                if queue:
                    self._turns.rotate(-1)
                else:
                    self._turns.popleft()
                    del self._queues[host]
                return host, request
            self._turns.rotate(-1)
        return None

    def release(self, host: str) -> None:
        self._active[host] -= 1


class _Budget:
    """Bytes of body being read by all fetches of one call (one event loop: no lock)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, n: int) -> bool:
        if self.used + n > self.limit:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used -= n


@dataclass(slots=True)
class _Chain:
    """The hops of one fetch so far."""

    url: str
    seen: list[str] = field(default_factory=list)
    only_permanent: bool = True
    public_seen: bool = False
    http_status: int | None = None  # of the last response


class _Sender:
    """Sends one GET through the transport, as httpx.AsyncClient.send(stream=True) would."""

    def __init__(self, transport: httpx.AsyncBaseTransport, options: FetchOptions) -> None:
        self.transport = transport
        self.user_agent = options.user_agent
        self.timeout = httpx.Timeout(
            connect=options.connect_timeout,
            read=options.read_timeout,
            write=options.read_timeout,
            pool=None,  # waiting for a connection slot counts against the total deadline only
        ).as_dict()

    async def get(self, url: str, headers: dict[str, str]) -> httpx.Response:
        request = httpx.Request(
            "GET",
            url,
            headers={"User-Agent": self.user_agent, **headers},
            extensions={"timeout": self.timeout},
        )
        response = await self.transport.handle_async_request(request)
        response.request = request
        return response


async def _fetch_one(
    client: _Sender,
    request: FetchRequest,
    options: FetchOptions,
    guard: NetGuard,
    budget: _Budget,
) -> FetchResult:
    started = time.monotonic()
    chain = _Chain(url=request.url)
    deadline = asyncio.timeout(options.total_timeout)
    try:
        try:
            async with deadline:
                return await _follow(client, request, options, guard, budget, chain, started)
        except (TimeoutError, httpx.HTTPError, aiohttp.ClientError, OSError) as exc:
            if deadline.expired():
                raise FetchTimeout(
                    f"no complete response from {chain.url} "
                    f"within the total deadline of {options.total_timeout:g} s"
                ) from None
            raise _classify_exception(exc, chain.url, options) from exc
    except FeedError as error:
        return _error(request, chain, error, started)
    except Exception as exc:  # one feed's surprise must not stop the others
        unexpected = FeedError(f"unexpected {type(exc).__name__} fetching {chain.url}: {exc}")
        return _error(request, chain, unexpected, started)


def _error(request: FetchRequest, chain: _Chain, error: FeedError, started: float) -> FetchResult:
    # The result may be kept for a while: a traceback would keep every frame alive,
    # and with them a partly read body of up to `max_bytes`.
    error.__traceback__ = error.__cause__ = error.__context__ = None
    return FetchResult(
        request=request,
        status="error",
        http_status=chain.http_status,
        body=None,
        content_type=None,
        etag=None,
        last_modified=None,
        final_url=chain.url,
        permanent_redirect=None,
        error=error,
        elapsed_s=time.monotonic() - started,
    )


async def _follow(
    client: _Sender,
    request: FetchRequest,
    options: FetchOptions,
    guard: NetGuard,
    budget: _Budget,
    chain: _Chain,
    started: float,
) -> FetchResult:
    headers = {"Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING}
    if request.etag:
        headers["If-None-Match"] = request.etag
    if request.last_modified:
        headers["If-Modified-Since"] = request.last_modified
    while True:
        chain.seen.append(chain.url)
        # Private addresses: only for an operator-listed URL, and never after a public hop.
        allow_private = request.trusted and not chain.public_seen
        chain.public_seen |= await guard.check(chain.url, allow_private=allow_private)
        response = await client.get(chain.url, headers)
        try:
            status = chain.http_status = response.status_code
            location = response.headers.get("Location")
            if status in _REDIRECTS and location:
                _next_hop(chain, status, location, options)
                continue
            result_status: Literal["ok", "not_modified"]
            body: bytes | None
            if status == 304:
                result_status, body = "not_modified", None
            elif 200 <= status < 300:
                result_status = "ok"
                body = await _read_body(response, chain.url, options.max_bytes, budget)
            else:
                raise _status_error(response, chain.url)
            redirected = len(chain.seen) > 1
            return FetchResult(
                request=request,
                status=result_status,
                http_status=status,
                body=body,
                content_type=response.headers.get("Content-Type"),
                # A 304 may omit the validators; the stored ones still hold.
                etag=response.headers.get("ETag") or (request.etag if status == 304 else None),
                last_modified=response.headers.get("Last-Modified")
                or (request.last_modified if status == 304 else None),
                final_url=chain.url,
                permanent_redirect=chain.url if redirected and chain.only_permanent else None,
                error=None,
                elapsed_s=time.monotonic() - started,
            )
        finally:
            await response.aclose()


def _next_hop(chain: _Chain, status: int, location: str, options: FetchOptions) -> None:
    target = urldefrag(urljoin(chain.url, location.strip())).url
    if target in chain.seen:
        hops = " → ".join([*chain.seen, target])
        raise RedirectError(f"redirect loop: {hops}")
    if len(chain.seen) > options.max_redirects:
        raise RedirectError(f"more than {options.max_redirects} redirects from {chain.seen[0]}")
    chain.only_permanent &= status in _PERMANENT_REDIRECTS
    chain.url = target


def _status_error(response: httpx.Response, url: str) -> FeedError:
    status = response.status_code
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = response.reason_phrase or "Unknown Status"
    message = f"HTTP {status} {phrase} from {url}"
    error: FeedError
    retry_after_header = response.headers.get("Retry-After")
    if status == 429 or (status == 503 and retry_after_header):
        retry_after = parse_retry_after(retry_after_header, datetime.now(UTC))
        if retry_after is not None:
            message += f"; retry after {retry_after:%Y-%m-%d %H:%M:%S} UTC"
        error = RateLimited(message, retry_after)
    elif status == 410:
        error = Gone(message)
    elif status >= 500:
        error = ServerError(message)
    else:
        error = HTTPStatusError(message)
    return error


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """Retry-After as an aware UTC time: delta-seconds or an HTTP-date (RFC 9110 §10.2.3).

    None when absent or unreadable; a time in the past becomes `now`.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        # Clamp absurd values so the datetime arithmetic cannot overflow.
        return now + timedelta(seconds=min(int(value), 10 * 365 * 86400))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when.astimezone(UTC), now)


def _classify_exception(exc: BaseException, url: str, options: FetchOptions) -> FeedError:
    """Turn a transport exception into FetchTimeout or ConnectionFailed.

    httpx_aiohttp maps every aiohttp connection error (refused, reset) to
    httpx.ConnectTimeout, so the aiohttp cause, when there is one, decides.
    """
    cause = exc.__cause__ if isinstance(exc.__cause__, aiohttp.ClientError) else exc
    if isinstance(cause, aiohttp.ClientError):
        if isinstance(cause, aiohttp.ConnectionTimeoutError):
            return _connect_timeout(url, options)
        if isinstance(cause, TimeoutError):
            return _read_timeout(url, options)
        return ConnectionFailed(f"connection to {url} failed: {_reason(cause)}")
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return _connect_timeout(url, options)
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return _read_timeout(url, options)
    return ConnectionFailed(f"connection to {url} failed: {_reason(exc)}")


def _connect_timeout(url: str, options: FetchOptions) -> FetchTimeout:
    return FetchTimeout(f"timed out connecting to {url} after {options.connect_timeout:g} s")


def _read_timeout(url: str, options: FetchOptions) -> FetchTimeout:
    return FetchTimeout(f"timed out waiting for data from {url} after {options.read_timeout:g} s")


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


async def _read_body(response: httpx.Response, url: str, max_bytes: int, budget: _Budget) -> bytes:
    too_large = TooLarge(f"body larger than {_size(max_bytes)} (after decompression) from {url}")
    encodings = [
        token.strip().lower()
        for token in response.headers.get("Content-Encoding", "").split(",")
        if token.strip() and token.strip().lower() != "identity"
    ]
    declared = response.headers.get("Content-Length", "")
    if not encodings and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    decoder = _Decoder(encodings, url)
    # Pieces in a list, joined once: a growing bytearray would reallocate and copy.
    pieces: list[bytes] = []
    size = received = 0

    def keep(piece: bytes) -> None:
        nonlocal size
        if size + len(piece) > max_bytes:
            raise too_large
        if not budget.take(len(piece)):
            raise TransientError(
                f"body from {url} not read: the {_size(budget.limit)} for bodies in flight "
                "is taken by other feeds"
            )
        pieces.append(piece)
        size += len(piece)

    try:
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received > max_bytes:
                raise too_large
            for piece in decoder.feed(chunk):
                keep(piece)
        for piece in decoder.flush():
            keep(piece)
        body = b"".join(pieces)
    finally:
        budget.give(size)
        pieces.clear()
    if not body or body.isspace():
        raise EmptyBody(f"empty body from {url}")
    return body


def _size(n: int) -> str:
    if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} bytes"


class _Stage(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...
    def flush(self) -> Iterator[bytes]: ...


class _Zlib:
    """gzip (several members allowed) or deflate (zlib-wrapped, or raw as some servers send)."""

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._wbits = zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS
        self._d = zlib.decompressobj(self._wbits)
        self._started = False
        self._done = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        pending_output = False
        while (data or pending_output) and not self._done:
            if self._d.eof:
                if not (self._gzip and data.startswith(b"\x1f\x8b")):
                    self._done = True  # trailing bytes after the stream: ignored, as browsers do
                    return
                self._d = zlib.decompressobj(self._wbits)  # the next gzip member
            out = self._decompress(data)
            if out:
                yield out
            if self._d.eof:
                data, pending_output = self._d.unused_data, False
            else:
                # A full piece may leave output pending inside zlib even with no input left.
                data, pending_output = self._d.unconsumed_tail, len(out) == _PIECE

    def _decompress(self, data: bytes) -> bytes:
        try:
            out = self._d.decompress(data, _PIECE)
        except zlib.error:
            if self._gzip or self._started:
                raise
            # "deflate" without the zlib wrapper (RFC 1951 rather than 1950).
            self._wbits = -zlib.MAX_WBITS
            self._d = zlib.decompressobj(self._wbits)
            out = self._d.decompress(data, _PIECE)
        self._started = True
        return out

    def flush(self) -> Iterator[bytes]:
        # `feed` drained every byte zlib could produce; a truncated stream keeps what it gave.
        return iter(())


class _Brotli:
    def __init__(self) -> None:
        self._d = brotli.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        out = self._d.process(data, output_buffer_limit=_PIECE)
        if out:
            yield out
        while not self._d.can_accept_more_data():
            out = self._d.process(b"", output_buffer_limit=_PIECE)
            if out:
                yield out

    def flush(self) -> Iterator[bytes]:
        return iter(())


class _Identity:
    def feed(self, data: bytes) -> Iterator[bytes]:
        yield data

    def flush(self) -> Iterator[bytes]:
        return iter(())


class _SniffGzip:
    """Gunzips a body that is itself gzip although no encoding said so (double-compressed)."""

    def __init__(self, depth: int) -> None:
        self._depth = depth
        self._head = b""
        self._inner: list[_Stage] | None = None

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._inner is None:
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
            self._inner = [_Identity()]
            if data.startswith(b"\x1f\x8b") and self._depth > 0:
                self._inner = [_Zlib(gzip=True), _SniffGzip(self._depth - 1)]
        yield from _run(self._inner, data)

    def flush(self) -> Iterator[bytes]:
        if self._inner is None:
            if self._head:
                yield self._head
            return
        yield from _flush(self._inner)


def _run(stages: list[_Stage], data: bytes) -> Iterator[bytes]:
    if not stages:
        yield data
        return
    first, rest = stages[0], stages[1:]
    for piece in first.feed(data):
        yield from _run(rest, piece)


def _flush(stages: list[_Stage]) -> Iterator[bytes]:
    for i, stage in enumerate(stages):
        for piece in stage.flush():
            yield from _run(stages[i + 1 :], piece)


class _Decoder:
    """Undoes the Content-Encodings, lazily, so the caller can stop at the cap."""

    def __init__(self, encodings: list[str], url: str) -> None:
        self._url = url
        stages: list[_Stage] = []
        # Encodings are listed in the order applied: undo them last to first.
        for name in reversed(encodings):
            if name in ("gzip", "x-gzip"):
                stages.append(_Zlib(gzip=True))
            elif name == "deflate":
                stages.append(_Zlib(gzip=False))
            elif name == "br":
                stages.append(_Brotli())
            else:
                raise Unparsable(f"unsupported Content-Encoding {name!r} from {url}")
        stages.append(_SniffGzip(_SNIFFED_GZIP_LAYERS))
        self._stages = stages

    def feed(self, data: bytes) -> Iterator[bytes]:
        with self._corrupt():
            yield from _run(self._stages, data)

    def flush(self) -> Iterator[bytes]:
        with self._corrupt():
            yield from _flush(self._stages)

    @contextlib.contextmanager
    def _corrupt(self) -> Iterator[None]:
        try:
            yield
        except (zlib.error, brotli.error) as exc:
            raise Unparsable(f"corrupt compressed body from {self._url}: {exc}") from None
