"""SMTP delivery against real aiosmtpd servers on 127.0.0.1: every security mode,
authentication, refusals and the failure paths, checked on the raw bytes received."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from digest.email import build_email
from digest.model import DigestView, OutletLink, StoryView, TopicSection
from digest.smtp import DeliveryError, SmtpSettings, send_email
from tests.fixtures.smtp import HOST, SENDER, SmtpServer, SmtpServerFactory
from tests.golden.sample import sample_view

MESSAGE_ID = "<digest-42.1@example.org>"
DATE = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)


def make_message(*recipients: str, view: DigestView | None = None, **headers: str):  # type: ignore[no-untyped-def]
    message = build_email(
        view or sample_view(),
        sender=SENDER,
        recipients=list(recipients or ("analyst@example.org",)),
        message_id=MESSAGE_ID,
        date=DATE,
    )
    for name, value in headers.items():
        message[name] = value
    return message


def hostile_view() -> DigestView:
    story = StoryView(
        title="Breaking\r\nBcc: victim@evil.example\r\nX-Injected: yes",
        url="https://example.com/a",
        outlets=(OutletLink("Evil\r\nCc: x@evil.example", None),),
        published=DATE,
    )
    return DigestView("daily", "UTC", DATE, None, (TopicSection("T", (story,)),))


def header_block(raw: bytes) -> str:
    return raw.split(b"\r\n\r\n", 1)[0].decode("ascii")


# -- successful delivery ----------------------------------------------------------


def test_plain_server_receives_both_parts(smtp_server: SmtpServer) -> None:
    send_email(make_message(), smtp_server.settings())

    (received,) = smtp_server.messages
    parsed = received.message
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None and "Israel & Turkey hold deconfliction talks" in text.get_content()
    assert html is not None and "<mark" in html.get_content()


def test_envelope_uses_sender_and_header_recipients(smtp_server: SmtpServer) -> None:
    send_email(make_message("a@example.org", "Bob <b@example.org>"), smtp_server.settings())

    (received,) = smtp_server.messages
    assert received.mail_from == SENDER
    assert received.rcpt_tos == ("a@example.org", "b@example.org")


def test_received_headers_are_exactly_the_built_ones(smtp_server: SmtpServer) -> None:
    send_email(make_message(), smtp_server.settings())

    parsed = smtp_server.messages[0].message
    assert parsed["Message-ID"] == MESSAGE_ID
    assert parsed["Date"] == "Wed, 25 Nov 2026 04:00:00 +0000"
    assert parsed["From"] == SENDER
    assert parsed["To"] == "analyst@example.org"
    assert parsed["Subject"].startswith("newswatch daily: 8 new matches")


def test_starttls_delivers_over_a_verified_connection(
    smtp_server_factory: SmtpServerFactory,
) -> None:
    server = smtp_server_factory("starttls")
    send_email(make_message(), server.settings())
    assert len(server.messages) == 1


def test_implicit_tls_delivers_over_a_verified_connection(
    smtp_server_factory: SmtpServerFactory,
) -> None:
    server = smtp_server_factory("tls")
    send_email(make_message(), server.settings())
    assert len(server.messages) == 1


def test_authenticated_submission_delivers(smtp_server_factory: SmtpServerFactory) -> None:
    server = smtp_server_factory("starttls", auth=("newswatch", "s3cret-pass"))
    send_email(make_message(), server.settings())
    assert len(server.messages) == 1


def test_bcc_recipients_get_the_message_without_the_header(smtp_server: SmtpServer) -> None:
    message = make_message("a@example.org", Bcc="hidden@example.org")
    send_email(message, smtp_server.settings())

    (received,) = smtp_server.messages
    assert received.rcpt_tos == ("a@example.org", "hidden@example.org")
    assert b"hidden@example.org" not in received.raw
    assert message["Bcc"] == "hidden@example.org"  # the caller's message is untouched


# -- what the wire carries ----------------------------------------------------------


def test_feed_title_with_crlf_injects_no_header(smtp_server: SmtpServer) -> None:
    send_email(make_message(view=hostile_view()), smtp_server.settings())

    (received,) = smtp_server.messages
    assert received.rcpt_tos == ("analyst@example.org",)
    names = [line.split(":", 1)[0] for line in header_block(received.raw).split("\r\n")]
    names = [n for n in names if n and not n[0].isspace()]  # skip folded continuations
    assert "Bcc" not in names and "X-Injected" not in names and "Cc" not in names
    assert received.message["Subject"].count("\n") == 0
    assert "Bcc: victim@evil.example" in received.message["Subject"]  # shown, as text


def test_non_ascii_subject_is_rfc2047_encoded_on_the_wire(smtp_server: SmtpServer) -> None:
    view = sample_view()
    first = replace(view.sections[0].stories[0], title="Türkiye–İsrail: görüşmeler sürüyor")
    view = replace(view, sections=(replace(view.sections[0], stories=(first,)),))
    send_email(make_message(view=view), smtp_server.settings())

    raw_headers = header_block(smtp_server.messages[0].raw)  # decodes as ASCII or fails
    assert "=?utf-8?" in raw_headers
    assert "Türkiye–İsrail: görüşmeler sürüyor" in smtp_server.messages[0].message["Subject"]


def test_message_id_is_sent_unchanged(smtp_server: SmtpServer) -> None:
    send_email(make_message(), smtp_server.settings())
    assert f"\r\nMessage-ID: {MESSAGE_ID}\r\n".encode() in smtp_server.messages[0].raw


# -- failures ---------------------------------------------------------------------------


def _fail(message, settings: SmtpSettings) -> DeliveryError:  # type: ignore[no-untyped-def]
    with pytest.raises(DeliveryError) as info:
        send_email(message, settings)
    error = info.value
    assert "\n" not in str(error) and "\r" not in str(error)
    return error


def test_connection_refused_is_one_line_and_not_sent(closed_smtp_port: int) -> None:
    settings = SmtpSettings(HOST, sender=SENDER, port=closed_smtp_port, security="none")
    error = _fail(make_message(), settings)
    assert str(error) == f"SMTP connection refused by {HOST}:{closed_smtp_port}"
    assert (error.kind, error.outcome) == ("connect", "not_sent")


def test_silent_server_times_out(silent_smtp_port: int) -> None:
    settings = SmtpSettings(
        HOST, sender=SENDER, port=silent_smtp_port, security="none", timeout=0.3
    )
    error = _fail(make_message(), settings)
    assert (error.kind, error.outcome) == ("timeout", "not_sent")
    assert "timeout" in str(error) and f"{HOST}:{silent_smtp_port}" in str(error)


def test_wrong_password_is_auth_refused(smtp_server_factory: SmtpServerFactory) -> None:
    server = smtp_server_factory("starttls", auth=("newswatch", "s3cret-pass"))
    error = _fail(make_message(), server.settings(password="wrong"))
    assert (error.kind, error.outcome) == ("auth", "not_sent")
    assert "authentication refused" in str(error) and "'newswatch'" in str(error)
    assert "wrong" not in str(error)
    assert server.messages == []


def test_missing_credentials_are_refused_by_an_auth_server(
    smtp_server_factory: SmtpServerFactory,
) -> None:
    server = smtp_server_factory("starttls", auth=("newswatch", "s3cret-pass"))
    error = _fail(make_message(), server.settings(username=None, password=None))
    assert error.outcome == "not_sent"
    assert "530" in str(error)
    assert server.messages == []


def test_every_recipient_refused_sends_nothing(smtp_server_factory: SmtpServerFactory) -> None:
    server = smtp_server_factory(refuse={"a@example.org", "b@example.org"})
    error = _fail(make_message("a@example.org", "b@example.org"), server.settings())
    assert (error.kind, error.outcome) == ("recipients", "not_sent")
    assert set(error.refused) == {"a@example.org", "b@example.org"}
    assert "550" in str(error)
    assert server.messages == []


def test_some_recipients_refused_is_partial_delivery(
    smtp_server_factory: SmtpServerFactory,
) -> None:
    server = smtp_server_factory(refuse={"b@example.org"})
    error = _fail(make_message("a@example.org", "b@example.org"), server.settings())
    assert (error.kind, error.outcome) == ("recipients", "partial")
    assert list(error.refused) == ["b@example.org"]
    assert [m.rcpt_tos for m in server.messages] == [("a@example.org",)]


def test_message_rejected_at_data_is_not_sent(smtp_server_factory: SmtpServerFactory) -> None:
    server = smtp_server_factory(on_data="reject")
    error = _fail(make_message(), server.settings())
    assert (error.kind, error.outcome) == ("data", "not_sent")
    assert "554" in str(error)


def test_connection_lost_after_data_is_an_unknown_outcome(
    smtp_server_factory: SmtpServerFactory,
) -> None:
    server = smtp_server_factory(on_data="drop")
    error = _fail(make_message(), server.settings())
    assert (error.kind, error.outcome) == ("data", "unknown")
    assert "may have been delivered" in str(error)
    assert len(server.messages) == 1  # it was, in fact


def test_self_signed_certificate_is_not_trusted_by_default(
    smtp_server_factory: SmtpServerFactory,
) -> None:
    server = smtp_server_factory("tls")
    error = _fail(make_message(), server.settings(ca_file=None))
    assert (error.kind, error.outcome) == ("tls", "not_sent")
    assert "not trusted" in str(error)


def test_starttls_certificate_is_verified_too(smtp_server_factory: SmtpServerFactory) -> None:
    server = smtp_server_factory("starttls")
    error = _fail(make_message(), server.settings(ca_file=None))
    assert error.kind == "tls"
    assert server.messages == []


def test_starttls_required_but_not_offered_fails(smtp_server: SmtpServer) -> None:
    error = _fail(make_message(), smtp_server.settings(security="starttls"))
    assert str(error) == f"SMTP server {HOST}:{smtp_server.port} does not offer STARTTLS"
    assert smtp_server.messages == []


def test_implicit_tls_against_a_plain_server_fails_cleanly(smtp_server: SmtpServer) -> None:
    error = _fail(make_message(), smtp_server.settings(security="tls", timeout=2.0))
    assert error.kind in ("tls", "connect", "timeout")
    assert smtp_server.messages == []


# -- settings ---------------------------------------------------------------------------


def test_credentials_over_a_plain_connection_are_refused() -> None:
    with pytest.raises(ValueError, match="starttls"):
        SmtpSettings(HOST, sender=SENDER, security="none", username="u", password="p")


def test_settings_never_show_the_password() -> None:
    settings = SmtpSettings(HOST, sender=SENDER, username="u", password="hunter2")
    assert "hunter2" not in repr(settings)


def test_settings_reject_an_unknown_security_mode() -> None:
    with pytest.raises(ValueError, match="security"):
        SmtpSettings(HOST, sender=SENDER, security="ssl")  # type: ignore[arg-type]


def test_settings_reject_an_invalid_sender() -> None:
    with pytest.raises(ValueError, match="invalid email address"):
        SmtpSettings(HOST, sender="newswatch@example.org\r\nBcc: x@y")
