"""Story assignment end to end: stored articles → stories in the database → digest, export.

Every test runs on SQLite and PostgreSQL (`database`). Articles are stored through the
real `store_articles`, topics matched by the real `ArticleProcessor`, digests built by
the real `digest_once`; the concurrency test runs real processes.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from digest.run import digest_once
from newswatch import story_worker
from newswatch.config import Config, load_config
from newswatch.processing import ArticleProcessor
from newswatch.stories import StoryRun, assign_next_page, assign_stories, forget_cached_clusterers
from newswatch.story_worker import StoryWorker
from storage.db import Database, open_database
from storage.export import iter_articles
from storage.ingest import store_articles
from storage.models import Article, Story
from storage.stories import unclustered_articles
from tests.fixtures.db import add_source, article_record, process_context
from tests.test_cluster import LEDE, UNRELATED
from watch.cluster import (
    SKETCH_PREFIX,
    StoryAssignment,
    StoryCandidate,
    StoryClusterer,
    sketch,
)

NOW = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)

WIRE = [  # (outlet, title, hours before NOW): one wire story, three outlets
    ("AFP", "Israeli strike kills three in south Lebanon", 5.0),
    ("France 24", "Israeli strike kills three in south Lebanon: ministry", 4.0),
    ("Al Arabiya", "Israeli strike on car kills three in south Lebanon", 3.0),
]


def write_config(directory: Path, database_url: str, extra: str = "") -> Config:
    path = directory / "newswatch.toml"
    path.write_text(
        '[[topics]]\nname = "Lebanon"\nquery = "Nabatieh"\n\n'
        f'[[digests]]\nname = "daily"\nformat = "markdown"\noutput = "{directory / "out"}"\n'
        f"{extra}",
        encoding="utf-8",
    )
    return load_config(path, {"NEWSWATCH_DATABASE_URL": database_url})


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Config:
    forget_cached_clusterers()  # each test's database is new, even at the same URL
    return write_config(tmp_path, database_url)


class Newsroom:
    """Stores articles the way a poll does, one numbered article at a time."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.sources: dict[str, int] = {}
        self.number = 0

    def store(
        self,
        title: str,
        summary: str,
        *,
        source: str = "AFP",
        hours_ago: float = 1,
        sketched: bool = False,
    ) -> int:
        """Store one article; `sketched`: with its sketch, as a poll's parse worker gives it."""
        if source not in self.sources:
            self.sources[source] = add_source(self.db, source)
        self.number += 1
        html = f"<p>{summary}</p>"
        record = article_record(
            self.number,
            source=source,
            title=title,
            summary=html,
            published_at=NOW - timedelta(hours=hours_ago),
            sketch=sketch(title, html) if sketched else None,
        )
        with self.db.session() as session:
            stored = store_articles(session, self.sources[source], [record], NOW)
        (article_id,) = stored.new_article_ids
        return article_id

    def store_wire(self, copies: int = len(WIRE)) -> list[int]:
        """Store the first `copies` outlets' copies of the wire story (`WIRE`); their ids."""
        return [self.store(title, LEDE, source=src, hours_ago=h) for src, title, h in WIRE[:copies]]


@pytest.fixture
def newsroom(database: Database) -> Newsroom:
    return Newsroom(database)


def story_of(db: Database) -> dict[int, int | None]:
    with db.session(readonly=True) as session:
        return {row[0]: row[1] for row in session.execute(select(Article.id, Article.story_id))}


def stories(db: Database) -> dict[int, tuple[int | None, int, datetime, datetime]]:
    with db.session(readonly=True) as session:
        rows = session.execute(
            select(
                Story.id,
                Story.representative_article_id,
                Story.article_count,
                Story.first_seen_at,
                Story.last_seen_at,
            )
        )
        return {row[0]: tuple(row[1:]) for row in rows}  # type: ignore[misc]


