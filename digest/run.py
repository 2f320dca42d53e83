"""One digest run: claim undelivered matches, render, deliver, record — at most once each.

For each channel of a digest (email, markdown, html, text) a run goes, in
`storage.digests` terms:

1. one transaction: take over the channel's failed attempts (or start one), claim
   the matches this digest has not delivered on this channel, render them, and
   mark the attempt `sending` with its Message-ID (or file path). A crash before
   this commits leaves nothing behind; rendering failures roll the claim back.
2. no transaction: hand the message to the SMTP server, or write the file
   (atomically: a temporary file renamed over the target).
3. one transaction: mark it `sent`, or `failed` with the error. A failed attempt
   keeps its matches; the next run takes it over and adds what is new since.

A run that died in step 2 leaves an email attempt in `sending`: the message may
have reached the server. The next run records it as sent, with a note naming its
Message-ID, and does not send it again: losing one digest is possible, receiving
one twice is not. (A run cannot tell a dead sender from one still sending; the
owner's own outcome, recorded later, wins: `mark_failed` puts it back.) The same
goes for a `DeliveryError` whose outcome is "unknown" (the connection broke after
DATA) or "partial" (some recipients refused). An interrupted file attempt is
simply written again, to the same path.

How far back a run reaches (the catch-up window for a first digest, a new topic,
a new feed) is `storage.digests.claim_windows`.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from digest.build import StoryContext, build_view
from digest.email import build_email, make_message_id, parse_address
from digest.model import DigestView
from digest.render import render_html, render_markdown, render_text
from digest.smtp import DeliveryError, SmtpSettings, send_email
from newswatch.config import Config, ConfigError, DigestConfig
from storage.db import Database
from storage.digests import (
    Attempt,
    DigestEntry,
    article_links,
    attempt_entries,
    claim_matches,
    claim_windows,
    interrupted_attempts,
    last_delivery,
    mark_empty,
    mark_failed,
    mark_sending,
    mark_sent,
    preview_matches,
    resolve_interrupted,
    sightings,
    story_members,
    take_attempt,
)

EXTENSIONS = {"markdown": "md", "html": "html", "text": "txt", "email": "eml"}
STDOUT = "stdout"


@dataclass(slots=True)
class ChannelResult:
    """What one channel of a run did; `line()` says it in one line."""

    channel: str
    status: str  # sent | written | empty | failed | dry-run | recovered | uncertain
    stories: int = 0
    path: str | None = None
    message_id: str | None = None
    error: str | None = None
    dry_run: bool = False

    def line(self, name: str) -> str:
        head = f"digest {name!r} ({self.channel})"
        if self.status == "failed":
            return f"{head}: FAILED: {self.error}; its matches stay pending for the next run"
        if self.status == "empty":
            what = "no email sent" if self.channel == "email" else "nothing written"
            if self.dry_run:
                what = "nothing rendered"
            return f"{head}: no new matches; {what}"
        if self.status == "recovered":
            return f"{head}: {self.error}"
        if self.status == "uncertain":
            return (
                f"{head}: {self._count} probably sent as Message-ID {self.message_id} "
                f"({self.error}); recorded as sent, not sent again"
            )
        where = self.path or (self.message_id and f"as Message-ID {self.message_id}") or ""
        verb = {"sent": "sent", "written": "written to", "dry-run": "dry run, rendered to"}[
            self.status
        ]
        return f"{head}: {self._count} {verb} {where}".rstrip()

    @property
    def _count(self) -> str:
        return f"{self.stories} {'story' if self.stories == 1 else 'stories'}"


@dataclass(slots=True)
class DigestRunResult:
    """Everything one `digest_once` did, channel by channel."""

    name: str
    channels: list[ChannelResult] = field(default_factory=list)
    markdown: str | None = None  # the rendered Markdown digest (a flow publishes it)

    @property
    def failed(self) -> bool:
        return any(c.status == "failed" for c in self.channels)

    def lines(self) -> list[str]:
        return [c.line(self.name) for c in self.channels]


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A claimed, rendered attempt marked `sending`: what step 2 hands over."""

    attempt: Attempt
    view: DigestView
    message: EmailMessage | None = None
    message_id: str | None = None
    text: str = ""
    target: Path | None = None  # None: stdout


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower() or "digest"


def smtp_settings(config: Config) -> SmtpSettings:
    """The [smtp] table as SmtpSettings; ConfigError (one line) when it cannot work."""
    smtp = config.file.smtp
    if smtp is None:  # the config loader refuses email digests without [smtp]
        raise ConfigError(f"{config.path}: no [smtp] table")
    password = config.require_smtp_password()
    try:
        settings = SmtpSettings(
            host=smtp.host,
            port=smtp.port,
            security=smtp.security,
            username=smtp.username,
            password=password if smtp.username else None,
            sender=smtp.sender,
            timeout=smtp.timeout,
            ca_file=smtp.ca_file,
        )
        make_message_id(parse_address(smtp.sender).domain)
    except ValueError as err:
        raise ConfigError(f"{config.path}: [smtp]: {err}") from None
    return settings


