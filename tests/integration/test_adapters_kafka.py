"""Adapters against the real broker: commands on mail.control in, answers out.

The control consumer and the protocol servers run in-process here (their
state can be inspected); one test runs the `mailwarden adapter` command as
production does, and one gives an adapter its own broker to take away.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from mailwarden.config import Topics
from models.commands import Command, new_command
from models.enforcement import ActiveCommands
from streams.adapters.control import ControlConsumer, ControlSettings
from streams.adapters.dovecot_policy import DovecotPolicyServer
from streams.adapters.postfix_policy import PostfixPolicyServer
from streams.adapters.report_sink import KafkaEventSink
from streams.broker import KafkaBroker
from streams.topics import ensure_topics
from tests.integration.running import SIGNING_KEY, Program, mailwarden, write_config
from tests.support.kafka import TEST_PARTITIONS

pytestmark = pytest.mark.kafka

KEY = SIGNING_KEY.encode()
ALICE = "alice@mailwarden.test"
BOB = "bob@mailwarden.test"
CAROL = "carol@mailwarden.test"
DAVE = "dave@mailwarden.test"
ATTACKER_IP = "127.0.0.23"
FAST = ControlSettings(
    retry_initial=0.2, retry_max=1.0, probe_interval=0.5, probe_timeout=2.0,
    request_timeout_ms=5000,
)  # fmt: skip
DEADLINE = 20.0


# What the rule wrote for analysts; clients must see a generic reply instead.
AUDIT_REASON = "25 submissions within 60 s (threshold 20)"


def refused(command: Command, phrase: str = "account suspended") -> str:
    """The policy answer (without ``action=``) for a refusal resting on ``command``."""
    return f"REJECT {phrase} (ref {command.id[:8]})"


def command(
    action: str,
    subject: str,
    subject_type: str = "account",
    *,
    key: bytes = KEY,
    dry_run: bool = False,
    releases: str | None = None,
) -> Command:
    return new_command(
        action=action,
        subject_type=subject_type,
        subject=subject,
        rule="integration",
        reason=AUDIT_REASON,
        issued_epoch=time.time(),
        duration=3600,
        key=key,
        dry_run=dry_run,
        releases=releases,
    )


async def publish(
    bootstrap: str, topic: str, *records: Command | tuple[bytes, bytes | None]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for record in records:
            if isinstance(record, Command):
                await producer.send_and_wait(topic, record.to_json(), key=record.key.encode())
            else:
                key, value = record
                await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


@asynccontextmanager
async def policy_adapter(
    bootstrap: str, topic: str, applied: list[Command] | None = None
) -> AsyncIterator[tuple[ControlConsumer, tuple[str, int]]]:
    active = ActiveCommands(KEY)
    control = ControlConsumer(
        active,
        bootstrap,
        topic,
        settings=FAST,
        on_applied=applied.append if applied is not None else None,
    )
    task = asyncio.create_task(control.run())
    server = PostfixPolicyServer(active)
    await server.start("127.0.0.1", 0)
    try:
        yield control, server.address
    finally:
        await server.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def ask(address: tuple[str, int], sasl_username: str, client_address: str) -> str:
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(
            f"request=smtpd_access_policy\nprotocol_state=RCPT\nsasl_username={sasl_username}\n"
            f"client_address={client_address}\n\n".encode()
        )
        reply = await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)
    finally:
        writer.close()
    return reply.decode().removeprefix("action=").strip()


async def answer_becomes(
    address: tuple[str, int], sasl_username: str, client_address: str, prefix: str
) -> str:
    deadline = time.monotonic() + DEADLINE
    while True:
        answer = await ask(address, sasl_username, client_address)
        if answer.startswith(prefix) or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.05)


async def test_policy_adapter_rebuilds_state_and_follows_live_commands(
    kafka_bootstrap: str, unique_topics: Topics
) -> None:
    suspend_alice = command("suspend_smtp", ALICE)
    block_attacker = command("block_ip", ATTACKER_IP, "ip")
    await publish(
        kafka_bootstrap,
        unique_topics.control,
        suspend_alice,
        block_attacker,
        command("suspend_smtp", BOB, key=b"not-the-signing-key"),
        command("suspend_smtp", CAROL, dry_run=True),
        (b"junk", b"not json at all"),
        (b"suspend_smtp|account|" + CAROL.encode(), None),  # an unsigned tombstone
    )
    applied: list[Command] = []
    async with policy_adapter(kafka_bootstrap, unique_topics.control, applied) as (
        control,
        address,
    ):
        assert await control.wait_caught_up(timeout=DEADLINE)
        assert await ask(address, ALICE, "192.0.2.1") == refused(suspend_alice)
        assert await ask(address, "", ATTACKER_IP) == refused(
            block_attacker, "client address blocked"
        )
        assert await ask(address, BOB, "192.0.2.1") == "DUNNO"
        assert await ask(address, CAROL, "192.0.2.1") == "DUNNO"
        stats = control.active.stats
        assert stats.rejected == {"bad signature": 1, "not JSON": 1}
        assert (stats.applied, stats.dry_run, control.status.tombstones) == (2, 1, 1)
        assert control.status.connected

        lift = command("release", ALICE, releases="suspend_smtp")
        await publish(kafka_bootstrap, unique_topics.control, lift)
        assert await answer_becomes(address, ALICE, "192.0.2.1", "DUNNO") == "DUNNO"
        await publish(kafka_bootstrap, unique_topics.control, command("suspend_login", DAVE))
        assert (await answer_becomes(address, DAVE, "192.0.2.1", "REJECT")).startswith("REJECT")
        await asyncio.sleep(FAST.probe_interval * 3)
        assert control.status.lag == 0
    # What a session kicker is handed: every command put in force, nothing else.
    assert sorted((c.action, c.subject) for c in applied) == [
        ("block_ip", ATTACKER_IP),
        ("suspend_login", DAVE),
        ("suspend_smtp", ALICE),
    ]


async def test_an_empty_control_topic_is_caught_up_at_once(
    kafka_bootstrap: str, unique_topics: Topics
) -> None:
    async with policy_adapter(kafka_bootstrap, unique_topics.control) as (control, address):
        assert await control.wait_caught_up(timeout=DEADLINE)
        assert await ask(address, ALICE, "192.0.2.1") == "DUNNO"


async def test_missing_control_topic_is_retried_until_it_exists(
    kafka_bootstrap: str, unique_topics: Topics
) -> None:
    topics = Topics(
        events=unique_topics.events + "-late",
        events_by_ip=unique_topics.events_by_ip + "-late",
        alerts=unique_topics.alerts + "-late",
        control=unique_topics.control + "-late",
        deadletter=unique_topics.deadletter + "-late",
    )
    async with policy_adapter(kafka_bootstrap, topics.control) as (control, address):
        assert not await control.wait_caught_up(timeout=1.0)
        assert not control.status.connected
        await ensure_topics(kafka_bootstrap, topics, TEST_PARTITIONS)
        await publish(kafka_bootstrap, topics.control, command("suspend_smtp", ALICE))
        assert await control.wait_caught_up(timeout=DEADLINE)
        assert (await answer_becomes(address, ALICE, "::1", "REJECT")).startswith("REJECT")


async def test_dovecot_reports_reach_mail_events(
    kafka_bootstrap: str, unique_topics: Topics
) -> None:
    sink = KafkaEventSink(kafka_bootstrap, unique_topics.events)
    publisher = asyncio.create_task(sink.run())
    server = DovecotPolicyServer(ActiveCommands(KEY), sink, host="mail")
    await server.start("127.0.0.1", 0)
    host, port = server.address
    report = {
        "device_id": "", "local": "127.0.0.1", "login": BOB, "mech": "PLAIN",
        "protocol": "imap", "pwhash": "0331", "remote": "127.0.0.42", "secured": "TLS",
        "session_id": "yaL6jTthWZt/AAAq", "success": True, "policy_reject": False, "tls": True,
    }  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            for _ in range(3):
                response = await client.post("/?command=report", json=report)
                assert response.json() == {"status": 0, "msg": ""}
        consumer = AIOKafkaConsumer(
            unique_topics.events, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            records: list[ConsumerRecord[bytes, bytes]] = []
            deadline = time.monotonic() + DEADLINE
            while len(records) < 3 and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                records += [r for batch in batches.values() for r in batch]
        finally:
            await consumer.stop()
    finally:
        await server.close()
        publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publisher
        await sink.close()
    assert len(records) == 3 and sink.stats.published == 3
    for record in records:
        assert record.key == BOB.encode()
        event = orjson.loads(record.value)
        assert event["source"] == "dovecot-policy" and event["kind"] == "auth_report"
        assert (event["user"], event["client_ip"], event["outcome"]) == (
            BOB,
            "127.0.0.42",
            "success",
        )
        assert (event["protocol"], event["tls"], event["host"]) == ("imap", "TLS", "mail")
        assert event["extra"] == {"pwhash": "0331", "policy_reject": False}
    assert sorted(orjson.loads(r.value)["origin"]["line"] for r in records) == [1, 2, 3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_mailwarden_adapter_command_against_the_broker(
    kafka_bootstrap: str, unique_topics: Topics, tmp_path: Path
) -> None:
    suspension = command("suspend_smtp", ALICE)
    await publish(kafka_bootstrap, unique_topics.control, suspension)
    config = write_config(tmp_path, kafka_bootstrap, unique_topics, TEST_PARTITIONS)
    phrase = "sending suspended, call the help desk"
    with config.open("a", encoding="utf-8") as file:
        file.write(f'\n[adapters.reply_texts]\nsuspend_smtp = "{phrase}"\n')
    port, metrics_port = free_port(), free_port()
    args = ["adapter", "postfix-policy", "--config", str(config)]
    args += ["--listen", f"127.0.0.1:{port}", "--metrics-port", str(metrics_port)]
    program = Program(mailwarden(*args), tmp_path / "adapter.log", env=None)
    try:
        deadline = time.monotonic() + DEADLINE * 2
        while "caught up with" not in program.output():
            assert time.monotonic() < deadline, program.output()
            assert program.process.poll() is None, program.output()
            await asyncio.sleep(0.1)
        assert await ask(("127.0.0.1", port), ALICE, "192.0.2.1") == refused(suspension, phrase)
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        assert "mailwarden_adapter_control_caught_up 1.0" in metrics
        assert 'mailwarden_adapter_control_records_total{outcome="applied"} 1.0' in metrics
        assert 'mailwarden_adapter_requests_total{decision="REJECT"} 1.0' in metrics
    finally:
        program.stop()
    assert "stopping postfix-policy" in program.output()


async def test_adapter_keeps_answering_while_its_broker_is_down_and_catches_up_after(
    tmp_path: Path,
) -> None:
    """The adapter's own broker stops, and comes back with the same data.

    It comes back on the second address of the adapter's bootstrap list: the
    first port is still in TIME_WAIT after the stop, and only a rebuilt client
    (not aiokafka's own reconnection to the known node) finds it there.
    """
    second_port = free_port()
    broker = await asyncio.to_thread(KafkaBroker.start, tmp_path / "kafka")
    bootstrap = f"{broker.bootstrap},127.0.0.1:{second_port}"
    topics = Topics(control="outage.mail.control")
    try:
        await ensure_topics(broker.bootstrap, topics, 1)
        suspension = command("suspend_smtp", ALICE)
        await publish(broker.bootstrap, topics.control, suspension)
        async with policy_adapter(bootstrap, topics.control) as (control, address):
            assert await control.wait_caught_up(timeout=DEADLINE)
            await asyncio.to_thread(broker.stop)
            deadline = time.monotonic() + DEADLINE
            while control.status.connected and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert not control.status.connected
            assert await ask(address, ALICE, "192.0.2.1") == refused(suspension)

            broker = await asyncio.to_thread(KafkaBroker.start, tmp_path / "kafka", second_port)
            lift = command("release", ALICE, releases="suspend_smtp")
            await publish(broker.bootstrap, topics.control, lift)
            assert await answer_becomes(address, ALICE, "192.0.2.1", "DUNNO") == "DUNNO"
            assert control.status.connected and control.status.reconnects >= 1
            assert control.active.stats.applied == 1 and control.active.stats.released == 1
    finally:
        await asyncio.to_thread(broker.stop)
