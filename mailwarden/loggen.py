"""A realistic synthetic mail log: Postfix and Dovecot of one host, in syslog format.

Used by ``mailwarden bench parse`` to measure parsers on volumes no test corpus
has. The mix follows what a small provider's ``mail.log`` looks like: inbound
MX sessions (accepted, rejected, scanners), authenticated submissions with
their queue, delivery and bounce lines, IMAP/POP3 logins and logouts, users
mistyping passwords, and SASL and IMAP brute force from a pool of attacking
addresses. Thousands of users and client addresses; sessions overlap as
concurrent smtpd and login processes do, with the delays the real daemons
have; timestamps never go backwards.

The same seed gives the same file. The generator also counts the lines that
fail2ban's ``postfix[mode=auth]`` and ``dovecot`` filters are meant to match
and the true number of failed attempts, so a benchmark can check what every
tool found, not only how fast it went.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HOST = "mail"
DOMAINS = ("example.org", "example.net", "mail.example.com", "corp.example")
REMOTE_DOMAINS = ("gmail.example", "outlook.example", "yahoo.example", "web.example", "gmx.example")
GIVEN = (
    "anna", "ben", "carla", "david", "eva", "felix", "greta", "hugo", "ines", "jonas",
    "karin", "lukas", "mara", "nils", "olga", "paul", "rita", "sven", "tina", "uwe",
    "vera", "walter", "xenia", "yusuf", "zoe", "info", "sales", "office", "billing", "support",
)  # fmt: skip
GUESSES = (
    "admin", "info", "test", "sales", "office", "webmaster", "postmaster", "support",
    "contact", "user", "root", "guest", "marketing", "noreply", "mail",
)  # fmt: skip
RBL_REJECTS = (
    "554 5.7.1 Service unavailable; Client host [{ip}] blocked using zen.spamhaus.org; "
    "https://www.spamhaus.org/query/ip/{ip}",
    "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table",
    "454 4.7.1 <{rcpt}>: Relay access denied",
    "450 4.7.1 Client host rejected: cannot find your hostname, [{ip}]",
)
# A new session starts every SESSION_INTERVAL seconds on average (about four lines a second).
SESSION_INTERVAL = 1.3
# Dovecot's auth_failure_delay: the failure is logged, the answer to Postfix comes this much later.
AUTH_FAILURE_DELAY = 2.0
# Generated logs start here; RFC 3164 stamps carry no year, so readers need START.year.
START = datetime(2026, 11, 27, tzinfo=UTC)


@dataclass(slots=True)
class Truth:
    """What the generated file holds, counted while writing it."""

    lines: int = 0
    bytes: int = 0
    sasl_failure_lines: int = 0  # fail2ban postfix[mode=auth] should match these
    dovecot_failure_lines: int = 0  # login summaries "(auth failed, N attempts)"
    passdb_failure_lines: int = 0  # auth process "Password mismatch" / "unknown user"
    failed_attempts: int = 0  # each attempt once, however many daemons logged it
    successful_logins: int = 0
    submissions: int = 0
    kinds: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class Logged:
    """One line before its timestamp: the program tag, the message, and when.

    ``after`` is the typical delay in seconds since the previous line of the
    same session (the generator jitters it by +-50%).
    """

    program: str
    message: str
    truth: str | None = None  # a Truth counter this line adds one to
    after: float = 0.2


class Population:
    """Users, their usual client addresses, and the attackers' addresses."""

    def __init__(self, rng: random.Random, users: int, clients: int, attackers: int) -> None:
        self.rng = rng
        self.users = [
            f"{rng.choice(GIVEN)}.{rng.choice(GIVEN)}{n}@{rng.choice(DOMAINS)}"
            for n in range(users)
        ]
        self.clients = [self._address() for _ in range(clients)]
        self.attackers = [self._address() for _ in range(attackers)]
        self.home = {user: rng.choice(self.clients) for user in self.users}

    def _address(self) -> str:
        rng = self.rng
        if rng.random() < 0.1:
            return f"2001:db8:{rng.randrange(1, 0xFFFF):x}:{rng.randrange(1, 0xFFFF):x}::" + (
                f"{rng.randrange(1, 0xFFFF):x}"
            )
        first = rng.choice((5, 31, 37, 45, 62, 77, 80, 85, 91, 109, 141, 176, 185, 193, 212))
        return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"

    def user(self) -> str:
        # a few heavy users, a long tail
        return self.users[int(len(self.users) * self.rng.random() ** 2)]

    def attacker(self) -> str:
        return self.attackers[int(len(self.attackers) * self.rng.random() ** 3)]

    def rdns(self, ip: str) -> str:
        if ":" in ip or self.rng.random() < 0.3:
            return "unknown"
        return f"{ip.replace('.', '-')}.dyn.{self.rng.choice(REMOTE_DOMAINS)}"


