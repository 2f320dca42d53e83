"""One digest run: collect undelivered matches, render, deliver, record — exactly once.

For each channel of the digest (email, markdown, html, text) the run claims the
matches that digest has not delivered yet into a recorded attempt, renders them,
delivers, and marks the attempt sent. A failed delivery (SMTP down, auth refused,
timeout, unwritable directory) leaves the attempt and its matches pending with the
error stored; the next run reuses it, adding what is new since.

A run that died after marking an email attempt `sending` (the message may have
reached the server) does not send it again: the next run records it as sent with a
note naming its Message-ID. Losing that one message is possible; sending it twice is
not. File channels are idempotent (the file is simply written again).

A first digest of a name, or one after a long gap, looks back at most
`catchup_hours`, so adding a topic or a feed never floods the reader.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from digest.build import StoryContext, build_view
from digest.email import build_email, make_message_id
from digest.model import DigestView
from digest.render import render_html, render_markdown, render_text
from digest.smtp import DeliveryError, SmtpSettings, send_email
from newswatch.config import Config, DigestConfig
from storage.db import Database
from storage.digests import (
    Attempt,
    DigestEntry,
    article_links,
    attempt_entries,
    claim_matches,
    discard_empty,
    last_delivery,
    mark_failed,
    mark_sending,
    mark_sent,
    open_attempt,
    preview_matches,
    sightings,
    story_members,
    unfinished_attempt,
)

EXTENSIONS = {"markdown": "md", "html": "html", "text": "txt", "email": "eml"}


@dataclass(slots=True)
class ChannelResult:
    channel: str
    status: str  # sent | written | empty | failed | dry-run | recovered
    stories: int = 0
    path: str | None = None
    message_id: str | None = None
    error: str | None = None

    def line(self, name: str) -> str:
        head = f"digest {name!r} ({self.channel})"
        if self.status == "failed":
            return f"{head}: FAILED: {self.error}; its matches stay pending for the next run"
        if self.status == "empty":
            what = "no email sent" if self.channel == "email" else "nothing written"
            return f"{head}: no new matches; {what}"
        if self.status == "recovered":
            return f"{head}: {self.error}"
        where = self.path or (self.message_id and f"Message-ID {self.message_id}") or ""
        verb = {"sent": "sent", "written": "written to", "dry-run": "dry run, rendered to"}[
            self.status
        ]
        return f"{head}: {self.stories} stories {verb} {where}".rstrip()


@dataclass(slots=True)
class DigestRunResult:
    name: str
    channels: list[ChannelResult] = field(default_factory=list)
    markdown: str | None = None  # the rendered Markdown digest (a flow publishes it)

    @property
    def failed(self) -> bool:
        return any(c.status == "failed" for c in self.channels)

    def lines(self) -> list[str]:
        return [c.line(self.name) for c in self.channels]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower() or "digest"


def smtp_settings(config: Config) -> SmtpSettings:
    smtp = config.file.smtp
    if smtp is None:  # the config loader refuses email digests without [smtp]
        raise DeliveryError("no [smtp] table in the config")
    return SmtpSettings(
        host=smtp.host,
        port=smtp.port,
        security=smtp.security,
        username=smtp.username,
        password=config.require_smtp_password(),
        sender=smtp.sender,
        timeout=smtp.timeout,
    )


def _context(db: Database, entries: list[DigestEntry]) -> StoryContext:
    story_ids = sorted({e.story_id for e in entries if e.story_id is not None})
    with db.session() as session:
        members = story_members(session, story_ids)
        article_ids = sorted({a for ids in members.values() for a in ids})
        return StoryContext(
            members=members,
            sightings=sightings(session, article_ids),
            links=article_links(session, article_ids),
        )


def _target(
    config: Config, digest: DigestConfig, channel: str, output: str | None, now: datetime
) -> Path | None:
    """Where a file channel is written; None means stdout."""
    if output == "-":
        return None
    stamp = now.astimezone(ZoneInfo(digest.timezone))  # named as the reader's clock reads
    filename = f"{_slug(digest.name)}-{stamp:%Y%m%d-%H%M%S}.{EXTENSIONS[channel]}"
    if output:
        path = Path(output)
        if path.is_dir() or output.endswith(("/", "\\")):
            return path / filename
        return path
    return config.resolve(digest.output) / filename


def _write(path: Path | None, text: str) -> str:
    if path is None:
        sys.stdout.write(text)
        return "stdout"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # readers never see half a digest
    return str(path)


def _render(view: DigestView, channel: str) -> str:
    if channel == "html":
        return render_html(view)
    if channel == "text":
        return render_text(view)
    return render_markdown(view)


def digest_once(
    config: Config,
    db: Database,
    *,
    name: str | None = None,
    fmt: str | None = None,
    output: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> DigestRunResult:
    """Build and deliver one configured digest on each of its channels."""
    digest = config.digest(name)
    now = now or datetime.now(UTC)
    channels = (fmt,) if fmt else digest.formats
    if "email" in channels and not dry_run:
        settings = smtp_settings(config)  # a missing secret fails before anything is claimed
    result = DigestRunResult(digest.name)
    for channel in channels:
        if channel == "email" and not dry_run:
            recovered = _resolve_interrupted(db, digest.name, now)
            if recovered is not None:
                result.channels.append(recovered)
        view, attempt = _collect(config, db, digest, channel, now, dry_run)
        if channel == "markdown" or result.markdown is None:
            result.markdown = render_markdown(view)
        if view.is_empty and not digest.send_empty:
            if attempt is not None:
                with db.session() as session:
                    discard_empty(session, attempt)
            result.channels.append(ChannelResult(channel, "empty"))
            continue
        if dry_run:
            result.channels.append(_dry_run(config, digest, channel, view, output, now))
        elif channel == "email":
            assert attempt is not None
            result.channels.append(_send(db, digest, attempt, view, settings, now))
        else:
            assert attempt is not None
            result.channels.append(
                _deliver_file(config, db, digest, channel, attempt, view, output, now)
            )
    return result


def _collect(
    config: Config,
    db: Database,
    digest: DigestConfig,
    channel: str,
    now: datetime,
    dry_run: bool,
) -> tuple[DigestView, Attempt | None]:
    catchup = now - timedelta(hours=digest.catchup_hours)
    attempt: Attempt | None = None
    with db.session() as session:
        last = last_delivery(session, digest.name, channel)
        since = catchup if last is None else min(catchup, last)
        if dry_run:
            entries = preview_matches(session, digest.name, channel, digest.topics, since)
        else:
            attempt = open_attempt(session, digest.name, channel, digest.to, now)
            claim_matches(session, attempt, digest.topics, since)
            entries = attempt_entries(session, attempt)
    view = build_view(
        name=digest.name,
        timezone=digest.timezone,
        generated_at=now,
        period_start=last,
        entries=entries,
        topic_order=[t.name for t in config.topics],
        max_items=digest.max_items_per_topic,
        context=_context(db, entries),
    )
    return view, attempt


def _resolve_interrupted(db: Database, name: str, now: datetime) -> ChannelResult | None:
    with db.session() as session:
        attempt = unfinished_attempt(session, name, "email")
        if attempt is None or attempt.status != "sending":
            return None
        note = (
            f"an earlier run was interrupted while sending Message-ID {attempt.message_id}; "
            "recorded as sent and not sent again"
        )
        mark_sent(session, attempt, now, note=note)
    return ChannelResult("email", "recovered", message_id=attempt.message_id, error=note)


def _send(
    db: Database,
    digest: DigestConfig,
    attempt: Attempt,
    view: DigestView,
    settings: SmtpSettings,
    now: datetime,
) -> ChannelResult:
    domain = settings.sender.rpartition("@")[2].strip("> ") or "newswatch.invalid"
    message_id = make_message_id(domain)
    try:
        message = build_email(
            view, sender=settings.sender, recipients=digest.to, message_id=message_id, date=now
        )
    except ValueError as err:
        with db.session() as session:
            mark_failed(session, attempt, str(err))
        return ChannelResult("email", "failed", error=str(err))
    with db.session() as session:
        mark_sending(session, attempt, message_id)
    try:
        send_email(message, settings)
    except DeliveryError as err:
        with db.session() as session:
            mark_failed(session, attempt, str(err))
        return ChannelResult("email", "failed", error=str(err))
    with db.session() as session:
        mark_sent(session, attempt, datetime.now(UTC))
    return ChannelResult("email", "sent", stories=view.total, message_id=message_id)


def _deliver_file(
    config: Config,
    db: Database,
    digest: DigestConfig,
    channel: str,
    attempt: Attempt,
    view: DigestView,
    output: str | None,
    now: datetime,
) -> ChannelResult:
    target = _target(config, digest, channel, output, now)
    try:
        where = _write(target, _render(view, channel))
    except OSError as err:
        error = f"cannot write {target}: {err.strerror or err}"
        with db.session() as session:
            mark_failed(session, attempt, error)
        return ChannelResult(channel, "failed", error=error)
    with db.session() as session:
        mark_sent(session, attempt, datetime.now(UTC), output_path=where)
    return ChannelResult(channel, "written", stories=view.total, path=where)


def _dry_run(
    config: Config,
    digest: DigestConfig,
    channel: str,
    view: DigestView,
    output: str | None,
    now: datetime,
) -> ChannelResult:
    if channel == "email":
        smtp = config.file.smtp
        sender = smtp.sender if smtp else "newswatch@localhost"
        message = build_email(
            view,
            sender=sender,
            recipients=digest.to or ["dry-run@localhost"],
            message_id=make_message_id("newswatch.invalid"),
            date=now,
        )
        text = message.as_string()
    else:
        text = _render(view, channel)
    target = _target(config, digest, channel, output if output else "-", now)
    where = _write(target, text)
    return ChannelResult(channel, "dry-run", stories=view.total, path=where)
