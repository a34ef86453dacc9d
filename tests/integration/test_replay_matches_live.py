"""Replay and the live pipeline decide the same on the same log (issue #4).

One realistic log of one mail host (benign IMAP logins and submissions, a
password spray from one IP, a brute force on one account, a hijacked account
sending a burst, an account whose mail bounces) goes (1) through
``mailwarden replay`` and (2) through ``mailwarden tail --from-start`` and
``mailwarden worker`` on the test broker, with the same signing key and the
default policy. Command ids are derived from the decision (rule, action,
subject, event time), so the two sets of ids must be equal; alerts are
compared by rule, account, source IP and event time. The worker delivers at
least once, so duplicates are allowed: sets are compared, not lists.

The sprayed accounts are chosen on one partition of ``mail.events``. The
worker counts a spray in its IP agent, which sees the attacking prefix's
events in the order the account agent forwards them; across events
partitions that is not event-time order, so the event that completes the
tenth distinct account, whose time is part of the command id, may be another
one than in replay (seen: block_ip issued at 10:11:00 live, 10:13:00 in
replay). On one partition the forwarding order is the log order.

The stamps are ISO-8601 with an offset (rsyslog's high-precision format), so
no year is inferred from anyone's clock.
"""

from __future__ import annotations

import random
import subprocess
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from mailwarden.config import Topics
from streams.worker import key_partition
from tests.integration.running import (
    REPO,
    Program,
    mailwarden,
    running,
    values,
    write_config,
)
from tests.support.kafka import TEST_PARTITIONS

pytestmark = pytest.mark.kafka

HOST = "mx1"
SERVER_IP = "192.0.2.25"
START = datetime(2026, 3, 3, 10, 0, tzinfo=UTC).timestamp()
SEED = 20260303
SPRAYER = "203.0.113.50"
BRUTE_FORCER = "192.0.2.200"
BRUTE_FORCE_VICTIM = "ceo@example.org"
HIJACKED = "mara@example.org"
HIJACKER = "198.51.100.77"
BOUNCER = "shop@example.org"
BOUNCER_IP = "198.18.7.7"
LIVE_TIMEOUT = 120.0
# Alerts leave in the same batch as their commands: a short wait once those are in.
ALERTS_AFTER_COMMANDS = 15.0

AlertKey = tuple[str, str | None, str | None, str]


@dataclass
class MailLog:
    """Timestamped lines of one host, written out in time order."""

    rng: random.Random
    lines: list[tuple[float, int, str]] = field(default_factory=list)
    queue_ids: int = 0

    def add(self, epoch: float, program: str, message: str) -> None:
        # The sequence number keeps lines of one instant in the order they were added.
        self.lines.append((epoch, len(self.lines), f"{program}: {message}"))

    def write(self, path: Path) -> int:
        with path.open("w", encoding="utf-8") as out:
            for epoch, _, text in sorted(self.lines):
                stamp = datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="microseconds")
                out.write(f"{stamp} {HOST} {text}\n")
        return len(self.lines)

    def session(self) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        return "".join(self.rng.choice(alphabet) for _ in range(16))

    def imap_login(self, epoch: float, user: str, ip: str) -> None:
        self.add(
            epoch,
            "dovecot",
            f"imap-login: Login: user=<{user}>, method=PLAIN, rip={ip}, lip={SERVER_IP}, "
            f"mpid={self.rng.randint(1000, 60000)}, TLS, TLSv1.3 with cipher "
            f"TLS_AES_256_GCM_SHA384 (256/256 bits), session=<{self.session()}>",
        )

    def imap_failure(self, epoch: float, user: str, ip: str) -> None:
        self.add(
            epoch,
            "dovecot",
            "imap-login: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): "
            f"user=<{user}>, method=PLAIN, rip={ip}, lip={SERVER_IP}, TLS, "
            f"session=<{self.session()}>",
        )

    def sasl_failure(self, epoch: float, user: str, ip: str) -> None:
        self.add(
            epoch,
            f"postfix/submission/smtpd[{self.rng.randint(1000, 60000)}]",
            f"warning: unknown[{ip}]: SASL PLAIN authentication failed: "
            f"authentication failure, sasl_username={user}",
        )

    def message(self, epoch: float, user: str, ip: str, recipient: str, status: str) -> None:
        """One submitted message: smtpd, qmgr, one delivery attempt, removal."""
        self.queue_ids += 1
        queue_id = f"{0x4F2A000000 + self.queue_ids:010X}"
        smtpd = f"postfix/submission/smtpd[{self.rng.randint(1000, 60000)}]"
        self.add(epoch, smtpd, f"{queue_id}: client=unknown[{ip}], sasl_method=PLAIN, "
                 f"sasl_username={user}")  # fmt: skip
        self.add(epoch + 0.2, "postfix/qmgr[1200]",
                 f"{queue_id}: from=<{user}>, size={self.rng.randint(900, 90000)}, "
                 "nrcpt=1 (queue active)")  # fmt: skip
        relay = "mx.example.net[198.51.100.20]:25"
        if status == "sent":
            detail = "dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 9A8B7C)"
        else:
            detail = (
                "dsn=5.1.1, status=bounced (host mx.example.net[198.51.100.20] said: 550 5.1.1 "
                f"<{recipient}>: Recipient address rejected: User unknown "
                "(in reply to RCPT TO command))"
            )
        delivered = epoch + self.rng.uniform(0.5, 3.0)
        self.add(delivered, f"postfix/smtp[{self.rng.randint(1000, 60000)}]",
                 f"{queue_id}: to=<{recipient}>, relay={relay}, delay=1.1, "
                 f"delays=0.1/0/0.5/0.5, {detail}")  # fmt: skip
        self.add(delivered + 0.1, "postfix/qmgr[1200]", f"{queue_id}: removed")


