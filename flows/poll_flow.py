"""The `poll` flow: every due source, fetched in batches inside a few tasks.

A task run costs Prefect a few milliseconds of client time, tens of milliseconds of
server CPU and ~20 KB of its database, so feeds are never one task each: they are
grouped by host into at most `MAX_TASKS` batches, each fetching many feeds with its
own share of [poll] concurrency. The batches all run at once (threads): run one after
another, each batch's slowest feed (up to [poll] feed_timeout) would add up; side by
side they overlap, as in a poll without Prefect. Per-feed failures are recorded by
newswatch itself; only batch-level transient failures (the database briefly
unreachable or locked) are retried by Prefect. Stories are assigned by one story worker
for the whole poll (`newswatch.story_worker`), fed by every batch as it stores feeds;
its last pass is the `assign-stories` task, once every batch has finished.

Tasks take the loaded config, the prepared topic matcher and plain dataclasses, never a
session, engine or client (Prefect would try to hash them), and nothing is cached: every
poll fetches. The config and matcher are handed over `quote`d: the flow loads and
prepares them once, and Prefect need not walk a thousand sources looking for futures.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TypeVar, cast
from urllib.parse import urlsplit

from prefect import flow, get_run_logger, runtime, task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.futures import PrefectFuture, wait
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import Task
from prefect.utilities.annotations import quote

from newswatch.config import Config, load_config
from newswatch.databases import database
from newswatch.malloc import limit_malloc_arenas
from newswatch.poll import FeedReport, PollReport, feed_listener
from newswatch.processing import ArticleProcessor
from newswatch.report import matches_markdown, poll_table
from newswatch.runs import plan_poll, poll_batch
from newswatch.story_worker import StoryWorker
from storage.db import DatabaseError
from storage.records import DueSource

_T = TypeVar("_T")

MAX_TASKS = 50  # batches per poll, whatever the number of feeds
POLL_TABLE_KEY = "newswatch-poll-feeds"
POLL_MATCHES_KEY = "newswatch-poll-matches"


def batches(due: Sequence[DueSource], batch_size: int) -> list[list[DueSource]]:
    """Split the due sources into at most `MAX_TASKS` batches of about `batch_size`.

    A host's feeds always share one batch: each batch enforces [poll] per_host on
    its own, so a host split over two batches running side by side would get twice
    its limit. Hosts are dealt largest first to the smallest batch so far.
    """
    if not due:
        return []
    by_host: dict[str, list[DueSource]] = defaultdict(list)
    for source in sorted(due, key=lambda s: s.id):
        by_host[(urlsplit(source.url).hostname or "").lower()].append(source)
    count = min(MAX_TASKS, len(by_host), max(1, math.ceil(len(due) / batch_size)))
    groups: list[list[DueSource]] = [[] for _ in range(count)]
    smallest_first = [(0, i) for i in range(count)]  # a heap of (size, batch index)
    for host in sorted(by_host, key=lambda h: (-len(by_host[h]), h)):
        size, index = heapq.heappop(smallest_first)
        groups[index].extend(by_host[host])
        heapq.heappush(smallest_first, (size + len(by_host[host]), index))
    return [group for group in groups if group]


def is_transient_batch_failure(task: Task[..., object], run: TaskRun, state: State) -> bool:
    """Retry a batch only when the database failed it (unreachable, locked, restarted).

    Feed failures never reach Prefect (newswatch stores them per feed), so any other
    exception is a bug or a bad config, and running it again would fail the same way.
    """
    try:
        state.result()
    except DatabaseError:
        return True
    except BaseException:  # any other failure is final
        return False
    return False


@task(
    name="plan-poll",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=is_transient_batch_failure,
    cache_policy=NO_CACHE,
)
def plan_task(
    config: Config, all_sources: bool, started_at: datetime
) -> tuple[list[DueSource], ArticleProcessor]:
    """Sync sources and topics (backfilling new topics once, not once per batch);
    the due sources and the topic processor every batch shares."""
    due = plan_poll(config, all_sources=all_sources, now=started_at)
    processor, _ = ArticleProcessor.prepare(database(config), config, started_at)
    return due, processor


@task(
    name="poll-batch",
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=is_transient_batch_failure,
    cache_policy=NO_CACHE,
)
def poll_batch_task(
    config: Config,
    processor: ArticleProcessor,
    sources: list[DueSource],
    started_at: datetime,
    parallel: int,
) -> PollReport:
    """Poll one of `parallel` batches end to end, with its share of the poll's concurrency.

    [poll] deadline bounds the whole poll, so a batch that starts late (a retry, a
    busy machine) gets only what is left of it.
    """
    poll = config.poll
    elapsed = (datetime.now(UTC) - started_at).total_seconds()
    shared = poll.model_copy(
        update={
            "concurrency": max(1, math.ceil(poll.concurrency / parallel)),
            "deadline": max(0.001, poll.deadline - elapsed),
        }
    )
    config = replace(config, file=config.file.model_copy(update={"poll": shared}))
    return poll_batch(config, sources, now=started_at, processor=processor)


@task(name="assign-stories", cache_policy=NO_CACHE)
def assign_stories_task(stories: StoryWorker) -> tuple[int, str | None]:
    """Give every new article of the poll a story, after every batch has stored them:
    the story worker's last pass (it clustered what the batches stored meanwhile)."""
    return stories.finish()


