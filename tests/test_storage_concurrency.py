"""Real concurrent processes against one database: nothing duplicated, nothing lost."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime

from sqlalchemy import func, select

from storage.db import Database
from storage.ingest import store_articles
from storage.models import Article, Sighting
from tests.fixtures.db import add_source, article_record, process_context, store_in_child


def _counts(db: Database) -> tuple[int, int]:
    with db.session(readonly=True) as s:
        articles = s.scalar(select(func.count()).select_from(Article)) or 0
        sightings = s.scalar(select(func.count()).select_from(Sighting)) or 0
    return articles, sightings


def test_two_writers_with_overlapping_batches_store_each_article_once(database: Database) -> None:
    ctx = process_context()
    start = ctx.Event()
    committed = ctx.Value("i", 0)
    new_articles = ctx.Value("i", 0)
    first = list(range(0, 600))
    second = list(reversed(range(300, 900)))  # meet in the middle, from the other end
    procs = [
        ctx.Process(
            target=store_in_child,
            args=(database.url, name, numbers, 50, committed, new_articles, start),
        )
        for name, numbers in (("Writer A", first), ("Writer B", second))
    ]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]  # no "database is locked", no deadlock
    assert _counts(database) == (900, 1200)
    assert new_articles.value == 900  # every article reported new by exactly one writer


def test_writer_killed_mid_batch_loses_nothing_committed_and_rerun_duplicates_nothing(
    database: Database,
) -> None:
    ctx = process_context()
    committed = ctx.Value("i", 0)
    hung = ctx.Event()
    numbers = list(range(400))
    proc = ctx.Process(
        target=store_in_child,
        args=(database.url, "Feed A", numbers, 50, committed),
        kwargs={"hang_in_batch": 3, "hung": hung},
    )
    proc.start()
    assert hung.wait(120)
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(60)

    assert committed.value == 3
    assert _counts(database) == (150, 150)  # three whole batches, none of the fourth

    source = add_source(database, "Feed A")
    with database.session() as s:
        rerun = store_articles(s, source, [article_record(n) for n in numbers], datetime.now(UTC))
    assert len(rerun.new_article_ids) == 250
    assert rerun.duplicates == 150
    assert _counts(database) == (400, 400)
