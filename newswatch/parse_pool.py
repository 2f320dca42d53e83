"""Body → article records (parse + identify), in this process or in a worker process.

Parse and identity are half of a cold poll's CPU, and under the GIL they run on the
same core as storing and matching. `poll_sources` sends them to one process-wide pool
of `WORKERS` spawned processes once the polls running in it have had `POOL_FROM`
bodies, so a second core parses while this process stores; smaller polls, and warm
polls (all 304), parse in process as before and never start it.

The stage is the plain function `parse_body`; the pool only moves it to another
process. `submit` and `collect` wrap it so that nothing the pool does can change what
is stored: a parse failure comes back as the same `FeedError` (rebuilt from plain
data, because an error class whose `__init__` takes more than the message does not
unpickle), and a pool that cannot run the parse (a worker died, the interpreter is
exiting) gives `None`, meaning "parse it in process".

Spawned, never forked: the poll runs beside Prefect's and asyncio's threads, and a
fork would copy their locks in whatever state they were in.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from typing import TypeAlias
from urllib.parse import urlsplit

from sources.clean import match_text
from sources.errors import ContentError, FeedError
from sources.identity import article_identity
from sources.model import Entry
from sources.parse import parse_feed
from storage.records import ArticleRecord, without_nul
from watch.cluster import feed_sketches

# One worker: on two cores this process (fetching, storing, matching: 22 s of CPU in a
# 1,000-feed cold poll, against the worker's 17 s) needs the other core. Two workers
# measured no faster, and slower when the machine had other work.
WORKERS = 1
# A poll parses its first bodies in process. A worker's start costs ~0.4 s of CPU
# (spawn re-imports the program's main module, then the parser); moving a body's parse
# saves this process ~15 ms (16 ms of parse and identity, less 1 ms to unpickle the
# records), so a poll of fewer bodies than this cannot win that back, and a larger one
# parses these first bodies while the worker starts.
POOL_FROM = 24


@dataclass(frozen=True, slots=True)
class ParsedBody:
    """A body's article records, and the parser's warning if it recovered from errors."""

    records: list[ArticleRecord]
    warning: str | None


def _web_link(link: str | None) -> str | None:
    """`link` unless it names a scheme other than http(s): a javascript: or data: link
    from a feed must not become an article's URL (export, digests, a reader's click)."""
    if link is None:
        return None
    scheme = urlsplit(link.strip()).scheme.lower()
    return link if scheme in ("", "http", "https") else None


def entry_record(entry: Entry, feed_url: str) -> ArticleRecord:
    identity = article_identity(entry, feed_url)
    link = _web_link(entry.link)
    return ArticleRecord(
        key=identity.key,
        key_kind=identity.kind,
        url=link,
        canonical_url=identity.canonical_url,
        guid=entry.guid,
        title=entry.title,
        summary=entry.summary,
        content=entry.content,
        author=entry.author,
        language=entry.language,
        published_at=entry.published,
        entry_url=link,
    )


def _sketches(records: list[ArticleRecord]) -> list[bytes | None]:
    """The story sketch of each of one feed's `records`, computed from the title and
    summary as `store_articles` stores them, and from the other entries of the feed
    (`watch.cluster.feed_sketches`: what most of them carry is the outlet's, not the
    story's). Only where a whole feed is at hand can that be known: every record a
    poll stores gets its sketch in `with_sketches` or `with_derived_fields`, in the
    worker or in process."""
    return feed_sketches(
        [(without_nul(r.title) or "", without_nul(r.summary) or "") for r in records]
    )


def with_sketches(records: list[ArticleRecord]) -> list[ArticleRecord]:
    """One feed's `records` carrying their story `sketch` (see `_sketches`)."""
    return [replace(r, sketch=s) for r, s in zip(records, _sketches(records), strict=True)]


def with_derived_fields(records: list[ArticleRecord]) -> list[ArticleRecord]:
    """One feed's `records` carrying their `match_text` and story `sketch`, computed
    from the title, summary and content as `store_articles` stores them."""
    # One copy of each record, not one per field: a frozen dataclass's `replace`
    # costs ~3.5 µs, a tenth of a sketch.
    return [
        replace(
            r,
            sketch=s,
            match_text=match_text(without_nul(r.summary) or "", without_nul(r.content)),
        )
        for r, s in zip(records, _sketches(records), strict=True)
    ]


def parse_in_process(body: bytes, url: str, content_type: str | None) -> ParsedBody | FeedError:
    """`parse_body`, with the records' sketches (`with_sketches`). Their match text is
    left to the matcher, which reads only the articles that are new."""
    outcome = parse_body(body, url, content_type)
    if isinstance(outcome, FeedError):
        return outcome
    return ParsedBody(with_sketches(outcome.records), outcome.warning)


def unexpected(doing: str, url: str, exc: BaseException) -> FeedError:
    """The error stored on a feed when `doing` it raised something no stage names."""
    first_line = (str(exc).strip().splitlines() or [""])[0][:300]
    return FeedError(f"unexpected {type(exc).__name__} {doing} {url}: {first_line}")


def parse_body(body: bytes, url: str, content_type: str | None) -> ParsedBody | FeedError:
    """The records in `body`, or the error to store on its feed."""
    try:
        parsed = parse_feed(body, url, content_type)
        return ParsedBody([entry_record(entry, url) for entry in parsed.entries], parsed.warning)
    except ContentError as err:
        return err
    except Exception as exc:  # a parser surprise on one feed must not stop the others
        return unexpected("parsing", url, exc)


@dataclass(frozen=True, slots=True)
class Failure:
    """A `FeedError` as plain data that always pickles."""

    error_class: type[FeedError]
    args: tuple[object, ...]
    attributes: dict[str, object]

    def error(self) -> FeedError:
        # Not `error_class(*args)`: an error's __init__ may want more than the message,
        # and attributes it sets (NotAFeed.alternate_url) are not in args.
        err = self.error_class.__new__(self.error_class, *self.args)
        err.args = self.args
        err.__dict__.update(self.attributes)
        return err


# A body's parse running in the pool.
Parsing: TypeAlias = Future[ParsedBody | Failure]


def _parse_in_worker(body: bytes, url: str, content_type: str | None) -> ParsedBody | Failure:
    outcome = parse_body(body, url, content_type)
    if isinstance(outcome, FeedError):
        return Failure(type(outcome), outcome.args, dict(vars(outcome)))
    # Cleaning the text for topic matching and the story sketch cost ~2.5 and ~1.5 ms
    # a feed; here they run on the worker's core instead of the storing process's,
    # which is the busier one. (In process only the sketches are computed: see
    # `parse_in_process`.)
    return ParsedBody(with_derived_fields(outcome.records), outcome.warning)


def _worker_start() -> None:
    # Ctrl-C reaches the whole process group; the poll's process shuts the pool down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A poll's process that is killed (SIGKILL, the OOM killer, a SIGTERM from Prefect
    # cancelling the run) cannot shut its pool down, and a worker waiting for its next
    # body would wait forever, holding its memory: it ends when that process does.
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(parent_sentinel: int) -> None:
    multiprocessing.connection.wait([parent_sentinel])
    os._exit(0)


_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_exit_hook = False
_polls = 0  # polls running in this process (see `in_use`)
_starts = 0  # pools started in this process
_bodies = 0  # bodies the running polls have fetched (see `take_body`)


def _executor() -> ProcessPoolExecutor:
    global _pool, _exit_hook, _starts
    with _lock:
        if _pool is None:
            _starts += 1
            _pool = ProcessPoolExecutor(
                WORKERS, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_start
            )
            if not _exit_hook:
                atexit.register(shutdown)
                _exit_hook = True
        return _pool


def _discard(pool: ProcessPoolExecutor) -> None:
    """Forget a broken pool; the next `submit` starts a new one. A broken pool's
    management thread has already failed its futures, ends its workers and closes its
    queues itself (and this may run on that thread, which must not wait for itself)."""
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None


def starts() -> int:
    """How many pools this process has started (a poll that used one started one)."""
    with _lock:
        return _starts


def started() -> bool:
    """Whether the pool exists (it starts on the first `submit`)."""
    with _lock:
        return _pool is not None


def shutdown() -> None:
    """Stop the pool's workers and wait for them (at exit; tests between cases)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def in_use() -> Iterator[None]:
    """Held by each running poll. When the last one ends, the pool's workers stop:
    an idle worker holds ~50 MB that the story clustering after a poll, or the next
    poll a quarter of an hour later, is better off without (a start costs ~0.4 s)."""
    global _polls, _bodies
    with _lock:
        _polls += 1
    try:
        yield
    finally:
        with _lock:
            _polls -= 1
            last = _polls == 0
            if last:
                _bodies = 0
        if last:
            shutdown()


def take_body() -> bool:
    """Count a body fetched by a running poll; whether it should parse in the pool.

    Counted across every poll running in the process, not per poll: a Prefect poll
    runs its feeds as up to 50 batches at once, and a rule per batch would keep
    24 bodies of each (most of a 1,000-feed poll) parsing in process.
    """
    global _bodies
    with _lock:
        _bodies += 1
        return _bodies > POOL_FROM


def submit(body: bytes, url: str, content_type: str | None) -> Parsing | None:
    """`parse_body` started in the pool (started if need be), or None if no pool can
    take it: the interpreter is exiting, or pools keep breaking."""
    for _ in range(2):
        pool = _executor()
        try:
            future = pool.submit(_parse_in_worker, body, url, content_type)
        except BrokenProcessPool:  # a worker died since the last result
            _discard(pool)
            continue
        except RuntimeError:  # shut down: the interpreter is exiting
            return None
        future.add_done_callback(functools.partial(_forget_if_broken, pool))
        return future
    return None


def _forget_if_broken(pool: ProcessPoolExecutor, future: Parsing) -> None:
    if not future.cancelled() and isinstance(future.exception(), BrokenProcessPool):
        _discard(pool)


def collect(future: Parsing) -> ParsedBody | FeedError | None:
    """A finished `submit` future's outcome: what `parse_body` returned in the worker,
    or None when the pool failed to run it (parse the body in process then)."""
    try:
        outcome = future.result(timeout=0)
    except Exception:  # BrokenProcessPool, or a result that did not pickle
        return None
    return outcome.error() if isinstance(outcome, Failure) else outcome
