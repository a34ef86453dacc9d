"""The publisher against the real broker: log lines in, events and dead letters out."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from mailwarden.config import Topics
from streams.broker import KafkaBroker
from streams.checkpoint import CheckpointStore
from streams.follower import FilePosition
from streams.producer import new_producer
from streams.publisher import Publisher, PublisherSettings
from tests.integration.publishing import HOST, config_for, publishing
from tests.integration.running import collect, mailwarden, running, values, write_config
from tests.support.kafka import TEST_PARTITIONS

pytestmark = pytest.mark.kafka


def submission_line(n: int, user: str = "alice@example.org") -> bytes:
    return (
        f"Nov 27 05:{n // 60 % 60:02d}:{n % 60:02d} mail postfix/submission/smtpd[17022]: "
        f"{n:011X}: client=unknown[203.0.113.5], sasl_method=PLAIN, sasl_username={user}\n"
    ).encode()


def failed_sasl_line(n: int, ip: str = "198.51.100.9") -> bytes:
    return (
        f"Nov 27 06:00:{n % 60:02d} mail postfix/submission/smtpd[17023]: warning: "
        f"unknown[{ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6\n"
    ).encode()


def append(path: Path, *lines: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(b"".join(lines))


FAR = FilePosition(device=0, inode=0, offset=0, line=-1, head="")


async def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.1)


def with_count(count: int) -> Callable[[list[Any]], bool]:
    return lambda records: len(records) >= count


async def test_events_carry_account_keys_and_their_origin(
    tmp_path: Path, kafka_bootstrap: str, unique_topics: Topics
) -> None:
    log = tmp_path / "mail.log"
    lines = [submission_line(1), failed_sasl_line(2), submission_line(3, "bob@example.org")]
    append(log, *lines)
    config = config_for(tmp_path, kafka_bootstrap, unique_topics)
    async with publishing(config, log) as publisher:
        records = await collect(
            kafka_bootstrap, unique_topics.events, until=with_count(3), timeout=30
        )
    events = sorted(values(records), key=lambda e: e["origin"]["line"])
    keys = {record.key for record in records}
    assert keys == {b"alice@example.org", b"bob@example.org", b"198.51.100.9"}
    assert [(e["kind"], e["user"]) for e in events] == [
        ("submission", "alice@example.org"),
        ("auth", None),
        ("submission", "bob@example.org"),
    ]
    offsets = [0, len(lines[0]), len(lines[0]) + len(lines[1])]
    assert [e["origin"] for e in events] == [
        {"path": str(log), "line": n + 1, "host": HOST, "offset": offsets[n]} for n in range(3)
    ]
    assert publisher.stats.events == 3
    assert publisher.stats.deadletters == 0


async def test_rename_rotation_loses_no_line(
    tmp_path: Path, kafka_bootstrap: str, unique_topics: Topics
) -> None:
    log = tmp_path / "mail.log"
    append(log, submission_line(1), submission_line(2))
    config = config_for(tmp_path, kafka_bootstrap, unique_topics)
    async with publishing(config, log):
        await collect(kafka_bootstrap, unique_topics.events, until=with_count(2), timeout=30)
        log.rename(tmp_path / "mail.log.1")
        # The writer keeps using the renamed file until it reopens the path.
        append(tmp_path / "mail.log.1", submission_line(3))
        append(log, submission_line(4), submission_line(5))
        records = await collect(
            kafka_bootstrap, unique_topics.events, until=with_count(5), timeout=30
        )
    queue_ids = sorted(e["queue_id"] for e in values(records))
    assert queue_ids == [f"{n:011X}" for n in range(1, 6)]
    origins = sorted((e["origin"]["line"], e["origin"]["offset"]) for e in values(records))
    size = len(submission_line(1))
    assert origins == [(1, 0), (1, 0), (2, size), (2, size), (3, 2 * size)]


async def test_garbage_goes_to_the_deadletter_topic_with_its_reason(
    tmp_path: Path, kafka_bootstrap: str, unique_topics: Topics
) -> None:
    log = tmp_path / "mail.log"
    garbage = b"\xff\xfe not a log line at all\n"
    housekeeping = b"Nov 27 05:42:55 mail postfix/qmgr[17001]: 1F0E22121C7: removed\n"
    append(log, garbage, housekeeping, submission_line(7))
    config = config_for(tmp_path, kafka_bootstrap, unique_topics)
    async with publishing(config, log) as publisher:
        dead = await collect(
            kafka_bootstrap, unique_topics.deadletter, until=with_count(1), timeout=30
        )
        await collect(kafka_bootstrap, unique_topics.events, until=with_count(1), timeout=30)
    letter = values(dead)[0]
    assert letter["reason"]
    assert letter["line"] == garbage[:-1].decode("utf-8", "replace")
    assert base64.b64decode(letter["raw_b64"]) == garbage[:-1]
    assert letter["origin"] == {"path": str(log), "line": 1, "host": HOST, "offset": 0}
    assert letter["received_at"].endswith("+00:00")
    assert publisher.stats.ignored == Counter({"qmgr_removed": 1})
    assert publisher.stats.deadletters == 1


async def test_resume_from_checkpoint_neither_duplicates_nor_skips(
    tmp_path: Path, kafka_bootstrap: str, unique_topics: Topics
) -> None:
    log = tmp_path / "mail.log"
    append(log, *(submission_line(n) for n in range(1, 4)))
    config = config_for(tmp_path, kafka_bootstrap, unique_topics)
    async with publishing(config, log):
        await collect(kafka_bootstrap, unique_topics.events, until=with_count(3), timeout=30)
    # Stopped: lines written now must be published by the next run, once.
    append(log, *(submission_line(n) for n in range(4, 6)))
    async with publishing(config, log):
        await collect(kafka_bootstrap, unique_topics.events, until=with_count(5), timeout=30)
        append(log, submission_line(6))
        records = await collect(
            kafka_bootstrap, unique_topics.events, until=with_count(6), timeout=30
        )
        await asyncio.sleep(1)
    records = await collect(kafka_bootstrap, unique_topics.events, until=bool, timeout=10)
    lines = Counter(e["origin"]["line"] for e in values(records))
    assert lines == Counter({n: 1 for n in range(1, 7)})


async def test_tail_command_publishes_and_stops_cleanly_on_sigterm(
    tmp_path: Path, kafka_bootstrap: str, unique_topics: Topics
) -> None:
    log = tmp_path / "mail.log"
    append(log, submission_line(1))
    config = write_config(tmp_path, kafka_bootstrap, unique_topics, TEST_PARTITIONS, name="tail")
    command = mailwarden("tail", str(log), "--config", str(config), "--host", HOST, "--from-start")
    with running(command, tmp_path / "tail.log") as tail:
        await collect(
            kafka_bootstrap, unique_topics.events, until=with_count(1), timeout=30, program=tail
        )
        append(log, submission_line(2))
        records = await collect(
            kafka_bootstrap, unique_topics.events, until=with_count(2), timeout=30, program=tail
        )
        assert tail.stop() == 0, tail.output()
    assert "tail stopped: 2 lines" in tail.output()
    assert [e["origin"]["line"] for e in values(records)] == [1, 2]
    (checkpoint,) = (tmp_path / "state-tail" / "tail").glob("*.json")
    saved = orjson.loads(checkpoint.read_bytes())
    assert (saved["offset"], saved["line"]) == (log.stat().st_size, 2)


async def test_broker_outage_delays_lines_and_holds_the_checkpoint(
    tmp_path: Path, kafka_broker: KafkaBroker, unique_topics: Topics
) -> None:
    bootstrap = kafka_broker.bootstrap
    log = tmp_path / "mail.log"
    append(log, *(submission_line(n) for n in range(1, 6)))
    config = config_for(tmp_path, bootstrap, unique_topics)
    settings = PublisherSettings(host=HOST, timezone="UTC", from_start=True, poll_interval=0.05)
    publisher = Publisher(
        config,
        [log],
        settings,
        producer_factory=lambda: new_producer(
            bootstrap, client_id="outage", request_timeout_ms=2000
        ),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop))
    checkpoints = CheckpointStore(config.state_dir / "tail")
    try:
        await collect(bootstrap, unique_topics.events, until=with_count(5), timeout=30)
        await wait_until(lambda: (checkpoints.load(log) or FAR).line == 5)
        # A frozen broker: connections stay open, nothing is answered.
        os.kill(kafka_broker.pid, signal.SIGSTOP)
        try:
            append(log, *(submission_line(n) for n in range(6, 21)))
            await asyncio.sleep(4)
            assert publisher.waiting > 0
            assert (checkpoints.load(log) or FAR).line == 5
        finally:
            os.kill(kafka_broker.pid, signal.SIGCONT)
        records = await collect(bootstrap, unique_topics.events, until=with_count(20), timeout=60)
        await wait_until(lambda: (checkpoints.load(log) or FAR).line == 20)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    lines = Counter(e["origin"]["line"] for e in values(records))
    assert lines == Counter({n: 1 for n in range(1, 21)})