def test_wire_copies_from_three_outlets_are_saved_as_one_story(
    newsroom: Newsroom, config: Config
) -> None:
    ids = newsroom.store_wire()
    other = newsroom.store("Arsenal beat Chelsea", UNRELATED, hours_ago=2)

    run = assign_stories(newsroom.db, config, NOW)

    assert run == StoryRun(assigned=4, joined=2, merged=0, reloaded=True, held=4)
    assert story_of(newsroom.db) == {ids[0]: ids[0], ids[1]: ids[0], ids[2]: ids[0], other: other}


def test_a_story_row_has_its_representative_count_and_seen_times(
    newsroom: Newsroom, config: Config
) -> None:
    # published in reverse order of id: the representative is the earliest published
    late = newsroom.store(WIRE[0][1], LEDE, source="AFP", hours_ago=1)
    early = newsroom.store(WIRE[1][1], LEDE, source="France 24", hours_ago=6)

    assign_stories(newsroom.db, config, NOW)

    assert stories(newsroom.db) == {late: (early, 2, NOW, NOW)}


def test_a_bridging_article_merges_stories_moving_members_and_deleting_the_merged_row(
    newsroom: Newsroom, config: Config
) -> None:
    lebanon = newsroom.store("", LEDE, hours_ago=5)
    football = newsroom.store("", UNRELATED, source="BBC", hours_ago=4)
    assign_stories(newsroom.db, config, NOW)
    assert set(stories(newsroom.db)) == {lebanon, football}
    # carries both texts: a near-duplicate of each, it joins the two stories
    bridge = newsroom.store(LEDE, UNRELATED, source="Wire", hours_ago=3)

    run = assign_stories(newsroom.db, config, NOW)

    assert (run.assigned, run.merged, run.reloaded) == (1, 1, False)
    assert story_of(newsroom.db) == {lebanon: lebanon, football: lebanon, bridge: lebanon}
    assert stories(newsroom.db) == {lebanon: (lebanon, 3, NOW, NOW)}


def test_running_again_without_new_articles_changes_nothing(
    newsroom: Newsroom, config: Config
) -> None:
    for src, title, h in WIRE:
        newsroom.store(title, LEDE, source=src, hours_ago=h)
    assign_stories(newsroom.db, config, NOW)
    before = (story_of(newsroom.db), stories(newsroom.db))

    run = assign_stories(newsroom.db, config, NOW + timedelta(minutes=5))

    assert run.assigned == 0
    assert (story_of(newsroom.db), stories(newsroom.db)) == before


def test_after_a_restart_a_new_copy_joins_the_stored_story(
    newsroom: Newsroom, config: Config
) -> None:
    first = newsroom.store(WIRE[0][1], LEDE, source="AFP", hours_ago=5)
    assign_stories(newsroom.db, config, NOW)
    forget_cached_clusterers()
    copy = newsroom.store(WIRE[2][1], LEDE, source="Al Arabiya", hours_ago=1)

    run = assign_stories(newsroom.db, config, NOW)

    assert run.reloaded
    assert story_of(newsroom.db) == {first: first, copy: first}


def test_articles_with_a_current_sketch_are_read_without_their_text(
    newsroom: Newsroom, config: Config
) -> None:
    sketched = newsroom.store(WIRE[0][1], LEDE, sketched=True)
    plain = newsroom.store(WIRE[1][1], LEDE)
    older = newsroom.store(WIRE[2][1], LEDE)
    current = sketch(WIRE[2][1], LEDE)
    assert current is not None
    with newsroom.db.session() as session:  # a sketch of an earlier version
        session.get_one(Article, older).sketch = b"\x01" + current[1:]

    with newsroom.db.session(readonly=True) as session:
        rows = unclustered_articles(session, limit=10, sketch_prefix=SKETCH_PREFIX)

    texts = {row.id: (row.title, row.summary) for row in rows}
    assert texts == {
        sketched: ("", ""),
        plain: (WIRE[1][1], f"<p>{LEDE}</p>"),
        older: (WIRE[2][1], f"<p>{LEDE}</p>"),
    }


