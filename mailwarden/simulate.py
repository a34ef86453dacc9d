"""`mailwarden simulate`: a labelled population of realistic Postfix and Dovecot logs.

A seeded model of a mail platform's users, with the habits that trip naive
rules: daily rhythms, phones that change address behind carrier NAT and
roam abroad, offices where many users share one address (and once change
their passwords together), webmail logging in from loopback, newsletters that
send thousands of messages an hour, accounts that forward their mail, phones
that keep trying a stale password. Into it go attacks whose ground truth is
written beside the logs (``labels.jsonl``), so that ``mailwarden evaluate``
and ``mailwarden tune`` can score the rules against known answers.

Output (all in time order, byte-identical for the same arguments):

``postfix.log``, ``dovecot.log``
    syslog lines with RFC 3339 stamps (rsyslog's file format), one mail host.
``labels.jsonl``
    one :class:`Label` per injected attack.
``population.json``
    what is benign and where it comes from, so false positives can be
    explained (NAT offices, bulk senders, carrier pools, stale passwords).

Every address is from a reserved range (RFC 5737 documentation, RFC 2544
benchmarking, RFC 3849 IPv6 documentation): nothing here names a real host.
Scalar draws use a ``random.Random`` seeded from the numpy ``SeedSequence``
(numpy's scalar calls are slow); hourly counts are numpy Poisson draws.
"""

from __future__ import annotations

import base64
import ipaddress
import random
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import numpy as np
import orjson

from models.events import iso_utc

SECOND = 1_000_000  # time is kept in integer microseconds: exact, sortable, reproducible
MINUTE = 60 * SECOND
HOUR = 3600 * SECOND
DAY = 24 * HOUR

HOST = "mx1"
SERVER_IP = "192.0.2.25"
LOCAL_OFFSET_HOURS = 1  # users live in UTC+1; the logs are stamped in UTC
LOCAL_DOMAINS = ("example.org", "corp.example", "shop.example")
EXTERNAL_DOMAINS = ("example.com", "example.net", "mail.example", "post.example", "isp.example")

NETWORKS: dict[str, str] = {
    "home_v4": "198.18.0.0/16",
    "home_v6": "2001:db8:1000::/36",
    "mobile_carrier": "198.19.0.0/18",
    "roaming_carrier": "198.19.64.0/18",
    "external_mx": "198.19.128.0/17",
    "office": "192.0.2.64/26",
    "bulk_sender": "192.0.2.128/26",
    "webmail": "127.0.0.1/32",
    "attack_a": "203.0.113.0/24",
    "attack_b": "198.51.100.0/24",
    "attack_v6": "2001:db8:bad::/48",
}

ATTACK_KINDS = (
    "brute_force_fast",
    "brute_force_slow",
    "spray_distributed",
    "stuffing_success",
    "hijack_spam",
    "bounce_storm",
    "plaintext_login",
)

# Which rules of the default policy are meant to see each attack.
EXPECTED_RULES: dict[str, tuple[str, ...]] = {
    "brute_force_fast": ("brute_force", "password_spray"),
    "brute_force_slow": ("brute_force",),
    "spray_distributed": ("password_spray",),
    "stuffing_success": ("password_spray", "credential_stuffing"),
    "hijack_spam": ("smtp_burst", "bounce_storm", "login_ip_spread"),
    "bounce_storm": ("bounce_storm",),
    "plaintext_login": ("insecure_auth",),
}

# Where in the simulated span each attack starts (fraction of the span), before jitter.
ATTACK_PLACEMENT: dict[str, float] = {
    "brute_force_slow": 0.06,
    "brute_force_fast": 0.30,
    "hijack_spam": 0.38,
    "spray_distributed": 0.44,
    "plaintext_login": 0.52,
    "stuffing_success": 0.58,
    "bounce_storm": 0.66,
}


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


SPRAY_PER_IP = 15  # accounts each spraying address tries, one attempt each

# Local hour -> relative activity on a working day.
DAY_CURVE = np.array(
    _words(
        "0.10 0.05 0.03 0.03 0.05 0.15 0.40 0.90 1.60 2.00 2.00 1.80 "
        "1.30 1.60 1.90 1.80 1.50 1.10 0.80 0.80 0.90 0.80 0.50 0.25"
    ),
    dtype=float,
)
WEEKEND_FACTOR = 0.4
ROLE_NAMES = _words(
    "admin info sales support office billing hr jobs contact marketing webmaster test "
    "accounts finance it noc security"
)
FIRST_NAMES = _words(
    "anna ben carla david eva felix greta hugo ines jonas karin lukas maria nils olga "
    "paul rosa simon tina uwe vera walter yara zoe amir bea chen dana emil fatima"
)
LAST_NAMES = _words(
    "meyer schmidt novak rossi dubois jansen kowalski larsen garcia silva weber "
    "fischer wagner becker hofmann keller berger wolf brandt vogel kaiser lange frank "
    "roth moreau"
)
TLS13 = (
    "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 "
    "server-signature RSA-PSS (2048 bits) server-digest SHA256"
)
TLS12 = "TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)"


class SimulationError(click.ClickException):
    """A population too small to hold the attacks' victims."""


@dataclass(frozen=True, slots=True)
class SimulationSpec:
    accounts: int = 2000
    days: int = 2
    seed: int = 42
    start: date = date(2026, 11, 1)

    @property
    def start_us(self) -> int:
        moment = datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)
        return int(moment.timestamp()) * SECOND

    @property
    def end_us(self) -> int:
        return self.start_us + self.days * DAY


@dataclass(frozen=True, slots=True)
class Device:
    kind: str  # "desktop" (home or office), "phone" (carrier), "webmail" (loopback)
    protocol: str  # "imap" or "pop3"
    weight: float


@dataclass(slots=True)
class Account:
    index: int
    address: str
    profile: str  # "home", "office", "mobile", "bulk"
    home_ip: str
    home_v6: bool
    office: int | None
    devices: tuple[Device, ...]
    logins_per_day: float
    sends_per_day: float
    inbound_per_day: float
    forward_to: str | None = None
    roaming_days: tuple[int, ...] = ()
    sender_ip: str | None = None  # bulk senders' mailing server


@dataclass(slots=True)
class Office:
    ip: str
    name: str
    members: list[int] = field(default_factory=list)
    password_rotation_day: int | None = None


@dataclass(frozen=True, slots=True)
class ExpectedAction:
    """A decision that counts as catching an attack.

    ``action == "alert"`` stands for an alert, of one of the label's expected
    rules, that names the subject.
    """

    action: str
    subject_type: str
    subject: str


