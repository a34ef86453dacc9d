"""The log lines of the demo's story: a normal morning, a password spray, a stolen account.

Lines are written as Postfix and Dovecot write them through syslog, stamped
with the time they are written, so the commands they cause are live.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

DOMAIN = "example.org"
NORMAL_USERS = ("alice", "bob", "dave", "erin", "frank")
STOLEN_ACCOUNT = f"carol@{DOMAIN}"
STOLEN_FROM_IP = "203.0.113.77"
SPRAYING_IP = "198.51.100.23"
SPRAYED_ACCOUNTS = tuple(
    f"{name}@{DOMAIN}"
    for name in (
        "admin", "info", "sales", "support", "office", "billing", "hr", "jobs",
        "contact", "marketing", "webmaster", "postmaster", "test", "alice",
    )
)  # fmt: skip
NORMAL_IPS = ("192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.13", "192.0.2.14")
SPAM_MESSAGES = 45


@dataclass(slots=True)
class LineClock:
    """Stamps lines with the wall-clock time at which they are written."""

    host: str = "mx1"

    def stamp(self, program: str, pid: int, message: str) -> str:
        now = datetime.now(UTC)
        return f"{now:%b} {now.day:2d} {now:%H:%M:%S} {self.host} {program}[{pid}]: {message}"


_queue_ids = (f"4F{n:09X}" for n in itertools.count(0x1A2B3C))


def _qid() -> str:
    return next(_queue_ids)


def normal_traffic(clock: LineClock) -> Iterator[str]:
    """Each normal user reads mail over IMAP and sends one message."""
    for n, (name, ip) in enumerate(zip(NORMAL_USERS, NORMAL_IPS, strict=True)):
        user = f"{name}@{DOMAIN}"
        pid = 3100 + n
        yield clock.stamp(
            "dovecot",
            2200 + n,
            f"imap-login: Login: user=<{user}>, method=PLAIN, rip={ip}, lip=192.0.2.1, "
            f"mpid={4100 + n}, TLS, session=<Zm9v{n}YmFy>",
        )
        yield from _submission(clock, pid, user, ip, f"friend{n}@example.net", tls="TLSv1.3")


def _submission(
    clock: LineClock, pid: int, user: str, ip: str, rcpt: str, tls: str | None
) -> Iterator[str]:
    qid = _qid()
    smtpd = "postfix/submission/smtpd"
    yield clock.stamp(smtpd, pid, f"connect from unknown[{ip}]")
    if tls:
        yield clock.stamp(
            smtpd,
            pid,
            f"Anonymous TLS connection established from unknown[{ip}]: "
            f"{tls} with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
        )
    yield clock.stamp(smtpd, pid, f"{qid}: client=unknown[{ip}], sasl_method=PLAIN, "
                      f"sasl_username={user}")  # fmt: skip
    yield clock.stamp("postfix/cleanup", pid + 500, f"{qid}: message-id=<{qid}@{DOMAIN}>")
    yield clock.stamp(
        "postfix/qmgr", 900, f"{qid}: from=<{user}>, size=2048, nrcpt=1 (queue active)"
    )
    yield clock.stamp(
        "postfix/smtp",
        pid + 1000,
        f"{qid}: to=<{rcpt}>, relay=mx.example.net[192.0.2.200]:25, delay=0.4, "
        "delays=0.1/0/0.1/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued)",
    )
    yield clock.stamp("postfix/qmgr", 900, f"{qid}: removed")
    yield clock.stamp(
        smtpd, pid, f"disconnect from unknown[{ip}] ehlo=2 starttls=1 auth=1 mail=1 rcpt=1 "
        "data=1 quit=1 commands=8"
    )  # fmt: skip


def password_spray(clock: LineClock) -> Iterator[str]:
    """One IP tries one password against many accounts over SMTP AUTH."""
    smtpd = "postfix/submission/smtpd"
    for n, account in enumerate(SPRAYED_ACCOUNTS):
        pid = 5200 + n
        yield clock.stamp(smtpd, pid, f"connect from unknown[{SPRAYING_IP}]")
        yield clock.stamp(
            smtpd,
            pid,
            f"warning: unknown[{SPRAYING_IP}]: SASL LOGIN authentication failed: "
            f"UGFzc3dvcmQ6, sasl_username={account}",
        )
        yield clock.stamp(smtpd, pid, f"lost connection after AUTH from unknown[{SPRAYING_IP}]")
        yield clock.stamp(
            smtpd,
            pid,
            f"disconnect from unknown[{SPRAYING_IP}] ehlo=1 auth=0/1 commands=1/2",
        )


def stolen_account_spam(clock: LineClock) -> Iterator[str]:
    """The stolen account logs in from a new place and sends dozens of messages at once."""
    yield clock.stamp(
        "dovecot",
        2299,
        f"imap-login: Login: user=<{STOLEN_ACCOUNT}>, method=PLAIN, rip={STOLEN_FROM_IP}, "
        "lip=192.0.2.1, mpid=4199, TLS, session=<c3RvbGVu>",
    )
    for n in range(SPAM_MESSAGES):
        yield from _submission(
            clock, 6100 + n, STOLEN_ACCOUNT, STOLEN_FROM_IP, f"victim{n}@example.com", tls=None
        )