def test_sketched_articles_read_without_text_cluster_as_their_text_does(
    newsroom: Newsroom, config: Config
) -> None:
    first = newsroom.store(WIRE[0][1], LEDE, source="AFP", hours_ago=5, sketched=True)
    copy = newsroom.store(WIRE[1][1], LEDE, source="France 24", hours_ago=4, sketched=True)
    other = newsroom.store("Arsenal beat Chelsea", UNRELATED, hours_ago=3, sketched=True)
    assign_stories(newsroom.db, config, NOW)
    forget_cached_clusterers()  # the next run reloads the window from the sketches
    late = newsroom.store(WIRE[2][1], LEDE, source="Al Arabiya", hours_ago=1, sketched=True)

    run = assign_stories(newsroom.db, config, NOW)

    assert run.reloaded
    assert story_of(newsroom.db) == {first: first, copy: first, other: other, late: first}


def test_articles_older_than_the_window_are_not_reloaded(
    newsroom: Newsroom, config: Config
) -> None:
    newsroom.store(WIRE[0][1], LEDE, hours_ago=100)
    assign_stories(newsroom.db, config, NOW)
    forget_cached_clusterers()
    newsroom.store(WIRE[2][1], LEDE, source="Al Arabiya", hours_ago=1)

    run = assign_stories(newsroom.db, config, NOW)

    assert (run.reloaded, run.held) == (True, 1)


def test_a_run_with_nothing_to_assign_loads_nothing_and_keeps_the_cache(
    newsroom: Newsroom, config: Config
) -> None:
    first = newsroom.store(WIRE[0][1], LEDE, source="AFP", hours_ago=5)
    assign_stories(newsroom.db, config, NOW)

    idle = assign_stories(newsroom.db, config, NOW)
    copy = newsroom.store(WIRE[2][1], LEDE, source="Al Arabiya", hours_ago=1)
    run = assign_stories(newsroom.db, config, NOW)

    assert idle == StoryRun()
    assert (run.assigned, run.reloaded) == (1, False)
    assert story_of(newsroom.db) == {first: first, copy: first}


def test_disabled_clustering_assigns_nothing(
    newsroom: Newsroom, tmp_path: Path, database_url: str
) -> None:
    article = newsroom.store(WIRE[0][1], LEDE)
    config = write_config(tmp_path, database_url, "[clustering]\nenabled = false\n")

    assert assign_stories(newsroom.db, config, NOW) == StoryRun()
    assert story_of(newsroom.db) == {article: None}


def test_export_includes_the_story_id(newsroom: Newsroom, config: Config) -> None:
    ids = newsroom.store_wire()
    assign_stories(newsroom.db, config, NOW)

    with newsroom.db.session(readonly=True) as session:
        exported = {a.id: a.story_id for a in iter_articles(session)}

    assert exported == dict.fromkeys(ids, ids[0])


def test_digest_shows_one_wire_story_once_with_the_other_outlets_also_reporting(
    newsroom: Newsroom, config: Config
) -> None:
    processor, _ = ArticleProcessor.prepare(newsroom.db, config, NOW - timedelta(hours=6))
    ids = newsroom.store_wire()
    with newsroom.db.session() as session:
        assert processor.process(session, ids, NOW - timedelta(hours=1)) == 3
    assign_stories(newsroom.db, config, NOW)

    result = digest_once(config, newsroom.db, now=NOW)

    markdown = Path(result.channels[0].path or "").read_text(encoding="utf-8")
    assert result.channels[0].stories == 1
    assert markdown.count("kills three") == 1  # one headline (the snippet says "killed")
    [also] = [line for line in markdown.splitlines() if "Also reported by" in line]
    assert sum(outlet in also for outlet, _, _ in WIRE) == 2


# --- two processes storing and clustering at once ------------------------------------


