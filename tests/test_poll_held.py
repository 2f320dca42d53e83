"""Fetched feeds a poll holds before storing them (`newswatch.poll.HELD_FEEDS`,
`HELD_BYTES`): enough that parsing goes on while the store thread waits for the
database, never so many bodies that memory follows the feeds' sizes.

The bound itself with plain asyncio; the whole poll with a real loopback feed server
and a real database.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from newswatch import poll
from newswatch.poll import _Held
from newswatch.runs import poll_once
from sources.fetch import FetchRequest, FetchResult
from storage.models import Article
from tests.fixtures.http import FeedServer
from tests.test_poll_pipeline import count, load, rss, story, write_config


def fetched(size: int | None) -> FetchResult:
    """A fetch result with a body of `size` bytes (None: a 304, no body)."""
    return FetchResult(
        request=FetchRequest(key=1, url="http://127.0.0.1/feed.xml"),
        status="ok" if size is not None else "not_modified",
        http_status=200 if size is not None else 304,
        body=None if size is None else b"x" * size,
        content_type="application/rss+xml",
        etag=None,
        last_modified=None,
        final_url="http://127.0.0.1/feed.xml",
        permanent_redirect=None,
        error=None,
        elapsed_s=0.01,
    )


async def _lets_in(held: _Held, result: FetchResult) -> bool:
    """Whether `held` takes `result` without waiting (it then holds it)."""
    try:
        await asyncio.wait_for(held.acquire(result), timeout=0.05)
    except TimeoutError:
        return False
    return True


def test_no_more_feeds_than_the_bound_are_held_until_one_is_stored() -> None:
    async def scenario() -> list[bool]:
        held = _Held(feeds=3, size=1000)
        first = fetched(10)
        admitted = [await _lets_in(held, r) for r in (first, fetched(10), fetched(None))]
        admitted.append(await _lets_in(held, fetched(10)))
        await held.release(first)
        admitted.append(await _lets_in(held, fetched(10)))
        return admitted

    assert asyncio.run(scenario()) == [True, True, True, False, True]


def test_a_body_that_would_pass_the_byte_bound_waits_until_room_is_made() -> None:
    async def scenario() -> tuple[bool, bool, tuple[int, int]]:
        held = _Held(feeds=10, size=1000)
        first = fetched(600)
        await held.acquire(first)
        too_much = await _lets_in(held, fetched(500))
        await held.release(first)
        after = await _lets_in(held, fetched(500))
        return too_much, after, held.held

    assert asyncio.run(scenario()) == (False, True, (1, 500))


def test_a_body_larger_than_the_byte_bound_is_let_in_alone() -> None:
    async def scenario() -> tuple[bool, bool]:
        held = _Held(feeds=10, size=1000)
        huge = fetched(5000)
        alone = await _lets_in(held, huge)
        beside_it = await _lets_in(held, fetched(10))
        return alone, beside_it

    assert asyncio.run(scenario()) == (True, False)


def test_a_waiting_feed_goes_in_as_soon_as_a_stored_one_makes_room() -> None:
    async def scenario() -> tuple[int, int]:
        held = _Held(feeds=1, size=1000)
        first = fetched(10)
        await held.acquire(first)
        waiting = asyncio.create_task(held.acquire(fetched(20)))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        await held.release(first)
        await asyncio.wait_for(waiting, timeout=1)
        return held.held

    assert asyncio.run(scenario()) == (1, 20)


def test_a_poll_of_feeds_each_over_the_byte_bound_stores_them_all(
    tmp_path: Path, feed_server: FeedServer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(poll, "HELD_BYTES", 100)
    feeds = {
        f"Feed {f}": feed_server.route(f"/f{f}.xml", rss([story(f * 10 + k) for k in range(5)]))
        for f in range(6)
    }

    report = poll_once(load(write_config(tmp_path, feeds), database_url))

    assert sorted((f.status, f.new_articles) for f in report.feeds) == [("ok", 5)] * 6
    assert count(database_url, Article) == 30
