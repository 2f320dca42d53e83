"""The bundled demo feeds and the loopback server that serves them for `make demo`."""

from __future__ import annotations

import calendar
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import httpx
import pytest
from w3lib.url import url_query_cleaner

from newswatch.demo_server import DemoServer, demo_feed_files, feed_dates, shift_dates

# Far from the files' own dates (November 2026), so an unshifted feed cannot pass.
NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)

XML_FEEDS = [p for p in demo_feed_files() if p.suffix == ".xml"]
JSON_FEEDS = [p for p in demo_feed_files() if p.suffix == ".json"]


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with DemoServer(now=NOW) as running:
        yield running


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as c:
        yield c


def _entry_times(body: bytes, content_type: str) -> list[datetime]:
    """Publication times as a feed reader sees them, independently of the server's regexes."""
    if "json" in content_type:
        return [datetime.fromisoformat(i["date_published"]) for i in json.loads(body)["items"]]
    parsed = feedparser.parse(body, response_headers={"content-type": content_type})
    return [
        datetime.fromtimestamp(calendar.timegm(e.published_parsed), UTC) for e in parsed.entries
    ]


def test_every_feed_file_in_the_demo_directory_is_served() -> None:
    directory = demo_feed_files()[0].parent
    on_disk = {p for p in directory.iterdir() if p.name != "README.md"}
    assert set(demo_feed_files()) == on_disk


