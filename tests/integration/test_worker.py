"""The Faust worker as a subprocess against the real broker: events in, decisions out."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from mailwarden.config import Topics
from models.commands import verify_command
from models.events import Event, Origin, iso_utc
from tests.integration.running import (
    SIGNING_KEY,
    Program,
    collect,
    mailwarden,
    produce,
    values,
    write_config,
)
from tests.support.kafka import TEST_PARTITIONS

pytestmark = pytest.mark.kafka

T0 = 1_790_000_000.0
VICTIM = "victim@example.org"
SPRAYER = "203.0.113.7"


def submission(user: str, epoch: float, line: int) -> Event:
    return Event(
        ts=iso_utc(epoch),
        epoch=epoch,
        host="mx1",
        source="postfix",
        kind="submission",
        protocol="smtp",
        user=user,
        client_ip="198.51.100.20",
        queue_id=f"Q{line:08X}",
        origin=Origin(path="/var/log/mail.log", line=line, host="mx1", offset=line * 100),
    )


def failed_login(user: str, ip: str, epoch: float, line: int) -> Event:
    return Event(
        ts=iso_utc(epoch),
        epoch=epoch,
        host="mx1",
        source="dovecot",
        kind="auth",
        outcome="failure",
        protocol="imap",
        user=user,
        client_ip=ip,
        origin=Origin(path="/var/log/dovecot.log", line=line, host="mx1", offset=line * 100),
    )


def keyed(events: list[Event]) -> list[tuple[bytes | None, bytes]]:
    return [((e.key or "").encode() or None, e.to_json()) for e in events]


def start_worker(tmp_path: Path, bootstrap: str, topics: Topics, app_id: str) -> Program:
    config = write_config(tmp_path, bootstrap, topics, TEST_PARTITIONS, name="worker")
    log = tmp_path / "worker.log"
    return Program(mailwarden("worker", "--config", str(config), "--app-id", app_id), log, None)


def has_action(action: str) -> Callable[[list[ConsumerRecord]], bool]:
    return lambda records: any(v.get("action") == action for v in values(records))


async def test_burst_of_submissions_suspends_smtp_and_bad_records_go_to_deadletter(
    tmp_path: Path, kafka_bootstrap: str, unique_topics: Topics
) -> None:
    burst = [submission(VICTIM, T0 + i, i) for i in range(40)]
    await produce(kafka_bootstrap, unique_topics.events, [(b"junk", b"{not json")])
    await produce(kafka_bootstrap, unique_topics.events, keyed(burst))
    worker = start_worker(tmp_path, kafka_bootstrap, unique_topics, f"mw-{uuid.uuid4().hex[:8]}")
    try:
        control = await collect(
            kafka_bootstrap,
            unique_topics.control,
            until=has_action("suspend_smtp"),
            timeout=90,
            program=worker,
        )
        alerts = await collect(
            kafka_bootstrap, unique_topics.alerts, until=bool, timeout=30, program=worker
        )
        dead = await collect(
            kafka_bootstrap, unique_topics.deadletter, until=bool, timeout=30, program=worker
        )
        await asyncio.sleep(2)
        control = await collect(
            kafka_bootstrap, unique_topics.control, until=bool, timeout=10, program=worker
        )
    finally:
        worker.stop()

    assert len(control) == 1, "the rule fires once per episode"
    command = verify_command(control[0].value, SIGNING_KEY.encode())
    assert (command.action, command.subject_type, command.subject) == (
        "suspend_smtp",
        "account",
        VICTIM,
    )
    assert control[0].key == command.key.encode()
    # The 30th submission (threshold) is the one that decided.
    assert command.issued_epoch == T0 + 29
    alert = values(alerts)[0]
    assert alert["rule"]["name"] == "smtp_burst"
    assert alert["user"]["name"] == VICTIM
    assert alerts[0].key == VICTIM.encode()
    letter = values(dead)[0]
    assert letter["line"] == "{not json"
    assert "not a usable event" in letter["reason"]
    assert letter["origin"]["topic"] == unique_topics.events


async def test_spraying_many_accounts_from_one_ip_blocks_the_ip(
    tmp_path: Path, kafka_bootstrap: str, unique_topics: Topics
) -> None:
    spray = [failed_login(f"user{i}@example.org", SPRAYER, T0 + i, i) for i in range(12)]
    # No IP rule reads submissions: this one, ahead of user0's failure in the same
    # partition, must not be forwarded by IP.
    sent_mail = replace(submission("user0@example.org", T0 - 1, 100), client_ip=SPRAYER)
    await produce(kafka_bootstrap, unique_topics.events, keyed([sent_mail, *spray]))
    worker = start_worker(tmp_path, kafka_bootstrap, unique_topics, f"mw-{uuid.uuid4().hex[:8]}")
    try:
        control = await collect(
            kafka_bootstrap,
            unique_topics.control,
            until=has_action("block_ip"),
            timeout=90,
            program=worker,
        )
        alerts = await collect(
            kafka_bootstrap, unique_topics.alerts, until=bool, timeout=30, program=worker
        )
        by_ip = await collect(
            kafka_bootstrap,
            unique_topics.events_by_ip,
            until=lambda records: len(records) >= 12,
            timeout=30,
            program=worker,
        )
    finally:
        worker.stop()

    commands = [verify_command(record.value, SIGNING_KEY.encode()) for record in control]
    assert [(c.action, c.subject) for c in commands] == [("block_ip", SPRAYER)]
    assert not commands[0].dry_run
    # Accounts hash to different partitions of mail.events, so the IP agent sees
    # them in no particular order: whichever account came 10th decided.
    alert = values(alerts)[0]
    assert alert["rule"]["name"] == "password_spray"
    assert alert["mailwarden"]["distinct"]["accounts"]["count"] == 10
    # Forwarded under the /24 of the IP, so one worker sees the whole prefix.
    assert {record.key for record in by_ip} == {b"203.0.113.0/24"}
    assert [v["kind"] for v in values(by_ip)] == ["auth"] * len(by_ip)


async def committed_total(bootstrap: str, group: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        total = 0
        for partition in range(TEST_PARTITIONS):
            offset = await consumer.committed(TopicPartition(topic, partition))
            total += offset or 0
        return total
    finally:
        await consumer.stop()


async def test_state_survives_a_restart_through_the_table_changelog(
    tmp_path: Path, kafka_bootstrap: str, unique_topics: Topics
) -> None:
    app_id = f"mw-{uuid.uuid4().hex[:8]}"
    first = [submission(VICTIM, T0 + i, i) for i in range(20)]
    second = [submission(VICTIM, T0 + 20 + i, 20 + i) for i in range(15)]
    await produce(kafka_bootstrap, unique_topics.events, keyed(first))
    worker = start_worker(tmp_path, kafka_bootstrap, unique_topics, app_id)
    try:
        deadline = time.monotonic() + 90
        while await committed_total(kafka_bootstrap, app_id, unique_topics.events) < 20:
            assert worker.alive(), worker.output()
            assert time.monotonic() < deadline, worker.output()[-5000:]
            await asyncio.sleep(0.5)
    finally:
        assert worker.stop() == 0, worker.output()[-5000:]

    # 20 + 15 submissions cross the threshold of 30 only if the first 20 were restored.
    await produce(kafka_bootstrap, unique_topics.events, keyed(second))
    again = start_worker(tmp_path, kafka_bootstrap, unique_topics, app_id)
    try:
        control = await collect(
            kafka_bootstrap,
            unique_topics.control,
            until=has_action("suspend_smtp"),
            timeout=90,
            program=again,
        )
    finally:
        again.stop()
    command = orjson.loads(control[0].value)
    assert command["subject"] == VICTIM
    assert command["issued_epoch"] == T0 + 29