class Sessions:
    """Session scripts: each yields the lines of one client session, in order."""

    def __init__(self, rng: random.Random, people: Population) -> None:
        self.rng = rng
        self.people = people
        self._next_pid = 20000
        self._queue_ids: set[str] = set()

    def pid(self) -> int:
        self._next_pid = 20000 + (self._next_pid - 19999) % 40000
        return self._next_pid

    def queue_id(self) -> str:
        while True:
            qid = f"{self.rng.getrandbits(44):011X}"
            if qid not in self._queue_ids:
                if len(self._queue_ids) > 100_000:
                    self._queue_ids.clear()
                self._queue_ids.add(qid)
                return qid

    def session_id(self) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        return "".join(self.rng.choice(alphabet) for _ in range(16))

    def tls_line(self, smtpd: str, rdns: str, ip: str) -> Logged:
        version, cipher = self.rng.choice(
            (
                ("TLSv1.3", "TLS_AES_256_GCM_SHA384 (256/256 bits)"),
                ("TLSv1.3", "TLS_AES_128_GCM_SHA256 (128/128 bits)"),
                ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)"),
            )
        )
        return Logged(
            smtpd,
            f"Anonymous TLS connection established from {rdns}[{ip}]: {version} with cipher "
            f"{cipher}",
        )

    def inbound(self) -> Iterator[Logged]:
        people, rng = self.people, self.rng
        ip = rng.choice(people.clients)
        rdns = people.rdns(ip)
        smtpd = f"postfix/smtpd[{self.pid()}]"
        yield Logged(smtpd, f"connect from {rdns}[{ip}]", "connect")
        tls = rng.random() < 0.6
        if tls:
            yield self.tls_line(smtpd, rdns, ip)
        roll = rng.random()
        if roll < 0.2:
            yield Logged(smtpd, f"lost connection after CONNECT from {rdns}[{ip}]")
            yield Logged(smtpd, f"disconnect from {rdns}[{ip}] commands=0/0", "disconnect")
            return
        rcpt = people.user()
        sender = f"{rng.choice(GIVEN)}@{rng.choice(REMOTE_DOMAINS)}"
        helo = rdns if rdns != "unknown" else f"[{ip}]"
        if roll < 0.45:
            reason = rng.choice(RBL_REJECTS).format(ip=ip, rcpt=rcpt)
            yield Logged(
                smtpd,
                f"NOQUEUE: reject: RCPT from {rdns}[{ip}]: {reason}; from=<{sender}> "
                f"to=<{rcpt}> proto=ESMTP helo=<{helo}>",
                "reject",
            )
            yield Logged(
                smtpd,
                f"disconnect from {rdns}[{ip}] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4",
                "disconnect",
            )
            return
        qid = self.queue_id()
        yield Logged(smtpd, f"{qid}: client={rdns}[{ip}]", "submission")
        yield from self.queue_and_deliver(qid, sender, [rcpt], local=True)
        starttls = " starttls=1" if tls else ""
        commands = 6 if tls else 5
        yield Logged(
            smtpd,
            f"disconnect from {rdns}[{ip}] ehlo=1{starttls} mail=1 rcpt=1 data=1 quit=1 "
            f"commands={commands}",
            "disconnect",
        )

    def queue_and_deliver(
        self, qid: str, sender: str, rcpts: list[str], local: bool
    ) -> Iterator[Logged]:
        rng = self.rng
        size = int(rng.lognormvariate(9.5, 1.2)) + 400
        yield Logged(
            f"postfix/cleanup[{self.pid()}]",
            f"{qid}: message-id=<{rng.getrandbits(64):x}@{sender.split('@')[1]}>",
        )
        yield Logged(
            "postfix/qmgr[1001]",
            f"{qid}: from=<{sender}>, size={size}, nrcpt={len(rcpts)} (queue active)",
            "queued",
        )
        bounced: list[str] = []
        for rcpt in rcpts:
            delay = f"delay={rng.uniform(0.05, 2):.2f}, delays=0.02/0.01/0.1/0.3"
            if local:
                yield Logged(
                    f"postfix/lmtp[{self.pid()}]",
                    f"{qid}: to=<{rcpt}>, relay=mail.example.org[private/dovecot-lmtp], {delay}, "
                    f"dsn=2.0.0, status=sent (250 2.0.0 <{rcpt}> Saved)",
                    "delivery",
                )
                continue
            mx = f"mx{rng.randrange(1, 4)}.{rcpt.split('@')[1]}"
            mx_ip = f"198.51.100.{rng.randrange(1, 255)}"
            roll = rng.random()
            if roll < 0.9:
                status = f"dsn=2.0.0, status=sent (250 2.0.0 OK {rng.getrandbits(32):x})"
            elif roll < 0.97:
                status = (
                    f"dsn=4.7.0, status=deferred (host {mx}[{mx_ip}] said: 451 4.7.0 "
                    "Temporary failure, please try again later (in reply to RCPT TO command))"
                )
            else:
                status = (
                    f"dsn=5.1.1, status=bounced (host {mx}[{mx_ip}] said: 550 5.1.1 <{rcpt}>: "
                    "Recipient address rejected: User unknown (in reply to RCPT TO command))"
                )
                bounced.append(rcpt)
            yield Logged(
                f"postfix/smtp[{self.pid()}]",
                f"{qid}: to=<{rcpt}>, relay={mx}[{mx_ip}]:25, {delay}, {status}",
                "delivery",
            )
        if bounced:
            ndr = self.queue_id()
            yield Logged(
                f"postfix/bounce[{self.pid()}]", f"{qid}: sender non-delivery notification: {ndr}"
            )
            yield Logged("postfix/qmgr[1001]", f"{ndr}: from=<>, size=3120, nrcpt=1 (queue active)")
            yield Logged(
                f"postfix/lmtp[{self.pid()}]",
                f"{ndr}: to=<{sender}>, relay=mail.example.org[private/dovecot-lmtp], "
                f"delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 <{sender}> Saved)",
                "delivery",
            )
            yield Logged("postfix/qmgr[1001]", f"{ndr}: removed")
        yield Logged("postfix/qmgr[1001]", f"{qid}: removed")

    def submission(self) -> Iterator[Logged]:
        people, rng = self.people, self.rng
        user = people.user()
        ip = people.home[user] if rng.random() < 0.8 else rng.choice(people.clients)
        rdns = people.rdns(ip)
        smtpd = f"postfix/submission/smtpd[{self.pid()}]"
        yield Logged(smtpd, f"connect from {rdns}[{ip}]", "connect")
        yield self.tls_line(smtpd, rdns, ip)
        messages = 1 if rng.random() < 0.85 else rng.randrange(2, 5)
        for _ in range(messages):
            qid = self.queue_id()
            mech = rng.choice(("PLAIN", "PLAIN", "LOGIN"))
            yield Logged(
                smtpd,
                f"{qid}: client={rdns}[{ip}], sasl_method={mech}, sasl_username={user}",
                "submission",
            )
            rcpts = [
                f"{rng.choice(GIVEN)}{rng.randrange(100)}@{rng.choice(REMOTE_DOMAINS)}"
                for _ in range(1 if rng.random() < 0.8 else rng.randrange(2, 6))
            ]
            yield from self.queue_and_deliver(qid, user, rcpts, local=False)
        yield Logged(
            smtpd,
            f"disconnect from {rdns}[{ip}] ehlo=2 starttls=1 auth=1 mail={messages} "
            f"rcpt={messages} data={messages} quit=1 commands={4 + 3 * messages}",
            "disconnect",
        )

    def sasl_bruteforce(self) -> Iterator[Logged]:
        people, rng = self.people, self.rng
        ip = people.attacker()
        rdns = people.rdns(ip)
        service = rng.choice(("submission/smtpd", "smtpd", "smtps/smtpd"))
        smtpd = f"postfix/{service}[{self.pid()}]"
        yield Logged(smtpd, f"connect from {rdns}[{ip}]", "connect")
        tries = rng.choice((1, 1, 1, 2, 3))
        for _ in range(tries):
            guess = rng.choice(GUESSES) + (f"@{rng.choice(DOMAINS)}" if rng.random() < 0.6 else "")
            known = rng.random() < 0.3
            outcome = "Password mismatch" if known else "unknown user"
            yield Logged(
                "dovecot", f"auth: passwd-file({guess},{ip}): {outcome}", "passdb_failure", 1.0
            )
            if rng.random() < 0.5:
                reason = "UGFzc3dvcmQ6"
                mech = "LOGIN"
            else:
                reason, mech = f"(reason unavailable), sasl_username={guess}", "PLAIN"
            yield Logged(
                smtpd,
                f"warning: {rdns}[{ip}]: SASL {mech} authentication failed: {reason}",
                "sasl_failure",
                AUTH_FAILURE_DELAY,
            )
        if tries == 3:
            yield Logged(smtpd, f"too many errors after AUTH from {rdns}[{ip}]")
        else:
            yield Logged(smtpd, f"lost connection after AUTH from {rdns}[{ip}]")
        yield Logged(
            smtpd,
            f"disconnect from {rdns}[{ip}] ehlo=1 auth=0/{tries} commands=1/{tries + 1}",
            "disconnect",
        )

    def imap_login(self) -> Iterator[Logged]:
        people, rng = self.people, self.rng
        user = people.user()
        ip = people.home[user] if rng.random() < 0.9 else rng.choice(people.clients)
        protocol = "imap" if rng.random() < 0.8 else "pop3"
        session = self.session_id()
        mpid = self.pid()
        tls = ", TLS" if rng.random() < 0.85 else ""
        yield Logged(
            "dovecot",
            f"{protocol}-login: Login: user=<{user}>, method=PLAIN, rip={ip}, "
            f"lip=192.0.2.25, mpid={mpid}{tls}, session=<{session}>",
            "login",
        )
        if protocol == "imap":
            stats = (
                f"in={rng.randrange(100, 5000)} out={rng.randrange(500, 500000)} deleted=0 "
                "expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count=0 body_bytes=0"
            )
        else:
            stats = f"top=0/0, retr={rng.randrange(5)}/{rng.randrange(90000)}, del=0/0, size=0"
        # IMAP clients stay connected for minutes; POP3 sessions are short.
        length = rng.lognormvariate(3.5, 1.5) if protocol == "imap" else rng.uniform(0.5, 5)
        yield Logged(
            "dovecot",
            f"{protocol}({user})<{mpid}><{session}>: Disconnected: Logged out {stats}",
            after=length,
        )

    def imap_failure(self) -> Iterator[Logged]:
        people, rng = self.people, self.rng
        if rng.random() < 0.5:  # a user mistyping
            user = people.user()
            ip = people.home[user]
        else:  # someone guessing
            user = rng.choice(GUESSES) + f"@{rng.choice(DOMAINS)}"
            ip = people.attacker()
        protocol = "imap" if rng.random() < 0.7 else "pop3"
        session = self.session_id()
        attempts = rng.choice((1, 1, 2, 3))
        for _ in range(attempts):
            yield Logged(
                "dovecot",
                f"auth: passwd-file({user},{ip},<{session}>): Password mismatch",
                "passdb_failure",
                3.0,
            )
        tls = ", TLS" if rng.random() < 0.7 else ""
        how = rng.choice(("Disconnected", "Aborted login", "Disconnected: Connection closed"))
        yield Logged(
            "dovecot",
            f"{protocol}-login: {how} (auth failed, {attempts} attempts in {2 + 4 * attempts} "
            f"secs): user=<{user}>, method=PLAIN, rip={ip}, lip=192.0.2.25{tls}, "
            f"session=<{session}>",
            "dovecot_failure",
            AUTH_FAILURE_DELAY,
        )

    def imap_no_auth(self) -> Iterator[Logged]:
        ip = (
            self.people.attacker()
            if self.rng.random() < 0.5
            else self.rng.choice(self.people.clients)
        )
        yield Logged(
            "dovecot",
            f"imap-login: Disconnected (no auth attempts in {self.rng.randrange(60)} secs): "
            f"user=<>, rip={ip}, lip=192.0.2.25, TLS handshaking: SSL_accept() failed: "
            "error:0A000102:SSL routines::unsupported protocol, session=<"
            f"{self.session_id()}>",
        )

    def housekeeping(self) -> Iterator[Logged]:
        rng = self.rng
        if rng.random() < 0.5:
            yield Logged(
                "postfix/anvil[1002]",
                f"statistics: max connection rate {rng.randrange(1, 30)}/60s for "
                f"(smtp:{rng.choice(self.people.clients)}) at Nov 27 05:43:53",
            )
        else:
            qid = self.queue_id()
            yield Logged("postfix/pickup[1003]", f"{qid}: uid=0 from=<root>")
            yield from self.queue_and_deliver(qid, f"root@{DOMAINS[0]}", ["root@localhost"], True)