@dataclass(slots=True)
class Label:
    """The ground truth of one injected attack (one line of ``labels.jsonl``).

    ``victims`` are accounts the attack targets and that must not be locked
    out; ``abusers`` are accounts under the attacker's control whose
    suspension is the right answer. ``forbidden_actions`` are decisions that
    would punish a victim.
    """

    id: str
    kind: str
    start: float
    end: float
    start_iso: str
    end_iso: str
    attacker_ips: list[str]
    victims: list[str]
    abusers: list[str]
    expected_actions: list[ExpectedAction]
    forbidden_actions: list[ExpectedAction]
    expected_rules: list[str]
    description: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Label:
        values = dict(data)
        values["expected_actions"] = [ExpectedAction(**a) for a in data["expected_actions"]]
        values["forbidden_actions"] = [ExpectedAction(**a) for a in data["forbidden_actions"]]
        return cls(**values)


def load_labels(path: Path) -> list[Label]:
    """Read ``labels.jsonl``; a malformed line is an error that names it."""
    labels: list[Label] = []
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            labels.append(Label.from_dict(orjson.loads(raw)))
        except (ValueError, TypeError, KeyError) as exc:  # orjson's errors are ValueErrors
            raise click.ClickException(f"{path}:{number}: not a label: {exc}") from exc
    return labels


class LogBuffer:
    """Collects lines of both daemons, then writes each file sorted by time.

    A line is kept as (time, insertion number, text without stamp); the
    insertion number keeps lines of the same instant in the order written.
    """

    def __init__(self, host: str) -> None:
        self.host = host
        self.postfix: list[tuple[int, int, str]] = []
        self.dovecot: list[tuple[int, int, str]] = []
        self._seq = 0

    def postfix_line(self, t: int, program: str, pid: int, message: str) -> None:
        self._seq += 1
        self.postfix.append((t, self._seq, f"{self.host} postfix/{program}[{pid}]: {message}"))

    def dovecot_line(self, t: int, message: str) -> None:
        self._seq += 1
        self.dovecot.append((t, self._seq, f"{self.host} dovecot: {message}"))

    def write(self, directory: Path) -> dict[str, int]:
        counts = {}
        for name, lines in (("postfix.log", self.postfix), ("dovecot.log", self.dovecot)):
            lines.sort()
            (directory / name).write_text(_stamped(lines), encoding="utf-8")
            counts[name] = len(lines)
        return counts


