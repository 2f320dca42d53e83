"""End to end with a real Prefect server: `newswatch serve`, runs triggered through the API.

One scenario, set up once for the module (it costs a Prefect server start, a
`newswatch serve` and three flow runs in subprocesses), then checked piece by piece:

- `prefect server start` on 127.0.0.1 (a free port) backed by a throwaway PostgreSQL
  database, with the UI, telemetry off;
- `newswatch --config <tmp> serve` registering the deployments and running them,
  against feeds served from 127.0.0.1 (one of them slow) and an SMTP server
  (aiosmtpd) on 127.0.0.1 that receives the email digest;
- a poll run created through the API, a second one created while the first is still
  fetching the slow feed (the deployment's CANCEL_NEW limit must cancel it), then the
  digest run;
- the Prefect UI's deployments page, rendered by headless Chromium.

Everything started here is stopped at the end (process groups, then any straggler
descendants), even when a step fails; the PostgreSQL database is dropped.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.utils import format_datetime
from html import unescape
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.fixtures.db import _PgServer, _require
from tests.fixtures.http import Delay, FeedServer

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(240)]

BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
TOPIC = "Ankara talks"
SLOW_FEED_SECONDS = 8  # long enough for a second poll run to be created and refused
DEADLINE_S = 150  # for any one wait below; a busy 2-core machine is slow to start Prefect

T = TypeVar("T")


def prefect_server_command(host: str, port: int) -> list[str]:
    """`prefect server start` as this test runs it; docker-compose.yml runs the same."""
    return ["prefect", "server", "start", "--host", host, "--port", str(port)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rss(title: str, items: list[tuple[str, str]]) -> bytes:
    """A small RSS feed whose items were published an hour ago (inside any digest window)."""
    published = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    body = "".join(
        f"<item><title>{t}</title><link>https://news.example/{slug}</link>"
        f"<guid>https://news.example/{slug}</guid><pubDate>{published}</pubDate>"
        f"<description>{t}.</description></item>"
        for slug, t in items
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://news.example/</link><description>{title}"
        f"</description>{body}</channel></rss>"
    ).encode()


# --- processes ------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    """Every live process below `pid` (Prefect's runner may start runs in new sessions)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@dataclass
class _Processes:
    """The processes this module started; `stop_all` ends them and what they started."""

    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, args: list[str], env: dict[str, str], log: Path, cwd: Path) -> Any:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            stragglers = _descendants(proc.pid)
            for sig, wait_s in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
            for pid in stragglers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if proc.poll() is None:
                proc.wait(5)


def _wait_for(what: str, check: Callable[[], T | None], log: Path | None = None) -> T:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        result = check()
        if result is not None and result is not False:
            return result
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    pytest.fail(f"timed out waiting for {what}\n{tail}")


# --- SMTP -------------------------------------------------------------------------


class _Inbox:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append(bytes(envelope.original_content or b""))
        return "250 OK"


# --- the scenario -----------------------------------------------------------------


@dataclass
class Scenario:
    api_url: str
    ui_url: str
    config_path: Path
    inbox: _Inbox
    client: Any  # prefect.client.orchestration.SyncPrefectClient
    poll_run: Any = None
    overlapping_poll_run: Any = None
    digest_run: Any = None
    logs: dict[str, Path] = field(default_factory=dict)


def _config(feeds: FeedServer, smtp_port: int) -> str:
    fast = feeds.route(
        "/wire.xml",
        _rss("Wire", [("a1", "Talks resume in Ankara"), ("a2", "Harvest festival opens")]),
    )
    slow = feeds.route(
        "/slow.xml",
        _rss("Slow", [("s1", "Ankara hosts a second round of talks")]),
        behaviour=Delay(SLOW_FEED_SECONDS),
    )
    return f"""
[storage]
url = "sqlite:///newswatch.db"

[poll]
interval_minutes = 1440

[[sources]]
name = "Wire"
url = "{fast}"

[[sources]]
name = "Slow wire"
url = "{slow}"

[[topics]]
name = "{TOPIC}"
query = "Ankara"

[[digests]]
name = "daily"
schedule = "0 7 * * *"
timezone = "Europe/Istanbul"
format = ["email", "markdown"]
to = ["analyst@example.org"]
output = "digests/"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from = "newswatch@example.org"
"""


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "NEWSWATCH_")) and k != "PYTEST_CURRENT_TEST"
    }
    env.update(
        PREFECT_HOME=str(home),  # no shared profile or ~/.prefect database
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_LOGGING_LEVEL="WARNING",
        PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS="false",
    )
    env.update(extra)
    return env


