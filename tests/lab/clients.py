"""SMTP, IMAP and POP3 clients for the mail lab, each bound to a chosen source address.

Linux routes all of 127/8 to the loopback interface, so every test can speak
from its own 127.0.x.y: its log lines are then attributable, and Dovecot's
per-IP auth-failure penalty (2, 6, 10... seconds) never leaks from one test
into the next. :func:`fresh_client_ip` hands out a new address per call.

The helpers return outcomes instead of raising on a refusal, because a
refusal is usually what the test wants to see.
"""

from __future__ import annotations

import email.utils
import imaplib
import poplib
import smtplib
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

TlsVersion = Literal["TLSv1.2", "TLSv1.3"]
SmtpMechanism = Literal["PLAIN", "LOGIN"]
TIMEOUT = 30.0

# 127.0.0.1 is avoided on purpose: Dovecot calls rip == lip "secured", and it is
# the address of the lab's own readiness checks and daemons.
_ADDRESSES: Iterator[str] = (f"127.0.{b}.{c}" for b in range(1, 256) for c in range(2, 255))


def fresh_client_ip() -> str:
    """A loopback source address no earlier caller in this process has used."""
    return next(_ADDRESSES)


def tls_context(version: TlsVersion | None = None) -> ssl.SSLContext:
    """A client context for the lab's self-signed certificate, optionally pinned to one version."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if version == "TLSv1.2":
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    elif version == "TLSv1.3":
        context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


def _connect(host: str, port: int, source_ip: str, timeout: float | None) -> socket.socket:
    return socket.create_connection((host, port), timeout, source_address=(source_ip, 0))


# ---------------------------------------------------------------- SMTP


@dataclass(frozen=True, slots=True)
class SmtpOutcome:
    """How a submission ended.

    ``stage`` is where it ended: ``auth`` (AUTH refused), ``mail``, ``rcpt``,
    ``data`` (refused there) or ``sent`` (accepted by Postfix). ``code`` and
    ``text`` are the server's last reply.
    """

    stage: Literal["auth", "mail", "rcpt", "data", "sent"]
    code: int
    text: str
    message_id: str
    tls_version: str | None = None

    @property
    def accepted(self) -> bool:
        return self.stage == "sent"


@dataclass(slots=True)
class Submission:
    """One message to submit; ``subject`` doubles as a marker to find it at the sink."""

    sender: str
    recipients: list[str]
    subject: str = "lab message"
    body: str = "sent by the mailwarden lab tests\r\n"
    message_id: str = field(default_factory=lambda: email.utils.make_msgid(domain="lab.test"))

    def render(self) -> str:
        return (
            f"From: {self.sender}\r\n"
            f"To: {', '.join(self.recipients)}\r\n"
            f"Subject: {self.subject}\r\n"
            f"Date: {email.utils.formatdate()}\r\n"
            f"Message-ID: {self.message_id}\r\n"
            f"\r\n{self.body}"
        )


def smtp_connect(
    host: str,
    port: int,
    source_ip: str,
    *,
    starttls: TlsVersion | None = None,
    wrapper_tls: TlsVersion | None = None,
    timeout: float = TIMEOUT,
) -> smtplib.SMTP:
    """Connect, EHLO, and optionally STARTTLS (or speak TLS from the start, smtps style)."""
    helo = "client-" + source_ip.replace(".", "-") + ".lab.test"
    client: smtplib.SMTP
    if wrapper_tls is not None:
        client = smtplib.SMTP_SSL(
            host,
            port,
            source_address=(source_ip, 0),
            context=tls_context(wrapper_tls),
            timeout=timeout,
        )
    else:
        client = smtplib.SMTP(host, port, source_address=(source_ip, 0), timeout=timeout)
    client.ehlo(helo)
    if starttls is not None:
        client.starttls(context=tls_context(starttls))
        client.ehlo(helo)
    return client


def smtp_authenticate(
    client: smtplib.SMTP, user: str, password: str, mechanism: SmtpMechanism = "PLAIN"
) -> tuple[int, bytes]:
    """AUTH PLAIN or AUTH LOGIN; raises smtplib.SMTPAuthenticationError when refused."""
    client.user, client.password = user, password
    if mechanism == "PLAIN":
        return client.auth("PLAIN", client.auth_plain)
    return client.auth("LOGIN", client.auth_login, initial_response_ok=False)


def submit(
    host: str,
    port: int,
    source_ip: str,
    user: str,
    password: str,
    message: Submission,
    *,
    starttls: TlsVersion | None = "TLSv1.3",
    wrapper_tls: TlsVersion | None = None,
    mechanism: SmtpMechanism = "PLAIN",
) -> SmtpOutcome:
    """Authenticate and send one message; report where it stopped and why."""
    client = smtp_connect(host, port, source_ip, starttls=starttls, wrapper_tls=wrapper_tls)
    tls_version = client.sock.version() if isinstance(client.sock, ssl.SSLSocket) else None
    try:
        try:
            smtp_authenticate(client, user, password, mechanism)
        except smtplib.SMTPAuthenticationError as refused:
            return _outcome("auth", refused.smtp_code, refused.smtp_error, message, tls_version)
        return _send(client, message, tls_version)
    finally:
        _quit(client)


def _send(client: smtplib.SMTP, message: Submission, tls_version: str | None) -> SmtpOutcome:
    code, reply = client.mail(message.sender)
    if code != 250:
        client.rset()
        return _outcome("mail", code, reply, message, tls_version)
    for recipient in message.recipients:
        code, reply = client.rcpt(recipient)
        if code not in (250, 251):
            client.rset()
            return _outcome("rcpt", code, reply, message, tls_version)
    code, reply = client.data(message.render().encode())
    if code != 250:
        return _outcome("data", code, reply, message, tls_version)
    return _outcome("sent", code, reply, message, tls_version)


def _outcome(
    stage: Literal["auth", "mail", "rcpt", "data", "sent"],
    code: int,
    reply: bytes | str,
    message: Submission,
    tls_version: str | None,
) -> SmtpOutcome:
    return SmtpOutcome(
        stage=stage,
        code=code,
        text=reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply,
        message_id=message.message_id,
        tls_version=tls_version,
    )


def _quit(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


class SmtpProbe:
    """An authenticated submission session that asks RCPT TO over and over.

    Each :meth:`rcpt` runs RSET, MAIL FROM and RCPT TO, so Postfix consults
    its restrictions (and the policy service) afresh without sending mail.
    Postfix ends a session after ``smtpd_hard_error_limit`` refusals, so
    open a new probe after each refusal you provoke on purpose.
    """

    def __init__(
        self,
        host: str,
        port: int,
        source_ip: str,
        user: str,
        password: str,
        *,
        starttls: TlsVersion | None = "TLSv1.3",
    ) -> None:
        self.sender = user
        self.client = smtp_connect(host, port, source_ip, starttls=starttls)
        smtp_authenticate(self.client, user, password)

    def rcpt(self, recipient: str) -> tuple[int, str]:
        self.client.rset()
        code, reply = self.client.mail(self.sender)
        if code == 250:
            code, reply = self.client.rcpt(recipient)
        return code, reply.decode("utf-8", "replace")

    def close(self) -> None:
        _quit(self.client)


# ---------------------------------------------------------------- IMAP


class _SourcedImap(imaplib.IMAP4):
    def __init__(self, host: str, port: int, source_ip: str, timeout: float) -> None:
        self.source_ip = source_ip
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return _connect(self.host, self.port, self.source_ip, timeout)


class _SourcedImapTls(imaplib.IMAP4_SSL):
    def __init__(
        self, host: str, port: int, source_ip: str, context: ssl.SSLContext, timeout: float
    ) -> None:
        self.source_ip = source_ip
        self.tls = context
        super().__init__(host, port, ssl_context=context, timeout=timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        raw = _connect(self.host, self.port, self.source_ip, timeout)
        return self.tls.wrap_socket(raw, server_hostname=self.host)


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    ok: bool
    text: str


class ImapSession:
    """An IMAP connection from one source address, logged in or not."""

    def __init__(
        self,
        host: str,
        port: int,
        source_ip: str,
        *,
        starttls: TlsVersion | None = None,
        implicit_tls: TlsVersion | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.client: imaplib.IMAP4
        if implicit_tls is not None:
            self.client = _SourcedImapTls(host, port, source_ip, tls_context(implicit_tls), timeout)
        else:
            self.client = _SourcedImap(host, port, source_ip, timeout)
            if starttls is not None:
                self.client.starttls(ssl_context=tls_context(starttls))

    def login(self, user: str, password: str) -> LoginOutcome:
        try:
            _, data = self.client.login(user, password)
        except imaplib.IMAP4.error as refused:
            return LoginOutcome(ok=False, text=str(refused))
        return LoginOutcome(ok=True, text=_joined(data))

    def select_inbox(self) -> int:
        _, data = self.client.select("INBOX")
        return int(_joined(data) or 0)

    def noop(self) -> str:
        _, data = self.client.noop()
        return _joined(data)

    def idle(self) -> str:
        """Send IDLE and wait for the server's continuation; the session then just listens."""
        tag = self.client._new_tag().decode()
        self.client.send(f"{tag} IDLE\r\n".encode())
        return self.client.readline().decode("utf-8", "replace").rstrip("\r\n")

    def wait_until_closed(self, timeout: float) -> tuple[list[str], float | None]:
        """Read what the server says until it ends the session or ``timeout`` passes.

        Returns the lines seen and the monotonic time the session ended
        (``None`` if it was still open at the deadline).
        """
        lines: list[str] = []
        sock = self.client.sock
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                line = self.client.readline()
            except TimeoutError:
                break
            except OSError:
                return lines, time.monotonic()
            if not line:
                return lines, time.monotonic()
            lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
            if lines[-1].startswith("* BYE"):
                return lines, time.monotonic()
        return lines, None

    def logout(self) -> None:
        try:
            self.client.logout()
        except (imaplib.IMAP4.abort, OSError):
            self.client.shutdown()


