"""Send a built email over SMTP (standard library `smtplib`): STARTTLS, implicit TLS or plain.

TLS is always verified (system trust store, or `ca_file` for a private CA or a
self-signed test certificate); there is no switch to turn verification off.
Credentials are refused over a plain connection.

Every failure is one `DeliveryError` whose text is a single line saying what failed
and where, and whose `outcome` tells the exactly-once bookkeeping what it means:

    not_sent   the server never accepted the message (connection refused, TLS or
               auth refused, timeout before DATA, sender or every recipient refused,
               DATA rejected): keep the digest pending and send it again later.
    unknown    the connection broke after the message was handed over, before the
               server confirmed it: it may have been delivered. Resend only the
               identical message (same Message-ID) or hold it for a human.
    partial    accepted for some recipients, refused for those in `refused`:
               the message went out; do not resend to everybody.

The message is sent exactly as built (its Message-ID is never touched), so the
delivery code can record the Message-ID before sending and recognise it later.
"""

from __future__ import annotations

import copy
import re
import smtplib
import socket
import ssl
import sys
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from email import policy
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Literal

from digest.email import parse_address

Security = Literal["starttls", "tls", "none"]
Outcome = Literal["not_sent", "unknown", "partial"]
Kind = Literal[
    "config", "connect", "timeout", "tls", "auth", "sender", "recipients", "data", "protocol"
]