def _store_and_cluster(url: str, config_path: str, worker: int, start: Any) -> None:
    """Store this worker's share of a story stream, clustering after every few feeds."""
    db = open_database(url)
    config = load_config(config_path, {"NEWSWATCH_DATABASE_URL": url})
    source_id = add_source(db, f"Feed {worker}")
    start.wait(60)
    for batch in range(6):
        records = []
        for story in range(batch * 4, batch * 4 + 4):
            title, summary = _story_text(story)
            if (story + worker) % 3:  # a story only some outlets carry
                n = 1000 * worker + story
                records.append(
                    article_record(
                        n,
                        source=f"Feed {worker}",
                        title=title,
                        summary=summary,
                        published_at=NOW - timedelta(hours=30 - story),
                    )
                )
        if worker == 2 and batch == 3:
            # carries the text of stories 1 and 2: a near-duplicate of both, it joins them
            bridge = (_story_text(1)[1], _story_text(2)[1])
            records.append(
                article_record(
                    2999,
                    source="Feed 2",
                    title=bridge[0],
                    summary=bridge[1],
                    published_at=NOW - timedelta(hours=20),
                )
            )
        with db.session() as session:
            store_articles(session, source_id, records, NOW)
        assign_stories(db, config, NOW)
    db.dispose()


def _story_text(story: int) -> tuple[str, str]:
    words = [f"w{story}x{k}" for k in range(30)]
    return " ".join(words[:6]), " ".join(words)