# (weight, script name): the share of sessions of each kind.
SESSION_MIX: tuple[tuple[int, str], ...] = (
    (24, "inbound"),
    (12, "submission"),
    (9, "sasl_bruteforce"),
    (30, "imap_login"),
    (8, "imap_failure"),
    (4, "imap_no_auth"),
    (1, "housekeeping"),
)


class MailLogGenerator:
    """Interleaves concurrent sessions into one stream of syslog lines."""

    def __init__(
        self,
        seed: int = 7,
        users: int = 5000,
        clients: int = 4000,
        attackers: int = 600,
        start: datetime = START,
    ) -> None:
        self.rng = random.Random(seed)
        self.people = Population(self.rng, users, clients, attackers)
        self.sessions = Sessions(self.rng, self.people)
        self.clock = start.timestamp()
        self.truth = Truth()
        self._stamp_second = -1
        self._stamp = ""
        weights, names = zip(*SESSION_MIX, strict=True)
        self._weights = list(weights)
        self._names = list(names)

    def _new_session(self) -> Iterator[Logged]:
        name = self.rng.choices(self._names, self._weights)[0]
        script: Iterator[Logged] = getattr(self.sessions, name)()
        return script

    def _stamp_for(self, epoch: float) -> str:
        second = int(epoch)
        if second != self._stamp_second:
            moment = datetime.fromtimestamp(second, tz=UTC)
            self._stamp = f"{moment:%b} {moment.day:>2} {moment:%H:%M:%S}"
            self._stamp_second = second
        return self._stamp

    def lines(self) -> Iterator[str]:
        """An endless stream of lines (without newline), in time order.

        Sessions arrive at random (Poisson); each line of a session follows the
        previous one after its ``after`` delay, so sessions overlap as concurrent
        smtpd and login processes do, and a daemon's echo of an attempt comes
        as late as the real daemon's would.
        """
        rng = self.rng
        truth = self.truth
        pending: list[tuple[float, int, Logged, Iterator[Logged]]] = []
        sequence = 0
        next_arrival = self.clock
        while True:
            if not pending or next_arrival <= pending[0][0]:
                script = self._new_session()
                first = next(script, None)
                if first is not None:
                    sequence += 1
                    heapq.heappush(pending, (next_arrival, sequence, first, script))
                next_arrival += rng.expovariate(1 / SESSION_INTERVAL)
                continue
            when, _, logged, script = heapq.heappop(pending)
            self.clock = when
            following = next(script, None)
            if following is not None:
                sequence += 1
                delay = following.after * rng.uniform(0.5, 1.5)
                heapq.heappush(pending, (when + delay, sequence, following, script))
            if logged.truth is not None:
                truth.kinds[logged.truth] += 1
                self._count(logged)
            yield f"{self._stamp_for(when)} {HOST} {logged.program}: {logged.message}"

    def _count(self, logged: Logged) -> None:
        truth = self.truth
        if logged.truth == "sasl_failure":
            truth.sasl_failure_lines += 1
        elif logged.truth == "dovecot_failure":
            truth.dovecot_failure_lines += 1
        elif logged.truth == "passdb_failure":
            # Every generated attempt is logged first, and exactly once, by the auth process.
            truth.passdb_failure_lines += 1
            truth.failed_attempts += 1
        elif logged.truth == "login":
            truth.successful_logins += 1
        elif logged.truth == "submission" and "sasl_username=" in logged.message:
            truth.submissions += 1