def _final(client: Any, run_id: UUID, log: Path) -> Any:
    def done() -> Any:
        run = client.read_flow_run(run_id)
        return run if run.state is not None and run.state.is_final() else None

    return _wait_for(f"flow run {run_id} to finish", done, log)


@pytest.fixture(scope="module")
def scenario(_pg_server: _PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    _require(_pg_server)
    from prefect.client.orchestration import SyncPrefectClient

    work = tmp_path_factory.mktemp("e2e")
    home = work / "prefect-home"
    home.mkdir()
    dbname = f"prefect_e2e_{os.getpid()}_{int(time.time())}"
    processes = _Processes()
    feeds = FeedServer()
    inbox = _Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    client: Any = None
    with _pg_server.admin() as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    try:
        smtp.start()
        port = _free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        server_log = work / "prefect-server.log"
        database_url = (
            f"postgresql+asyncpg://{_pg_server.user}@{_pg_server.host}:{_pg_server.port}/{dbname}"
        )
        processes.start(
            [str(BIN / "prefect"), *prefect_server_command("127.0.0.1", port)[1:]],
            _env(
                home,
                PREFECT_API_DATABASE_CONNECTION_URL=database_url,
                PREFECT_UI_API_URL=api_url,
                PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT="false",
            ),
            server_log,
            work,
        )

        def healthy() -> bool:
            try:
                return httpx.get(f"{api_url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait_for("the Prefect server's /api/health", healthy, server_log)

        config_path = work / "newswatch.toml"
        config_path.write_text(_config(feeds, smtp.port), encoding="utf-8")
        serve_log = work / "newswatch-serve.log"
        processes.start(
            [str(BIN / "newswatch"), "--config", str(config_path), "serve"],
            _env(home, PREFECT_API_URL=api_url, PREFECT_RUNNER_POLL_FREQUENCY="1"),
            serve_log,
            work,
        )
        client = SyncPrefectClient(api_url)
        client.__enter__()
        scene = Scenario(
            api_url=api_url,
            ui_url=f"http://127.0.0.1:{port}",
            config_path=config_path,
            inbox=inbox,
            client=client,
            logs={"server": server_log, "serve": serve_log},
        )

        def deployments() -> list[Any] | None:
            found = client.read_deployments()
            names = {d.name for d in found}
            return found if {"poll", "digest-daily"} <= names else None

        _wait_for("newswatch serve to register its deployments", deployments, serve_log)
        poll = client.read_deployment_by_name("newswatch-poll/poll")
        digest = client.read_deployment_by_name("newswatch-digest/digest-daily")

        first = client.create_flow_run_from_deployment(poll.id)
        _wait_for(
            "the first poll run to start",
            lambda: client.read_flow_run(first.id).state.is_running(),
            serve_log,
        )
        second = client.create_flow_run_from_deployment(poll.id)
        scene.overlapping_poll_run = _final(client, second.id, serve_log)
        scene.poll_run = _final(client, first.id, serve_log)

        run = client.create_flow_run_from_deployment(digest.id)
        scene.digest_run = _final(client, run.id, serve_log)
        yield scene
    finally:
        if client is not None:
            client.__exit__(None, None, None)
        processes.stop_all()
        smtp.stop()
        feeds.close()
        with _pg_server.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def _artifact(client: Any, flow_run_id: UUID, key: str) -> Any:
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    (artifact,) = client.read_artifacts(
        artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
        )
    )
    return artifact


def test_poll_deployment_runs_on_its_configured_interval(scenario: Scenario) -> None:
    deployment = scenario.client.read_deployment_by_name("newswatch-poll/poll")
    (schedule,) = deployment.schedules
    assert schedule.active
    assert schedule.schedule.interval == timedelta(days=1)


def test_digest_deployment_runs_on_its_cron_in_its_time_zone(scenario: Scenario) -> None:
    deployment = scenario.client.read_deployment_by_name("newswatch-digest/digest-daily")
    (schedule,) = deployment.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 7 * * *", "Europe/Istanbul")
    assert deployment.parameters["name"] == "daily"


def test_poll_deployment_allows_one_run_at_a_time_and_cancels_new_ones(
    scenario: Scenario,
) -> None:
    deployment = scenario.client.read_deployment_by_name("newswatch-poll/poll")
    assert deployment.global_concurrency_limit.limit == 1
    assert deployment.concurrency_options.collision_strategy.value == "CANCEL_NEW"


def test_poll_run_triggered_through_the_api_completes(scenario: Scenario) -> None:
    run = scenario.poll_run
    assert run.state.is_completed(), run.state
    assert re.fullmatch(r"poll-\d{8}-\d{4}", run.name)


def test_a_poll_run_created_while_one_is_running_is_cancelled(scenario: Scenario) -> None:
    overlapping = scenario.overlapping_poll_run
    assert overlapping.state.is_cancelled(), overlapping.state


def test_poll_run_publishes_a_table_row_per_feed(scenario: Scenario) -> None:
    import json

    artifact = _artifact(scenario.client, scenario.poll_run.id, "newswatch-poll-feeds")
    rows = {row["feed"]: row for row in json.loads(artifact.data)}
    assert set(rows) == {"Wire", "Slow wire"}
    assert [rows["Wire"]["status"], rows["Wire"]["new articles"]] == ["ok", 2]
    assert [rows["Slow wire"]["status"], rows["Slow wire"]["new articles"]] == ["ok", 1]


def test_poll_run_publishes_its_new_matches(scenario: Scenario) -> None:
    artifact = _artifact(scenario.client, scenario.poll_run.id, "newswatch-poll-matches")
    assert f"## {TOPIC}" in artifact.data
    assert "Talks resume in Ankara" in artifact.data
    assert "Ankara hosts a second round of talks" in artifact.data
    assert "Harvest festival" not in artifact.data


def test_digest_run_completes_and_publishes_its_markdown(scenario: Scenario) -> None:
    run = scenario.digest_run
    assert run.state.is_completed(), run.state
    artifact = _artifact(scenario.client, run.id, "newswatch-digest-daily")
    assert TOPIC in artifact.data
    assert "Talks resume in Ankara" in artifact.data


def test_digest_email_arrives_once(scenario: Scenario) -> None:
    (raw,) = scenario.inbox.messages
    message = message_from_bytes(raw, policy=policy.default)
    assert message["To"] == "analyst@example.org"
    body = message.get_body(("plain",))
    assert body is not None
    assert "Talks resume in Ankara" in body.get_content()


def _page_text(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S | re.I)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def test_prefect_ui_deployments_page_lists_the_newswatch_deployments(
    scenario: Scenario, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing (CI must run the UI check)")
        pytest.skip(f"no {CHROMIUM}")
    screenshot = tmp_path / "deployments.png"
    args = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        # nothing but the loopback server, whatever the page asks for
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--virtual-time-budget=15000",
        "--window-size=1280,900",
        f"--screenshot={screenshot}",
        "--dump-dom",
        f"{scenario.ui_url}/deployments",
    ]
    page = subprocess.run(args, capture_output=True, timeout=90, check=False, cwd=tmp_path)

    text = _page_text(page.stdout.decode(errors="replace"))
    assert screenshot.stat().st_size > 0
    assert "Can't connect to Server API" not in text
    for name in ("newswatch-poll", "poll", "newswatch-digest", "digest-daily"):
        assert name in text, text[:2000]
