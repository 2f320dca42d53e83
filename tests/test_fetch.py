"""sources.fetch against a real HTTP server on 127.0.0.1 (tests/fixtures/http.py)."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import ssl
import tracemalloc
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sources.errors import (
    ConnectionFailed,
    EmptyBody,
    FetchTimeout,
    Gone,
    HTTPStatusError,
    RateLimited,
    RedirectError,
    Refused,
    ServerError,
    TooLarge,
    Unparsable,
)
from sources.fetch import (
    FetchOptions,
    FetchRequest,
    FetchResult,
    fetch_feeds,
    parse_retry_after,
)
from sources.netguard import IPAddress, NetGuard
from tests.fixtures.http import (
    SAMPLE_RSS,
    Drip,
    Endless,
    FeedServer,
    Gate,
    Hang,
    ResetMidBody,
    Stall,
    html_with_feed_link,
)

FAST = FetchOptions(connect_timeout=1, read_timeout=1, total_timeout=3, max_bytes=1024 * 1024)

# Both transports must keep every guarantee; the default is aiohttp. (One TLS
# context for all: loading the CA store per test would dominate the run time.)
_TLS = ssl.create_default_context()
TRANSPORTS: dict[str, Callable[[], httpx.AsyncBaseTransport | None]] = {
    "aiohttp": lambda: None,
    "httpx": lambda: httpx.AsyncHTTPTransport(verify=_TLS),
}


def fetch_all(
    requests: Sequence[FetchRequest], options: FetchOptions = FAST, **seams: Any
) -> dict[int, FetchResult]:
    async def run() -> dict[int, FetchResult]:
        results = {r.request.key: r async for r in fetch_feeds(requests, options, **seams)}
        if seams.get("transport") is not None:
            await seams["transport"].aclose()  # injected: ours to close
        return results

    return asyncio.run(run())


def fetch(url: str, options: FetchOptions = FAST, **fields: Any) -> FetchResult:
    transport = fields.pop("transport", None)
    guard = fields.pop("guard", None)
    return fetch_all([FetchRequest(1, url, **fields)], options, transport=transport, guard=guard)[1]


@pytest.fixture(params=sorted(TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> httpx.AsyncBaseTransport | None:
    return TRANSPORTS[request.param]()


# -- a plain fetch --


def test_feed_body_is_returned_with_its_validators(feed_server: FeedServer) -> None:
    url = feed_server.route(
        "/feed.xml", body=SAMPLE_RSS, etag='"v1"', last_modified="Tue, 24 Nov 2026 08:00:00 GMT"
    )
    result = fetch(url)
    assert result.status == "ok"
    assert result.http_status == 200
    assert result.body == SAMPLE_RSS
    assert result.content_type == "application/rss+xml; charset=utf-8"
    assert result.etag == '"v1"'
    assert result.last_modified == "Tue, 24 Nov 2026 08:00:00 GMT"
    assert result.final_url == url
    assert result.permanent_redirect is None
    assert result.error is None


def test_corpus_file_is_fetched_byte_for_byte(feed_server: FeedServer, corpus_dir: Path) -> None:
    path = next(iter(sorted((corpus_dir / "feedjira-sample-feeds").rglob("*.xml"))))
    result = fetch(feed_server.route("/corpus.xml", body=path))
    assert result.body == path.read_bytes()


def test_request_names_newswatch_and_asks_for_feeds_and_compression(
    feed_server: FeedServer,
) -> None:
    fetch(feed_server.route("/feed.xml", body=SAMPLE_RSS))
    (sent,) = feed_server.requests_to("/feed.xml")
    assert sent.headers["user-agent"].startswith("newswatch/")
    assert "application/rss+xml" in sent.headers["accept"]
    assert "application/atom+xml" in sent.headers["accept"]
    assert sent.headers["accept-encoding"] == "gzip, deflate, br"


def test_html_page_is_returned_for_the_parser_to_judge(feed_server: FeedServer) -> None:
    page = html_with_feed_link("/rss.xml")
    result = fetch(feed_server.route("/", body=page, content_type="text/html"))
    assert result.status == "ok"
    assert result.body == page
    assert result.content_type == "text/html"


# -- conditional GET --


def test_stored_validators_are_sent_as_conditional_headers(feed_server: FeedServer) -> None:
    url = feed_server.route("/feed.xml", body=SAMPLE_RSS)
    fetch(url, etag='"v1"', last_modified="Tue, 24 Nov 2026 08:00:00 GMT")
    (sent,) = feed_server.requests_to("/feed.xml")
    assert sent.headers["if-none-match"] == '"v1"'
    assert sent.headers["if-modified-since"] == "Tue, 24 Nov 2026 08:00:00 GMT"


def test_unchanged_etag_gives_not_modified_without_body(feed_server: FeedServer) -> None:
    url = feed_server.route("/feed.xml", body=SAMPLE_RSS, etag='"v1"')
    result = fetch(url, etag='"v1"')
    assert (result.status, result.http_status, result.body) == ("not_modified", 304, None)
    assert result.etag == '"v1"'


def test_unchanged_last_modified_gives_not_modified(feed_server: FeedServer) -> None:
    stamp = "Tue, 24 Nov 2026 08:00:00 GMT"
    url = feed_server.route("/feed.xml", body=SAMPLE_RSS, last_modified=stamp)
    assert fetch(url, last_modified=stamp).status == "not_modified"


def test_changed_etag_gives_the_new_body(feed_server: FeedServer) -> None:
    url = feed_server.route("/feed.xml", body=SAMPLE_RSS, etag='"v2"')
    result = fetch(url, etag='"v1"')
    assert (result.status, result.etag, result.body) == ("ok", '"v2"', SAMPLE_RSS)


def test_not_modified_without_validators_keeps_the_stored_ones(feed_server: FeedServer) -> None:
    url = feed_server.route("/feed.xml", status=304)
    result = fetch(url, etag='"v1"', last_modified="Tue, 24 Nov 2026 08:00:00 GMT")
    assert result.status == "not_modified"
    assert (result.etag, result.last_modified) == ('"v1"', "Tue, 24 Nov 2026 08:00:00 GMT")


# -- decoding and the size cap --


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "gzip, br"])
def test_compressed_body_is_decoded(
    feed_server: FeedServer, encoding: str, transport: httpx.AsyncBaseTransport | None
) -> None:
    url = feed_server.route("/feed.xml", body=SAMPLE_RSS, encoding=encoding)
    assert fetch(url, transport=transport).body == SAMPLE_RSS


def test_raw_deflate_without_zlib_wrapper_is_decoded(feed_server: FeedServer) -> None:
    import zlib

    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = compressor.compress(SAMPLE_RSS) + compressor.flush()
    url = feed_server.route("/feed.xml", body=raw, headers={"Content-Encoding": "deflate"})
    assert fetch(url).body == SAMPLE_RSS


def test_gzip_body_the_server_did_not_declare_is_decoded(feed_server: FeedServer) -> None:
    url = feed_server.route(
        "/feed.xml",
        body=gzip.compress(gzip.compress(SAMPLE_RSS)),
        headers={"Content-Encoding": "gzip"},
    )
    assert fetch(url).body == SAMPLE_RSS


def test_gzip_bomb_stops_at_the_cap_in_bounded_memory(
    feed_server: FeedServer, transport: httpx.AsyncBaseTransport | None
) -> None:
    url = feed_server.gzip_bomb("/bomb", 24 * 1024 * 1024)
    tracemalloc.start()
    try:
        result = fetch(url, transport=transport)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(result.error, TooLarge)
    assert peak < 8 * 1024 * 1024  # the cap is 1 MiB; the bomb inflates to 24 MiB


def test_nested_declared_gzip_bomb_stops_at_the_cap(feed_server: FeedServer) -> None:
    url = feed_server.gzip_bomb("/bomb", 32 * 1024 * 1024, layers=2)
    assert isinstance(fetch(url).error, TooLarge)


def test_nested_undeclared_gzip_bomb_stops_at_the_cap(feed_server: FeedServer) -> None:
    url = feed_server.gzip_bomb("/bomb", 32 * 1024 * 1024, layers=2, declared=False)
    assert isinstance(fetch(url).error, TooLarge)


def test_body_over_the_cap_is_too_large(feed_server: FeedServer) -> None:
    url = feed_server.route("/big.xml", body=b"x" * (FAST.max_bytes + 1))
    result = fetch(url)
    assert isinstance(result.error, TooLarge)
    assert str(result.error) == f"body larger than 1 MiB (after decompression) from {url}"


def test_body_at_the_cap_is_accepted(feed_server: FeedServer) -> None:
    url = feed_server.route("/big.xml", body=b"x" * FAST.max_bytes, encoding="gzip")
    assert fetch(url).status == "ok"


def test_endless_body_is_too_large(feed_server: FeedServer) -> None:
    url = feed_server.route("/endless.xml", body=SAMPLE_RSS, behaviour=Endless())
    assert isinstance(fetch(url).error, TooLarge)


def test_empty_body_is_an_error(feed_server: FeedServer) -> None:
    result = fetch(feed_server.route("/empty.xml", body=b""))
    assert isinstance(result.error, EmptyBody)
    assert result.http_status == 200


def test_corrupt_gzip_is_unparsable(feed_server: FeedServer) -> None:
    url = feed_server.route(
        "/feed.xml", body=b"\x1f\x8bnot really gzip", headers={"Content-Encoding": "gzip"}
    )
    assert isinstance(fetch(url).error, Unparsable)


# -- deadlines and broken connections --


def test_server_dripping_bytes_hits_the_total_deadline(
    feed_server: FeedServer, transport: httpx.AsyncBaseTransport | None
) -> None:
    # Every byte arrives well within the read timeout; only the total deadline stops it.
    url = feed_server.route("/drip.xml", body=SAMPLE_RSS, behaviour=Drip(interval=0.05))
    options = FetchOptions(read_timeout=5, total_timeout=0.5)
    result = fetch(url, options, transport=transport)
    assert isinstance(result.error, FetchTimeout)
    assert "total deadline of 0.5 s" in str(result.error)


def test_server_that_never_answers_times_out(
    feed_server: FeedServer, transport: httpx.AsyncBaseTransport | None
) -> None:
    url = feed_server.route("/hang.xml", behaviour=Hang())
    options = FetchOptions(read_timeout=0.3, total_timeout=5)
    result = fetch(url, options, transport=transport)
    assert isinstance(result.error, FetchTimeout)
    assert str(result.error) == f"timed out waiting for data from {url} after 0.3 s"


def test_connection_reset_mid_body_is_a_connection_failure(
    feed_server: FeedServer, transport: httpx.AsyncBaseTransport | None
) -> None:
    url = feed_server.route("/reset.xml", body=SAMPLE_RSS, behaviour=ResetMidBody(after=100))
    result = fetch(url, transport=transport)
    assert isinstance(result.error, ConnectionFailed)
    assert result.body is None


def test_refused_connection_is_a_connection_failure(
    feed_server: FeedServer, transport: httpx.AsyncBaseTransport | None
) -> None:
    url = "http://127.0.0.1:9/feed.xml"  # discard port: nothing listens
    result = fetch(url, transport=transport)
    assert isinstance(result.error, ConnectionFailed)
    assert str(result.error).startswith(f"connection to {url} failed: ")
    assert "\n" not in str(result.error)


# -- status codes --


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (404, HTTPStatusError),
        (401, HTTPStatusError),
        (403, HTTPStatusError),
        (410, Gone),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
    ],
)
def test_status_code_is_classified(
    feed_server: FeedServer, status: int, error_class: type[Exception]
) -> None:
    result = fetch(feed_server.route("/feed.xml", body=b"nope", status=status))
    assert type(result.error) is error_class
    assert result.http_status == status


def test_status_error_message_is_one_readable_line(feed_server: FeedServer) -> None:
    url = feed_server.route("/missing.xml", body=b"nope", status=404)
    assert str(fetch(url).error) == f"HTTP 404 Not Found from {url}"


def test_429_with_retry_after_seconds_is_rate_limited_until_then(
    feed_server: FeedServer,
) -> None:
    url = feed_server.route("/feed.xml", status=429, headers={"Retry-After": "120"})
    before = datetime.now(UTC)
    result = fetch(url)
    after = datetime.now(UTC)
    assert isinstance(result.error, RateLimited)
    assert result.error.retry_after is not None
    assert before + timedelta(seconds=120) <= result.error.retry_after
    assert result.error.retry_after <= after + timedelta(seconds=120)


def test_503_with_retry_after_date_is_rate_limited_until_that_date(
    feed_server: FeedServer,
) -> None:
    url = feed_server.route(
        "/feed.xml", status=503, headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}
    )
    error = fetch(url).error
    assert isinstance(error, RateLimited)
    assert error.retry_after == datetime(2099, 10, 21, 7, 28, tzinfo=UTC)


def test_429_without_retry_after_is_rate_limited_with_no_time(feed_server: FeedServer) -> None:
    error = fetch(feed_server.route("/feed.xml", status=429)).error
    assert isinstance(error, RateLimited)
    assert error.retry_after is None


NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", NOW + timedelta(seconds=120)),
        (" 0 ", NOW),
        ("Wed, 25 Nov 2026 13:00:00 GMT", NOW + timedelta(hours=1)),
        ("Wed, 25 Nov 2026 11:00:00 GMT", NOW),  # in the past: now
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_http_date(
    header: str | None, expected: datetime | None
) -> None:
    assert parse_retry_after(header, NOW) == expected


# -- redirects --


def test_chain_of_permanent_redirects_reports_the_new_url(feed_server: FeedServer) -> None:
    target = feed_server.route("/new.xml", body=SAMPLE_RSS)
    feed_server.redirect("/moved", target, status=308)
    old = feed_server.redirect("/old", feed_server.url("/moved"), status=301)
    result = fetch(old)
    assert (result.status, result.body) == ("ok", SAMPLE_RSS)
    assert result.final_url == target
    assert result.permanent_redirect == target


def test_temporary_redirect_in_the_chain_reports_no_permanent_move(
    feed_server: FeedServer,
) -> None:
    target = feed_server.route("/new.xml", body=SAMPLE_RSS)
    feed_server.redirect("/moved", target, status=302)
    result = fetch(feed_server.redirect("/old", feed_server.url("/moved"), status=301))
    assert result.final_url == target
    assert result.permanent_redirect is None


def test_relative_redirect_is_resolved_against_the_current_url(feed_server: FeedServer) -> None:
    feed_server.route("/feeds/new.xml", body=SAMPLE_RSS)
    result = fetch(feed_server.redirect("/feeds/old.xml", "new.xml", status=307))
    assert result.final_url == feed_server.url("/feeds/new.xml")


def test_redirect_loop_is_a_redirect_error(feed_server: FeedServer) -> None:
    a = feed_server.redirect("/a", feed_server.url("/b"))
    feed_server.redirect("/b", a)
    error = fetch(a).error
    assert isinstance(error, RedirectError)
    assert str(error) == f"redirect loop: {a} → {feed_server.url('/b')} → {a}"


def test_chain_longer_than_allowed_is_a_redirect_error(feed_server: FeedServer) -> None:
    for i in range(4):
        feed_server.redirect(f"/{i}", feed_server.url(f"/{i + 1}"), status=302)
    feed_server.route("/4", body=SAMPLE_RSS)
    options = FetchOptions(max_redirects=3)
    assert isinstance(fetch(feed_server.url("/0"), options).error, RedirectError)
    assert fetch(feed_server.url("/0"), FetchOptions(max_redirects=4)).status == "ok"


# -- the SSRF guard on every hop --


def test_untrusted_url_on_loopback_is_refused_before_connecting(
    feed_server: FeedServer,
) -> None:
    # A path of its own: a request an earlier test left unread is logged after the
    # server's reset, but never to this path.
    url = feed_server.route("/refused-before-connecting.xml", body=SAMPLE_RSS)
    assert isinstance(fetch(url, trusted=False).error, Refused)
    assert feed_server.requests_to("/refused-before-connecting.xml") == []


def test_redirect_to_cloud_metadata_is_refused_even_for_a_trusted_url(
    feed_server: FeedServer,
) -> None:
    url = feed_server.redirect("/feed.xml", "http://169.254.169.254/latest/meta-data/")
    error = fetch(url).error
    assert isinstance(error, Refused)
    assert "169.254.169.254" in str(error)


def test_redirect_to_a_file_url_is_refused(feed_server: FeedServer) -> None:
    url = feed_server.redirect("/feed.xml", "file:///etc/passwd")
    assert isinstance(fetch(url).error, Refused)


def test_redirect_from_a_public_host_to_loopback_is_refused(feed_server: FeedServer) -> None:
    # The guard is told that 127.0.0.1 is a public address (no connection goes
    # anywhere else); `localhost` stays loopback, so the second hop is public → private.
    async def resolver(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("127.0.0.1")]

    class PretendPublic(NetGuard):
        async def check(self, url: str, *, allow_private: bool) -> bool:
            if url.startswith(feed_server.url("/")):
                return True
            return await super().check(url, allow_private=allow_private)

    feed_server.route("/internal.xml", body=SAMPLE_RSS)
    url = feed_server.redirect("/feed.xml", feed_server.url("/internal.xml", host="localhost"))
    error = fetch(url, guard=PretendPublic(resolver=resolver)).error
    assert isinstance(error, Refused)
    assert feed_server.requests_to("/internal.xml") == []


def test_trusted_redirect_between_private_addresses_is_followed(feed_server: FeedServer) -> None:
    target = feed_server.route("/feed.xml", body=SAMPLE_RSS, host="localhost")
    assert fetch(feed_server.redirect("/old.xml", target)).status == "ok"


# -- many feeds at once --


def test_one_failing_feed_never_stops_the_others(feed_server: FeedServer) -> None:
    good = [feed_server.route(f"/good{i}.xml", body=SAMPLE_RSS) for i in range(5)]
    bad = [
        feed_server.route("/hang.xml", behaviour=Hang()),
        feed_server.route("/error.xml", status=500),
        feed_server.gzip_bomb("/bomb.xml", 24 * 1024 * 1024),
        feed_server.route("/reset.xml", body=SAMPLE_RSS, behaviour=ResetMidBody()),
        "http://127.0.0.1:9/refused.xml",
        "not a url at all",
    ]
    requests = [FetchRequest(i, url) for i, url in enumerate(good + bad)]
    options = FetchOptions(read_timeout=0.3, total_timeout=2, max_bytes=1024 * 1024)
    results = fetch_all(requests, options)
    assert sorted(results) == list(range(len(requests)))
    assert [results[i].status for i in range(len(good))] == ["ok"] * len(good)
    assert all(results[i].status == "error" for i in range(len(good), len(requests)))


def test_never_more_than_concurrency_requests_in_flight(
    feed_server: FeedServer, transport: httpx.AsyncBaseTransport | None
) -> None:
    gate = Gate(until=5)  # opens early only if a fifth request arrives
    urls = [feed_server.route(f"/{i}.xml", body=SAMPLE_RSS, behaviour=gate) for i in range(8)]
    requests = [FetchRequest(i, url) for i, url in enumerate(urls)]
    results = fetch_all(requests, FetchOptions(concurrency=4, per_host=100), transport=transport)
    assert all(r.status == "ok" for r in results.values())
    # the gate holds 4 but opens by itself after a while, so a loaded machine may see fewer
    assert 1 <= feed_server.max_in_flight <= 4


def test_never_more_than_per_host_requests_to_one_host(
    feed_server: FeedServer, transport: httpx.AsyncBaseTransport | None
) -> None:
    gate = Gate(until=3, per_host=True)  # opens early only if a third request to a host arrives
    requests = []
    for i in range(8):
        host = "localhost" if i % 2 else "127.0.0.1"
        url = feed_server.route(f"/{i}.xml", body=SAMPLE_RSS, behaviour=gate, host=host)
        requests.append(FetchRequest(i, url))
    results = fetch_all(requests, FetchOptions(concurrency=10, per_host=2), transport=transport)
    assert all(r.status == "ok" for r in results.values())
    seen = feed_server.max_in_flight_by_host
    assert set(seen) == {"127.0.0.1", "localhost"}
    assert all(1 <= n <= 2 for n in seen.values())


def test_bodies_in_flight_share_one_memory_budget(feed_server: FeedServer) -> None:
    # Each stalls with 700 KB read: both fit the 1 MiB cap, not the 1 MiB budget together.
    body = b"x" * 900_000
    urls = [feed_server.route(f"/{i}.xml", body=body, behaviour=Stall(700_000)) for i in (1, 2)]
    options = FetchOptions(max_bytes=1024 * 1024, max_bytes_in_flight=1024 * 1024, read_timeout=0.5)
    results = fetch_all([FetchRequest(i, url) for i, url in enumerate(urls)], options)
    errors = sorted((type(r.error).__name__, str(r.error)) for r in results.values())
    assert [kind for kind, _ in errors] == ["FetchTimeout", "TransientError"]
    assert "1 MiB for bodies in flight is taken by other feeds" in errors[1][1]


def test_injected_transport_stays_open_for_the_next_batch(feed_server: FeedServer) -> None:
    url = feed_server.route("/feed.xml", body=SAMPLE_RSS)

    async def two_batches() -> list[str]:
        async with httpx.AsyncHTTPTransport(verify=_TLS) as shared:
            statuses: list[str] = []
            for key in (1, 2):
                async for result in fetch_feeds([FetchRequest(key, url)], FAST, transport=shared):
                    statuses.append(result.status)
            return statuses

    assert asyncio.run(two_batches()) == ["ok", "ok"]


def test_results_come_as_they_complete(feed_server: FeedServer) -> None:
    hang = feed_server.route("/hang.xml", behaviour=Hang())
    fast = feed_server.route("/fast.xml", body=SAMPLE_RSS)

    async def first() -> int:
        requests = [FetchRequest(1, hang), FetchRequest(2, fast)]
        results = fetch_feeds(requests, FetchOptions(read_timeout=30, total_timeout=30))
        result = await anext(results)
        await results.aclose()
        return result.request.key

    assert asyncio.run(first()) == 2


def test_stopping_early_closes_the_connections_in_flight(feed_server: FeedServer) -> None:
    hangs = [feed_server.route(f"/hang{i}.xml", behaviour=Hang()) for i in range(3)]
    fast = feed_server.route("/fast.xml", body=SAMPLE_RSS)

    async def first_then_stop() -> None:
        requests = [FetchRequest(i, url) for i, url in enumerate([*hangs, fast])]
        results = fetch_feeds(requests, FetchOptions(read_timeout=30, total_timeout=30))
        await anext(results)
        # Stop only once the hanging requests are being answered: one still on its way
        # would leave the server idle below whether or not its connection was closed.
        assert await asyncio.to_thread(feed_server.wait_in_flight, len(hangs), timeout=20)
        await results.aclose()

    asyncio.run(first_then_stop())
    # The hanging handlers return as soon as they see the client hang up (a loaded
    # machine can take seconds to run the closing callbacks; leaked connections never do).
    assert feed_server.wait_idle(timeout=20)