@pytest.mark.parametrize("path", XML_FEEDS, ids=lambda p: p.name)
def test_rss_and_atom_demo_feeds_parse_cleanly_with_at_least_eight_entries(path: Path) -> None:
    parsed = feedparser.parse(path.read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version in {"rss20", "atom10"}
    assert len(parsed.entries) >= 8
    assert all(
        e.get("title") and e.get("link") and e.get("published_parsed") for e in parsed.entries
    )


@pytest.mark.parametrize("path", JSON_FEEDS, ids=lambda p: p.name)
def test_json_demo_feed_is_json_feed_1_1_with_at_least_eight_items(path: Path) -> None:
    doc = json.loads(path.read_bytes())
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert len(doc["items"]) >= 8
    assert all(i["id"] and i["url"] and i["date_published"] for i in doc["items"])


def test_demo_links_point_only_at_example_hosts() -> None:
    for path in XML_FEEDS:
        for entry in feedparser.parse(path.read_bytes()).entries:
            host = httpx.URL(entry.link).host
            assert host.endswith(".example"), (path.name, entry.link)
    for path in JSON_FEEDS:
        for item in json.loads(path.read_bytes())["items"]:
            assert httpx.URL(item["url"]).host.endswith(".example"), (path.name, item["url"])


def test_feeds_are_named_after_sample_outlets_with_loopback_urls(server: DemoServer) -> None:
    names = [f.name for f in server.feeds]
    assert names == [
        "Kurdistan24 (sample)",
        "Times of Israel (sample)",
        "Daily Sabah (sample)",
        "Al-Monitor (sample)",
        "Middle East Eye (sample)",
        "Enab Baladi (sample)",
    ]
    assert all(f.url.startswith(server.base_url + "/") for f in server.feeds)
    assert [Path(f.path) for f in server.feeds] == demo_feed_files()


@pytest.mark.parametrize(
    ("suffix", "media_type"),
    [
        (".rss.xml", "application/rss+xml"),
        (".atom.xml", "application/atom+xml"),
        (".json", "application/feed+json"),
    ],
)
def test_each_format_is_served_with_its_content_type(
    server: DemoServer, client: httpx.Client, suffix: str, media_type: str
) -> None:
    urls = [f.url for f in server.feeds if f.url.endswith(suffix)]
    assert urls
    for url in urls:
        assert client.get(url).headers["content-type"] == f"{media_type}; charset=utf-8"


def test_served_feeds_carry_etag_and_last_modified(
    server: DemoServer, client: httpx.Client
) -> None:
    for feed in server.feeds:
        response = client.get(feed.url)
        assert response.status_code == 200
        assert response.headers["etag"].startswith('"')
        assert response.headers["last-modified"].endswith(" GMT")


def test_if_none_match_with_the_current_etag_gets_304_without_a_body(
    server: DemoServer, client: httpx.Client
) -> None:
    url = server.feeds[0].url
    etag = client.get(url).headers["etag"]
    response = client.get(url, headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag


def test_if_none_match_with_another_etag_gets_the_feed(
    server: DemoServer, client: httpx.Client
) -> None:
    response = client.get(server.feeds[0].url, headers={"If-None-Match": '"stale"'})
    assert response.status_code == 200
    assert response.content


def test_if_modified_since_last_modified_gets_304(server: DemoServer, client: httpx.Client) -> None:
    url = server.feeds[2].url
    last_modified = client.get(url).headers["last-modified"]
    assert client.get(url, headers={"If-Modified-Since": last_modified}).status_code == 304


def test_if_modified_since_before_last_modified_gets_the_feed(
    server: DemoServer, client: httpx.Client
) -> None:
    earlier = "Mon, 01 Jan 2024 00:00:00 GMT"
    response = client.get(server.feeds[2].url, headers={"If-Modified-Since": earlier})
    assert response.status_code == 200


def test_unknown_path_is_404(server: DemoServer, client: httpx.Client) -> None:
    assert client.get(server.base_url + "/no-such-feed.xml").status_code == 404


def test_newest_served_item_is_within_two_hours_before_now(
    server: DemoServer, client: httpx.Client
) -> None:
    times = []
    for feed in server.feeds:
        response = client.get(feed.url)
        times += _entry_times(response.content, response.headers["content-type"])
    assert NOW - timedelta(hours=2) <= max(times) <= NOW


def test_no_served_date_is_in_the_future(server: DemoServer, client: httpx.Client) -> None:
    for feed in server.feeds:
        dates = feed_dates(client.get(feed.url).content)
        assert dates
        assert max(dates) <= NOW


def test_shifting_keeps_the_gaps_between_items(server: DemoServer, client: httpx.Client) -> None:
    for feed in server.feeds:
        original = feed_dates(Path(feed.path).read_bytes())
        served = feed_dates(client.get(feed.url).content)
        assert len(served) == len(original)
        assert {s - o for s, o in zip(served, original, strict=True)} == {served[0] - original[0]}


def test_the_same_now_serves_the_same_bytes(server: DemoServer, client: httpx.Client) -> None:
    with DemoServer(now=NOW) as again:
        for first, second in zip(server.feeds, again.feeds, strict=True):
            assert client.get(first.url).content == client.get(second.url).content


def test_rfc822_dates_are_shifted_with_weekday_and_zone_kept_in_style() -> None:
    body = b"<pubDate>Tue, 24 Nov 2026 09:40:00 +0300</pubDate><d>Tue, 24 Nov 2026 06:40:00 GMT</d>"
    assert shift_dates(body, timedelta(days=1, hours=1)) == (
        b"<pubDate>Wed, 25 Nov 2026 10:40:00 +0300</pubDate><d>Wed, 25 Nov 2026 07:40:00 GMT</d>"
    )


def test_rfc3339_dates_are_shifted_with_zone_kept_in_style() -> None:
    body = b'{"a": "2026-11-24T23:30:00Z", "b": "2026-11-24T12:30:00+03:00"}'
    assert shift_dates(body, timedelta(hours=1)) == (
        b'{"a": "2026-11-25T00:30:00Z", "b": "2026-11-24T13:30:00+03:00"}'
    )


def test_dates_in_prose_and_urls_are_left_alone() -> None:
    body = b"<p>On 24 Nov 2026 officials met.</p><a href='/2026/11/24/story'>x</a>"
    assert shift_dates(body, timedelta(days=3)) == body


def test_server_binds_only_127_0_0_1(server: DemoServer) -> None:
    port = httpx.URL(server.base_url).port
    assert httpx.URL(server.base_url).host == "127.0.0.1"
    # 127.0.0.2 reaches the same machine over loopback; a server bound to all
    # interfaces would accept it.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", port), timeout=2).close()


def test_requests_leave_stderr_quiet(
    server: DemoServer, client: httpx.Client, capfd: pytest.CaptureFixture[str]
) -> None:
    client.get(server.feeds[0].url)
    client.get(server.base_url + "/missing")
    assert capfd.readouterr().err == ""


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        DemoServer(now=datetime(2027, 3, 1, 12, 0))


def test_feeds_outside_the_with_block_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        _ = DemoServer(now=NOW).feeds


def test_demo_feeds_carry_markup_for_the_sanitiser_to_remove() -> None:
    raw = b"".join(p.read_bytes() for p in demo_feed_files())
    for bait in (b"<script>", b"onclick=", b"javascript:"):
        assert bait in raw


def test_one_story_is_in_two_feeds_under_tracking_variants_of_one_url() -> None:
    links: dict[str, set[str]] = {}
    for path in XML_FEEDS:
        for entry in feedparser.parse(path.read_bytes()).entries:
            links.setdefault(entry.link, set()).add(path.name)
    for path in JSON_FEEDS:
        for item in json.loads(path.read_bytes())["items"]:
            links.setdefault(item["url"], set()).add(path.name)
    by_bare_url: dict[str, set[str]] = {}
    for link, files in links.items():
        bare = url_query_cleaner(link, ("utm_source", "utm_medium", "fbclid"), remove=True)
        by_bare_url.setdefault(bare, set()).update(files)
    shared = {url for url, files in by_bare_url.items() if len(files) > 1}
    assert shared == {
        "https://english.enabbaladi.example/2026/11/turkish-military-teams-survey-syrias-t4-air-base/"
    }