def imap_login(
    host: str,
    port: int,
    source_ip: str,
    user: str,
    password: str,
    *,
    starttls: TlsVersion | None = None,
    implicit_tls: TlsVersion | None = None,
) -> LoginOutcome:
    """Connect, LOGIN, LOGOUT; the login's outcome."""
    session = ImapSession(host, port, source_ip, starttls=starttls, implicit_tls=implicit_tls)
    try:
        return session.login(user, password)
    finally:
        session.logout()


def _joined(data: list[bytes | None] | list[bytes] | list[None] | None) -> str:
    parts = data or []
    return " ".join(p.decode("utf-8", "replace") for p in parts if isinstance(p, bytes))


# ---------------------------------------------------------------- POP3


class _SourcedPop3(poplib.POP3):
    def __init__(self, host: str, port: int, source_ip: str, timeout: float) -> None:
        self.source_ip = source_ip
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return _connect(self.host, self.port, self.source_ip, timeout)


class _SourcedPop3Tls(poplib.POP3_SSL):
    def __init__(
        self, host: str, port: int, source_ip: str, context: ssl.SSLContext, timeout: float
    ) -> None:
        self.source_ip = source_ip
        self.tls = context
        super().__init__(host, port, timeout=timeout, context=context)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        raw = _connect(self.host, self.port, self.source_ip, timeout)
        return self.tls.wrap_socket(raw, server_hostname=self.host)


def pop3_login(
    host: str,
    port: int,
    source_ip: str,
    user: str,
    password: str,
    *,
    stls: TlsVersion | None = None,
    implicit_tls: TlsVersion | None = None,
    timeout: float = TIMEOUT,
) -> LoginOutcome:
    """Connect, USER/PASS, QUIT; the login's outcome."""
    client: poplib.POP3
    if implicit_tls is not None:
        client = _SourcedPop3Tls(host, port, source_ip, tls_context(implicit_tls), timeout)
    else:
        client = _SourcedPop3(host, port, source_ip, timeout)
        if stls is not None:
            client.stls(context=tls_context(stls))
    try:
        client.user(user)
        reply = client.pass_(password)
    except poplib.error_proto as refused:
        return LoginOutcome(ok=False, text=str(refused))
    finally:
        try:
            client.quit()
        except (poplib.error_proto, OSError):
            client.close()
    return LoginOutcome(ok=True, text=reply.decode("utf-8", "replace"))
