"""The `poll` flow: every due source, fetched in batches inside a few tasks.

A task run costs Prefect a few milliseconds of client time and tens of milliseconds
of server CPU, so feeds are never one task each: they are grouped by host into at
most `MAX_TASKS` batches, each fetching many feeds with its own bounded concurrency.
Per-feed failures are recorded by newswatch itself; only batch-level transient
failures (the database briefly unreachable) are retried by Prefect.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import Task

from newswatch.config import Config, load_config
from newswatch.poll import PollReport
from newswatch.report import matches_markdown, poll_table
from newswatch.runs import plan_poll, poll_batch
from storage.db import DatabaseError
from storage.records import DueSource

MAX_TASKS = 50
PARALLEL_BATCHES = 2
POLL_TABLE_KEY = "newswatch-poll-feeds"
POLL_MATCHES_KEY = "newswatch-poll-matches"


def batches(due: Sequence[DueSource], batch_size: int) -> list[list[DueSource]]:
    """Split the due sources into at most MAX_TASKS batches, one host's feeds together.

    Keeping a host in one batch keeps the per-host limit meaningful across batches that
    run at the same time.
    """
    if not due:
        return []
    count = min(MAX_TASKS, max(1, math.ceil(len(due) / batch_size)))
    ordered = sorted(due, key=lambda s: ((urlsplit(s.url).hostname or ""), s.id))
    size = math.ceil(len(ordered) / count)
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def _batch_failure_is_transient(task: Task[..., PollReport], run: TaskRun, state: State) -> bool:
    try:
        state.result()
    except DatabaseError:
        return True
    except Exception:
        return False
    return False


@task(
    name="poll-batch",
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=_batch_failure_is_transient,
    cache_policy=NO_CACHE,
)
def poll_batch_task(
    config_path: str, sources: list[DueSource], started_at: datetime, parallel: int
) -> PollReport:
    config = load_config(config_path)
    poll = config.poll
    # batches run side by side: share the configured concurrency between them
    shared = replace(
        poll,
        concurrency=max(1, poll.concurrency // parallel),
    )
    config = replace(config, file=config.file.model_copy(update={"poll": shared}))
    return poll_batch(config, sources, now=started_at)


@task(name="plan-poll", cache_policy=NO_CACHE)
def plan_task(config_path: str, all_sources: bool, started_at: datetime) -> list[DueSource]:
    return plan_poll(load_config(config_path), all_sources=all_sources, now=started_at)


def _run_name() -> str:
    return f"poll-{datetime.now(UTC):%Y%m%d-%H%M}"


@flow(
    name="newswatch-poll",
    flow_run_name=_run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=PARALLEL_BATCHES),
)
def poll_flow(config_path: str = "newswatch.toml", all_sources: bool = False) -> PollReport:
    """Poll every due source (or every source with `all_sources`) once."""
    config: Config = load_config(config_path)
    started_at = datetime.now(UTC)
    due = plan_task(str(config.path), all_sources, started_at)
    groups = batches(due, config.poll.batch_size)
    parallel = max(1, min(PARALLEL_BATCHES, len(groups)))
    report = PollReport(started_at=started_at)
    futures = [
        poll_batch_task.submit(str(config.path), group, started_at, parallel) for group in groups
    ]
    wait(futures)
    for future in futures:
        report.merge(future.result())
    report.finished_at = report.finished_at or datetime.now(UTC)
    create_table_artifact(
        poll_table(report), key=POLL_TABLE_KEY, description="Feeds polled: status, new articles"
    )
    create_markdown_artifact(
        matches_markdown(config, report), key=POLL_MATCHES_KEY, description="New topic matches"
    )
    get_run_logger().info(
        "%d feeds: %d ok, %d unchanged, %d failed; %d new articles, %d new matches",
        len(report.feeds),
        report.ok,
        report.unchanged,
        report.failed,
        report.new_articles,
        report.new_matches,
    )
    return report