_SECURITY: frozenset[str] = frozenset({"starttls", "tls", "none"})


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send mail.

    `sender` is the envelope sender (and the From address, see
    `digest.email.build_email`). `timeout` bounds every socket operation (connect,
    each command), in seconds. `ca_file` trusts a PEM CA bundle or a self-signed
    certificate instead of the system store. `local_hostname` is the EHLO name
    (default: the sender's domain, which avoids a slow reverse lookup of our own).
    """

    host: str
    _: KW_ONLY
    sender: str
    port: int = 587
    security: Security = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    ca_file: str | None = None
    local_hostname: str | None = None

    def __post_init__(self) -> None:
        if self.security not in _SECURITY:
            raise ValueError(f"smtp security must be starttls, tls or none, not {self.security!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"smtp port out of range: {self.port}")
        if self.timeout <= 0:
            raise ValueError(f"smtp timeout must be positive, got {self.timeout}")
        if (self.username is None) != (self.password is None):
            raise ValueError("smtp username and password go together (password from the env)")
        if self.username is not None and self.security == "none":
            raise ValueError("smtp credentials need security 'starttls' or 'tls', not 'none'")
        parse_address(self.sender)  # ValueError early, not at send time

    @property
    def address(self) -> str:
        """`host:port`, for messages."""
        return f"{self.host}:{self.port}"


class DeliveryError(Exception):
    """Sending failed; `str()` is one line saying what failed and where.

    `kind` names the step (config, connect, timeout, tls, auth, sender, recipients, data,
    protocol); `outcome` says whether the message may have gone out (see the module
    docstring); `refused` maps refused recipients to the server's reply.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: Kind = "protocol",
        outcome: Outcome = "not_sent",
        refused: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(_one_line(message))
        self.kind: Kind = kind
        self.outcome: Outcome = outcome
        self.refused: dict[str, str] = dict(refused or {})


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _timed_out(exc: BaseException) -> bool:
    # smtplib turns a socket timeout while reading a reply into SMTPServerDisconnected;
    # the timeout survives as the exception's context.
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _reply(code: int, text: bytes | str) -> str:
    detail = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return _one_line(f"{code} {detail}")


def _envelope_recipients(message: EmailMessage) -> list[str]:
    fields = [v for name in ("To", "Cc", "Bcc") for v in message.get_all(name, [])]
    return [addr for _, addr in getaddresses([str(v) for v in fields]) if addr]


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=settings.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise DeliveryError(
            f"cannot load smtp ca_file {settings.ca_file!r}: {exc}", kind="tls"
        ) from exc


def _connect(settings: SmtpSettings, context: ssl.SSLContext | None) -> smtplib.SMTP:
    where = settings.address
    local = settings.local_hostname or parse_address(settings.sender).domain
    try:
        if settings.security == "tls":
            return smtplib.SMTP_SSL(
                settings.host,
                settings.port,
                local_hostname=local,
                timeout=settings.timeout,
                context=context,
            )
        return smtplib.SMTP(
            settings.host, settings.port, local_hostname=local, timeout=settings.timeout
        )
    except ConnectionRefusedError as exc:
        raise DeliveryError(f"SMTP connection refused by {where}", kind="connect") from exc
    except TimeoutError as exc:
        raise DeliveryError(
            f"SMTP timeout after {settings.timeout:g}s connecting to {where}", kind="timeout"
        ) from exc
    except ssl.SSLCertVerificationError as exc:
        raise DeliveryError(
            f"SMTP TLS certificate of {where} not trusted: {exc.verify_message}", kind="tls"
        ) from exc
    except ssl.SSLError as exc:
        raise DeliveryError(f"SMTP TLS handshake with {where} failed: {exc}", kind="tls") from exc
    except socket.gaierror as exc:
        raise DeliveryError(
            f"SMTP host {settings.host!r} not found: {exc.strerror}", kind="connect"
        ) from exc
    except smtplib.SMTPConnectError as exc:
        raise DeliveryError(
            f"SMTP server {where} refused the session: {_reply(exc.smtp_code, exc.smtp_error)}",
            kind="connect",
        ) from exc
    except smtplib.SMTPServerDisconnected as exc:
        if _timed_out(exc):
            raise DeliveryError(
                f"SMTP timeout after {settings.timeout:g}s waiting for {where} to greet",
                kind="timeout",
            ) from exc
        raise DeliveryError(
            f"SMTP server {where} closed the connection before greeting", kind="connect"
        ) from exc
    except OSError as exc:
        raise DeliveryError(
            f"SMTP connection to {where} failed: {exc.strerror or exc}", kind="connect"
        ) from exc


def send_email(message: EmailMessage, settings: SmtpSettings) -> None:
    """Send `message` to its To/Cc/Bcc recipients (Bcc is not transmitted).

    Returns when the server accepted it for every recipient; raises DeliveryError
    otherwise (see the module docstring for what `outcome` means).
    """
    recipients = _envelope_recipients(message)
    if not recipients:
        raise ValueError("the message has no recipients")
    wire = message
    if "Bcc" in message:
        wire = copy.copy(message)
        del wire["Bcc"]  # rebinds the header list: the caller's message keeps its Bcc
    payload = wire.as_bytes(policy=policy.SMTP)
    context = _tls_context(settings) if settings.security != "none" else None
    envelope_from = parse_address(settings.sender).addr_spec
    where = settings.address

    client = _connect(settings, context)
    step: Kind = "protocol"
    try:
        client.ehlo()
        if settings.security == "starttls":
            step = "tls"
            if not client.has_extn("starttls"):
                raise DeliveryError(f"SMTP server {where} does not offer STARTTLS", kind="tls")
            client.starttls(context=context)
            client.ehlo()
        if settings.username is not None and settings.password is not None:
            step = "auth"
            client.login(settings.username, settings.password)

        step = "sender"
        code, text = client.mail(envelope_from)
        if code != 250:
            raise DeliveryError(
                f"SMTP sender {envelope_from} refused by {where}: {_reply(code, text)}",
                kind="sender",
            )
        step = "recipients"
        refused: dict[str, str] = {}
        for rcpt in recipients:
            code, text = client.rcpt(rcpt)
            if code not in (250, 251):
                refused[rcpt] = _reply(code, text)
        if len(refused) == len(recipients):
            listing = "; ".join(f"{r} ({why})" for r, why in refused.items())
            raise DeliveryError(
                f"SMTP recipients refused by {where}: {listing}", kind="recipients", refused=refused
            )

        step = "data"
        try:
            # data() raises only when DATA itself is refused; the verdict on the
            # message comes back as its return value.
            code, text = client.data(payload)
            if code != 250:
                raise smtplib.SMTPDataError(code, text)
        except smtplib.SMTPDataError as exc:
            raise DeliveryError(
                f"SMTP message rejected by {where}: {_reply(exc.smtp_code, exc.smtp_error)}",
                kind="data",
            ) from exc
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            # A timeout or a broken connection here: the bytes may have reached the
            # server; only its reply was lost.
            raise DeliveryError(
                f"SMTP connection to {where} lost while sending the message "
                f"(it may have been delivered): {exc}",
                kind="data",
                outcome="unknown",
            ) from exc
        if refused:
            listing = "; ".join(f"{r} ({why})" for r, why in refused.items())
            raise DeliveryError(
                f"SMTP recipients refused by {where} (sent to the others): {listing}",
                kind="recipients",
                outcome="partial",
                refused=refused,
            )
    except DeliveryError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(
            f"SMTP authentication refused by {where} for user {settings.username!r}: "
            f"{_reply(exc.smtp_code, exc.smtp_error)}",
            kind="auth",
        ) from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise DeliveryError(
            f"SMTP server {where} does not support {step}: {exc}", kind=step
        ) from exc
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(
            f"SMTP {step} failed at {where}: {_reply(exc.smtp_code, exc.smtp_error)}", kind=step
        ) from exc
    except (TimeoutError, smtplib.SMTPServerDisconnected) as exc:
        if not _timed_out(exc):
            raise DeliveryError(
                f"SMTP server {where} closed the connection during {step}", kind=step
            ) from exc
        raise DeliveryError(
            f"SMTP timeout after {settings.timeout:g}s at {where} during {step}", kind="timeout"
        ) from exc
    except ssl.SSLCertVerificationError as exc:
        raise DeliveryError(
            f"SMTP TLS certificate of {where} not trusted: {exc.verify_message}", kind="tls"
        ) from exc
    except ssl.SSLError as exc:
        raise DeliveryError(f"SMTP TLS with {where} failed: {exc}", kind="tls") from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(
            f"SMTP connection to {where} failed during {step}: {exc}", kind=step
        ) from exc
    finally:
        _close(client, polite=sys.exc_info()[0] is None)


def _close(client: smtplib.SMTP, *, polite: bool) -> None:
    # QUIT is a courtesy: once DATA got its 250 the message is the server's. After a
    # failure the server may be hanging; waiting for its QUIT reply would only add
    # another timeout.
    try:
        if polite:
            client.quit()
    except (OSError, smtplib.SMTPException):
        pass
    finally:
        client.close()
