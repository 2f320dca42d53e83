"""Sources and feed state: config sync, OPML import, due feeds, health after each poll."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, event, select

from storage.db import Database
from storage.feeds import (
    add_sources,
    all_sources,
    due_sources,
    feed_health,
    record_outcomes,
    sync_sources,
)
from storage.ingest import store_articles
from storage.models import FeedState, Source
from storage.records import FeedOutcome, SourceSpec
from tests.fixtures.db import article_record

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
A = SourceSpec("Alpha", "https://alpha.example/rss", tags=("syria",), language="en")
B = SourceSpec("Beta", "https://beta.example/feed", poll_interval_s=600)


def _sync(db: Database, *specs: SourceSpec) -> None:
    with db.session() as s:
        sync_sources(s, specs, now=NOW)


def _id(db: Database, name: str) -> int:
    with db.session(readonly=True) as s:
        return s.scalars(select(Source.id).where(Source.name == name)).one()


def _due(db: Database, at: datetime = NOW, *, everything: bool = False) -> list[str]:
    with db.session(readonly=True) as s:
        due = due_sources(s, at, all_sources=everything, default_interval_s=1800)
    return [d.name for d in due]


def _outcome(source_id: int, status: str = "ok", **fields: object) -> FeedOutcome:
    values: dict[str, object] = {
        "http_status": 200,
        "error": None,
        "etag": None,
        "last_modified": None,
        "checked_at": NOW,
        "next_poll_at": NOW + timedelta(minutes=30),
    }
    values.update(fields)
    return FeedOutcome(source_id=source_id, status=status, **values)  # type: ignore[arg-type]


def _record(db: Database, *outcomes: FeedOutcome) -> None:
    with db.session() as s:
        record_outcomes(s, outcomes)


def _health(db: Database, name: str):  # type: ignore[no-untyped-def]
    with db.session(readonly=True) as s:
        return next(h for h in feed_health(s) if h.name == name)


def test_synced_sources_are_stored_and_due(database: Database) -> None:
    _sync(database, A, B)
    assert _due(database) == ["Alpha", "Beta"]


def test_due_source_carries_its_url_validators_and_interval(database: Database) -> None:
    _sync(database, A, B)
    _record(database, _outcome(_id(database, "Beta"), etag='"v1"', next_poll_at=NOW))
    with database.session(readonly=True) as s:
        due = {d.name: d for d in due_sources(s, NOW, default_interval_s=1800)}
    assert due["Alpha"].url == A.url
    assert due["Alpha"].poll_interval_s == 1800
    assert due["Beta"].poll_interval_s == 600
    assert due["Beta"].etag == '"v1"'


def test_syncing_again_updates_a_source_in_place(database: Database) -> None:
    _sync(database, A)
    first_id = _id(database, "Alpha")
    _sync(database, SourceSpec("Alpha", A.url, tags=("turkey",), poll_interval_s=60))
    with database.session(readonly=True) as s:
        rows = all_sources(s)
    assert [(r.id, r.tags, r.poll_interval_s) for r in rows] == [(first_id, ("turkey",), 60)]


def test_syncing_an_unchanged_config_writes_no_source_rows(database: Database) -> None:
    _sync(database, A, B)
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))  # (conn, cursor, statement, ...)

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        _sync(database, A, B)
    finally:
        event.remove(database.engine, "before_cursor_execute", record)
    assert [s for s in statements if s.lstrip().upper().startswith("INSERT INTO SOURCES")] == []
    assert _due(database) == ["Alpha", "Beta"]


def test_source_removed_from_config_is_kept_but_inactive(database: Database) -> None:
    _sync(database, A, B)
    _sync(database, A)
    assert _due(database, everything=True) == ["Alpha"]
    with database.session(readonly=True) as s:
        rows = {r.name: r.active for r in all_sources(s, include_inactive=True)}
    assert rows == {"Alpha": True, "Beta": False}


def test_source_back_in_config_is_active_again(database: Database) -> None:
    _sync(database, A, B)
    _sync(database, A)
    _sync(database, A, B)
    assert _due(database) == ["Alpha", "Beta"]


def test_changed_url_starts_with_clean_feed_state(database: Database) -> None:
    _sync(database, A)
    alpha = _id(database, "Alpha")
    _record(database, _outcome(alpha, "gone", http_status=410, error="410 Gone", gone=True))
    _sync(database, SourceSpec("Alpha", "https://alpha.example/new-rss"))
    health = _health(database, "Alpha")
    assert (health.gone, health.consecutive_failures) == (False, 0)
    assert _due(database) == ["Alpha"]


def test_opml_import_adds_only_unknown_sources(database: Database) -> None:
    _sync(database, A)
    with database.session() as s:
        added = add_sources(
            s,
            [
                SourceSpec("Alpha again", A.url),  # known URL
                SourceSpec("Alpha", "https://other.example/rss"),  # known name
                B,
                B,
            ],
        )
    assert added == 1
    with database.session(readonly=True) as s:
        origins = {r.name: r.origin for r in all_sources(s)}
    assert origins == {"Alpha": "config", "Beta": "opml"}


def test_config_sync_leaves_opml_sources_alone(database: Database) -> None:
    with database.session() as s:
        add_sources(s, [B])
    _sync(database, A)
    assert _due(database) == ["Alpha", "Beta"]


def test_feed_is_not_due_before_its_next_poll_time(database: Database) -> None:
    _sync(database, A)
    _record(database, _outcome(_id(database, "Alpha"), next_poll_at=NOW + timedelta(minutes=30)))
    assert _due(database, NOW + timedelta(minutes=29)) == []
    assert _due(database, NOW + timedelta(minutes=30)) == ["Alpha"]


def test_all_sources_ignores_the_schedule(database: Database) -> None:
    _sync(database, A)
    _record(database, _outcome(_id(database, "Alpha"), next_poll_at=NOW + timedelta(hours=5)))
    assert _due(database, NOW, everything=True) == ["Alpha"]


def test_retry_after_is_honoured_even_with_all_sources(database: Database) -> None:
    _sync(database, A)
    later = NOW + timedelta(hours=1)
    _record(
        database,
        _outcome(
            _id(database, "Alpha"),
            "rate_limited",
            http_status=429,
            error="429",
            next_poll_at=NOW,
            retry_after=later,
        ),
    )
    assert _due(database, NOW + timedelta(minutes=59), everything=True) == []
    assert _due(database, later, everything=True) == ["Alpha"]


def test_gone_feed_is_never_due_again(database: Database) -> None:
    _sync(database, A)
    alpha = _id(database, "Alpha")
    _record(database, _outcome(alpha, "gone", http_status=410, error="410 Gone", gone=True))
    assert _due(database, NOW + timedelta(days=365), everything=True) == []
    assert _health(database, "Alpha").gone is True


def test_failures_are_counted_and_stored(database: Database) -> None:
    _sync(database, A)
    alpha = _id(database, "Alpha")
    for _ in range(3):
        _record(database, _outcome(alpha, "timeout", http_status=None, error="read timed out"))
    health = _health(database, "Alpha")
    assert (health.last_status, health.last_error, health.consecutive_failures) == (
        "timeout",
        "read timed out",
        3,
    )
    assert health.last_success_at is None


def test_success_resets_the_failure_count(database: Database) -> None:
    _sync(database, A)
    alpha = _id(database, "Alpha")
    _record(database, _outcome(alpha, "server_error", http_status=503, error="503"))
    _record(database, _outcome(alpha, "server_error", http_status=503, error="503"))
    _record(database, _outcome(alpha, "ok", checked_at=NOW + timedelta(hours=1)))
    health = _health(database, "Alpha")
    assert (health.consecutive_failures, health.last_error, health.last_status) == (0, None, "ok")
    assert health.last_success_at == NOW + timedelta(hours=1)


def test_not_modified_keeps_the_stored_validators(database: Database) -> None:
    _sync(database, A)
    alpha = _id(database, "Alpha")
    _record(database, _outcome(alpha, etag='"v1"', last_modified="Sun, 01 Mar 2026 10:00:00 GMT"))
    _record(database, _outcome(alpha, "unchanged", http_status=304))
    with database.session(readonly=True) as s:
        (due,) = due_sources(s, NOW, all_sources=True, default_interval_s=1800)
    assert (due.etag, due.last_modified) == ('"v1"', "Sun, 01 Mar 2026 10:00:00 GMT")


def _redirected(db: Database, source_id: int, target: str | None) -> str:
    _record(db, _outcome(source_id, http_status=200, permanent_redirect=target))
    with db.session(readonly=True) as s:
        (due,) = due_sources(s, NOW, all_sources=True, default_interval_s=1800)
    return due.url


def test_permanent_redirect_seen_three_times_in_a_row_becomes_the_url(database: Database) -> None:
    _sync(database, A)
    alpha = _id(database, "Alpha")
    moved = "https://alpha.example/moved"
    assert _redirected(database, alpha, moved) == A.url
    assert _redirected(database, alpha, moved) == A.url
    assert _redirected(database, alpha, moved) == moved
    assert _health(database, "Alpha").final_url == moved


def test_interrupted_redirect_streak_starts_over(database: Database) -> None:
    _sync(database, A)
    alpha = _id(database, "Alpha")
    moved = "https://alpha.example/moved"
    _redirected(database, alpha, moved)
    _redirected(database, alpha, moved)
    _redirected(database, alpha, None)
    _redirected(database, alpha, moved)
    assert _redirected(database, alpha, moved) == A.url


def test_outcomes_for_many_feeds_are_recorded_together(database: Database) -> None:
    _sync(database, A, B)
    _record(
        database,
        _outcome(_id(database, "Alpha"), new_items=4),
        _outcome(_id(database, "Beta"), "not_a_feed", error="HTML page"),
    )
    with database.session(readonly=True) as s:
        statuses = {h.name: h.last_status for h in feed_health(s)}
    assert statuses == {"Alpha": "ok", "Beta": "not_a_feed"}


def test_health_counts_distinct_articles_per_feed(database: Database) -> None:
    _sync(database, A, B)
    alpha, beta = _id(database, "Alpha"), _id(database, "Beta")
    with database.session() as s:
        store_articles(s, alpha, [article_record(n) for n in range(3)], NOW)
        store_articles(s, beta, [article_record(n) for n in range(2, 4)], NOW)
        store_articles(s, alpha, [article_record(0)], NOW)
    with database.session(readonly=True) as s:
        counts = {h.name: h.articles for h in feed_health(s)}
    assert counts == {"Alpha": 3, "Beta": 2}


def test_health_of_a_never_polled_feed_is_empty(database: Database) -> None:
    _sync(database, A)
    health = _health(database, "Alpha")
    assert (health.last_status, health.last_checked_at, health.articles) == (None, None, 0)


def test_an_outcome_for_a_source_without_a_feed_state_creates_it(database: Database) -> None:
    _sync(database, A)
    alpha = _id(database, "Alpha")
    with database.session() as s:
        s.execute(delete(FeedState).where(FeedState.source_id == alpha))
    _record(database, _outcome(alpha, etag='"v1"', new_items=3))
    health = _health(database, "Alpha")
    assert (health.last_status, health.last_checked_at) == ("ok", NOW)
    with database.session(readonly=True) as s:
        state = s.get_one(FeedState, alpha)
    assert (state.etag, state.items_seen, state.consecutive_failures) == ('"v1"', 3, 0)