def _check_recipients(config: Config, digest: DigestConfig) -> None:
    for recipient in digest.to:
        try:
            parse_address(recipient)
        except ValueError as err:
            raise ConfigError(f"{config.path}: [[digests]] {digest.name!r} to: {err}") from None


def story_context(session: Session, entries: list[DigestEntry]) -> StoryContext:
    """Who else carried the stories of `entries` (the "also reported by" lines)."""
    story_ids = sorted({e.story_id for e in entries if e.story_id is not None})
    members = story_members(session, story_ids)
    article_ids = sorted({a for ids in members.values() for a in ids})
    return StoryContext(
        members=members,
        sightings=sightings(session, article_ids),
        links=article_links(session, article_ids),
    )


def _target(
    config: Config,
    digest: DigestConfig,
    channel: str,
    output: str | None,
    now: datetime,
    *,
    several: bool,
) -> Path | None:
    """Where a file channel is written; None means stdout."""
    if output == "-":
        return None
    stamp = now.astimezone(ZoneInfo(digest.timezone))  # named as the reader's clock reads
    filename = f"{_slug(digest.name)}-{stamp:%Y%m%d-%H%M%S}.{EXTENSIONS[channel]}"
    if output:
        path = Path(output).expanduser()
        if path.is_dir() or output.endswith(("/", os.sep)):
            return path / filename
        # one --output file for several formats: one file per format beside it
        return path.with_suffix(f".{EXTENSIONS[channel]}") if several else path
    return config.resolve(digest.output) / filename


def _write(path: Path | None, text: str) -> str:
    """Write `text` to `path` atomically (readers never see half a digest); where it went."""
    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return STDOUT
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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
    """Build and deliver the digest `name` (default: the first) on each of its channels.

    `fmt` picks one channel instead of the configured formats; `output` overrides
    where files go ("-": stdout; a directory; or a file). `dry_run` renders what a
    run would deliver (to stdout unless `output` says otherwise) and records nothing.
    Raises ConfigError (a missing SMTP password, a bad address) before anything is
    claimed; a failed delivery is a "failed" channel in the result, not an exception.
    """
    digest = config.digest(name)
    now = now or datetime.now(UTC)
    channels = (fmt,) if fmt else digest.formats
    settings: SmtpSettings | None = None
    if "email" in channels and not dry_run:
        settings = smtp_settings(config)
        _check_recipients(config, digest)
    several = sum(1 for c in channels if c != "email") > 1
    result = DigestRunResult(digest.name)
    for channel in channels:
        target_output = output if output or not dry_run else "-"
        target = (
            None
            if channel == "email" and not dry_run
            else _target(config, digest, channel, target_output, now, several=several)
        )
        if dry_run:
            result.channels.append(_dry_run(config, db, digest, channel, target, now, result))
            continue
        if channel == "email":
            assert settings is not None
            result.channels.extend(_resolve_interrupted(db, digest.name, now))
        prepared = _prepare(config, db, digest, channel, target, output, now, settings, result)
        if isinstance(prepared, ChannelResult):
            result.channels.append(prepared)
        elif channel == "email":
            assert settings is not None
            result.channels.append(_send(db, prepared, settings))
        else:
            result.channels.append(_write_file(db, channel, prepared))
    return result


def _view(
    config: Config,
    session: Session,
    digest: DigestConfig,
    channel: str,
    entries: list[DigestEntry],
    now: datetime,
) -> DigestView:
    return build_view(
        name=digest.name,
        timezone=digest.timezone,
        generated_at=now,
        period_start=last_delivery(session, digest.name, channel),
        entries=entries,
        topic_order=[t.name for t in config.topics],
        max_items=digest.max_items_per_topic,
        context=story_context(session, entries),
    )


