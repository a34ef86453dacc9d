"""Signed commands on `mail.control` make the real Postfix and Dovecot refuse, and stop.

Each test gets its own control topic on the test broker, writes an adapter
config naming it, publishes commands signed with the test key, and runs the
real adapters (`mailwarden adapter postfix-policy|socketmap|dovecot-policy`)
as subprocesses on the lab's hook ports. What is asserted is what a client
and the daemons' logs show: the SMTP reply, the IMAP answer, the session that
ends, the `NOQUEUE: reject` line.

The dovecot-policy adapter runs in every test that authenticates: SMTP AUTH
goes through Dovecot too, and without an auth-policy server each
authentication waits for Dovecot's HTTP timeout (docs/mail-lab.md).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from mailwarden.config import Topics
from models.commands import Command, new_command
from streams.producer import new_producer
from tests.lab.clients import (
    ImapSession,
    LoginOutcome,
    SmtpProbe,
    Submission,
    fresh_client_ip,
    imap_login,
    submit,
)
from tests.support.mail_lab import MailLab, log_offset, wait_for_listener

pytestmark = [pytest.mark.mail_lab, pytest.mark.kafka]

ALICE = "alice@mailwarden.test"
BOB = "bob@mailwarden.test"
CAROL = "carol@mailwarden.test"
DAVE = "dave@mailwarden.test"
RULE = "lab-e2e"
LONG = 600.0
# The kind of text rules write for analysts; clients must never see it.
AUDIT_REASON = "30 submissions within 60 s (threshold 30)"


def ref(command: Command) -> str:
    """The reference a refused client is given for ``command``."""
    return f"(ref {command.id[:8]})"


# How long a command may take from publication to the first refusal before
# the test calls it lost. Measured values are far lower (docs/mail-lab.md).
PROPAGATION_DEADLINE = 10.0
KICK_DEADLINE = 5.0
ADAPTER_READY_TIMEOUT = 30.0
MAILWARDEN = Path(sys.executable).with_name("mailwarden")


class ControlPublisher:
    """Publishes commands to the control topic from its own thread and event loop."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._producer = self._call(self._started_producer(bootstrap))

    @staticmethod
    async def _started_producer(bootstrap: str) -> AIOKafkaProducer:
        # aiokafka binds a client to the running loop, so it is made inside that loop.
        producer = new_producer(bootstrap, client_id="mail-lab-e2e", linger_ms=0)
        await producer.start()
        return producer

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    def publish(self, command: Command) -> float:
        """Send and wait for the broker's ack; the monotonic time the send started."""
        started = time.monotonic()
        self._call(
            self._producer.send_and_wait(
                self.topic, command.to_json(), key=command.key.encode("utf-8")
            )
        )
        return started

    def close(self) -> None:
        self._call(self._producer.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@dataclass
class AdapterProcess:
    name: str
    port: int
    metrics_port: int
    process: subprocess.Popen[bytes]
    output: Path

    def output_text(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def metrics_text(self) -> str:
        """The adapter's Prometheus exposition; raises OSError while it does not serve it."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2
        ) as response:
            body: bytes = response.read()
        return body.decode()

    def caught_up(self) -> bool:
        """The adapter's own word (its metrics) that it has read the whole control topic."""
        try:
            text = self.metrics_text()
        except OSError:
            return False
        return any(
            float(line.split()[-1]) == 1
            for line in text.splitlines()
            if line.startswith("mailwarden_adapter_control_caught_up ")
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Enforcement:
    """The test's control topic, signing key, adapter config and running adapters."""

    lab: MailLab
    bootstrap: str
    topics: Topics
    workdir: Path
    signing_key: bytes = field(default_factory=lambda: secrets.token_hex(24).encode())
    adapters: list[AdapterProcess] = field(default_factory=list)
    _publisher: ControlPublisher | None = None

    @property
    def publisher(self) -> ControlPublisher:
        if self._publisher is None:
            self._publisher = ControlPublisher(self.bootstrap, self.topics.control)
        return self._publisher

    def command(
        self,
        action: str,
        subject_type: str,
        subject: str,
        *,
        reason: str | None = None,
        duration: float = LONG,
        releases: str | None = None,
    ) -> Command:
        """A command signed with the test key, issued now."""
        return new_command(
            action=action,
            subject_type=subject_type,
            subject=subject,
            rule=RULE,
            reason=reason if reason is not None else f"{action}: {AUDIT_REASON}",
            issued_epoch=time.time(),
            duration=duration,
            key=self.signing_key,
            releases=releases,
        )

    def publish(self, command: Command) -> float:
        return self.publisher.publish(command)

    def release(self, command: Command) -> float:
        lifted = self.command(
            "release", command.subject_type, command.subject, releases=command.action
        )
        return self.publish(lifted)

    def write_config(self) -> Path:
        ports = self.lab.ports
        host = self.lab.host
        values = {
            "kafka": {"bootstrap": self.bootstrap},
            "topics": {
                "events": self.topics.events,
                "events_by_ip": self.topics.events_by_ip,
                "alerts": self.topics.alerts,
                "control": self.topics.control,
                "deadletter": self.topics.deadletter,
            },
            "signing": {"key": self.signing_key.decode()},
            "adapters.postfix_policy": {"listen": f"{host}:{ports.policy}"},
            "adapters.socketmap": {"listen": f"{host}:{ports.socketmap}"},
            "adapters.dovecot_policy": {
                "listen": f"{host}:{ports.authpolicy}",
                "doveadm_config": str(self.lab.doveadm_config),
            },
        }
        path = self.workdir / "mailwarden.toml"
        path.write_text(_toml(values))
        return path

    def start(self, *names: str) -> None:
        """Start adapters and wait until each listens and has read the whole control topic."""
        config = self.write_config()
        ports = {
            "postfix-policy": self.lab.ports.policy,
            "socketmap": self.lab.ports.socketmap,
            "dovecot-policy": self.lab.ports.authpolicy,
        }
        started = []
        for name, metrics_port in zip(names, _free_ports(len(names)), strict=True):
            output = self.workdir / f"{name}.log"
            command = [str(MAILWARDEN), "adapter", name, "--config", str(config)]
            with output.open("wb") as sink:
                process = subprocess.Popen(
                    [*command, "--metrics-port", str(metrics_port)],
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                )
            started.append(AdapterProcess(name, ports[name], metrics_port, process, output))
        self.adapters.extend(started)
        for adapter in started:
            self._wait_ready(adapter)

    def _wait_ready(self, adapter: AdapterProcess) -> None:
        deadline = time.monotonic() + ADAPTER_READY_TIMEOUT
        while not adapter.caught_up():
            code = adapter.process.poll()
            if code is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"adapter {adapter.name} not caught up with the control topic "
                    f"(exit code {code})\n--- its output ---\n{adapter.output_text()[-3000:]}"
                )
            time.sleep(0.05)
        wait_for_listener(adapter.port, timeout=ADAPTER_READY_TIMEOUT)

    def close(self) -> None:
        for adapter in self.adapters:
            adapter.stop()
        if self._publisher is not None:
            self._publisher.close()


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _toml(sections: dict[str, dict[str, str]]) -> str:
    """TOML for our own string values (JSON strings are valid TOML basic strings)."""
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
        lines.append("")
    return "\n".join(lines)


@pytest.fixture
def enforcement(
    mail_lab: MailLab, kafka_bootstrap: str, unique_topics: Topics, tmp_path: Path
) -> Iterator[Enforcement]:
    setup = Enforcement(mail_lab, kafka_bootstrap, unique_topics, tmp_path)
    try:
        yield setup
    finally:
        setup.close()


def poll_until(
    probe: Callable[[], Any], done: Callable[[Any], bool], deadline: float, what: str
) -> tuple[Any, float]:
    """Call ``probe`` until ``done`` accepts its result; the result and when it came."""
    limit = time.monotonic() + deadline
    while True:
        result = probe()
        if done(result):
            return result, time.monotonic()
        if time.monotonic() > limit:
            raise AssertionError(f"{what}: still {result!r} after {deadline} s")
        time.sleep(0.02)


def _refused(outcome: LoginOutcome) -> bool:
    return not outcome.ok


# ---------------------------------------------------------------- (a) suspend_smtp


def test_suspend_smtp_read_at_start_makes_postfix_refuse_carol(
    mail_lab: MailLab, enforcement: Enforcement
) -> None:
    suspension = enforcement.command("suspend_smtp", "account", CAROL)
    enforcement.publish(suspension)
    enforcement.start("dovecot-policy", "postfix-policy")
    carol_ip, alice_ip = fresh_client_ip(), fresh_client_ip()
    since = log_offset(mail_lab.postfix_log)

    carol_message = Submission(CAROL, ["victim@example.net"])
    carol = submit(
        mail_lab.host,
        mail_lab.ports.submission,
        carol_ip,
        CAROL,
        mail_lab.password(CAROL),
        carol_message,
    )
    alice_message = Submission(ALICE, ["friend@example.net"])
    alice = submit(
        mail_lab.host,
        mail_lab.ports.submission,
        alice_ip,
        ALICE,
        mail_lab.password(ALICE),
        alice_message,
    )

    assert carol.stage == "rcpt" and 500 <= carol.code < 600, carol
    assert f"account suspended {ref(suspension)}" in carol.text, carol
    assert "threshold" not in carol.text
    mail_lab.wait_for_log(
        mail_lab.postfix_log,
        lambda line: (
            f"NOQUEUE: reject: RCPT from unknown[{carol_ip}]: {carol.code} " in line
            and f"from=<{CAROL}>" in line
        ),
        since=since,
    )
    assert alice.accepted, alice
    mail_lab.wait_for_sink(lambda m: alice_message.message_id in str(m["data"]))
    # Alice's message was sent after Carol's attempt, so Carol's would be there by now.
    assert not any(carol_message.message_id in str(m["data"]) for m in mail_lab.sink_messages())


def test_suspend_smtp_makes_the_sasl_access_socketmap_refuse_carol(
    mail_lab: MailLab, enforcement: Enforcement
) -> None:
    enforcement.start("dovecot-policy", "socketmap")
    suspension = enforcement.command("suspend_smtp", "account", CAROL)
    enforcement.publish(suspension)
    probe = SmtpProbe(
        mail_lab.host,
        mail_lab.ports.submission_map,
        fresh_client_ip(),
        CAROL,
        mail_lab.password(CAROL),
    )
    try:
        (code, text), _ = poll_until(
            lambda: probe.rcpt("victim@example.net"),
            lambda reply: reply[0] != 250,
            PROPAGATION_DEADLINE,
            "carol's RCPT through the socketmap",
        )
    finally:
        probe.close()

    assert code == 554, text
    assert f"SASL login name rejected: account suspended {ref(suspension)}" in text, text
    assert "threshold" not in text
    alice = submit(
        mail_lab.host,
        mail_lab.ports.submission_map,
        fresh_client_ip(),
        ALICE,
        mail_lab.password(ALICE),
        Submission(ALICE, ["friend@example.net"]),
    )
    assert alice.accepted, alice


# ---------------------------------------------------------------- (b) block_ip


def test_block_ip_makes_dovecot_refuse_logins_from_that_address(
    mail_lab: MailLab, enforcement: Enforcement, record_property: Callable[[str, object], None]
) -> None:
    enforcement.start("dovecot-policy")
    blocked, other = fresh_client_ip(), fresh_client_ip()
    since = log_offset(mail_lab.dovecot_log)

    block = enforcement.command("block_ip", "ip", blocked)
    published = enforcement.publish(block)
    (outcome, attempt_started), _ = poll_until(
        lambda: _timed_imap_login(mail_lab, blocked, ALICE),
        lambda timed: not timed[0].ok,
        PROPAGATION_DEADLINE,
        f"IMAP login from blocked {blocked}",
    )
    record_property("block_ip_to_refusal_s", round(attempt_started - published, 4))

    assert f"client address blocked {ref(block)}" in outcome.text, outcome
    assert "threshold" not in outcome.text
    mail_lab.wait_for_log(
        mail_lab.dovecot_log,
        lambda line: (
            f"policy({ALICE},{blocked}," in line
            and "Authentication failure due to policy server refusal" in line
        ),
        since=since,
    )
    assert imap_login(mail_lab.host, mail_lab.ports.imap, other, ALICE, mail_lab.password(ALICE)).ok


def _timed_imap_login(mail_lab: MailLab, ip: str, user: str) -> tuple[LoginOutcome, float]:
    started = time.monotonic()
    outcome = imap_login(mail_lab.host, mail_lab.ports.imap, ip, user, mail_lab.password(user))
    return outcome, started


# ---------------------------------------------------------------- (c) suspend_login


def test_suspend_login_refuses_daves_new_logins(
    mail_lab: MailLab, enforcement: Enforcement, record_property: Callable[[str, object], None]
) -> None:
    enforcement.start("dovecot-policy")
    ip = fresh_client_ip()
    since = log_offset(mail_lab.dovecot_log)

    suspension = enforcement.command("suspend_login", "account", DAVE)
    published = enforcement.publish(suspension)
    (refusal, attempt_started), _ = poll_until(
        lambda: _timed_imap_login(mail_lab, ip, DAVE),
        lambda timed: not timed[0].ok,
        PROPAGATION_DEADLINE,
        "dave's IMAP login",
    )
    record_property("suspend_login_to_refusal_s", round(attempt_started - published, 4))

    assert f"account suspended {ref(suspension)}" in refusal.text, refusal
    assert "threshold" not in refusal.text
    mail_lab.wait_for_log(
        mail_lab.dovecot_log,
        lambda line: f"policy({DAVE},{ip}," in line and "policy server refusal" in line,
        since=since,
    )


def test_suspend_login_ends_daves_open_session(mail_lab: MailLab, enforcement: Enforcement) -> None:
    enforcement.start("dovecot-policy")
    session_ip = fresh_client_ip()
    session = ImapSession(mail_lab.host, mail_lab.ports.imap, session_ip)
    try:
        assert session.login(DAVE, mail_lab.password(DAVE)).ok
        session.select_inbox()
        assert session.idle().startswith("+")

        enforcement.publish(enforcement.command("suspend_login", "account", DAVE))
        lines, ended = session.wait_until_closed(timeout=KICK_DEADLINE)
    finally:
        session.logout()

    assert ended is not None, (
        f"dave's IMAP session from {session_ip} is still open {KICK_DEADLINE} s "
        f"after suspend_login (server said {lines!r})"
    )
    assert any(line.startswith("* BYE") for line in lines), lines


# ---------------------------------------------------------------- (d) release and expiry


def test_release_lifts_suspend_smtp_and_both_take_effect_within_seconds(
    mail_lab: MailLab, enforcement: Enforcement, record_property: Callable[[str, object], None]
) -> None:
    enforcement.start("dovecot-policy", "postfix-policy")

    cycles = [_suspend_then_release(mail_lab, enforcement) for _ in range(5)]

    record_property("suspend_smtp_to_refusal_s", [round(c[0], 4) for c in cycles])
    record_property("release_to_acceptance_s", [round(c[1], 4) for c in cycles])
    message = Submission(ALICE, ["friend@example.net"])
    outcome = submit(
        mail_lab.host,
        mail_lab.ports.submission,
        fresh_client_ip(),
        ALICE,
        mail_lab.password(ALICE),
        message,
    )
    assert outcome.accepted, outcome
    mail_lab.wait_for_sink(lambda m: message.message_id in str(m["data"]))


def _suspend_then_release(mail_lab: MailLab, enforcement: Enforcement) -> tuple[float, float]:
    """Suspend alice, see Postfix refuse her, release her, see it accept her again.

    Returns the seconds from each publication to the first answer that obeyed it.
    """
    probe = SmtpProbe(
        mail_lab.host, mail_lab.ports.submission, fresh_client_ip(), ALICE, mail_lab.password(ALICE)
    )
    try:
        assert probe.rcpt("friend@example.net")[0] == 250
        suspension = enforcement.command("suspend_smtp", "account", ALICE)
        published = enforcement.publish(suspension)
        (code, text), refused_at = poll_until(
            lambda: probe.rcpt("friend@example.net"),
            lambda reply: reply[0] != 250,
            PROPAGATION_DEADLINE,
            "alice's RCPT after suspend_smtp",
        )
        assert code == 554 and f"account suspended {ref(suspension)}" in text, (code, text)
        released = enforcement.release(suspension)
        _, accepted_at = poll_until(
            lambda: probe.rcpt("friend@example.net"),
            lambda reply: reply[0] == 250,
            PROPAGATION_DEADLINE,
            "alice's RCPT after release",
        )
    finally:
        probe.close()
    return refused_at - published, accepted_at - released


def test_an_expired_suspend_login_stops_refusing(
    mail_lab: MailLab, enforcement: Enforcement
) -> None:
    enforcement.start("dovecot-policy")
    ip = fresh_client_ip()
    suspension = enforcement.command("suspend_login", "account", BOB, duration=3.0)
    enforcement.publish(suspension)

    refusal, _ = poll_until(
        lambda: imap_login(mail_lab.host, mail_lab.ports.imap, ip, BOB, mail_lab.password(BOB)),
        _refused,
        PROPAGATION_DEADLINE,
        "bob's IMAP login under suspend_login",
    )
    assert f"account suspended {ref(suspension)}" in refusal.text, refusal
    time.sleep(max(0.0, suspension.expires_epoch - time.time()))

    after = imap_login(
        mail_lab.host, mail_lab.ports.imap, fresh_client_ip(), BOB, mail_lab.password(BOB)
    )
    assert after.ok, after


# ---------------------------------------------------------------- (e) deny_insecure


def test_deny_insecure_refuses_plaintext_imap_but_not_tls_until_released(
    mail_lab: MailLab, enforcement: Enforcement
) -> None:
    enforcement.start("dovecot-policy")
    password = mail_lab.password(CAROL)
    # Not 127.0.0.1: Dovecot calls a client on the server's own address secured.
    ip = fresh_client_ip()
    since = log_offset(mail_lab.dovecot_log)

    denial = enforcement.command("deny_insecure", "account", CAROL)
    enforcement.publish(denial)
    refusal, _ = poll_until(
        lambda: imap_login(mail_lab.host, mail_lab.ports.imap, ip, CAROL, password),
        _refused,
        PROPAGATION_DEADLINE,
        "carol's plaintext IMAP login under deny_insecure",
    )

    assert f"encryption required {ref(denial)}" in refusal.text, refusal
    assert "threshold" not in refusal.text
    mail_lab.wait_for_log(
        mail_lab.dovecot_log,
        lambda line: f"policy({CAROL},{ip}," in line and "policy server refusal" in line,
        since=since,
    )
    # The same account from the same address, on the same port, after STARTTLS.
    starttls = imap_login(
        mail_lab.host, mail_lab.ports.imap, ip, CAROL, password, starttls="TLSv1.3"
    )
    assert starttls.ok, starttls
    imaps = imap_login(
        mail_lab.host,
        mail_lab.ports.imaps,
        fresh_client_ip(),
        CAROL,
        password,
        implicit_tls="TLSv1.2",
    )
    assert imaps.ok, imaps
    (adapter,) = enforcement.adapters
    counted = [
        float(line.split()[-1])
        for line in adapter.metrics_text().splitlines()
        if line.startswith('mailwarden_adapter_refusals_total{action="deny_insecure"} ')
    ]
    assert counted and counted[0] >= 1, counted

    enforcement.release(denial)
    # A fresh address per attempt: Dovecot delays logins after failures from one address.
    after, _ = poll_until(
        lambda: imap_login(mail_lab.host, mail_lab.ports.imap, fresh_client_ip(), CAROL, password),
        lambda outcome: outcome.ok,
        PROPAGATION_DEADLINE,
        "carol's plaintext IMAP login after the release",
    )
    assert after.ok, after
