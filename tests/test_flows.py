"""The Prefect flows, run in-process against one temporary Prefect API (the harness).

What the flows add over the plain functions (tested elsewhere without Prefect): runs
that complete, named by their time; a bounded number of task runs whatever the number
of feeds; the artifacts the UI shows (one table row per feed, the new matches and the
digest as Markdown) under keys that stay the same from run to run. Everything is read
back through the Prefect client, as the UI would.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import pytest
from typer.testing import CliRunner

from newswatch.config import load_config
from newswatch.demo import demo_config_text, example_config
from newswatch.demo_server import DemoServer
from newswatch.poll import PollReport
from storage.db import DatabaseError
from storage.records import DueSource
from tests.fixtures.http import SAMPLE_RSS, FeedServer


def _sources(count: int, hosts: int) -> list[DueSource]:
    return [
        DueSource(n, f"feed {n}", f"https://host{n % hosts}.example/{n}.xml", None, None, 900)
        for n in range(count)
    ]


def test_batches_never_exceed_max_tasks_however_many_feeds() -> None:
    from flows.poll_flow import MAX_TASKS, batches

    groups = batches(_sources(8_000, hosts=1_000), batch_size=100)

    assert len(groups) == MAX_TASKS
    assert sorted(s.id for group in groups for s in group) == list(range(8_000))


def test_batches_keep_each_host_in_one_batch() -> None:
    from flows.poll_flow import batches

    groups = batches(_sources(1_000, hosts=37), batch_size=50)

    hosts_per_group = [{s.url.split("/")[2] for s in group} for group in groups]
    assert len(groups) == 20
    assert sum(len(h) for h in hosts_per_group) == 37  # no host in two batches


def test_batches_are_about_batch_size_when_hosts_are_many() -> None:
    from flows.poll_flow import batches

    groups = batches(_sources(1_000, hosts=500), batch_size=100)

    assert sorted(len(g) for g in groups) == [100] * 10


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (DatabaseError("cannot use database x: connection refused"), True),
        (ValueError("bug"), False),
    ],
)
def test_a_batch_is_retried_only_when_the_database_failed_it(
    error: Exception, retried: bool
) -> None:
    from prefect.states import Failed

    from flows.poll_flow import is_transient_batch_failure, poll_batch_task

    state = Failed(data=error)

    assert is_transient_batch_failure(poll_batch_task, cast(Any, None), state) is retried


def _artifacts(flow_run_id: UUID, key: str) -> list[Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            )
        )


def _flow_run(flow_run_id: UUID) -> Any:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def _task_runs(flow_run_id: UUID) -> list[Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        return client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )


@dataclass(frozen=True)
class PolledDemo:
    config_path: Path
    feed_names: set[str]
    flow_run_id: UUID
    report: PollReport


@pytest.fixture(scope="module")
def polled_demo(
    prefect_test_harness: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PolledDemo]:
    """The bundled demo feeds (served on 127.0.0.1) polled once by the poll flow."""
    from flows.poll_flow import poll_flow

    workdir = tmp_path_factory.mktemp("demo")
    with DemoServer() as server:
        config_path = workdir / "newswatch.toml"
        feeds = [(feed.name, feed.url) for feed in server.feeds]
        config_path.write_text(demo_config_text(feeds, example_config()), encoding="utf-8")
        state = asyncio.run(
            poll_flow(config_path=str(config_path), all_sources=True, return_state=True)
        )
        report = state.result()
        assert isinstance(report, PollReport)
        flow_run_id = state.state_details.flow_run_id
        assert flow_run_id is not None
        yield PolledDemo(config_path, {name for name, _ in feeds}, flow_run_id, report)


def test_poll_flow_run_completes_with_a_name_from_its_time(polled_demo: PolledDemo) -> None:
    run = _flow_run(polled_demo.flow_run_id)
    assert run.state.is_completed()
    assert re.fullmatch(r"poll-\d{8}-\d{4}", run.name)


def test_poll_flow_stores_the_new_articles(polled_demo: PolledDemo) -> None:
    from newswatch.runs import export_articles

    lines: list[str] = []
    stored = export_articles(load_config(polled_demo.config_path), lines.append)
    assert polled_demo.report.ok == len(polled_demo.feed_names)
    assert stored == polled_demo.report.new_articles > 0


def test_poll_flow_publishes_a_table_with_one_row_per_feed(polled_demo: PolledDemo) -> None:
    from flows.poll_flow import POLL_TABLE_KEY

    (artifact,) = _artifacts(polled_demo.flow_run_id, POLL_TABLE_KEY)
    assert artifact.type == "table"
    rows = json.loads(artifact.data)
    assert sorted(row["feed"] for row in rows) == sorted(polled_demo.feed_names)
    assert {row["status"] for row in rows} == {"ok"}
    assert sum(row["new articles"] for row in rows) == polled_demo.report.new_articles


def test_poll_flow_publishes_the_new_matches_as_markdown(polled_demo: PolledDemo) -> None:
    from flows.poll_flow import POLL_MATCHES_KEY

    (artifact,) = _artifacts(polled_demo.flow_run_id, POLL_MATCHES_KEY)
    assert artifact.type == "markdown"
    assert polled_demo.report.new_matches > 0
    topic = example_config()["topics"][0]["name"]
    assert f"## {topic}" in artifact.data
    assert f"{polled_demo.report.new_matches} new matches" in artifact.data


def test_poll_flow_runs_a_bounded_number_of_tasks_for_many_feeds(
    prefect_test_harness: None, feed_server: FeedServer, tmp_path: Path
) -> None:
    from flows.poll_flow import MAX_TASKS, poll_flow

    count = 120  # one task per feed would be 120 task runs
    lines = ['[storage]\nurl = "sqlite:///nw.db"\n\n[poll]\nbatch_size = 1\n']
    for n in range(count):
        url = feed_server.route(
            f"/f{n}.xml", body=SAMPLE_RSS, host=("127.0.0.1", "localhost")[n % 2]
        )
        lines.append(f'[[sources]]\nname = "feed {n}"\nurl = "{url}"\n')
    config_path = tmp_path / "newswatch.toml"
    config_path.write_text("\n".join(lines), encoding="utf-8")

    state = asyncio.run(
        poll_flow(config_path=str(config_path), all_sources=True, return_state=True)
    )

    report = cast(PollReport, state.result())
    assert report.ok == count
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    task_runs = _task_runs(flow_run_id)
    assert 2 <= len(task_runs) <= MAX_TASKS
    assert all(run.state.is_completed() for run in task_runs)


def test_poll_flow_batches_feed_one_story_worker_that_assigns_every_new_article(
    prefect_test_harness: None, feed_server: FeedServer, tmp_path: Path
) -> None:
    from flows.poll_flow import poll_flow
    from newswatch import story_worker
    from newswatch.databases import database
    from storage.stories import unclustered_articles

    count = story_worker.START_AFTER + 6  # enough feeds with new articles to start it
    lines = [f'[storage]\nurl = "sqlite:///{tmp_path / "nw.db"}"\n\n[poll]\nbatch_size = 10\n']
    for n in range(count):
        items = "".join(
            f"<item><title>Story {n}-{k} from outlet {n}</title>"
            f"<link>https://outlet{n}.example/{k}</link></item>"
            for k in range(2)
        )
        body = f'<rss version="2.0"><channel><title>Outlet {n}</title>{items}</channel></rss>'
        url = feed_server.route(f"/f{n}.xml", body=body.encode())
        lines.append(f'[[sources]]\nname = "feed {n}"\nurl = "{url}"\n')
    config_path = tmp_path / "newswatch.toml"
    config_path.write_text("\n".join(lines), encoding="utf-8")
    starts = story_worker.starts()

    state = asyncio.run(
        poll_flow(config_path=str(config_path), all_sources=True, return_state=True)
    )

    report = cast(PollReport, state.result())
    assert (report.new_articles, report.stories_assigned) == (2 * count, 2 * count)
    assert story_worker.starts() == starts + 1
    with database(load_config(config_path)).session(readonly=True) as session:
        assert unclustered_articles(session, after_id=0, limit=10) == []


def test_poll_command_runs_the_poll_flow(polled_demo: PolledDemo) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    from newswatch.cli import app

    result = CliRunner().invoke(app, ["--config", str(polled_demo.config_path), "poll", "--all"])

    assert result.exit_code == 0, result.output
    assert f"{len(polled_demo.feed_names)} feeds:" in result.output
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["newswatch-poll"])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
    assert runs[0].id != polled_demo.flow_run_id
    assert runs[0].state.is_completed()


def test_digest_flow_writes_the_markdown_digest_and_publishes_it(polled_demo: PolledDemo) -> None:
    from flows.digest_flow import artifact_key, digest_flow

    output = polled_demo.config_path.parent / "out"
    output.mkdir()
    state = asyncio.run(
        digest_flow(
            config_path=str(polled_demo.config_path),
            name="demo",
            fmt="markdown",
            output=str(output),
            return_state=True,
        )
    )

    assert state.is_completed()
    (written,) = output.glob("*.md")
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    (artifact,) = _artifacts(flow_run_id, artifact_key("demo"))
    assert artifact.type == "markdown"
    assert artifact.data == written.read_text(encoding="utf-8")


def test_digest_artifacts_of_successive_runs_share_one_key(polled_demo: PolledDemo) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.digest_flow import artifact_key, digest_flow

    output = polled_demo.config_path.parent / "again"
    output.mkdir()
    for _ in range(2):
        asyncio.run(
            digest_flow(
                config_path=str(polled_demo.config_path),
                name="demo",
                fmt="html",
                output=str(output),
            )
        )

    key = artifact_key("demo")
    with get_client(sync_client=True) as client:
        history = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    assert len({a.flow_run_id for a in history}) >= 2


def test_flows_run_on_prefects_async_engine_which_does_not_join_the_heartbeat_thread() -> None:
    """The sync engine joins its heartbeat thread at the end of every run, and that
    thread sleeps in one-second steps: up to a second added to every poll and digest."""
    from flows.digest_flow import digest_flow
    from flows.poll_flow import poll_flow

    assert inspect.iscoroutinefunction(poll_flow.fn)
    assert inspect.iscoroutinefunction(digest_flow.fn)
