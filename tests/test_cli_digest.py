"""`newswatch --no-prefect digest` as users and cron run it, against real SMTP servers.

The digest's data is stored through the real storage functions (see
`tests.test_digest_run.Newsroom`), once per backend. The command runs in this
process through typer's runner (a subprocess pays seconds of imports), except where
a real process is the point: one is killed with SIGKILL in the middle of a send.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from typer.testing import CliRunner

from newswatch.cli import app
from newswatch.databases import close_databases
from storage.db import Database
from tests.fixtures.smtp import HOST, SmtpServer, free_port
from tests.test_digest_run import TOPICS, Newsroom, text_part, write_config

NEWSWATCH = [sys.executable, "-c", "from newswatch.cli import main; main()"]
SEEN = datetime.now(UTC) - timedelta(hours=1)


@pytest.fixture
def newsroom(database: Database) -> Newsroom:
    room = Newsroom(database)
    room.topics(*TOPICS)
    return room


def newswatch(config: Path, *args: str) -> subprocess.Popen[str]:
    """`newswatch --no-prefect --config CONFIG digest ARGS` as its own process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    env["NEWSWATCH_PREFECT"] = "0"
    return subprocess.Popen(
        [*NEWSWATCH, "--no-prefect", "--config", str(config), "digest", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def cli() -> Iterator[Any]:
    """Run the command in this process (its imports cost seconds per subprocess)."""
    runner = CliRunner()

    def invoke(config: Path, *args: str, password: str | None = None) -> tuple[int, str, str]:
        env = {
            "NEWSWATCH_PREFECT": "0",
            "NEWSWATCH_SMTP_PASSWORD": password,
            "NEWSWATCH_DATABASE_URL": None,
            "NEWSWATCH_CONFIG": None,
        }
        result = runner.invoke(
            app, ["--no-prefect", "--config", str(config), "digest", *args], env=env
        )
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    yield invoke
    close_databases()


def configure(tmp_path: Path, database: Database, **keys: Any) -> Path:
    """Write the config with the database URL in [storage], where the command finds it."""
    config = write_config(tmp_path, database.url, **keys)
    text = config.path.read_text(encoding="utf-8")
    config.path.write_text(f'[storage]\nurl = "{database.url}"\n\n{text}', encoding="utf-8")
    return config.path


def test_digest_sends_the_email_and_says_so_in_one_line(
    cli: Any, newsroom: Newsroom, smtp_server: SmtpServer, tmp_path: Path, database: Database
) -> None:
    newsroom.matched("Sent from the command line", seen=SEEN)

    code, out, err = cli(configure(tmp_path, database, smtp=smtp_server))

    assert (code, err) == (0, "")
    (line,) = out.splitlines()
    message_id = str(smtp_server.messages[0].message["Message-ID"])
    assert line == f"digest 'daily' (email): 1 story sent as Message-ID {message_id}"


def test_a_failed_send_exits_1_with_one_line(
    cli: Any, newsroom: Newsroom, closed_smtp_port: int, tmp_path: Path, database: Database
) -> None:
    newsroom.matched("Not today", seen=SEEN)

    code, out, err = cli(configure(tmp_path, database, smtp_port=closed_smtp_port))

    assert code == 1
    (line,) = (out + err).splitlines()
    assert line.startswith("digest 'daily' (email): FAILED: SMTP connection refused")
    assert "Traceback" not in err


def test_a_missing_smtp_password_exits_2_in_one_line_and_claims_nothing(
    cli: Any, newsroom: Newsroom, smtp_server: SmtpServer, tmp_path: Path, database: Database
) -> None:
    newsroom.matched("Stays pending", seen=SEEN)
    config = configure(tmp_path, database, smtp=smtp_server, smtp_extra='username = "nw"\n')

    code, out, err = cli(config)

    assert code == 2
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith("newswatch: config error: ")
    assert "NEWSWATCH_SMTP_PASSWORD" in line
    assert newsroom.attempts() == []
    assert smtp_server.messages == []


def test_format_and_output_write_that_one_format_to_that_file(
    cli: Any, newsroom: Newsroom, tmp_path: Path, database: Database
) -> None:
    newsroom.matched("Written to a file", seen=SEEN)
    target = tmp_path / "today.md"

    code, out, _ = cli(
        configure(
            tmp_path,
            database,
            format=["email", "html"],
            to=["a@example.org"],
            smtp_port=free_port(),
        ),
        "--format",
        "markdown",
        "--output",
        str(target),
    )

    assert code == 0
    assert out == f"digest 'daily' (markdown): 1 story written to {target}\n"
    assert "Written to a file" in target.read_text()
    assert [a.channel for a in newsroom.attempts()] == ["markdown"]


def test_name_picks_the_digest(
    cli: Any, newsroom: Newsroom, tmp_path: Path, database: Database
) -> None:
    newsroom.matched("For the desk", seen=SEEN)
    digests = "".join(
        f'[[digests]]\nname = "{n}"\nformat = "markdown"\noutput = "{tmp_path / n}"\n'
        for n in ("daily", "desk")
    )

    code, out, _ = cli(configure(tmp_path, database, digests=digests), "--name", "desk")

    assert code == 0
    assert out.startswith("digest 'desk' (markdown): 1 story written to ")
    assert not (tmp_path / "daily").exists()


def test_an_unknown_format_exits_2(cli: Any, tmp_path: Path, database: Database) -> None:
    code, _, err = cli(configure(tmp_path, database, format="markdown"), "--format", "pdf")

    assert code == 2
    assert err == "newswatch: unknown format 'pdf' (markdown, html, text or email)\n"


def test_dry_run_prints_the_digest_and_a_later_run_still_delivers_it(
    cli: Any, newsroom: Newsroom, smtp_server: SmtpServer, tmp_path: Path, database: Database
) -> None:
    newsroom.matched("Previewed on stdout", seen=SEEN)
    config = configure(tmp_path, database, smtp=smtp_server)

    dry_code, dry_out, _ = cli(config, "--dry-run", "--format", "text")
    code, _, _ = cli(config)

    assert (dry_code, code) == (0, 0)
    assert "* Previewed on stdout" in dry_out
    (received,) = smtp_server.messages
    assert "* Previewed on stdout" in text_part(received.message)


# --- a run killed while the server holds its message ------------------------------------


class _HangingAfterData:
    """Records the message at DATA, then never answers (until released)."""

    def __init__(self) -> None:
        self.received = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.set()
        await asyncio.to_thread(self.release.wait, 60)
        return "250 2.0.0 queued"


@pytest.fixture
def hanging_smtp() -> Iterator[tuple[int, _HangingAfterData]]:
    handler = _HangingAfterData()
    port = free_port()
    controller = Controller(handler, hostname=HOST, port=port, server_hostname="localhost")
    controller.start()
    try:
        yield port, handler
    finally:
        handler.release.set()
        controller.stop()


def test_a_run_killed_after_handing_over_the_message_is_not_sent_again(
    cli: Any,
    newsroom: Newsroom,
    hanging_smtp: tuple[int, _HangingAfterData],
    smtp_server: SmtpServer,
    tmp_path: Path,
    database: Database,
) -> None:
    port, handler = hanging_smtp
    newsroom.matched("Handed over, then killed", seen=SEEN)
    process = newswatch(configure(tmp_path, database, smtp_port=port))
    try:
        assert handler.received.wait(30), "the digest never reached the server"
    finally:
        process.kill()  # SIGKILL: no cleanup, the attempt stays `sending`
        process.communicate(timeout=30)
    newsroom.matched("After the crash", seen=SEEN + timedelta(seconds=1))

    code, out, _ = cli(configure(tmp_path, database, smtp=smtp_server))

    assert code == 0
    interrupted, sent = out.splitlines()
    assert "never recorded the outcome" in interrupted
    assert sent.startswith("digest 'daily' (email): 1 story sent")
    (received,) = smtp_server.messages
    text = text_part(received.message)
    assert "After the crash" in text
    assert "Handed over, then killed" not in text
