"""Story clustering beside a poll, in a process of its own.

A cold poll of 1,000 feeds stores ~50,000 articles, and clustering them after the
last feed (reading them back, `add`, saving) took a third of the poll, on one core
while the other idled. In the poll's own process it cannot overlap the fetching and
storing: under the GIL, clustering in a thread there cost more than twice its serial
CPU and slowed the poll down (bench/README.md). So a poll that stores articles starts
a `StoryWorker`: a child process that clusters the stored articles while the poll goes
on, in passes at most every `PASS_SECONDS` (`newswatch.stories.assign_next_page`, which
holds the story lock, on SQLite the write lock, only while it saves), and at the poll's
end makes one last locked pass (`assign_stories`), as the poll itself would have.

The stories are the ones the poll would have made itself: the articles reach the
clusterer in the same order (oldest id first), a page at a time instead of all at once
(`newswatch.stories` keeps two windows of articles while pages come in, so where a
page begins does not matter). The worker starts once `START_AFTER` feeds have stored
new articles: a poll that found little or nothing new clusters in its own process, as
before. If the worker cannot start, fails or dies, the poll clusters in its own
process too: every article without a story is still there to assign.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from newswatch.config import Config
from newswatch.startup import claim, loading

if TYPE_CHECKING:  # the worker process has no use for the poll's imports
    from newswatch.poll import FeedReport

__all__ = ["START_AFTER", "StoryWorker", "starts"]

_NUDGE = "nudge"
_FINISH = "finish"
# Feeds with new articles before a poll starts its worker. A start costs ~0.5 s of CPU
# and ~60 MB; from four feeds on it pays: the worker reloads the window (~1.7 s of CPU
# for a 1,000-feed window) while the poll is still fetching. A 10%-changed poll of
# 1,000 feeds, alternating: 4.5-5.7 s against 4.6-6.7 s when it started at 24 feeds.
START_AFTER = 4
# Seconds between the worker's passes over what the poll stored meanwhile, at least.
PASS_SECONDS = 0.5
# How long `finish` waits for the worker's last pass before it clusters in process.
# The last pass saves what the worker has clustered and clusters what it has not:
# well under a minute even for a 10,000-feed poll.
FINISH_TIMEOUT = 600.0


_starts = 0  # workers this process has started


def starts() -> int:
    """How many story workers this process has started."""
    return _starts


@dataclass
class StoryWorker:
    """One poll's clustering process, started by `nudge` once enough feeds stored articles."""

    config: Config
    now: datetime
    start_after: int | None = None  # feeds with new articles before it starts; None: START_AFTER
    assigned_by_worker: int = field(default=0, init=False)
    _nudges: int = field(default=0, init=False)
    _process: BaseProcess | None = field(default=None, init=False)
    _conn: Connection | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _failed: bool = field(default=False, init=False)
    _closed: bool = field(default=False, init=False)  # finished or abandoned: no new start

    @property
    def pid(self) -> int | None:
        """The worker process's id while it runs (None before it starts and after)."""
        process = self._process
        return None if process is None else process.pid

    def nudge(self) -> None:
        """Articles were committed: cluster them (starting the worker if need be)."""
        with self._lock:
            self._nudges += 1
            start_after = START_AFTER if self.start_after is None else self.start_after
            if self._failed or self._closed or self._nudges < start_after:
                return
            try:
                if self._conn is None:
                    self._start()
                assert self._conn is not None
                self._conn.send(_NUDGE)
            except (OSError, ValueError, RuntimeError):  # could not start, or it died
                self._failed = True

    def listener(
        self, then: Callable[[FeedReport], None] | None = None
    ) -> Callable[[FeedReport], None]:
        """A poll's `on_feed`: nudge when a stored feed brought new articles, then `then`."""

        def on_feed(feed: FeedReport) -> None:
            if feed.new_articles:
                self.nudge()
            if then is not None:
                then(feed)

        return on_feed

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=_serve,
            args=(self.config, self.now, child),
            name="newswatch-stories",
            daemon=True,
        )
        process.start()
        child.close()
        global _starts
        _starts += 1
        self._process, self._conn = process, parent

    def finish(self) -> tuple[int, str | None]:
        """Assign every article still without a story; (articles assigned, error or None).

        The worker's last pass if it runs, else (never started, failed, or died) the same
        work in this process.
        """
        from newswatch.runs import cluster_new_articles

        with self._lock:
            process, conn = self._process, self._conn
            self._process = self._conn = None
            self._closed = True
            failed = self._failed
        if process is None or conn is None:
            return cluster_new_articles(self.config, now=self.now)
        try:
            assigned = 0
            error: str | None = "the story worker died"
            if not failed:
                conn.send(_FINISH)
                if conn.poll(FINISH_TIMEOUT):
                    assigned, error = conn.recv()
                else:
                    error = "the story worker did not finish"
        except (OSError, EOFError, ValueError):  # it died: `error` says so
            pass
        finally:
            conn.close()
            _end(process)
        self.assigned_by_worker = assigned
        if error is None:
            return assigned, None
        # What the worker saved stays saved; the rest is assigned here.
        more, error = cluster_new_articles(self.config, now=self.now)
        return assigned + more, error

    def abandon(self) -> None:
        """End the worker without its last pass (the poll failed; what it saved stays
        saved, the next poll assigns the rest). Nothing to do after `finish`."""
        with self._lock:
            process, conn = self._process, self._conn
            self._process = self._conn = None
            self._closed = True
        if conn is not None:
            conn.close()  # the worker reads the end of the pipe and exits
        if process is not None:
            _end(process)


