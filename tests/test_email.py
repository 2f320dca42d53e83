"""Building the digest email: MIME structure, headers, injection-proofing, and a golden
message with the volatile parts (Message-ID, Date, MIME boundary) pinned.

Regenerate tests/golden/digest.eml like the other golden files:
    NEWSWATCH_UPDATE_GOLDEN=1 uv run pytest tests/test_email.py -q
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import pytest

from digest.email import build_email, make_message_id, parse_address
from digest.model import DigestView, OutletLink, StoryView, TopicSection
from digest.render import render_text, subject
from tests.golden.sample import sample_view

GOLDEN = Path(__file__).parent / "golden" / "digest.eml"
UPDATE = os.environ.get("NEWSWATCH_UPDATE_GOLDEN") == "1"
MESSAGE_ID = "<digest-42.1@example.org>"
DATE = datetime(2026, 11, 25, 7, 0, tzinfo=timezone(timedelta(hours=3)))
BOUNDARY = "===============newswatch-golden=="


def build(view: DigestView | None = None, **overrides: Any) -> EmailMessage:
    kwargs: dict[str, Any] = {
        "sender": "newswatch <newswatch@example.org>",
        "recipients": ["analyst@example.org", "Desk <desk@example.org>"],
        "message_id": MESSAGE_ID,
        "date": DATE,
    }
    kwargs.update(overrides)
    return build_email(view or sample_view(), **kwargs)


def reparse(message: EmailMessage) -> EmailMessage:
    return cast(EmailMessage, message_from_bytes(message.as_bytes(), policy=policy.default))


def header_lines(raw: bytes) -> list[str]:
    return raw.split(b"\r\n\r\n", 1)[0].decode("ascii").split("\r\n")


def test_message_matches_golden_file_with_pinned_boundary() -> None:
    message = build()
    message.set_boundary(BOUNDARY)
    raw = message.as_bytes()
    if UPDATE:
        GOLDEN.write_bytes(raw)
    assert raw == GOLDEN.read_bytes()


def test_message_is_multipart_alternative_text_then_html() -> None:
    message = reparse(build())
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in message.iter_parts())


def test_text_part_is_the_text_rendering() -> None:
    body = reparse(build()).get_body(("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == render_text(sample_view())


def test_html_part_is_a_full_document() -> None:
    body = reparse(build()).get_body(("html",))
    assert body is not None
    assert body.get_content().startswith("<!DOCTYPE html>")


def test_headers_carry_the_given_ids_and_addresses() -> None:
    message = reparse(build())
    assert message["Message-ID"] == MESSAGE_ID
    assert message["Date"] == "Wed, 25 Nov 2026 07:00:00 +0300"
    assert message["From"] == "newswatch <newswatch@example.org>"
    assert message["To"] == "analyst@example.org, Desk <desk@example.org>"
    assert message["Subject"] == subject(sample_view())
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["MIME-Version"] == "1.0"


def test_building_twice_gives_the_same_message_apart_from_the_boundary() -> None:
    first, second = build(), build()
    first.set_boundary(BOUNDARY)
    second.set_boundary(BOUNDARY)
    assert first.as_bytes() == second.as_bytes()


def test_raw_lines_use_crlf_and_stay_short() -> None:
    raw = build().as_bytes()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78


def test_non_ascii_subject_is_encoded_words_in_ascii_headers() -> None:
    view = sample_view()
    first = replace(view.sections[0].stories[0], title="Türkiye–İsrail görüşmesi 🇹🇷")
    view = replace(view, sections=(replace(view.sections[0], stories=(first,)),))
    raw = build(view).as_bytes()
    subject_lines = [line for line in header_lines(raw) if line.startswith("Subject:")]
    assert subject_lines and "=?utf-8?" in subject_lines[0]
    assert reparse(build(view))["Subject"] == subject(view)


def test_title_with_crlf_bcc_produces_no_header() -> None:
    story = StoryView(
        title="Hello\r\nBcc: victim@evil.example\r\n\r\nbody",
        url=None,
        outlets=(OutletLink("x", None),),
        published=DATE,
    )
    view = DigestView("daily", "UTC", DATE, None, (TopicSection("T", (story,)),))
    lines = header_lines(build(view).as_bytes())
    names = [line.split(":", 1)[0] for line in lines if line and not line[0].isspace()]
    assert "Bcc" not in names
    assert names.count("Subject") == 1


@pytest.mark.parametrize(
    "recipient",
    [
        "victim@example.org\r\nBcc: x@evil.example",
        "a@example.org, b@example.org",
        "not an address",
        "@example.org",
        "user@",
        "a@example.org>",
    ],
)
def test_invalid_recipient_is_refused(recipient: str) -> None:
    with pytest.raises(ValueError, match="invalid email address"):
        build(recipients=[recipient])


def test_recipients_as_one_string_is_refused() -> None:
    with pytest.raises(TypeError):
        build(recipients="analyst@example.org")


def test_no_recipients_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one recipient"):
        build(recipients=[])


def test_invalid_sender_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid email address"):
        build(sender="newswatch@example.org\nSubject: spoof")


@pytest.mark.parametrize("message_id", ["no-brackets@x", "<a@b>\r\nBcc: x@y", "<nodomain>", ""])
def test_invalid_message_id_is_refused(message_id: str) -> None:
    with pytest.raises(ValueError, match="Message-ID"):
        build(message_id=message_id)


def test_naive_date_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build(date=datetime(2026, 11, 25, 7, 0))


def test_make_message_id_is_unique_and_well_formed() -> None:
    ids = {make_message_id("example.org") for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"<[^<>@\s]+@example\.org>", i) for i in ids)
    build(message_id=ids.pop())  # accepted by build_email


@pytest.mark.parametrize("domain", ["", "exa mple.org", "example.org>\r\nX: y", "-bad.org"])
def test_make_message_id_refuses_bad_domains(domain: str) -> None:
    with pytest.raises(ValueError, match="domain"):
        make_message_id(domain)


def test_parse_address_accepts_display_names() -> None:
    address = parse_address('"Desk, Night" <desk@example.org>')
    assert (address.display_name, address.addr_spec) == ("Desk, Night", "desk@example.org")


def test_date_in_utc_is_formatted_with_zero_offset() -> None:
    message = reparse(build(date=datetime(2026, 11, 25, 4, 0, tzinfo=UTC)))
    assert message["Date"] == "Wed, 25 Nov 2026 04:00:00 +0000"
