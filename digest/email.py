"""Build the digest email: a multipart/alternative MIME message (text/plain + text/html).

`build_email` is deterministic: the same view, addresses, Message-ID and Date give
the same message (MIME boundary aside). That is what makes delivery idempotent: the
delivery code records the Message-ID *before* sending and, on a retry, rebuilds and
resends the identical message, which mail stores collapse by Message-ID.

Header injection: the subject comes from `digest.render.subject` (one line, control
characters removed); addresses are parsed and rebuilt as `Address` objects, so a
value carrying CR/LF or a second address is refused with ValueError, never written
through. The `email` package's SMTP policy folds long headers, encodes non-ASCII
subjects as RFC 2047 words and ends lines with CRLF.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from email import policy
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from digest.model import DigestView
from digest.render import render_html, render_text, subject

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_MESSAGE_ID = re.compile(r"^<[!#-;=?-~]{1,200}@[!#-;=?-Z^-~]{1,253}>$")  # RFC 5322 msg-id, ASCII
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def make_message_id(domain: str) -> str:
    """A new, globally unique Message-ID such as `<176...@example.org>`.

    `domain` is usually the sender's domain; it must be a plain ASCII host name.
    """
    if not _DOMAIN.match(domain):
        raise ValueError(f"invalid Message-ID domain: {domain!r}")
    return make_msgid(domain=domain)


def parse_address(value: str) -> Address:
    """One mailbox (`user@host` or `Name <user@host>`) as an `Address`; ValueError otherwise."""
    if _CONTROL.search(value):
        raise ValueError(f"invalid email address (control characters): {value!r}")
    try:
        header = policy.SMTP.header_factory("To", value)
        addresses = header.addresses  # type: ignore[attr-defined]
    except (HeaderParseError, ValueError, IndexError) as exc:
        raise ValueError(f"invalid email address: {value!r}") from exc
    # Any parser defect (a second address, junk after ">", a non-ASCII local part,
    # a missing domain) means the value is not exactly one clean mailbox.
    if header.defects or len(addresses) != 1:
        raise ValueError(f"invalid email address: {value!r}")
    address: Address = addresses[0]
    if not address.username or not address.domain:
        raise ValueError(f"invalid email address: {value!r}")
    return address


def build_email(
    view: DigestView,
    *,
    sender: str,
    recipients: Sequence[str],
    message_id: str,
    date: datetime,
) -> EmailMessage:
    """The digest as a multipart/alternative email ready for `digest.smtp.send_email`.

    Raises ValueError for an invalid sender, recipient, Message-ID or a naive date.
    """
    if isinstance(recipients, str):
        raise TypeError("recipients must be a sequence of addresses, not one string")
    if not recipients:
        raise ValueError("an email needs at least one recipient")
    if not _MESSAGE_ID.match(message_id):
        raise ValueError(f"invalid Message-ID: {message_id!r}")
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("the Date header needs a timezone-aware datetime")

    message = EmailMessage(policy=policy.SMTP)
    message["Subject"] = subject(view)
    message["From"] = parse_address(sender)
    message["To"] = tuple(parse_address(r) for r in recipients)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    # RFC 3834: tells vacation responders not to answer an automated digest.
    message["Auto-Submitted"] = "auto-generated"
    # Quoted-printable keeps the raw message readable and its lines under 78 octets.
    message.set_content(render_text(view), subtype="plain", cte="quoted-printable")
    message.add_alternative(render_html(view), subtype="html", cte="quoted-printable")
    return message