def _handed(value: _T) -> _T:
    """`value`, wrapped so Prefect passes it to a task as is, without walking it.

    Typed as the value itself: Prefect unwraps `quote` before the task runs, but its
    task signatures do not say so.
    """
    return cast(_T, quote(value))


def poll_run_name() -> str:
    """`poll-YYYYMMDD-HHMM`, in UTC, from the run's scheduled start."""
    return f"poll-{runtime.flow_run.scheduled_start_time.astimezone(UTC):%Y%m%d-%H%M}"


def _failed_batch(group: list[DueSource], error: BaseException) -> list[FeedReport]:
    message = f"batch failed: {type(error).__name__}: {error}"
    return [FeedReport(s.id, s.name, s.url, "batch-failed", error=message) for s in group]


def _run_batches(
    config: Config,
    processor: ArticleProcessor,
    groups: list[list[DueSource]],
    started_at: datetime,
    stories: StoryWorker,
) -> tuple[PollReport, BaseException | None]:
    """The batch tasks, side by side: their merged report and the first failure."""
    parallel = max(1, len(groups))
    # The tasks run in copies of this context: each feed they store nudges `stories`.
    listening = feed_listener.set(stories.listener(feed_listener.get()))
    try:
        futures: list[PrefectFuture[PollReport]] = [
            poll_batch_task.submit(
                _handed(config), _handed(processor), _handed(group), started_at, parallel
            )
            for group in groups
        ]
    finally:
        feed_listener.reset(listening)
    wait(futures)
    report = PollReport(started_at=started_at)
    failure: BaseException | None = None
    for group, future in zip(groups, futures, strict=True):
        try:
            report.merge(future.result())
        except Exception as error:  # reported by the flow, then re-raised
            failure = failure or error
            report.feeds.extend(_failed_batch(group, error))
    return report, failure


@flow(
    name="newswatch-poll",
    flow_run_name=poll_run_name,
    # Prefect types task_runner invariantly; a thread pool runner is what it expects
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_TASKS),  # type: ignore[arg-type]
)
async def poll_flow(config_path: str = "newswatch.toml", all_sources: bool = False) -> PollReport:
    """Poll every due source (or every source with `all_sources`) once.

    Publishes a table artifact (one row per feed) and a Markdown artifact of the new
    matches, under keys that stay the same from run to run. A batch that still fails
    after its retries fails the run, after the artifacts show what the others did.
    """
    # A flow run started by a Prefect worker does not come through newswatch's command
    # line; its batch threads have not started yet.
    limit_malloc_arenas()
    config: Config = load_config(config_path)
    started_at = datetime.now(UTC)
    due, processor = plan_task(_handed(config), all_sources, started_at)
    groups = batches(due, config.poll.batch_size)
    stories = StoryWorker(config, started_at)
    try:
        report, failure = _run_batches(config, processor, groups, started_at, stories)
        if failure is None:
            report.stories_assigned, report.story_error = assign_stories_task(_handed(stories))
    finally:
        stories.abandon()  # if the poll failed; its articles are assigned by the next one
    report.finished_at = report.finished_at or datetime.now(UTC)
    await acreate_table_artifact(
        poll_table(report),
        key=POLL_TABLE_KEY,
        description=f"Feeds polled {started_at:%Y-%m-%d %H:%M} UTC: status, new articles, error",
    )
    await acreate_markdown_artifact(
        matches_markdown(config, report), key=POLL_MATCHES_KEY, description="New topic matches"
    )
    get_run_logger().info(
        "%d feeds in %d batches: %d ok, %d unchanged, %d failed; %d new articles, %d new matches",
        len(report.feeds),
        len(groups),
        report.ok,
        report.unchanged,
        report.failed,
        report.new_articles,
        report.new_matches,
    )
    if failure is not None:
        raise failure
    return report
