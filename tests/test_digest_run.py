"""`digest.run.digest_once` end to end: stored matches → rendered digest → real SMTP / files.

Every test runs on SQLite and PostgreSQL (`database`) against real aiosmtpd servers on
127.0.0.1. Articles, topics and matches are stored through the real storage functions
(`store_articles`, `sync_topics`, `store_matches`); only story membership is set on
the rows directly, because clustering has no storage function of its own yet.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from digest.run import DigestRunResult, digest_once
from newswatch.config import Config, load_config
from storage.db import Database, open_database
from storage.digests import Attempt, attempts_of
from storage.ingest import store_articles
from storage.models import Article, Story
from storage.topics import MatchRecord, TopicSpecRecord, store_matches, sync_topics
from tests.fixtures.db import add_source, article_record
from tests.fixtures.smtp import ReceivedMessage, SmtpServer, SmtpServerFactory

NOW = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)  # 07:00 in Europe/Istanbul
LONG_AGO = NOW - timedelta(days=30)
TOPICS = ("Syria deconfliction", "Cyprus talks")


# --- building a newsroom through the real storage functions -------------------------


@dataclass
class Newsroom:
    """Stores sources, topics, articles and matches the way a poll would."""

    db: Database
    sources: dict[str, int] = field(default_factory=dict)
    topic_ids: dict[str, int] = field(default_factory=dict)
    numbers: int = 0

    def topics(self, *names: str, now: datetime = LONG_AGO) -> None:
        with self.db.session() as session:
            rows = sync_topics(
                session, [TopicSpecRecord(n, f'"{n}"', 0.0, f"fp-{n}") for n in names], now
            )
        self.topic_ids = {row.name: row.id for row in rows}

    def source(self, name: str) -> int:
        if name not in self.sources:
            self.sources[name] = add_source(self.db, name)
        return self.sources[name]

    def article(
        self,
        title: str,
        *,
        source: str = "Outlet A",
        seen: datetime = NOW - timedelta(hours=1),
        published: datetime | None = None,
        url: str | None = None,
        canonical_url: str | None = None,
        number: int | None = None,
    ) -> int:
        """Store one article as seen by `source` at `seen`; its id."""
        if number is None:
            self.numbers += 1
            number = self.numbers
        record = article_record(number, source=source, title=title)
        overrides: dict[str, Any] = {
            "published_at": published or seen,
            "url": url or record.url,
            "canonical_url": canonical_url if canonical_url is not None else record.url,
        }
        record = article_record(number, source=source, title=title, **overrides)
        with self.db.session() as session:
            store_articles(session, self.source(source), [record], seen)
            article_id: int = session.scalars(
                select(Article.id).where(Article.key == record.key)
            ).one()
        return article_id

    def match(
        self,
        article_id: int,
        topic: str = TOPICS[0],
        *,
        score: float = 1.0,
        snippet: str = "",
        highlights: Sequence[tuple[int, int]] = (),
        terms: Sequence[str] = ("syria",),
        now: datetime = NOW - timedelta(minutes=30),
    ) -> None:
        record = MatchRecord(
            article_id, self.topic_ids[topic], score, tuple(terms), snippet, tuple(highlights)
        )
        with self.db.session() as session:
            assert store_matches(session, [record], now) == 1

    def story(self, *article_ids: int) -> None:
        """Cluster the articles into one story (set on the rows: no storage function yet)."""
        with self.db.session() as session:
            story = Story(first_seen_at=NOW, last_seen_at=NOW, article_count=len(article_ids))
            session.add(story)
            session.flush()
            session.execute(
                update(Article).where(Article.id.in_(article_ids)).values(story_id=story.id)
            )

    def matched(self, title: str, topic: str = TOPICS[0], **kwargs: Any) -> int:
        """An article with one match; its id."""
        score = kwargs.pop("score", 1.0)
        snippet = kwargs.pop("snippet", "")
        highlights = kwargs.pop("highlights", ())
        article_id = self.article(title, **kwargs)
        # Matched half an hour after it was seen, as a poll would: a match stamped at a
        # fixed date would fall out of a digest's window once that date is old.
        matched_at = kwargs.get("seen", NOW - timedelta(hours=1)) + timedelta(minutes=30)
        self.match(
            article_id, topic, score=score, snippet=snippet, highlights=highlights, now=matched_at
        )
        return article_id

    def attempts(self, name: str = "daily", channel: str | None = None) -> list[Attempt]:
        with self.db.session() as session:
            return attempts_of(session, name, channel)


@pytest.fixture
def newsroom(database: Database) -> Newsroom:
    room = Newsroom(database)
    room.topics(*TOPICS)
    return room


def write_config(
    directory: Path,
    database_url: str,
    *,
    smtp: SmtpServer | None = None,
    smtp_port: int | None = None,
    smtp_extra: str = "",
    digests: str | None = None,
    password: str | None = None,
    **digest_keys: Any,
) -> Config:
    """A newswatch.toml in `directory` with one digest 'daily' (keys overridable)."""
    keys: dict[str, Any] = {
        "name": "daily",
        "timezone": "Europe/Istanbul",
        "format": "email",
        "to": ["analyst@example.org"],
        "output": str(directory / "digests"),
    }
    keys.update(digest_keys)
    lines = [f'[[topics]]\nname = "{t}"\nquery = \'"{t}"\'\n' for t in TOPICS]
    lines.append(
        digests or "[[digests]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in keys.items())
    )
    port = smtp.port if smtp else smtp_port
    if port is not None:
        security = smtp.security if smtp else "none"
        ca = f'ca_file = "{smtp.ca_file}"\n' if smtp and smtp.ca_file else ""
        lines.append(
            f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "{security}"\n'
            f'from = "newswatch@example.org"\ntimeout = 5\n{ca}{smtp_extra}'
        )
    path = directory / "newswatch.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    env = {"NEWSWATCH_DATABASE_URL": database_url}
    if password is not None:
        env["NEWSWATCH_SMTP_PASSWORD"] = password
    return load_config(path, env)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "[" + ", ".join(_toml(v) for v in value) + "]"


def run(config: Config, db: Database, **kwargs: Any) -> DigestRunResult:
    kwargs.setdefault("now", NOW)
    return digest_once(config, db, **kwargs)


def text_part(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def html_part(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def delivered_titles(messages: Sequence[ReceivedMessage], titles: Sequence[str]) -> list[str]:
    """Each of `titles` once per message whose text part shows it."""
    return [t for m in messages for t in titles if f"* {t}\n" in text_part(m.message)]


@pytest.fixture
def config_for(
    tmp_path: Path, database: Database
) -> Any:  # a function: (**keys) -> Config for this test's database
    def make(**keys: Any) -> Config:
        return write_config(tmp_path, database.url, **keys)

    return make


# --- content --------------------------------------------------------------------------


def test_a_match_is_emailed_once_and_the_next_run_sends_nothing(
    newsroom: Newsroom, smtp_server: SmtpServer, config_for: Any
) -> None:
    newsroom.matched("Israel and Turkey agree on Syria deconfliction line")
    config = config_for(smtp=smtp_server)

    first = run(config, newsroom.db)
    second = run(config, newsroom.db, now=NOW + timedelta(hours=1))

    assert [c.status for c in first.channels] == ["sent"]
    assert [c.status for c in second.channels] == ["empty"]
    assert len(smtp_server.messages) == 1
    assert "Israel and Turkey agree" in text_part(smtp_server.messages[0].message)
    assert [a.status for a in newsroom.attempts()] == ["sent", "empty"]


def test_each_digest_and_channel_keeps_its_own_memory(
    newsroom: Newsroom, smtp_server: SmtpServer, tmp_path: Path, database: Database
) -> None:
    newsroom.matched("Hotline between Ankara and Jerusalem")
    digests = "".join(
        f'[[digests]]\nname = "{name}"\nformat = ["email", "markdown"]\n'
        f'to = ["{name}@example.org"]\noutput = "{tmp_path / name}"\n'
        for name in ("daily", "desk")
    )
    config = write_config(tmp_path, database.url, smtp=smtp_server, digests=digests)

    daily = run(config, newsroom.db, name="daily")
    desk = run(config, newsroom.db, name="desk")

    assert [c.status for c in daily.channels] == ["sent", "written"]
    assert [c.status for c in desk.channels] == ["sent", "written"]
    assert [m.rcpt_tos for m in smtp_server.messages] == [
        ("daily@example.org",),
        ("desk@example.org",),
    ]
    for name in ("daily", "desk"):
        (markdown,) = (tmp_path / name).glob("*.md")
        assert "Hotline between Ankara and Jerusalem" in markdown.read_text()


def test_articles_of_one_story_become_one_entry_also_reported_by_the_others(
    newsroom: Newsroom, smtp_server: SmtpServer, config_for: Any
) -> None:
    lead = newsroom.matched("Wire: deconfliction talks in Syria", source="Reuters", score=3.0)
    copy = newsroom.matched("Deconfliction talks held", source="Al-Monitor", score=1.0)
    unmatched = newsroom.article("Talks on Syria airspace", source="Daily Sabah")
    newsroom.story(lead, copy, unmatched)

    run(config_for(smtp=smtp_server), newsroom.db)

    text = text_part(smtp_server.messages[0].message)
    assert text.count("\n* ") == 1
    assert "* Wire: deconfliction talks in Syria" in text
    assert "Deconfliction talks held" not in text
    assert (
        "Also reported by: Al-Monitor <https://news.example/2>, "
        "Daily Sabah <https://news.example/3>"
    ) in text


def test_stories_are_ordered_by_score_then_newest_first(
    newsroom: Newsroom, tmp_path: Path, config_for: Any
) -> None:
    newsroom.matched("Low score", score=1.0, seen=NOW - timedelta(hours=1))
    newsroom.matched("High score, older", score=5.0, seen=NOW - timedelta(hours=3))
    newsroom.matched("High score, newer", score=5.0, seen=NOW - timedelta(hours=2))
    config = config_for(format="markdown")

    result = run(config, newsroom.db)

    markdown = Path(result.channels[0].path or "").read_text()
    positions = [markdown.index(t) for t in ("High score, newer", "High score, older", "Low score")]
    assert positions == sorted(positions)


def test_times_are_shown_in_the_digest_time_zone(
    newsroom: Newsroom, smtp_server: SmtpServer, config_for: Any
) -> None:
    newsroom.matched("Morning briefing", published=datetime(2026, 11, 25, 3, 15, tzinfo=UTC))

    run(config_for(smtp=smtp_server), newsroom.db)

    assert "2026-11-25 06:15 +03" in text_part(smtp_server.messages[0].message)


def test_the_snippet_highlights_the_matched_terms(
    newsroom: Newsroom, tmp_path: Path, config_for: Any
) -> None:
    snippet = "Officials said the Syria deconfliction line holds."
    start = snippet.index("Syria")
    newsroom.matched("Line holds", snippet=snippet, highlights=[(start, start + 5)])

    result = run(config_for(format=["markdown", "html"]), newsroom.db)

    markdown, html = (Path(c.path or "").read_text() for c in result.channels)
    assert "Officials said the **Syria** deconfliction line holds." in markdown
    assert "<mark" in html
    assert ">Syria</mark>" in html


def test_the_link_is_the_canonical_url_without_tracking_parameters(
    newsroom: Newsroom, smtp_server: SmtpServer, config_for: Any
) -> None:
    newsroom.matched(
        "Tracked link",
        url="https://news.example/story?id=7&utm_source=rss&utm_medium=feed",
        canonical_url="https://news.example/story?id=7",
    )

    run(config_for(smtp=smtp_server), newsroom.db)

    message = smtp_server.messages[0].message
    for part in (text_part(message), html_part(message)):
        assert "https://news.example/story?id=7" in part
        assert "utm_" not in part


def test_a_topic_shows_at_most_max_items_and_counts_the_rest(
    newsroom: Newsroom, smtp_server: SmtpServer, config_for: Any
) -> None:
    for n in range(5):
        newsroom.matched(f"Item {n}", score=float(n))
    config = config_for(smtp=smtp_server, max_items_per_topic=2)

    first = run(config, newsroom.db)
    second = run(config, newsroom.db, now=NOW + timedelta(hours=1))

    text = text_part(smtp_server.messages[0].message)
    assert delivered_titles(smtp_server.messages, [f"Item {n}" for n in range(5)]) == [
        "Item 3",
        "Item 4",
    ]
    assert "...and 3 more" in text
    assert first.channels[0].stories == 5
    assert second.channels[0].status == "empty"  # the three not shown were delivered too


def test_the_topics_filter_limits_the_digest_to_its_topics(
    newsroom: Newsroom, smtp_server: SmtpServer, config_for: Any
) -> None:
    newsroom.matched("About Syria", topic=TOPICS[0])
    newsroom.matched("About Cyprus", topic=TOPICS[1])

    run(config_for(smtp=smtp_server, topics=[TOPICS[1]]), newsroom.db)

    text = text_part(smtp_server.messages[0].message)
    assert "About Cyprus" in text
    assert "About Syria" not in text


def test_an_empty_digest_sends_no_email_but_the_run_says_so(
    newsroom: Newsroom, smtp_server: SmtpServer, config_for: Any
) -> None:
    result = run(config_for(smtp=smtp_server), newsroom.db)

    assert result.lines() == ["digest 'daily' (email): no new matches; no email sent"]
    assert smtp_server.messages == []
    assert not result.failed


def test_send_empty_sends_a_digest_saying_there_is_nothing_new(
    newsroom: Newsroom, smtp_server: SmtpServer, config_for: Any
) -> None:
    run(config_for(smtp=smtp_server, send_empty=True), newsroom.db)

    (received,) = smtp_server.messages
    assert "no new matches" in str(received.message["Subject"])


def test_a_first_digest_skips_articles_first_seen_before_the_catchup_window(
    newsroom: Newsroom, smtp_server: SmtpServer, config_for: Any
) -> None:
    newsroom.matched("Seen 30 hours ago", seen=NOW - timedelta(hours=30))
    newsroom.matched("Seen 20 hours ago", seen=NOW - timedelta(hours=20))

    run(config_for(smtp=smtp_server, catchup_hours=24), newsroom.db)

    titles = delivered_titles(smtp_server.messages, ["Seen 30 hours ago", "Seen 20 hours ago"])
    assert titles == ["Seen 20 hours ago"]


def test_a_new_topic_does_not_bring_its_backfilled_matches_from_before_the_window(
    newsroom: Newsroom, smtp_server: SmtpServer, config_for: Any
) -> None:
    config = config_for(smtp=smtp_server, catchup_hours=24)
    run(config, newsroom.db, now=NOW - timedelta(days=10))  # the digest has run for days
    old = newsroom.article("Stored five days ago", seen=NOW - timedelta(days=5))
    recent = newsroom.article("Stored an hour ago", seen=NOW - timedelta(hours=1))
    newsroom.topics(*TOPICS, "Golan", now=NOW)  # added today, backfilled over both
    newsroom.match(old, "Golan")
    newsroom.match(recent, "Golan")
    config = write_config(
        config.path.parent,
        newsroom.db.url,
        smtp=smtp_server,
        digests=(
            '[[digests]]\nname = "daily"\nto = ["a@example.org"]\nformat = "email"\n'
            "[[topics]]\nname = \"Golan\"\nquery = 'Golan'\n"
        ),
    )

    run(config, newsroom.db)

    titles = ["Stored five days ago", "Stored an hour ago"]
    assert delivered_titles(smtp_server.messages, titles) == ["Stored an hour ago"]


def test_a_new_feed_does_not_bring_its_backlog(
    newsroom: Newsroom, smtp_server: SmtpServer, config_for: Any
) -> None:
    config = config_for(smtp=smtp_server, catchup_hours=24)
    run(config, newsroom.db, now=NOW - timedelta(days=1))
    # the new feed's first poll, an hour ago, saw its history for the first time
    for title, age in (("Backlog from last week", 7 * 24), ("Fresh from the new feed", 2)):
        newsroom.matched(
            title,
            source="New Feed",
            seen=NOW - timedelta(hours=1),
            published=NOW - timedelta(hours=age),
        )

    run(config, newsroom.db)

    titles = ["Backlog from last week", "Fresh from the new feed"]
    assert delivered_titles(smtp_server.messages, titles) == ["Fresh from the new feed"]


def test_after_a_gap_everything_since_the_previous_run_is_delivered(
    newsroom: Newsroom, smtp_server: SmtpServer, config_for: Any
) -> None:
    config = config_for(smtp=smtp_server, catchup_hours=24)
    run(config, newsroom.db, now=NOW - timedelta(days=3))
    newsroom.matched("Two days old", seen=NOW - timedelta(days=2))

    run(config, newsroom.db)

    assert delivered_titles(smtp_server.messages, ["Two days old"]) == ["Two days old"]


# --- exactly once ---------------------------------------------------------------------


def test_smtp_down_keeps_the_matches_pending_and_the_next_run_sends_them_once(
    newsroom: Newsroom,
    smtp_server: SmtpServer,
    closed_smtp_port: int,
    config_for: Any,
) -> None:
    newsroom.matched("Waiting for the server")
    down = config_for(smtp_port=closed_smtp_port)
    up = config_for(smtp=smtp_server)

    failed = run(down, newsroom.db)
    sent = run(up, newsroom.db, now=NOW + timedelta(hours=1))
    again = run(up, newsroom.db, now=NOW + timedelta(hours=2))

    assert failed.failed
    assert "connection refused" in (failed.channels[0].error or "")
    assert [c.status for c in sent.channels + again.channels] == ["sent", "empty"]
    assert delivered_titles(smtp_server.messages, ["Waiting for the server"]) == [
        "Waiting for the server"
    ]
    first, *_ = newsroom.attempts()
    assert first.status == "sent"
    assert first.attempts == 2


def test_a_failed_send_stores_its_error(
    newsroom: Newsroom, closed_smtp_port: int, config_for: Any
) -> None:
    newsroom.matched("Undeliverable")

    run(config_for(smtp_port=closed_smtp_port), newsroom.db)

    (attempt,) = newsroom.attempts()
    assert attempt.status == "failed"
    assert attempt.error is not None
    assert "connection refused" in attempt.error


def test_refused_authentication_keeps_the_matches_pending(
    newsroom: Newsroom, smtp_server_factory: SmtpServerFactory, config_for: Any
) -> None:
    server = smtp_server_factory("starttls", auth=("newswatch", "right"))
    newsroom.matched("Behind a login")
    extra = 'username = "newswatch"\n'

    refused = run(config_for(smtp=server, smtp_extra=extra, password="wrong"), newsroom.db)
    sent = run(config_for(smtp=server, smtp_extra=extra, password="right"), newsroom.db)

    assert "authentication refused" in (refused.channels[0].error or "")
    assert sent.channels[0].status == "sent"
    assert delivered_titles(server.messages, ["Behind a login"]) == ["Behind a login"]


def test_a_timeout_keeps_the_matches_pending(
    newsroom: Newsroom, silent_smtp_port: int, smtp_server: SmtpServer, config_for: Any
) -> None:
    newsroom.matched("Slow server")

    timed_out = run(_with_timeout(config_for(smtp_port=silent_smtp_port), 0.3), newsroom.db)
    run(config_for(smtp=smtp_server), newsroom.db)

    assert "timeout" in (timed_out.channels[0].error or "")
    assert delivered_titles(smtp_server.messages, ["Slow server"]) == ["Slow server"]


def _with_timeout(config: Config, seconds: float) -> Config:
    from dataclasses import replace

    assert config.file.smtp is not None
    smtp = config.file.smtp.model_copy(update={"timeout": seconds})
    return replace(config, file=config.file.model_copy(update={"smtp": smtp}))


def test_a_send_interrupted_before_it_was_recorded_is_not_sent_again(
    newsroom: Newsroom, smtp_server: SmtpServer, config_for: Any
) -> None:
    from storage.digests import claim_matches, claim_windows, mark_sending, take_attempt

    newsroom.matched("Maybe delivered")
    # What a run that died mid-send leaves behind: claimed, marked sending, never marked.
    with newsroom.db.session() as session:
        windows = claim_windows(session, "daily", "email", None, NOW, timedelta(hours=24))
        attempt = take_attempt(session, "daily", "email", ["analyst@example.org"], NOW)
        claim_matches(session, attempt, windows)
        mark_sending(session, attempt, "<crashed.1@example.org>")
    newsroom.matched("Arrived later", seen=NOW + timedelta(minutes=30))

    result = run(config_for(smtp=smtp_server), newsroom.db, now=NOW + timedelta(hours=1))

    assert result.channels[0].status == "recovered"
    assert "<crashed.1@example.org>" in result.lines()[0]
    titles = delivered_titles(smtp_server.messages, ["Maybe delivered", "Arrived later"])
    assert titles == ["Arrived later"]
    crashed = newsroom.attempts()[0]
    assert crashed.status == "sent"
    assert crashed.error is not None
    assert "<crashed.1@example.org>" in crashed.error


def test_the_sender_outcome_wins_over_another_run_that_resolved_its_send(
    newsroom: Newsroom,
) -> None:
    from storage.digests import (
        claim_matches,
        claim_windows,
        interrupted_attempts,
        mark_failed,
        mark_sending,
        resolve_interrupted,
        take_attempt,
    )

    newsroom.matched("Slow send")
    with newsroom.db.session() as session:
        windows = claim_windows(session, "daily", "email", None, NOW, timedelta(hours=24))
        attempt = take_attempt(session, "daily", "email", ["analyst@example.org"], NOW)
        claim_matches(session, attempt, windows)
        mark_sending(session, attempt, "<slow.1@example.org>")
    with newsroom.db.session() as session:  # another run takes it for interrupted
        (seen,) = interrupted_attempts(session, "daily", "email")
        assert resolve_interrupted(session, seen, NOW, "resolved by another run")
    with newsroom.db.session() as session:  # the sender then learns it failed
        assert mark_failed(session, attempt.id, "<slow.1@example.org>", "connection refused")

    (final,) = newsroom.attempts()
    assert (final.status, final.error) == ("failed", "connection refused")


def test_several_failed_attempts_are_merged_and_sent_as_one_email(
    newsroom: Newsroom, smtp_server: SmtpServer, config_for: Any
) -> None:
    from storage.digests import claim_matches, claim_windows, mark_failed, take_attempt

    for n in range(2):  # two runs that each failed with their own matches
        newsroom.matched(f"Failed run {n}", seen=NOW - timedelta(hours=2 - n))
        with newsroom.db.session() as session:
            windows = claim_windows(session, "daily", "email", None, NOW, timedelta(hours=24))
            attempt = take_attempt(session, "daily", "email", [], NOW, reusable=())
            assert claim_matches(session, attempt, windows) == 1
            mark_failed(session, attempt.id, None, "connection refused")

    run(config_for(smtp=smtp_server), newsroom.db)

    (received,) = smtp_server.messages
    assert "Failed run 0" in text_part(received.message)
    assert "Failed run 1" in text_part(received.message)
    assert [a.status for a in newsroom.attempts()] == ["sent"]


def test_an_interrupted_file_write_is_written_again_to_the_same_path(
    newsroom: Newsroom, config_for: Any
) -> None:
    from storage.digests import claim_matches, claim_windows, mark_sending, take_attempt

    newsroom.matched("Written twice is fine")
    config = config_for(format="markdown")
    target = Path(config.resolve("digests")) / "interrupted.md"
    with newsroom.db.session() as session:
        windows = claim_windows(session, "daily", "markdown", None, NOW, timedelta(hours=24))
        attempt = take_attempt(session, "daily", "markdown", [], NOW)
        claim_matches(session, attempt, windows)
        mark_sending(session, attempt, None, output_path=str(target))

    result = run(config, newsroom.db, now=NOW + timedelta(hours=1))

    assert result.channels[0].path == str(target)
    assert "Written twice is fine" in target.read_text()
    assert [a.status for a in newsroom.attempts()] == ["sent"]


def test_a_message_cut_off_after_data_is_recorded_as_sent_and_not_resent(
    newsroom: Newsroom, smtp_server_factory: SmtpServerFactory, config_for: Any
) -> None:
    server = smtp_server_factory(on_data="drop")
    newsroom.matched("Cut off")
    config = config_for(smtp=server)

    first = run(config, newsroom.db)
    second = run(config, newsroom.db, now=NOW + timedelta(hours=1))

    assert first.channels[0].status == "uncertain"
    assert "probably sent" in first.lines()[0]
    assert not first.failed
    assert second.channels[0].status == "empty"
    assert len(server.messages) == 1


def test_a_partly_refused_message_is_recorded_as_sent_and_not_resent(
    newsroom: Newsroom, smtp_server_factory: SmtpServerFactory, config_for: Any
) -> None:
    server = smtp_server_factory(refuse={"gone@example.org"})
    newsroom.matched("Partly delivered")
    config = config_for(smtp=server, to=["analyst@example.org", "gone@example.org"])

    first = run(config, newsroom.db)
    second = run(config, newsroom.db, now=NOW + timedelta(hours=1))

    assert first.channels[0].status == "uncertain"
    assert "gone@example.org" in (newsroom.attempts()[0].error or "")
    assert second.channels[0].status == "empty"
    assert [m.rcpt_tos for m in server.messages] == [("analyst@example.org",)]


@pytest.mark.parametrize("earlier_failure", [False, True], ids=["fresh", "after-failure"])
def test_two_runs_at_once_never_deliver_a_match_twice(
    newsroom: Newsroom,
    smtp_server: SmtpServer,
    closed_smtp_port: int,
    config_for: Any,
    earlier_failure: bool,
) -> None:
    titles = [f"Concurrent {n}" for n in range(20)]
    for title in titles:
        newsroom.matched(title)
    if earlier_failure:  # both runs then race to take over the failed attempt
        run(config_for(smtp_port=closed_smtp_port), newsroom.db)
    config = config_for(smtp=smtp_server)
    start = threading.Barrier(2)
    results: list[DigestRunResult] = []

    def one_run() -> None:
        db = open_database(newsroom.db.url)
        try:
            start.wait(10)
            results.append(digest_once(config, db, now=NOW + timedelta(hours=1)))
        finally:
            db.dispose()

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert len(results) == 2
    assert sorted(delivered_titles(smtp_server.messages, titles)) == sorted(titles)


def test_files_are_written_atomically_into_the_output_directory(
    newsroom: Newsroom, tmp_path: Path, config_for: Any
) -> None:
    newsroom.matched("Filed story")
    config = config_for(format=["markdown", "html", "text"])

    result = run(config, newsroom.db)

    out = tmp_path / "digests"
    assert sorted(p.name for p in out.iterdir()) == [
        "daily-20261125-070000.html",
        "daily-20261125-070000.md",
        "daily-20261125-070000.txt",
    ]
    assert all("Filed story" in p.read_text() for p in out.iterdir())
    assert [c.status for c in result.channels] == ["written"] * 3
    assert {a.output_path for a in newsroom.attempts()} == {str(p) for p in out.iterdir()}


def test_an_unwritable_output_keeps_the_matches_pending_until_it_can_be_written(
    newsroom: Newsroom, tmp_path: Path, config_for: Any
) -> None:
    newsroom.matched("Needs a directory")
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the directory should be")

    failed = run(config_for(format="markdown", output=str(blocker / "digests")), newsroom.db)
    blocker.unlink()
    written = run(config_for(format="markdown", output=str(blocker / "digests")), newsroom.db)

    assert failed.failed
    assert "cannot write" in (failed.channels[0].error or "")
    assert written.channels[0].status == "written"
    assert "Needs a directory" in Path(written.channels[0].path or "").read_text()


def test_a_dry_run_renders_without_marking_anything_delivered(
    newsroom: Newsroom, smtp_server: SmtpServer, tmp_path: Path, config_for: Any
) -> None:
    newsroom.matched("Previewed, then delivered")
    config = config_for(smtp=smtp_server)
    preview = tmp_path / "preview.eml"

    dry = run(config, newsroom.db, dry_run=True, output=str(preview))
    real = run(config, newsroom.db)

    assert dry.channels[0].status == "dry-run"
    assert "Previewed, then delivered" in preview.read_text()
    assert real.channels[0].status == "sent"
    assert delivered_titles(smtp_server.messages, ["Previewed, then delivered"]) == [
        "Previewed, then delivered"
    ]
    assert [a.status for a in newsroom.attempts()] == ["sent"]


# --- the raw message ------------------------------------------------------------------


def test_the_email_has_its_headers_both_parts_a_message_id_and_a_date(
    newsroom: Newsroom, smtp_server: SmtpServer, config_for: Any
) -> None:
    newsroom.matched("Headline")

    result = run(
        config_for(smtp=smtp_server, to=["analyst@example.org", "desk@example.org"]), newsroom.db
    )

    (received,) = smtp_server.messages
    message = received.message
    assert received.mail_from == "newswatch@example.org"
    assert received.rcpt_tos == ("analyst@example.org", "desk@example.org")
    assert message["From"] == "newswatch@example.org"
    assert message["To"] == "analyst@example.org, desk@example.org"
    assert message["Subject"] == "newswatch daily: 1 new match — Headline"
    assert message["Message-ID"] == result.channels[0].message_id
    assert newsroom.attempts()[0].message_id == result.channels[0].message_id
    assert parsedate_to_datetime(str(message["Date"])) == NOW
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert "Headline" in text_part(message)
    assert "Headline" in html_part(message)


def test_a_hostile_title_cannot_inject_a_header(
    newsroom: Newsroom, smtp_server: SmtpServer, config_for: Any
) -> None:
    newsroom.matched("Breaking\r\nBcc: victim@evil.example\r\nX-Injected: yes")

    run(config_for(smtp=smtp_server), newsroom.db)

    (received,) = smtp_server.messages
    head = received.raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    names = [line.split(":", 1)[0].lower() for line in head.split("\r\n") if line[:1] not in " \t"]
    assert "bcc" not in names
    assert "x-injected" not in names
    assert received.rcpt_tos == ("analyst@example.org",)
    assert "\n" not in str(received.message["Subject"])


def test_feed_scripts_and_javascript_links_never_reach_the_html_part(
    newsroom: Newsroom, smtp_server: SmtpServer, config_for: Any
) -> None:
    lead = newsroom.matched(
        '<script>alert("title")</script><img src=x onerror=alert(1)>',
        url="javascript:alert(document.cookie)",
        canonical_url="",
        snippet='<script>alert("snippet")</script> <a href="javascript:alert(2)">x</a>',
    )
    other = newsroom.article(
        "Other outlet", source="Evil Outlet", url="JaVaScRiPt:alert(3)", canonical_url=""
    )
    newsroom.story(lead, other)

    run(config_for(smtp=smtp_server), newsroom.db)

    elements = _Elements()
    elements.feed(html_part(smtp_server.messages[0].message))
    assert {"script", "img", "iframe"}.isdisjoint(elements.tags)
    assert [a for a in elements.attributes if a[0].startswith("on")] == []
    links = [v for n, v in elements.attributes if n in ("href", "src")]
    assert links
    assert all(v.startswith(("https://", "http://")) for v in links)


class _Elements(HTMLParser):
    """Every element and attribute of an HTML document, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.extend((name, (value or "").strip().lower()) for name, value in attrs)