def test_two_processes_storing_and_clustering_at_once_end_as_one_clustering_would(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    config_path = write_config(tmp_path, database_url).path
    ctx = process_context()
    start = ctx.Event()
    workers = [
        ctx.Process(target=_store_and_cluster, args=(database_url, str(config_path), w, start))
        for w in (1, 2)
    ]
    for process in workers:
        process.start()
    start.set()
    for process in workers:
        process.join(120)
    assert [p.exitcode for p in workers] == [0, 0]

    with database.session(readonly=True) as session:
        rows = session.execute(
            select(Article.id, Article.published_at, Article.title, Article.summary)
        ).all()
    reference = StoryClusterer()
    reference.add([StoryCandidate(*row) for row in sorted(rows)])
    expected = {row.id: reference.story_of(row.id) for row in rows}
    assert story_of(database) == expected
    # copies joined, the bridge joined stories 1 and 2, the other stories stayed apart
    assert len(set(expected.values())) == 23
    representatives = {
        key: info.representative_article_id
        for key in set(expected.values())
        if key is not None and (info := reference.story(key)) is not None
    }
    assert {k: v[0] for k, v in stories(database).items()} == representatives


def test_a_run_by_another_process_makes_the_next_run_reload(
    newsroom: Newsroom, config: Config, database_url: str
) -> None:
    newsroom.store(WIRE[0][1], LEDE, hours_ago=5)
    assign_stories(newsroom.db, config, NOW)
    newsroom.store(WIRE[1][1], LEDE, source="France 24", hours_ago=4)
    ctx = process_context()
    child = ctx.Process(target=_cluster_once, args=(database_url, str(config.path)))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    newsroom.store(WIRE[2][1], LEDE, source="Al Arabiya", hours_ago=3)

    run = assign_stories(newsroom.db, config, NOW)

    assert (run.assigned, run.reloaded) == (1, True)
    assert len(set(story_of(newsroom.db).values())) == 1


def _cluster_once(url: str, config_path: str) -> None:
    db = open_database(url)
    assign_stories(db, load_config(config_path, {"NEWSWATCH_DATABASE_URL": url}), NOW)
    db.dispose()


def test_a_page_is_clustered_without_the_lock_while_a_feed_is_stored(
    newsroom: Newsroom, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = newsroom.store_wire(2)
    meanwhile: list[int] = []
    real_add = StoryClusterer.add

    def add_while_a_feed_is_stored(
        self: StoryClusterer, items: Sequence[StoryCandidate]
    ) -> list[StoryAssignment]:
        # On SQLite this write would wait for the lock if the page held it.
        meanwhile.append(newsroom.store(WIRE[2][1], LEDE, source="Al Arabiya", hours_ago=3))
        return real_add(self, items)

    monkeypatch.setattr(StoryClusterer, "add", add_while_a_feed_is_stored)
    run = assign_next_page(newsroom.db, config, NOW)

    assert (run.assigned, run.joined, run.reloaded) == (2, 1, True)
    assert story_of(newsroom.db) == {first: first, second: first, meanwhile[0]: None}


def test_pages_are_assigned_oldest_first_and_the_next_one_reuses_the_clusterer(
    newsroom: Newsroom, config: Config
) -> None:
    ids = newsroom.store_wire()

    first = assign_next_page(newsroom.db, config, NOW, page_size=2)
    assigned_then = story_of(newsroom.db)
    second = assign_next_page(newsroom.db, config, NOW, page_size=2)
    third = assign_next_page(newsroom.db, config, NOW, page_size=2)

    assert assigned_then == {ids[0]: ids[0], ids[1]: ids[0], ids[2]: None}
    assert (second.assigned, second.reloaded) == (1, False)
    assert third == StoryRun()
    assert story_of(newsroom.db) == dict.fromkeys(ids, ids[0])
    assert first.assigned == 2


def test_a_page_clustered_while_another_run_saved_is_thrown_away_and_clustered_again(
    newsroom: Newsroom, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    lebanon = newsroom.store("", LEDE, hours_ago=5)
    bridge: list[int] = []
    real_add = StoryClusterer.add

    def add_while_another_run_saves(
        self: StoryClusterer, items: Sequence[StoryCandidate]
    ) -> list[StoryAssignment]:
        monkeypatch.setattr(StoryClusterer, "add", real_add)
        results = real_add(self, items)
        # Another process stores an article that joins both texts and clusters first.
        bridge.append(newsroom.store(LEDE, UNRELATED, source="Wire", hours_ago=4))
        assign_stories(newsroom.db, config, NOW)
        return results

    monkeypatch.setattr(StoryClusterer, "add", add_while_another_run_saves)
    run = assign_next_page(newsroom.db, config, NOW)
    # A clusterer kept from the stale page would not hold the bridge.
    football = newsroom.store("", UNRELATED, source="BBC", hours_ago=3)
    assign_stories(newsroom.db, config, NOW)

    assert run.assigned == 0  # the other run had assigned the page
    assert story_of(newsroom.db) == dict.fromkeys([lebanon, bridge[0], football], lebanon)
    assert stories(newsroom.db) == {lebanon: (lebanon, 3, NOW, NOW)}


def test_a_story_worker_assigns_what_it_is_nudged_about_as_one_run_in_process_would(
    newsroom: Newsroom, config: Config
) -> None:
    worker = StoryWorker(config, NOW, start_after=1)
    ids = []
    for src, title, h in WIRE:
        ids.append(newsroom.store(title, LEDE, source=src, hours_ago=h))
        worker.nudge()
    started = worker.pid is not None
    lebanon = newsroom.store("", LEDE, source="Daily", hours_ago=2)
    football = newsroom.store("", UNRELATED, source="BBC", hours_ago=2)
    worker.nudge()
    bridge = newsroom.store(LEDE, UNRELATED, source="Wire", hours_ago=1)

    assigned, error = worker.finish()

    assert (started, assigned, error, worker.assigned_by_worker) == (True, 6, None, 6)
    assert worker.pid is None
    assert story_of(newsroom.db) == dict.fromkeys([*ids, lebanon, football, bridge], ids[0])


def test_a_story_worker_starts_only_once_enough_feeds_stored_articles(
    newsroom: Newsroom, config: Config
) -> None:
    worker = StoryWorker(config, NOW, start_after=3)
    ids = newsroom.store_wire()
    worker.nudge()
    worker.nudge()
    before = worker.pid
    worker.nudge()
    after = worker.pid

    assert (before, after is not None) == (None, True)
    assert worker.finish() == (3, None)
    assert story_of(newsroom.db) == dict.fromkeys(ids, ids[0])


def test_a_poll_that_never_started_its_story_worker_clusters_in_process(
    newsroom: Newsroom, config: Config
) -> None:
    worker = StoryWorker(config, NOW, start_after=3)
    ids = newsroom.store_wire(2)
    worker.nudge()
    worker.nudge()
    starts_before = story_worker.starts()

    assert worker.finish() == (2, None)
    assert (worker.assigned_by_worker, story_worker.starts()) == (0, starts_before)
    assert story_of(newsroom.db) == dict.fromkeys(ids, ids[0])


def test_when_the_story_worker_dies_the_poll_assigns_the_stories_itself(
    newsroom: Newsroom, config: Config
) -> None:
    worker = StoryWorker(config, NOW, start_after=1)
    ids = newsroom.store_wire()
    worker.nudge()
    pid = worker.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)

    assigned, error = worker.finish()

    assert error is None
    assert worker.assigned_by_worker == 0
    assert story_of(newsroom.db) == dict.fromkeys(ids, ids[0])
    assert assigned in (0, 3)  # the worker may have saved its page before it was killed


def test_an_abandoned_story_worker_ends_without_its_last_pass(
    newsroom: Newsroom, config: Config
) -> None:
    worker = StoryWorker(config, NOW, start_after=1)
    newsroom.store(WIRE[0][1], LEDE, hours_ago=5)
    worker.nudge()
    pid = worker.pid

    worker.abandon()

    assert pid is not None and worker.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_nudge_after_the_last_pass_starts_no_new_worker(
    newsroom: Newsroom, config: Config
) -> None:
    worker = StoryWorker(config, NOW, start_after=1)
    newsroom.store(WIRE[0][1], LEDE, hours_ago=5)
    worker.nudge()
    worker.finish()
    starts_before = story_worker.starts()

    worker.nudge()

    assert (worker.pid, story_worker.starts()) == (None, starts_before)


_WORKER_RUN = """
import gc, multiprocessing, pickle, sys
from datetime import datetime
from newswatch.story_worker import _serve
config = pickle.loads(open(sys.argv[1], "rb").read())
poll_end, worker_end = multiprocessing.Pipe()
poll_end.send("finish")
_serve(config, datetime.fromisoformat(sys.argv[2]), worker_end)
print(poll_end.recv())
print(sorted(m for m in ("aiohttp", "httpx", "feedparser", "newswatch.poll") if m in sys.modules))
print("frozen" if gc.get_freeze_count() else "tracked")
"""


def _worker_run(newsroom: Newsroom, config: Config, tmp_path: Path) -> list[str]:
    """What the story worker's entry point, run to its end in a fresh interpreter on
    one stored article, printed: its answer, the poll modules loaded, the GC's state."""
    newsroom.store(WIRE[0][1], LEDE, hours_ago=5)
    pickled = tmp_path / "config.pickle"
    pickled.write_bytes(pickle.dumps(config))
    worker = subprocess.run(
        [sys.executable, "-c", _WORKER_RUN, str(pickled), NOW.isoformat()],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return worker.stdout.splitlines()


def test_the_story_worker_does_not_load_the_polls_fetching_and_parsing(
    newsroom: Newsroom, config: Config, tmp_path: Path
) -> None:
    """It starts while the poll fetches: loading the fetch and parse stack there cost
    each poll ~0.3 s of CPU for modules the worker never uses."""
    assert _worker_run(newsroom, config, tmp_path)[:2] == ["(1, None)", "[]"]


def test_the_story_worker_leaves_what_it_holds_out_of_its_last_garbage_collection(
    newsroom: Newsroom, config: Config, tmp_path: Path
) -> None:
    """The poll waits for the worker to end, and the interpreter's last collection
    walked the clustering window first: ~0.2 s of every 1,000-feed poll."""
    assert _worker_run(newsroom, config, tmp_path)[1:] == ["[]", "frozen"]


_SETTLE = """
import gc, weakref
from newswatch.story_worker import _settle
class Node:
    pass
garbage = Node()
garbage.self = garbage  # a cycle: only the collector frees it
dead = weakref.ref(garbage)
del garbage
kept = [Node() for _ in range(100)]
before = gc.get_freeze_count()
_settle()
print(dead() is None, gc.get_freeze_count() > before)
"""


def test_between_passes_the_story_worker_frees_garbage_and_freezes_what_it_keeps() -> None:
    """The window only grows during a poll, and the collector's full passes walked all
    of it: ten took 0.5-0.67 s of the worker's CPU on the 1,000 bench feeds. Freezing
    without collecting first would keep a pass's reference cycles for good."""
    settled = subprocess.run(
        [sys.executable, "-c", _SETTLE], capture_output=True, text=True, timeout=60, check=True
    )

    assert settled.stdout.split() == ["True", "True"]