def _prepare(
    config: Config,
    db: Database,
    digest: DigestConfig,
    channel: str,
    target: Path | None,
    output: str | None,
    now: datetime,
    settings: SmtpSettings | None,
    result: DigestRunResult,
) -> _Prepared | ChannelResult:
    """Step 1: claim, render and mark `sending` in one transaction (or report why not)."""
    email = channel == "email"
    with db.session() as session:
        windows = claim_windows(
            session,
            digest.name,
            channel,
            digest.topics,
            now,
            timedelta(hours=digest.catchup_hours),
        )
        attempt = take_attempt(
            session,
            digest.name,
            channel,
            digest.to if email else [],
            now,
            # an interrupted file write is harmless to repeat; an interrupted send is not
            reusable=("failed",) if email else ("failed", "sending"),
        )
        claim_matches(session, attempt, windows)
        view = _view(config, session, digest, channel, attempt_entries(session, attempt), now)
        if channel == "markdown" or result.markdown is None:
            result.markdown = render_markdown(view)
        if view.is_empty and not digest.send_empty:
            mark_empty(session, attempt)
            return ChannelResult(channel, "empty")
        if email:
            assert settings is not None
            message_id = make_message_id(parse_address(settings.sender).domain)
            try:
                message = build_email(
                    view,
                    sender=settings.sender,
                    recipients=digest.to,
                    message_id=message_id,
                    date=now,
                )
            except ValueError as err:
                mark_failed(session, attempt.id, attempt.message_id, str(err))
                return ChannelResult(channel, "failed", error=str(err))
            mark_sending(session, attempt, message_id)
            return _Prepared(attempt, view, message=message, message_id=message_id)
        if not output and attempt.output_path and attempt.output_path != STDOUT:
            target = Path(attempt.output_path)  # a retry rewrites the file it meant to write
        text = (
            result.markdown if channel == "markdown" and result.markdown else _render(view, channel)
        )
        mark_sending(session, attempt, None, output_path=str(target) if target else STDOUT)
        return _Prepared(attempt, view, text=text, target=target)


def _resolve_interrupted(db: Database, name: str, now: datetime) -> list[ChannelResult]:
    """Record email attempts a dead run left in `sending` as sent, without resending."""
    results: list[ChannelResult] = []
    with db.session() as session:
        for attempt in interrupted_attempts(session, name, "email"):
            note = (
                f"Message-ID {attempt.message_id} was handed over by a run that never recorded "
                "the outcome (interrupted, or still sending); recorded as sent, not sent again"
            )
            if resolve_interrupted(session, attempt, now, note):
                results.append(
                    ChannelResult("email", "recovered", message_id=attempt.message_id, error=note)
                )
    return results


def _send(db: Database, prepared: _Prepared, settings: SmtpSettings) -> ChannelResult:
    """Steps 2 and 3 for email."""
    assert prepared.message is not None
    attempt, message_id, stories = prepared.attempt, prepared.message_id, prepared.view.total
    try:
        send_email(prepared.message, settings)
    except DeliveryError as err:
        with db.session() as session:
            if err.outcome == "not_sent":
                mark_failed(session, attempt.id, message_id, str(err))
                return ChannelResult("email", "failed", message_id=message_id, error=str(err))
            # The server may hold the message (cut off after DATA), or has it for some
            # recipients: sending it again could deliver it twice.
            mark_sent(session, attempt.id, message_id, datetime.now(UTC), note=str(err))
        return ChannelResult(
            "email", "uncertain", stories=stories, message_id=message_id, error=str(err)
        )
    with db.session() as session:
        mark_sent(session, attempt.id, message_id, datetime.now(UTC))
    return ChannelResult("email", "sent", stories=stories, message_id=message_id)


def _write_file(db: Database, channel: str, prepared: _Prepared) -> ChannelResult:
    """Steps 2 and 3 for a file channel."""
    attempt, target = prepared.attempt, prepared.target
    try:
        where = _write(target, prepared.text)
    except OSError as err:
        error = f"cannot write {target}: {err.strerror or err}"
        with db.session() as session:
            mark_failed(session, attempt.id, None, error)
        return ChannelResult(channel, "failed", error=error)
    with db.session() as session:
        mark_sent(session, attempt.id, None, datetime.now(UTC), output_path=where)
    return ChannelResult(channel, "written", stories=prepared.view.total, path=where)


def _dry_run(
    config: Config,
    db: Database,
    digest: DigestConfig,
    channel: str,
    target: Path | None,
    now: datetime,
    result: DigestRunResult,
) -> ChannelResult:
    """What a run would deliver, rendered; nothing claimed, nothing recorded."""
    with db.session(readonly=True) as session:
        windows = claim_windows(
            session,
            digest.name,
            channel,
            digest.topics,
            now,
            timedelta(hours=digest.catchup_hours),
        )
        entries = preview_matches(session, digest.name, channel, windows)
        view = _view(config, session, digest, channel, entries, now)
    if channel == "markdown" or result.markdown is None:
        result.markdown = render_markdown(view)
    if view.is_empty and not digest.send_empty:
        return ChannelResult(channel, "empty", dry_run=True)
    if channel == "email":
        smtp = config.file.smtp
        sender = smtp.sender if smtp else "newswatch@localhost"
        try:
            domain = parse_address(sender).domain
            message = build_email(
                view,
                sender=sender,
                recipients=digest.to or ["dry-run@localhost"],
                message_id=make_message_id(domain),
                date=now,
            )
        except ValueError as err:
            raise ConfigError(f"{config.path}: {err}") from None
        text = message.as_string()
    else:
        text = _render(view, channel)
    try:
        where = _write(target, text)
    except OSError as err:
        error = f"cannot write {target}: {err.strerror or err}"
        return ChannelResult(channel, "failed", error=error, dry_run=True)
    return ChannelResult(channel, "dry-run", stories=view.total, path=where, dry_run=True)