def realistic_log(path: Path) -> int:
    """Write an hour of one host's log with four attacks in it; return the line count."""
    rng = random.Random(SEED)
    log = MailLog(rng)
    users = [f"user{n:03d}@example.org" for n in range(80)]
    for n, user in enumerate(users):
        ip = f"198.18.{n // 200}.{n % 200 + 1}"
        at = START + rng.uniform(0, 3300)
        if rng.random() < 0.1:  # a typo, then the right password
            log.imap_failure(at - 5, user, ip)
        log.imap_login(at, user, ip)
        for _ in range(rng.randint(1, 3)):
            at += rng.uniform(30, 300)
            log.message(at, user, ip, f"friend{rng.randint(0, 999)}@example.net", "sent")
    # Password spray: one IP, one guess on each of 15 accounts, 20 s apart. The
    # accounts share one events partition (see the module docstring).
    partition = key_partition(users[0].encode(), TEST_PARTITIONS)
    same_partition = [u for u in users if key_partition(u.encode(), TEST_PARTITIONS) == partition]
    for n, user in enumerate(rng.sample(same_partition, 15)):
        log.imap_failure(START + 600 + 20 * n, user, SPRAYER)
    # Brute force: 25 guesses on one account from one IP (an alert, never a suspension).
    for n in range(25):
        log.sasl_failure(START + 1200 + 6 * n, BRUTE_FORCE_VICTIM, BRUTE_FORCER)
    # A stolen password sending spam: 40 messages in 40 s.
    for n in range(40):
        log.message(START + 1800 + n, HIJACKED, HIJACKER, f"target{n}@example.net", "sent")
    # Bounce storm: 30 messages over 15 minutes, 24 of them bounce.
    for n in range(30):
        status = "bounced" if n % 5 else "sent"
        log.message(START + 2400 + 30 * n, BOUNCER, BOUNCER_IP, f"old{n}@example.net", status)
    return log.write(path)


def replay_decisions(log_path: Path, config: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        mailwarden("replay", str(log_path), "--config", str(config), "--host", HOST),
        cwd=REPO,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    return [orjson.loads(line) for line in result.stdout.splitlines() if line]


def command_ids(decisions: list[dict[str, Any]]) -> set[str]:
    return {d["id"] for d in decisions if d.get("type") == "command"}


def alert_keys(decisions: list[dict[str, Any]]) -> set[AlertKey]:
    return {
        (
            d["rule"]["name"],
            d.get("user", {}).get("name"),
            d.get("source", {}).get("ip"),
            d["@timestamp"],
        )
        for d in decisions
        if d.get("type") == "alert"
    }


def describe(decisions: list[dict[str, Any]]) -> str:
    rows = sorted(
        (d["rule"], d["action"], d["subject"], d["issued_at"], d["id"])
        for d in decisions
        if d.get("type") == "command"
    )
    return "\n".join(" ".join(row) for row in rows)


async def live_decisions(
    bootstrap: str,
    topic: str,
    count: int,
    key: Callable[[list[dict[str, Any]]], set[Any]],
    programs: tuple[Program, ...],
    timeout: float,
) -> list[dict[str, Any]]:
    """Read ``topic`` until ``count`` distinct decisions (by ``key``) or ``timeout``.

    What arrived by then is returned either way, so that a failing comparison
    shows what live decided.
    """
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    decisions: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(key(decisions)) < count and time.monotonic() < deadline:
            for program in programs:
                assert program.alive(), program.output()[-5000:]
            batches = await consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                decisions.extend(values(batch))
    finally:
        await consumer.stop()
    return decisions


async def test_replay_and_live_issue_the_same_commands(
    tmp_path: Path, kafka_bootstrap: str, unique_topics: Topics
) -> None:
    log_path = tmp_path / "mail.log"
    assert realistic_log(log_path) > 500
    config = write_config(tmp_path, kafka_bootstrap, unique_topics, TEST_PARTITIONS, name="same")

    replayed = replay_decisions(log_path, config)
    replayed_ids = command_ids(replayed)
    replayed_actions = {d["action"] for d in replayed if d.get("type") == "command"}
    assert {"block_ip", "suspend_smtp"} <= replayed_actions, describe(replayed)
    replayed_alerts = alert_keys(replayed)

    app_id = f"same-{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack:
        worker = stack.enter_context(
            running(
                mailwarden("worker", "--config", str(config), "--app-id", app_id),
                tmp_path / "worker.log",
            )
        )
        tail = stack.enter_context(
            running(
                mailwarden(
                    "tail", str(log_path), "--config", str(config), "--host", HOST, "--from-start"
                ),
                tmp_path / "tail.log",
            )
        )
        programs = (worker, tail)
        live = await live_decisions(
            kafka_bootstrap,
            unique_topics.control,
            len(replayed_ids),
            command_ids,
            programs,
            LIVE_TIMEOUT,
        )
        live_alerts = await live_decisions(
            kafka_bootstrap,
            unique_topics.alerts,
            len(replayed_alerts),
            alert_keys,
            programs,
            ALERTS_AFTER_COMMANDS,
        )

    assert command_ids(live) == replayed_ids, (
        f"replay:\n{describe(replayed)}\nlive:\n{describe(live)}"
    )
    assert alert_keys(live_alerts) == replayed_alerts
