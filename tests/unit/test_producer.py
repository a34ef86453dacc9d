"""Re-sending what the broker did not acknowledge, against a scripted stand-in producer.

The real producer only fails this way during an outage (the integration test
freezes the broker); here each delivery's outcome is chosen, so every branch
of the re-send logic runs deterministically.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import (
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    TopicAuthorizationFailedError,
)
from aiokafka.partitioner import DefaultPartitioner

from streams.producer import Record, ResilientSender, deliver_all

EVENT = Record("mail.events", b"alice", b'{"kind": "auth"}')
DEAD = Record("mail.deadletter", b"alice", b'{"type": "deadletter"}')


@dataclass
class ScriptedProducer:
    """Each send's delivery ends with the next outcome: None (acknowledged) or an error."""

    outcomes: list[BaseException | None]
    sent: list[Record] = field(default_factory=list)

    async def send(
        self, topic: str, value: bytes | None, key: bytes | None = None, partition: Any = None
    ) -> asyncio.Future[None]:
        self.sent.append(Record(topic, key, value, partition))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is None:
            future.set_result(None)
        else:
            future.set_exception(outcome)
        return future


async def settle(sender: ResilientSender) -> asyncio.Task[None]:
    task = asyncio.create_task(sender.resend_failed())
    await asyncio.sleep(0.05)
    return task


async def test_a_delivery_that_timed_out_is_sent_again_until_acknowledged() -> None:
    producer = ScriptedProducer([KafkaTimeoutError(), KafkaTimeoutError(), None])
    sender = ResilientSender(producer, on_refused=lambda r, e: None, retry_pause=0.01)
    pending = await sender.send(EVENT)
    assert not pending.delivered
    task = await settle(sender)
    task.cancel()
    assert pending.delivered
    assert producer.sent == [EVENT, EVENT, EVENT]
    assert sender.stats.resent == 2
    assert sender.stats.last_failure == "KafkaTimeoutError"


async def test_a_refused_event_is_replaced_by_its_dead_letter() -> None:
    producer = ScriptedProducer([MessageSizeTooLargeError(), None])
    sender = ResilientSender(producer, on_refused=lambda r, e: DEAD)
    pending = await sender.send(EVENT)
    task = await settle(sender)
    task.cancel()
    assert producer.sent == [EVENT, DEAD]
    assert pending.delivered
    assert sender.stats.refused == 1


async def test_a_refused_record_without_replacement_is_given_up_not_retried() -> None:
    producer = ScriptedProducer([MessageSizeTooLargeError()])
    sender = ResilientSender(producer, on_refused=lambda r, e: None)
    pending = await sender.send(DEAD)
    task = await settle(sender)
    task.cancel()
    assert producer.sent == [DEAD]
    assert pending.abandoned and pending.delivered


@dataclass
class StandInBatch:
    """Holds ``capacity`` records, like a batch builder whose byte budget is spent."""

    capacity: int
    records: list[tuple[bytes | None, bytes | None]] = field(default_factory=list)
    closed: bool = False

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: None) -> object:
        if self.closed or (self.records and len(self.records) >= self.capacity):
            return None
        self.records.append((key, value))
        return object()

    def close(self) -> None:
        self.closed = True