def _stamped(lines: list[tuple[int, int, str]]) -> str:
    seconds: dict[int, str] = {}
    out: list[str] = []
    for t, _, text in lines:
        whole, micro = divmod(t, SECOND)
        prefix = seconds.get(whole)
        if prefix is None:
            prefix = datetime.fromtimestamp(whole, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
            seconds[whole] = prefix
        out.append(f"{prefix}.{micro:06d}+00:00 {text}\n")
    return "".join(out)


class MailPlatform:
    """Writes what one Postfix + Dovecot host logs for sessions, messages and logins."""

    def __init__(self, buffer: LogBuffer, rand: random.Random, local_accounts: set[str]) -> None:
        self.log = buffer
        self.rand = rand
        self.local_accounts = local_accounts
        self._pid = 2000
        self._queue = rand.randrange(0x10000000000, 0x40000000000)
        self._message = 0
        self.qmgr_pid = 1187
        self.cleanup_pids = (1203, 1204, 1206)

    # -- identifiers -----------------------------------------------------

    def pid(self) -> int:
        self._pid = self._pid + 1 if self._pid < 64000 else 2000
        return self._pid

    def queue_id(self) -> str:
        self._queue += self.rand.randrange(3, 400)
        return f"{self._queue:011X}"

    def session(self) -> str:
        return base64.b64encode(self.rand.getrandbits(72).to_bytes(9, "big")).decode()

    def message_id(self, t: int, domain: str) -> str:
        self._message += 1
        return f"<{t // 1000:x}.{self._message}@{domain}>"

    def jitter(self, low: float, high: float) -> int:
        return int(self.rand.uniform(low, high) * SECOND)

    # -- Dovecot -----------------------------------------------------------

    def login(self, t: int, user: str, ip: str, protocol: str, security: str | None) -> int:
        """A successful IMAP/POP3 login and, later, its logout. Returns the login's time."""
        mpid, session = self.pid(), self.session()
        self._login_line(t, user, ip, protocol, security, mpid, session)
        self._logout(t, user, protocol, mpid, session)
        return t

    def _login_line(
        self,
        t: int,
        user: str,
        ip: str,
        protocol: str,
        security: str | None,
        mpid: int,
        session: str,
    ) -> None:
        lip = ip if ip == "127.0.0.1" else SERVER_IP
        sec = f"{security}, " if security else ""
        self.log.dovecot_line(
            t,
            f"{protocol}-login: Login: user=<{user}>, method=PLAIN, rip={ip}, lip={lip}, "
            f"mpid={mpid}, {sec}session=<{session}>",
        )

    def _logout(self, t: int, user: str, protocol: str, mpid: int, session: str) -> None:
        end = t + self.jitter(2, 1500)
        if protocol == "pop3":
            count = self.rand.randrange(0, 6)
            size = count * self.rand.randrange(2000, 40000)
            stats = f"top=0/0, retr={count}/{size}, del={count}/{count}, size={size}"
        else:
            stats = (
                f"in={self.rand.randrange(60, 4000)} out={self.rand.randrange(600, 90000)} "
                "deleted=0 expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count=0 body_bytes=0"
            )
        self.log.dovecot_line(
            end, f"{protocol}({user})<{mpid}><{session}>: Disconnected: Logged out {stats}"
        )

    def login_with_failures(
        self,
        t: int,
        user: str,
        ip: str,
        protocol: str,
        security: str | None,
        failures: int,
        succeed: bool,
        unknown_user: bool = False,
    ) -> int:
        """One login connection with ``failures`` rejected attempts, then a login or a disconnect.

        Dovecot's auth process logs each attempt (with the login session) and
        the login process logs the outcome. Returns the time of the last line.
        """
        session = self.session()
        reason = "unknown user" if unknown_user else "Password mismatch"
        first = t
        for _ in range(failures):
            self.log.dovecot_line(t, f"auth: passwd-file({user},{ip},<{session}>): {reason}")
            t += self.jitter(2.0, 2.4)  # auth_failure_delay
        if succeed:
            mpid = self.pid()
            self._login_line(t, user, ip, protocol, security, mpid, session)
            self._logout(t, user, protocol, mpid, session)
            return t
        secs = max(1, round((t - first) / SECOND))
        sec = f"{security}, " if security else ""
        lip = ip if ip == "127.0.0.1" else SERVER_IP
        self.log.dovecot_line(
            t,
            f"{protocol}-login: Disconnected (auth failed, {failures} attempts in {secs} secs): "
            f"user=<{user}>, method=PLAIN, rip={ip}, lip={lip}, {sec}session=<{session}>",
        )
        return t

    # -- Postfix submission ------------------------------------------------

    def smtp_session(
        self,
        t: int,
        ip: str,
        rdns: str,
        user: str,
        messages: list[list[str]],
        tls: str | None = TLS13,
        failures: int = 0,
        mech: str = "PLAIN",
        unknown_user: bool = False,
        service: str = "submission/smtpd",
        outcome: Callable[[], str] | None = None,
        gap: tuple[float, float] = (0.3, 2.0),
    ) -> int:
        """One SMTP AUTH session: failed attempts, then (if any messages) one AUTH and the messages.

        Each failed attempt is logged by Dovecot's auth process (Postfix uses
        Dovecot SASL) and, after the failure delay, by smtpd. ``messages`` holds
        each message's recipients. Returns the time of the disconnect.
        """
        pid, client = self.pid(), f"{rdns}[{ip}]"
        self.log.postfix_line(t, service, pid, f"connect from {client}")
        t += self.jitter(0.05, 0.3)
        if tls:
            self.log.postfix_line(
                t, service, pid, f"Anonymous TLS connection established from {client}: {tls}"
            )
            t += self.jitter(0.05, 0.2)
        reason = "unknown user" if unknown_user else "Password mismatch"
        why = "UGFzc3dvcmQ6" if mech == "LOGIN" else "(reason unavailable)"
        for _ in range(failures):
            self.log.dovecot_line(t, f"auth: passwd-file({user},{ip}): {reason}")
            t += self.jitter(2.0, 2.3)
            self.log.postfix_line(
                t,
                service,
                pid,
                f"warning: {client}: SASL {mech} authentication "
                f"failed: {why}, sasl_username={user}",
            )
            t += self.jitter(0.2, 1.5)
        rcpts = 0
        for recipients in messages:
            t = self.submit(t, service, pid, client, user, mech, recipients, outcome)
            rcpts += len(recipients)
            t += self.jitter(*gap)
        starttls = "starttls=1 " if tls else ""
        auth_ok = 1 if messages else 0
        auth = f"auth={auth_ok}/{failures + auth_ok}" if failures else f"auth={auth_ok}"
        if messages:
            n = len(messages)
            commands = (2 if tls else 1) + (1 if tls else 0) + 1 + 2 * n + rcpts + 1
            done = f"ehlo={2 if tls else 1} {starttls}{auth} mail={n} rcpt={rcpts} data={n} quit=1"
            self.log.postfix_line(
                t, service, pid, f"disconnect from {client} {done} commands={commands}"
            )
        else:
            self.log.postfix_line(t, service, pid, f"lost connection after AUTH from {client}")
            ehlo = 2 if tls else 1
            total = ehlo + (1 if tls else 0) + failures
            ok = ehlo + (1 if tls else 0)
            self.log.postfix_line(
                t,
                service,
                pid,
                f"disconnect from {client} ehlo={ehlo} {starttls}{auth} commands={ok}/{total}",
            )
        return t

    def submit(
        self,
        t: int,
        service: str,
        pid: int,
        client: str,
        user: str,
        mech: str,
        recipients: list[str],
        outcome: Callable[[], str] | None,
    ) -> int:
        qid = self.queue_id()
        domain = user.rsplit("@", 1)[-1]
        self.log.postfix_line(
            t, service, pid, f"{qid}: client={client}, sasl_method={mech}, sasl_username={user}"
        )
        t += self.jitter(0.05, 0.4)
        self.log.postfix_line(
            t,
            "cleanup",
            self.rand.choice(self.cleanup_pids),
            f"{qid}: message-id={self.message_id(t, domain)}",
        )
        size = int(self.rand.lognormvariate(9.3, 1.1)) + 400
        t += self.jitter(0.01, 0.05)
        self.log.postfix_line(
            t,
            "qmgr",
            self.qmgr_pid,
            f"{qid}: from=<{user}>, size={size}, nrcpt={len(recipients)} (queue active)",
        )
        self.deliver(t, qid, user, size, recipients, outcome or self.normal_outcome)
        return t

    def normal_outcome(self) -> str:
        roll = self.rand.random()
        return "bounced" if roll < 0.004 else "deferred" if roll < 0.015 else "sent"

    def deliver(
        self,
        t: int,
        qid: str,
        sender: str,
        size: int,
        recipients: list[str],
        outcome: Callable[[], str],
        orig_to: str | None = None,
    ) -> None:
        """Deliver each recipient; bounces return a notification, deferrals are retried."""
        last = t
        smtp_pid = self.rand.randrange(1300, 1340)
        for rcpt in recipients:
            at = t + self.jitter(0.05, 1.5)
            if rcpt in self.local_accounts:
                self._virtual(at, qid, rcpt)
            else:
                status = outcome()
                self._remote(at, smtp_pid, qid, rcpt, status, orig_to)
                if status == "bounced":
                    self._notify_sender(at, qid, sender)
                elif status == "deferred":
                    at += self.jitter(300, 1800)
                    self.log.postfix_line(
                        at,
                        "qmgr",
                        self.qmgr_pid,
                        f"{qid}: from=<{sender}>, size={size}, nrcpt=1 (queue active)",
                    )
                    at += self.jitter(0.1, 1.0)
                    self._remote(at, smtp_pid, qid, rcpt, "sent", orig_to)
            last = max(last, at)
        self.log.postfix_line(
            last + self.jitter(0.001, 0.01), "qmgr", self.qmgr_pid, f"{qid}: removed"
        )

    def _virtual(self, t: int, qid: str, rcpt: str) -> None:
        self.log.postfix_line(
            t,
            "virtual",
            self.rand.randrange(1400, 1410),
            f"{qid}: to=<{rcpt}>, "
            "relay=virtual, delay=0.01, delays=0/0/0/0.01, dsn=2.0.0, "
            "status=sent (delivered to maildir)",
        )

    def _remote(
        self, t: int, pid: int, qid: str, rcpt: str, status: str, orig_to: str | None
    ) -> None:
        domain = rcpt.rsplit("@", 1)[-1]
        mx_ip = external_mx_ip(domain)
        orig = f"orig_to=<{orig_to}>, " if orig_to else ""
        delay = round(self.rand.uniform(0.2, 2.5), 2)
        if status == "sent":
            dsn, text = "2.0.0", f"250 2.0.0 Ok: queued as {self.queue_id()}"
        elif status == "deferred":
            dsn = "4.7.1"
            text = (
                f"host mx.{domain}[{mx_ip}] said: 450 4.7.1 <{rcpt}>: Recipient address "
                "rejected: Greylisted, try again later (in reply to RCPT TO command)"
            )
        else:
            dsn = "5.1.1"
            text = (
                f"host mx.{domain}[{mx_ip}] said: 550 5.1.1 <{rcpt}>: Recipient address "
                "rejected: User unknown (in reply to RCPT TO command)"
            )
        self.log.postfix_line(
            t,
            "smtp",
            pid,
            f"{qid}: to=<{rcpt}>, {orig}relay=mx.{domain}[{mx_ip}]:25, delay={delay}, "
            f"delays=0.05/0.01/0.1/{delay}, dsn={dsn}, status={status} ({text})",
        )

    def _notify_sender(self, t: int, qid: str, sender: str) -> None:
        ndr = self.queue_id()
        t += self.jitter(0.01, 0.05)
        self.log.postfix_line(
            t,
            "qmgr",
            self.qmgr_pid,
            f"{ndr}: from=<>, size={self.rand.randrange(2200, 4200)}, nrcpt=1 (queue active)",
        )
        self.log.postfix_line(
            t,
            "bounce",
            self.rand.randrange(1500, 1504),
            f"{qid}: sender non-delivery notification: {ndr}",
        )
        t += self.jitter(0.01, 0.05)
        if sender in self.local_accounts:
            self._virtual(t, ndr, sender)
        else:
            self._remote(t, self.rand.randrange(1300, 1340), ndr, sender, "sent", None)
        self.log.postfix_line(t + 1000, "qmgr", self.qmgr_pid, f"{ndr}: removed")

    # -- Postfix inbound ---------------------------------------------------

    def inbound(self, t: int, sender: str, rcpt: str, forward_to: str | None) -> None:
        """A message from the internet for a local account, stored or forwarded."""
        domain = sender.rsplit("@", 1)[-1]
        ip, pid = external_mx_ip(domain), self.pid()
        client = f"mail.{domain}[{ip}]"
        self.log.postfix_line(t, "smtpd", pid, f"connect from {client}")
        t += self.jitter(0.05, 0.2)
        self.log.postfix_line(
            t, "smtpd", pid, f"Anonymous TLS connection established from {client}: {TLS13}"
        )
        qid = self.queue_id()
        t += self.jitter(0.1, 0.5)
        self.log.postfix_line(t, "smtpd", pid, f"{qid}: client={client}")
        t += self.jitter(0.05, 0.3)
        self.log.postfix_line(
            t,
            "cleanup",
            self.rand.choice(self.cleanup_pids),
            f"{qid}: message-id={self.message_id(t, domain)}",
        )
        size = int(self.rand.lognormvariate(9.8, 1.2)) + 800
        self.log.postfix_line(
            t, "qmgr", self.qmgr_pid, f"{qid}: from=<{sender}>, size={size}, nrcpt=1 (queue active)"
        )
        t += self.jitter(0.05, 0.3)
        self.log.postfix_line(
            t,
            "smtpd",
            pid,
            f"disconnect from {client} ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7",
        )
        if forward_to is None:
            self.deliver(t, qid, sender, size, [rcpt], self.normal_outcome)
        else:
            # Forwarded mail keeps the external envelope sender: its bounces are not the account's.
            self.deliver(t, qid, sender, size, [forward_to], self.forward_outcome, orig_to=rcpt)

    def forward_outcome(self) -> str:
        roll = self.rand.random()
        return "bounced" if roll < 0.03 else "deferred" if roll < 0.05 else "sent"


def external_mx_ip(domain: str) -> str:
    """A stable address in the external MX range for a domain."""
    offset = sum(domain.encode()) * 131 % 30000 + 1
    return _address(NETWORKS["external_mx"], offset)


def _address(network: str, offset: int) -> str:
    return str(ipaddress.ip_network(network)[offset])


# -- the population -------------------------------------------------------------


@dataclass(slots=True)
class Population:
    spec: SimulationSpec
    accounts: list[Account]
    offices: list[Office]
    carrier_pool: int
    phone_block: int = 2 * HOUR
    stale_password_accounts: list[str] = field(default_factory=list)

    def addresses(self) -> set[str]:
        return {a.address for a in self.accounts}

    def ordinary(self) -> list[Account]:
        """Accounts an attacker may pick as victims: people, not mailing servers."""
        return [a for a in self.accounts if a.profile != "bulk" and a.forward_to is None]

    def day_of(self, t: int) -> int:
        return (t - self.spec.start_us) // DAY

    def is_office_hours(self, t: int) -> bool:
        local = datetime.fromtimestamp(t // SECOND, tz=UTC) + timedelta(hours=LOCAL_OFFSET_HOURS)
        return local.weekday() < 5 and 8 <= local.hour < 18

    def device_ip(self, account: Account, device: Device, t: int) -> tuple[str, str]:
        """The (address, reverse name) a device of an account uses at time ``t``."""
        if device.kind == "webmail":
            return "127.0.0.1", "localhost"
        if device.kind == "phone":
            return self.phone_ip(account, t), "unknown"
        if account.office is not None and self.is_office_hours(t):
            office = self.offices[account.office]
            return office.ip, f"gw.{office.name}"
        return self.home_ip(account, t), "unknown"

    def home_ip(self, account: Account, t: int) -> str:
        if not account.home_v6:
            return account.home_ip
        # IPv6 privacy addresses: the /64 stays, the interface id changes every day.
        day = self.day_of(t)
        iid = (account.index * 2654435761 + day * 97531) % (1 << 48) + 1
        return str(ipaddress.IPv6Address(int(ipaddress.IPv6Address(account.home_ip)) + iid))

    def phone_ip(self, account: Account, t: int) -> str:
        block = t // self.phone_block
        slot = (account.index * 7919 + block * 104729) % self.carrier_pool
        roaming = self.day_of(t) in account.roaming_days
        return _address(NETWORKS["roaming_carrier" if roaming else "mobile_carrier"], slot + 1)


def build_population(spec: SimulationSpec, rand: random.Random) -> Population:
    """Accounts with profiles, devices and rates; offices; bulk senders; forwarding."""
    n_bulk = max(2, spec.accounts // 700)
    n_office_users = int(spec.accounts * 0.30)
    n_offices = max(2, round(n_office_users / 45))
    offices = [
        Office(ip=_address(NETWORKS["office"], i + 1), name=f"office{i + 1}.corp.example")
        for i in range(n_offices)
    ]
    names = _account_names(spec.accounts - n_bulk, rand)
    accounts: list[Account] = []
    home = ipaddress.ip_network(NETWORKS["home_v4"])
    home_v6 = ipaddress.ip_network(NETWORKS["home_v6"])
    for index, address in enumerate(names):
        roll = rand.random()
        profile = "office" if index < n_office_users else "mobile" if roll < 0.22 else "home"
        uses_v6 = rand.random() < 0.2
        home_ip = (
            str(home_v6[(index + 1) << 64]) if uses_v6 else str(home[rand.randrange(1, 65534)])
        )
        devices = _devices(profile, rand)
        account = Account(
            index=index,
            address=address,
            profile=profile,
            home_ip=home_ip,
            home_v6=uses_v6,
            office=None,
            devices=devices,
            logins_per_day=rand.lognormvariate(2.5, 0.5) * (1.4 if profile == "mobile" else 1.0),
            sends_per_day=min(80.0, rand.lognormvariate(1.6, 0.9)),
            inbound_per_day=rand.lognormvariate(1.6, 0.7),
        )
        if profile == "office":
            account.office = index % n_offices
            offices[account.office].members.append(index)
        if profile == "mobile" and rand.random() < 0.25:
            account.roaming_days = (rand.randrange(spec.days),)
        if profile != "office" and rand.random() < 0.07:
            account.forward_to = f"{address.split('@')[0]}.fwd@{rand.choice(EXTERNAL_DOMAINS)}"
            account.sends_per_day = 0.2
        accounts.append(account)
    bulk_names = ("newsletter@shop.example", "noreply@corp.example", "news@example.org")
    for i in range(n_bulk):
        local = bulk_names[i % len(bulk_names)]
        address = local if i < len(bulk_names) else local.replace("@", f"{i}@")
        ip = _address(NETWORKS["bulk_sender"], i + 1)
        accounts.append(
            Account(
                index=len(accounts),
                address=address,
                profile="bulk",
                home_ip=ip,
                home_v6=False,
                office=None,
                devices=(),
                logins_per_day=0.0,
                sends_per_day=0.0,
                inbound_per_day=0.5,
                sender_ip=ip,
            )
        )
    rotation_day = _first_weekday(spec)
    biggest = max(offices, key=lambda o: len(o.members))
    biggest.password_rotation_day = rotation_day
    n_phones = sum(1 for a in accounts for d in a.devices if d.kind == "phone")
    return Population(spec, accounts, offices, carrier_pool=max(32, n_phones // 5))


def _account_names(count: int, rand: random.Random) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        local = f"{rand.choice(FIRST_NAMES)}.{rand.choice(LAST_NAMES)}"
        domain = LOCAL_DOMAINS[len(names) % len(LOCAL_DOMAINS)]
        address = f"{local}@{domain}"
        suffix = 2
        while address in seen:
            address = f"{local}{suffix}@{domain}"
            suffix += 1
        seen.add(address)
        names.append(address)
    return names


def _devices(profile: str, rand: random.Random) -> tuple[Device, ...]:
    desktop = Device("desktop", "pop3" if rand.random() < 0.08 else "imap", 1.0)
    devices = [desktop] if profile != "mobile" else []
    if profile == "mobile" or rand.random() < 0.6:
        devices.append(Device("phone", "imap", 1.5 if profile == "mobile" else 0.8))
    if rand.random() < 0.15:
        devices.append(Device("webmail", "imap", 0.4))
    return tuple(devices)


def _first_weekday(spec: SimulationSpec) -> int:
    for day in range(spec.days):
        if (spec.start + timedelta(days=day)).weekday() < 5:
            return day
    return 0


# -- benign traffic -------------------------------------------------------------


def hourly_weights(spec: SimulationSpec) -> np.ndarray:
    """Relative activity of each simulated UTC hour (sums to ``days``)."""
    weights = np.empty(spec.days * 24)
    for hour in range(spec.days * 24):
        local = datetime.fromtimestamp(spec.start_us // SECOND + hour * 3600, tz=UTC)
        local += timedelta(hours=LOCAL_OFFSET_HOURS)
        factor = WEEKEND_FACTOR if local.weekday() >= 5 else 1.0
        weights[hour] = DAY_CURVE[local.hour] * factor / DAY_CURVE.sum()
    return weights


def _hourly_events(
    rates: np.ndarray, weights: np.ndarray, gen: np.random.Generator
) -> Iterable[tuple[int, int, int]]:
    """(account, hour, count): Poisson counts of per-day ``rates`` shaped by ``weights``."""
    counts = gen.poisson(np.outer(rates, weights))
    for index, hour in zip(*np.nonzero(counts), strict=True):
        yield int(index), int(hour), int(counts[index, hour])


def simulate_benign(
    platform: MailPlatform, population: Population, gen: np.random.Generator
) -> None:
    spec, rand = population.spec, platform.rand
    weights = hourly_weights(spec)
    people = [a for a in population.accounts if a.profile != "bulk"]
    logins = np.array([a.logins_per_day for a in people])
    sends = np.array([a.sends_per_day for a in people])
    inbound = np.array([a.inbound_per_day for a in population.accounts])
    for index, hour, count in _hourly_events(logins, weights, gen):
        for t in _times_in_hour(spec, hour, count, rand):
            _benign_login(platform, population, people[index], t)
    for index, hour, count in _hourly_events(sends, weights, gen):
        for t in _times_in_hour(spec, hour, count, rand):
            _benign_send(platform, population, people[index], t)
    for index, hour, count in _hourly_events(inbound, weights, gen):
        account = population.accounts[index]
        for t in _times_in_hour(spec, hour, count, rand):
            sender = _external_person(rand)
            platform.inbound(t, sender, account.address, account.forward_to)
    for account in population.accounts:
        if account.profile == "bulk":
            _newsletter_campaigns(platform, population, account)
    _stale_passwords(platform, population)
    for office in population.offices:
        if office.password_rotation_day is not None:
            _password_rotation(platform, population, office)


def _times_in_hour(spec: SimulationSpec, hour: int, count: int, rand: random.Random) -> list[int]:
    base = spec.start_us + hour * HOUR
    return sorted(base + rand.randrange(HOUR) for _ in range(count))


def _pick_device(account: Account, rand: random.Random) -> Device:
    total = sum(d.weight for d in account.devices)
    roll = rand.uniform(0, total)
    for device in account.devices:
        roll -= device.weight
        if roll <= 0:
            return device
    return account.devices[-1]


def _security(ip: str) -> str:
    return "secured" if ip == "127.0.0.1" else "TLS"


def _benign_login(platform: MailPlatform, population: Population, account: Account, t: int) -> None:
    rand = platform.rand
    device = _pick_device(account, rand)
    ip, _ = population.device_ip(account, device, t)
    if rand.random() < 0.015:  # a typo, then the right password in the same connection
        platform.login_with_failures(
            t,
            account.address,
            ip,
            device.protocol,
            _security(ip),
            failures=1 if rand.random() < 0.8 else 2,
            succeed=True,
        )
    else:
        platform.login(t, account.address, ip, device.protocol, _security(ip))


def _benign_send(platform: MailPlatform, population: Population, account: Account, t: int) -> None:
    rand = platform.rand
    device = _pick_device(account, rand)
    ip, rdns = population.device_ip(account, device, t)
    count = 1 if rand.random() < 0.8 else rand.randrange(2, 6)
    messages = [_recipients(population, rand) for _ in range(count)]
    platform.smtp_session(
        t,
        ip,
        rdns,
        account.address,
        messages,
        tls=TLS13 if rand.random() < 0.85 else TLS12,
        failures=1 if rand.random() < 0.005 else 0,
        mech="PLAIN" if rand.random() < 0.7 else "LOGIN",
    )


def _recipients(population: Population, rand: random.Random) -> list[str]:
    count = 1 if rand.random() < 0.7 else rand.randrange(2, 8)
    out: list[str] = []
    for _ in range(count):
        if rand.random() < 0.35:
            out.append(rand.choice(population.accounts).address)
        else:
            out.append(_external_person(rand))
    return out


def _external_person(rand: random.Random) -> str:
    return f"{rand.choice(FIRST_NAMES)}{rand.randrange(1, 400)}@{rand.choice(EXTERNAL_DOMAINS)}"


def _newsletter_campaigns(platform: MailPlatform, population: Population, account: Account) -> None:
    """Each working day a mailing server pushes a campaign of ~100-150 messages a minute."""
    spec, rand = population.spec, platform.rand
    assert account.sender_ip is not None
    for day in range(spec.days):
        if (spec.start + timedelta(days=day)).weekday() >= 5:
            continue
        t = spec.start_us + day * DAY + (9 - LOCAL_OFFSET_HOURS) * HOUR
        t += rand.randrange(2 * HOUR)
        remaining = rand.randrange(600, 2400)
        while remaining > 0:
            batch = min(remaining, 100)  # one connection per 100 messages
            messages = [[_external_person(rand)] for _ in range(batch)]
            t = platform.smtp_session(
                t,
                account.sender_ip,
                f"mailer.{account.address.split('@')[1]}",
                account.address,
                messages,
                gap=(0.3, 0.6),
                outcome=_newsletter_outcome(rand),
            )
            t += platform.jitter(1, 5)
            remaining -= batch


def _newsletter_outcome(rand: random.Random) -> Callable[[], str]:
    def outcome() -> str:
        roll = rand.random()
        return "bounced" if roll < 0.03 else "deferred" if roll < 0.05 else "sent"

    return outcome


def _stale_passwords(platform: MailPlatform, population: Population) -> None:
    """About 1% of people a day have a phone still trying an old password, for hours."""
    spec, rand = population.spec, platform.rand
    with_phone = [a for a in population.ordinary() if any(d.kind == "phone" for d in a.devices)]
    for day in range(spec.days):
        count = max(1, len(with_phone) // 100)
        for account in rand.sample(with_phone, min(count, len(with_phone))):
            phone = next(d for d in account.devices if d.kind == "phone")
            t = spec.start_us + day * DAY + rand.randrange(6 * HOUR, 19 * HOUR)
            end = t + rand.randrange(2 * HOUR, 6 * HOUR)
            while t < end:
                ip, _ = population.device_ip(account, phone, t)
                platform.login_with_failures(t, account.address, ip, "imap", "TLS", 1, False)
                t += rand.randrange(8 * MINUTE, 20 * MINUTE)
            population.stale_password_accounts.append(account.address)


def _password_rotation(platform: MailPlatform, population: Population, office: Office) -> None:
    """An office's passwords are reset at 09:00: every running client fails, then logs in again.

    Many accounts fail from one address within minutes, as in a spray, but
    each of them succeeds from the same address soon after: the NAT trap.
    """
    rand, day = platform.rand, office.password_rotation_day
    assert day is not None
    reset = population.spec.start_us + day * DAY + (9 - LOCAL_OFFSET_HOURS) * HOUR
    for index in office.members:
        if rand.random() >= 0.6:
            continue
        address = population.accounts[index].address
        t = reset + rand.randrange(10 * MINUTE)
        for _ in range(rand.randrange(1, 4)):  # the client retries the cached password
            platform.login_with_failures(t, address, office.ip, "imap", "TLS", 1, False)
            t += rand.randrange(2 * MINUTE, 6 * MINUTE)
        t += rand.randrange(5 * MINUTE, 40 * MINUTE)  # the user types the new password
        platform.login_with_failures(t, address, office.ip, "imap", "TLS", 0, True)


# -- attacks -------------------------------------------------------------------


class AttackerAddresses:
    """Hands out distinct attacker addresses from the reserved attack ranges."""

    def __init__(self, rand: random.Random) -> None:
        self.rand = rand
        self.used: set[str] = set()

    def v4(self, network: str) -> str:
        while True:
            ip = _address(NETWORKS[network], self.rand.randrange(1, 255))
            if ip not in self.used:
                self.used.add(ip)
                return ip

    def v6(self) -> str:
        """An address in its own /64 of the attack /48."""
        while True:
            subnet = self.rand.randrange(1, 0xFFFF)
            base = ipaddress.ip_network(NETWORKS["attack_v6"])[subnet << 64]
            ip = str(base + self.rand.randrange(1, 1 << 32))
            if ip not in self.used:
                self.used.add(ip)
                return ip


@dataclass(slots=True)
class Attacks:
    """Injects each attack into the platform and returns its label."""

    platform: MailPlatform
    population: Population
    rand: random.Random
    addresses: AttackerAddresses
    pool: list[Account]

    def victim(self, predicate: Callable[[Account], bool] = lambda a: True) -> Account:
        for position, account in enumerate(self.pool):
            if predicate(account):
                return self.pool.pop(position)
        raise SimulationError("the population is too small for the attacks; use more --accounts")

    def start_of(self, kind: str) -> int:
        spec = self.population.spec
        span = spec.days * DAY
        return spec.start_us + int(ATTACK_PLACEMENT[kind] * span) + self.rand.randrange(span // 25)

    def run(self) -> list[Label]:
        injectors: dict[str, Callable[[int], Label]] = {
            "brute_force_fast": self.brute_force_fast,
            "brute_force_slow": self.brute_force_slow,
            "spray_distributed": self.spray_distributed,
            "stuffing_success": self.stuffing_success,
            "hijack_spam": self.hijack_spam,
            "bounce_storm": self.bounce_storm,
            "plaintext_login": self.plaintext_login,
        }
        labels = [injectors[kind](self.start_of(kind)) for kind in ATTACK_KINDS]
        return sorted(labels, key=lambda label: label.start)

    def brute_force_fast(self, start: int) -> Label:
        """One address tries hundreds of passwords for one account over SMTP AUTH."""
        ip, victim = self.addresses.v4("attack_a"), self.victim()
        t = start
        for _ in range(100):
            t = self.platform.smtp_session(
                t, ip, "unknown", victim.address, [], tls=TLS12, failures=3, mech="LOGIN"
            )
            t += self.platform.jitter(0.5, 2.0)
        return _label(
            "brute_force_fast",
            start,
            t,
            [ip],
            victims=[victim.address],
            expected=[*_blocks([ip]), _alert(victim.address)],
            forbidden=_punish(victim.address),
            description=f"300 SMTP AUTH failures for one account from {ip} in about 15 minutes",
        )

    def brute_force_slow(self, start: int) -> Label:
        """Three addresses take turns, one IMAP attempt every few minutes, for nine hours."""
        ips = [self.addresses.v4("attack_b") for _ in range(3)]
        victim = self.victim()
        t, end, turn = start, start + 9 * HOUR, 0
        last = t
        while t < end:
            last = self.platform.login_with_failures(
                t, victim.address, ips[turn % 3], "imap", "TLS", 1, False
            )
            t += self.rand.randrange(4 * MINUTE, 7 * MINUTE)
            turn += 1
        return _label(
            "brute_force_slow",
            start,
            last,
            ips,
            victims=[victim.address],
            expected=[_alert(victim.address), *_blocks(ips)],
            forbidden=_punish(victim.address),
            description=f"{turn} IMAP failures for one account from 3 addresses over 9 hours",
        )

    def spray_distributed(self, start: int) -> Label:
        """Twelve addresses in different networks each try one password on 15 accounts."""
        ips = [self.addresses.v4("attack_a") for _ in range(6)]
        ips += [self.addresses.v4("attack_b") for _ in range(3)]
        ips += [self.addresses.v6() for _ in range(3)]
        accounts = len(self.population.accounts)
        real = [self.victim().address for _ in range(min(150, max(30, accounts // 8)))]
        roles = [f"{name}@{domain}" for domain in LOCAL_DOMAINS for name in ROLE_NAMES]
        targets = real + self.rand.sample(roles, 30)
        self.rand.shuffle(targets)
        last = start
        for n, ip in enumerate(ips):
            t = start + n * 6 * MINUTE + self.rand.randrange(MINUTE)
            # Each bot works through its own stretch of the shared list (wrapping around).
            stretch = [targets[(n * SPRAY_PER_IP + i) % len(targets)] for i in range(SPRAY_PER_IP)]
            for target in stretch:
                t = self.platform.smtp_session(
                    t,
                    ip,
                    "unknown",
                    target,
                    [],
                    failures=1,
                    mech="LOGIN",
                    unknown_user=target in roles,
                )
                t += self.rand.randrange(15 * SECOND, 45 * SECOND)
            last = max(last, t)
        return _label(
            "spray_distributed",
            start,
            last,
            ips,
            victims=targets,
            expected=_blocks(ips),
            forbidden=[p for target in real for p in _punish(target)],
            description=f"{len(ips)} addresses spray one password over {len(targets)} "
            "accounts by SMTP AUTH",
        )

    def stuffing_success(self, start: int) -> Label:
        """Leaked pairs tried over IMAP from six addresses; three accounts fall and are read."""
        ips = [self.addresses.v4("attack_a") for _ in range(6)]
        compromised = [self.victim().address for _ in range(3)]
        real = [self.victim().address for _ in range(max(10, min(54, len(self.pool) // 4)))]
        ghosts = [
            _external_person(self.rand).split("@")[0] + "@" + self.rand.choice(LOCAL_DOMAINS)
            for _ in range(180 - len(real) - len(compromised))
        ]
        pairs = [(a, "mismatch") for a in real] + [(a, "unknown") for a in ghosts]
        pairs += [(a, "success") for a in compromised]
        self.rand.shuffle(pairs)
        share = -(-len(pairs) // len(ips))
        last, took_over = start, []
        for n, ip in enumerate(ips):
            t = start + n * 2 * MINUTE + self.rand.randrange(MINUTE)
            for account, result in pairs[n * share : (n + 1) * share]:
                if result == "success":
                    self.platform.login(t, account, ip, "imap", "TLS")
                    took_over.append(
                        (t + self.rand.randrange(5 * MINUTE, 15 * MINUTE), account, ip)
                    )
                else:
                    self.platform.login_with_failures(
                        t, account, ip, "imap", "TLS", 1, False, unknown_user=result == "unknown"
                    )
                t += self.rand.randrange(10 * SECOND, 25 * SECOND)
            last = max(last, t)
        for t, account, ip in took_over:  # the attacker comes back to read the mailbox
            last = max(last, self.platform.login(t, account, ip, "imap", "TLS"))
        expected = _blocks(ips)
        for account in compromised:
            expected += [
                ExpectedAction(action, "account", account)
                for action in ("suspend_login", "require_password_reset")
            ]
            expected.append(_alert(account))
        return _label(
            "stuffing_success",
            start,
            last,
            ips,
            victims=real + ghosts,
            abusers=compromised,
            expected=expected,
            forbidden=[p for a in real for p in _punish(a)],
            description=f"{len(pairs)} leaked pairs from {len(ips)} addresses; "
            f"{len(compromised)} succeed and the mailboxes are read",
        )

    def hijack_spam(self, start: int) -> Label:
        """A stolen account logs in from a new address, then sends ~600 spam messages."""
        ip = self.addresses.v4("attack_a")
        account = self.victim(lambda a: a.profile != "office" and a.sends_per_day >= 2)
        self.platform.login(start, account.address, ip, "imap", "TLS")
        t = start + self.rand.randrange(15 * MINUTE, 30 * MINUTE)
        outcome = _spam_outcome(self.rand)
        for _ in range(8):
            messages = [
                [_external_person(self.rand) for _ in range(self.rand.randrange(1, 11))]
                for _ in range(75)
            ]
            t = self.platform.smtp_session(
                t, ip, "unknown", account.address, messages, outcome=outcome, gap=(0.8, 1.6)
            )
            t += self.rand.randrange(5 * SECOND, 20 * SECOND)
        return _label(
            "hijack_spam",
            start,
            t,
            [ip],
            abusers=[account.address],
            expected=[
                ExpectedAction("suspend_smtp", "account", account.address),
                ExpectedAction("isolate_sender", "account", account.address),
                *_blocks([ip]),
                _alert(account.address),
            ],
            description=f"stolen account logs in from {ip} and sends 600 messages "
            "(1-10 recipients each) in about 15 minutes",
        )

    def bounce_storm(self, start: int) -> Label:
        """A compromised script on the user's own machine mails a dead list, slowly."""
        account = self.victim(lambda a: a.profile == "home")
        desktop = Device("desktop", "imap", 1.0)
        outcome = _dead_list_outcome(self.rand)
        t, used = start, []
        for _ in range(100):
            ip, rdns = self.population.device_ip(account, desktop, t)
            if ip not in used:
                used.append(ip)
            messages = [[_external_person(self.rand) for _ in range(self.rand.randrange(1, 4))]]
            t = self.platform.smtp_session(t, ip, rdns, account.address, messages, outcome=outcome)
            t += self.rand.randrange(40 * SECOND, 80 * SECOND)
        return _label(
            "bounce_storm",
            start,
            t,
            used,
            abusers=[account.address],
            expected=[
                ExpectedAction("suspend_smtp", "account", account.address),
                ExpectedAction("isolate_sender", "account", account.address),
                _alert(account.address),
            ],
            description="100 messages to a harvested list, 75% of recipients bounce, "
            "over about 100 minutes from the user's own address",
        )

    def plaintext_login(self, start: int) -> Label:
        """An account logs in and submits without TLS from a hotel network."""
        ip, account = self.addresses.v4("attack_b"), self.victim()
        t = start
        for _ in range(6):
            self.platform.login(t, account.address, ip, "imap", None)
            t += self.rand.randrange(8 * MINUTE, 15 * MINUTE)
        for _ in range(2):
            t = self.platform.smtp_session(
                t, ip, "unknown", account.address, [[_external_person(self.rand)]], tls=None
            )
            t += self.rand.randrange(2 * MINUTE, 5 * MINUTE)
        return _label(
            "plaintext_login",
            start,
            t,
            [ip],
            victims=[account.address],
            expected=[
                _alert(account.address),
                ExpectedAction("deny_insecure", "account", account.address),
            ],
            description="6 IMAP logins and 2 SMTP submissions without TLS from one address",
        )


def _spam_outcome(rand: random.Random) -> Callable[[], str]:
    def outcome() -> str:
        roll = rand.random()
        return "bounced" if roll < 0.18 else "deferred" if roll < 0.30 else "sent"

    return outcome


def _dead_list_outcome(rand: random.Random) -> Callable[[], str]:
    def outcome() -> str:
        roll = rand.random()
        return "bounced" if roll < 0.75 else "deferred" if roll < 0.80 else "sent"

    return outcome


def _alert(account: str) -> ExpectedAction:
    return ExpectedAction("alert", "account", account)


def _blocks(ips: list[str]) -> list[ExpectedAction]:
    return [ExpectedAction("block_ip", "ip", ip) for ip in ips]


def _punish(account: str) -> list[ExpectedAction]:
    return [
        ExpectedAction(action, "account", account) for action in ("suspend_login", "suspend_smtp")
    ]


def _label(
    kind: str,
    start: int,
    end: int,
    ips: list[str],
    *,
    expected: list[ExpectedAction],
    description: str,
    victims: list[str] | None = None,
    abusers: list[str] | None = None,
    forbidden: list[ExpectedAction] | None = None,
) -> Label:
    return Label(
        id=kind,
        kind=kind,
        start=start / SECOND,
        end=end / SECOND,
        start_iso=iso_utc(start / SECOND),
        end_iso=iso_utc(end / SECOND),
        attacker_ips=ips,
        victims=victims or [],
        abusers=abusers or [],
        expected_actions=expected,
        forbidden_actions=forbidden or [],
        expected_rules=list(EXPECTED_RULES[kind]),
        description=description,
    )


# -- the whole run ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimulationResult:
    population: dict[str, Any]
    labels: list[Label]


def run_simulation(spec: SimulationSpec, out_dir: Path) -> SimulationResult:
    """Generate the population and attacks and write the four files into ``out_dir``."""
    if spec.accounts < 100:
        raise SimulationError("--accounts must be at least 100 (the attacks need victims)")
    seeds = np.random.SeedSequence(spec.seed).spawn(4)
    people_rand, traffic_rand, attack_rand = (
        random.Random(int(s.generate_state(1)[0])) for s in seeds[:3]
    )
    population = build_population(spec, people_rand)
    buffer = LogBuffer(HOST)
    platform = MailPlatform(buffer, traffic_rand, population.addresses())
    simulate_benign(platform, population, np.random.default_rng(seeds[3]))
    rotation = {
        population.accounts[i].address
        for o in population.offices
        if o.password_rotation_day is not None
        for i in o.members
    }
    excluded = set(population.stale_password_accounts) | rotation
    pool = [a for a in population.ordinary() if a.address not in excluded]
    attack_rand.shuffle(pool)
    attacks = Attacks(platform, population, attack_rand, AttackerAddresses(attack_rand), pool)
    labels = attacks.run()

    out_dir.mkdir(parents=True, exist_ok=True)
    lines = buffer.write(out_dir)
    with (out_dir / "labels.jsonl").open("wb") as out:
        for label in labels:
            out.write(orjson.dumps(label.to_dict()) + b"\n")
    summary = population_summary(population, labels, lines)
    (out_dir / "population.json").write_bytes(
        orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
    return SimulationResult(summary, labels)


def labelled_accounts(labels: Iterable[Label]) -> set[str]:
    return {a for label in labels for a in (*label.victims, *label.abusers)}


def population_summary(
    population: Population, labels: list[Label], lines: dict[str, int]
) -> dict[str, Any]:
    spec = population.spec
    addresses = population.addresses()
    benign = addresses - labelled_accounts(labels)
    profiles: dict[str, int] = {}
    for account in population.accounts:
        profiles[account.profile] = profiles.get(account.profile, 0) + 1
    return {
        "seed": spec.seed,
        "host": HOST,
        "days": spec.days,
        "start": iso_utc(spec.start_us / SECOND),
        "end": iso_utc(spec.end_us / SECOND),
        "start_epoch": spec.start_us / SECOND,
        "end_epoch": spec.end_us / SECOND,
        "accounts": len(addresses),
        "benign_accounts": len(benign),
        "profiles": profiles,
        "domains": list(LOCAL_DOMAINS),
        "networks": NETWORKS,
        "webmail_ip": "127.0.0.1",
        "offices": [
            {
                "ip": o.ip,
                "name": o.name,
                "accounts": len(o.members),
                "password_rotation_day": o.password_rotation_day,
            }
            for o in population.offices
        ],
        "bulk_senders": [
            {"account": a.address, "ip": a.sender_ip}
            for a in population.accounts
            if a.profile == "bulk"
        ],
        "forwarding_accounts": sorted(a.address for a in population.accounts if a.forward_to),
        "roaming_accounts": sorted(a.address for a in population.accounts if a.roaming_days),
        "stale_password_accounts": sorted(set(population.stale_password_accounts)),
        "lines": lines,
        "attacks": [label.id for label in labels],
    }


@click.command()
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for postfix.log, dovecot.log, labels.jsonl, population.json.",
)
@click.option(
    "--accounts",
    default=2000,
    show_default=True,
    type=click.IntRange(min=100),
    help="Accounts in the population.",
)
@click.option(
    "--days", default=2, show_default=True, type=click.IntRange(1, 60), help="Days of traffic."
)
@click.option("--seed", default=42, show_default=True, type=int, help="Random seed.")
@click.option(
    "--start",
    default="2026-11-01",
    show_default=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="First day (UTC midnight).",
)
def simulate(out_dir: Path, accounts: int, days: int, seed: int, start: datetime) -> None:
    """Write a labelled population of Postfix and Dovecot logs."""
    spec = SimulationSpec(accounts=accounts, days=days, seed=seed, start=start.date())
    result = run_simulation(spec, out_dir)
    summary = result.population
    click.echo(
        f"{summary['accounts']} accounts ({summary['benign_accounts']} benign), "
        f"{days} day(s) from {summary['start']}: "
        + ", ".join(f"{count} lines in {name}" for name, count in summary["lines"].items())
    )
    for label in result.labels:
        click.echo(f"  {label.start_iso}  {label.kind:<18} {label.description}")
    click.echo(f"labels: {out_dir / 'labels.jsonl'}  population: {out_dir / 'population.json'}")