def _end(process: BaseProcess) -> None:
    process.join(5)
    if process.is_alive():
        process.kill()
        process.join()


def _serve(config: Config, now: datetime, conn: Connection) -> None:
    """The worker process: passes over what is stored as nudges come, a locked pass to finish."""
    # Ctrl-C reaches the whole process group; the poll's process ends the worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    assigned = 0
    claim()  # this process ends with the poll: what it loads can be frozen
    try:
        with loading():
            from newswatch.databases import database
            from newswatch.stories import PAGE, assign_next_page, assign_stories
            from storage.db import DatabaseError

            db = database(config)
        last_pass = time.monotonic()
        while not _finishing(conn, last_pass + PASS_SECONDS):
            last_pass = time.monotonic()
            with contextlib.suppress(DatabaseError):  # e.g. busy: the next pass retries
                while True:
                    run = assign_next_page(db, config, now, page_size=PAGE)
                    assigned += run.assigned
                    _settle()
                    if run.assigned < PAGE:  # else a full page: there may be more
                        break
        # Under the lock, as the poll would have run it; its error is the one reported.
        assigned += assign_stories(db, config, now).assigned
    except EOFError:  # the poll's process went away, or abandoned the worker
        return
    except Exception as err:  # reported to the poll, which clusters in its own process
        # One line, never a traceback on the user's terminal: the poll's process
        # assigns what is left, and reports the error if it fails there too.
        conn.send((assigned, f"{type(err).__name__}: {err}"))
        return
    finally:
        # The poll waits for this process to end, and the interpreter's last garbage
        # collection would walk the window's ~50,000 articles first (~0.2 s).
        gc.freeze()
    conn.send((assigned, None))


def _settle() -> None:
    """Free a pass's garbage, then exempt what survives (the window the clusterer
    keeps) from the collector's later full passes.

    Those passes walk every tracked object, and the window only grows during a poll:
    on the 1,000 bench feeds ten of them took 0.5-0.67 s of the worker's CPU. The
    collection here walks only what the pass allocated, as the rest is frozen, and
    frees its cycles first, so nothing that is garbage is ever frozen.
    """
    gc.collect()
    gc.freeze()


def _finishing(conn: Connection, not_before: float) -> bool:
    """Wait for a nudge and until `not_before`; True as soon as the poll says it is done.

    Nudges that come meanwhile count as one: a pass a feed (a few dozen articles, two
    transactions and a turn at SQLite's write lock each) cost more than it saved.
    """
    if conn.recv() == _FINISH:
        return True
    while (left := not_before - time.monotonic()) > 0 and conn.poll(left):
        if conn.recv() == _FINISH:
            return True
    while conn.poll():
        if conn.recv() == _FINISH:
            return True
    return False