@dataclass
class BrokerLikeProducer:
    """Fails deliveries the way Kafka does: a batch as a whole.

    The first ``outages`` deliveries time out (the broker is away); then any
    delivery holding a value in ``refused`` is refused for good. Topics in
    ``forbidden`` refuse every use, their metadata included.
    """

    partitions: int = 4
    batch_capacity: int = 2
    outages: int = 0
    refused: frozenset[bytes] = frozenset()
    forbidden: frozenset[str] = frozenset()
    batches: list[tuple[str, int, list[tuple[bytes | None, bytes | None]]]] = field(
        default_factory=list
    )
    sent: list[Record] = field(default_factory=list)
    acknowledged: list[bytes | None] = field(default_factory=list)

    async def partitions_for(self, topic: str) -> set[int]:
        if topic in self.forbidden:
            raise TopicAuthorizationFailedError(topic)
        return set(range(self.partitions))

    def create_batch(self) -> StandInBatch:
        return StandInBatch(self.batch_capacity)

    async def send_batch(
        self, batch: StandInBatch, topic: str, *, partition: int
    ) -> asyncio.Future[None]:
        assert batch.closed, "a batch is closed before it is handed over"
        self.batches.append((topic, partition, list(batch.records)))
        return self._deliver([value for _, value in batch.records])

    async def send(
        self, topic: str, value: bytes | None, key: bytes | None = None, partition: Any = None
    ) -> asyncio.Future[None]:
        if topic in self.forbidden:
            raise TopicAuthorizationFailedError(topic)
        self.sent.append(Record(topic, key, value, partition))
        return self._deliver([value])

    def _deliver(self, values: list[bytes | None]) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.outages:
            self.outages -= 1
            future.set_exception(KafkaTimeoutError())
        elif any(value in self.refused for value in values):
            future.set_exception(MessageSizeTooLargeError())
        else:
            self.acknowledged.extend(values)
            future.set_result(None)
        return future


def kafka_partition(key: bytes, partitions: int) -> int:
    """Where the Java client and aiokafka's own partitioner put ``key``."""
    every = list(range(partitions))
    return int(DefaultPartitioner()(key, every, every))


async def test_deliver_all_batches_records_by_the_partition_kafka_would_choose() -> None:
    keys = [f"user{n}@example.org".encode() for n in range(12)]
    records = [Record("mail.alerts", key, b"alert-" + key) for key in keys]
    records.append(Record("account-state-changelog", b"bob", b"{}", partition=2))
    producer = BrokerLikeProducer(partitions=3, batch_capacity=2)
    assert await deliver_all(producer, records, retry_pause=0.01) == 0
    assert producer.sent == []
    assert sorted(producer.acknowledged, key=repr) == sorted((r.value for r in records), key=repr)
    placed = {
        key: (topic, partition) for topic, partition, batch in producer.batches for key, _ in batch
    }
    for key in keys:
        assert placed[key] == ("mail.alerts", kafka_partition(key, 3))
    assert placed[b"bob"] == ("account-state-changelog", 2)
    assert all(len(batch) <= 2 for _, _, batch in producer.batches)
    for partition in range(3):
        in_partition = [
            key for topic, p, batch in producer.batches if p == partition for key, _ in batch
        ]
        expected = [k for k in keys if kafka_partition(k, 3) == partition]
        if partition == 2:
            expected.append(b"bob")
        assert in_partition == expected


async def test_records_without_a_key_of_one_delivery_share_a_partition() -> None:
    records = [Record("mail.deadletter", None, f"dead{n}".encode()) for n in range(5)]
    producer = BrokerLikeProducer(batch_capacity=10)
    await deliver_all(producer, records, retry_pause=0.01)
    assert len(producer.batches) == 1
    assert [value for _, value in producer.batches[0][2]] == [r.value for r in records]


async def test_deliver_all_waits_out_timeouts_and_skips_only_the_refused_record() -> None:
    first, refused, third = (Record("mail.events", b"alice", v) for v in (b"1", b"2", b"3"))
    producer = BrokerLikeProducer(batch_capacity=10, outages=1, refused=frozenset({b"2"}))
    skipped = await deliver_all(producer, [first, refused, third], retry_pause=0.01)
    assert skipped == 1
    # Timed out, then refused as a batch, then one by one: the other two get through.
    assert [batch for _, _, batch in producer.batches] == [
        [(b"alice", b"1"), (b"alice", b"2"), (b"alice", b"3")]
    ] * 2
    assert producer.sent == [first, refused, third]
    assert producer.acknowledged == [b"1", b"3"]


async def test_a_record_for_a_topic_the_broker_forbids_is_skipped_and_the_rest_delivered() -> None:
    allowed = Record("mail.alerts", b"alice", b"alert")
    forbidden = Record("mail.secret", b"alice", b"secret")
    producer = BrokerLikeProducer(forbidden=frozenset({"mail.secret"}))
    assert await deliver_all(producer, [forbidden, allowed], retry_pause=0.01) == 1
    assert producer.acknowledged == [b"alert"]