def write_log(
    path: Path, lines: int | None = None, megabytes: float | None = None, seed: int = 7
) -> Truth:
    """Write a generated log of ``lines`` lines or about ``megabytes`` MB to ``path``."""
    if (lines is None) == (megabytes is None):
        raise ValueError("give exactly one of lines or megabytes")
    generator = MailLogGenerator(seed=seed)
    limit_bytes = int(megabytes * 1_000_000) if megabytes is not None else None
    written = 0
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        batch: list[str] = []
        for line in generator.lines():
            batch.append(line)
            written += len(line) + 1
            count += 1
            if len(batch) >= 4096:
                handle.write("\n".join(batch) + "\n")
                batch.clear()
            if (lines is not None and count >= lines) or (
                limit_bytes is not None and written >= limit_bytes
            ):
                break
        if batch:
            handle.write("\n".join(batch) + "\n")
    generator.truth.lines = count
    generator.truth.bytes = written
    return generator.truth


def _repeat_to(unit: str, size: int) -> str:
    return unit * max(1, size // len(unit))


def pathological_lines(size: int, client_ip: str = "192.0.2.77") -> dict[str, str]:
    """Lines of about ``size`` characters built to make careless parsers slow.

    Each repeats a fragment that a backtracking regex would try to match in many
    ways (GHSA-33wh-ccjc-p397's ``Disconnected: a: a: a: ...``, long runs of the
    field separators and key names of each format). A linear parser takes ten
    times as long for ten times the size; a catastrophic one, far more. The only
    real client address in each line is ``client_ip``.
    """
    stamp = "Nov 27 05:43:09"
    ip = client_ip
    return {
        "dovecot-disconnected-a-a-a": (
            f"{stamp} mail dovecot: imap-login: Disconnected: "
            + _repeat_to("a: ", size)
            + f"(tried to use disallowed test auth): user=<>, rip={ip}"
        ),
        "dovecot-a-a-a-no-match": (
            f"{stamp} mail dovecot: imap-login: Disconnected: " + _repeat_to("a: ", size)
        ),
        "postfix-sasl-A-A-A": (
            f"{stamp} mail postfix/smtpd[1]: warning: unknown[{ip}]: "
            "SASL LOGIN authentication failed: " + _repeat_to("A ", size)
        ),
        "postfix-sasl-username-huge": (
            f"{stamp} mail postfix/smtpd[1]: warning: unknown[{ip}]: "
            "SASL LOGIN authentication failed: (reason unavailable), sasl_username="
            + _repeat_to("rip=6.6.6.6 [6.6.6.6] ", size)
        ),
        "postfix-brackets": f"{stamp} mail postfix/smtpd[1]: " + _repeat_to("x[", size),
        "noqueue-semicolons": (
            f"{stamp} mail postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[{ip}]: "
            "554 5.7.1 <a>: Relay access denied; " + _repeat_to("from=<a> ", size)
        ),
        "dovecot-user-brackets": (
            f"{stamp} imap-login: Info: Aborted login (auth failed, 1 attempts): user=<"
            + _repeat_to("<>, rip=", size)
            + f">, method=PLAIN, rip={ip}"
        ),
        "passdb-commas": f"{stamp} auth: Info: passwd-file(" + _repeat_to("a,", size) + "): x",
        "pam-rhost": (
            f"{stamp} mail auth: pam_unix(dovecot:auth): authentication failure; logname= uid=0 "
            "euid=0 tty=dovecot ruser=" + _repeat_to("rhost= ", size) + f"rhost={ip}"
        ),
        "roundcube-from": (
            f"{stamp} mail roundcube: IMAP Error: Login failed for "
            + _repeat_to("a from ", size)
            + f"from {ip}."
        ),
    }
