"""The idempotent producer mailwarden programs publish with, and sends that survive outages.

Records are produced with ``acks=all`` and idempotence on, so a retry inside
the client never duplicates a record. What the client gives up on (a batch
that expired while the broker was away) comes back as a failed
:class:`PendingSend`, and :class:`ResilientSender` sends it again: a broker
outage delays records, it does not drop them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.partitioner import murmur2

log = logging.getLogger(__name__)

# Broker limit for one record (message.max.bytes default, 1 MiB) with room to spare.
MAX_RECORD_BYTES = 1_000_000


@dataclass(slots=True, frozen=True)
class Record:
    """A record to produce; ``value`` None is a tombstone, ``partition`` None: by key."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None


@dataclass(slots=True)
class PendingSend:
    """A record handed to the producer, and the future of its acknowledgement."""

    record: Record
    future: asyncio.Future[Any] | None = None
    replaced: bool = False
    abandoned: bool = False

    @property
    def delivered(self) -> bool:
        """Acknowledged by the broker, or given up on after an error was logged."""
        if self.abandoned:
            return True
        future = self.future
        return (
            future is not None
            and future.done()
            and not future.cancelled()
            and future.exception() is None
        )


def new_producer(
    bootstrap: str,
    *,
    client_id: str,
    linger_ms: int = 5,
    request_timeout_ms: int = 30_000,
) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=linger_ms,
        request_timeout_ms=request_timeout_ms,
        max_request_size=MAX_RECORD_BYTES + 64 * 1024,
    )


def is_retriable(exc: BaseException) -> bool:
    """Errors that pass when the broker is back, as opposed to a record the broker refuses."""
    if isinstance(exc, KafkaTimeoutError | asyncio.CancelledError):
        # A cancelled delivery future: the record was not acknowledged, so send it again.
        return True
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))


async def start_producer(
    factory: Callable[[], AIOKafkaProducer],
    bootstrap: str,
    stop: asyncio.Event,
    retry_every: float = 2.0,
) -> AIOKafkaProducer | None:
    """Start a producer, retrying while the broker is unreachable; None if stopped first."""
    warned = False
    while not stop.is_set():
        producer = factory()
        try:
            await producer.start()
            if warned:
                log.info("broker %s is reachable again", bootstrap)
            return producer
        except KafkaError as exc:
            await producer.stop()
            if not warned:
                log.warning("broker %s unavailable (%s); retrying", bootstrap, exc)
            warned = True
        try:
            await asyncio.wait_for(stop.wait(), retry_every)
        except TimeoutError:
            continue
    return None


async def deliver_all(
    producer: AIOKafkaProducer, records: Sequence[Record], retry_pause: float = 1.0
) -> int:
    """Send ``records`` and wait until the broker has acknowledged each of them.

    Retriable failures (the broker is away) are sent again until they pass, so
    the caller blocks through an outage; a record the broker refuses for good
    is logged and skipped. Returns how many were skipped.

    Records go out as one batch per topic partition (split where a batch is
    full) rather than one ``send`` each, which cost as much CPU as a worker's
    rules. A batch fails as a whole, so the records of a refused batch are
    sent again one by one to find the refused record and keep the others.
    """
    pending = list(records)
    skipped = 0
    while pending:
        retry = []
        for group, outcome in await _send_batches(producer, pending, retry_pause):
            if outcome is None:
                continue
            if is_retriable(outcome):
                retry.extend(group)
                continue
            results = await _send_each(producer, group, retry_pause)
            for record, result in zip(group, results, strict=True):
                if not isinstance(result, BaseException):
                    continue
                if is_retriable(result):
                    retry.append(record)
                else:
                    skipped += 1
                    log.error(
                        "the broker refused a record for %s, skipped: %r", record.topic, result
                    )
        if retry:
            log.warning("%d records not acknowledged (broker unavailable?); retrying", len(retry))
            await asyncio.sleep(retry_pause)
        pending = retry
    return skipped


async def _send_batches(
    producer: AIOKafkaProducer, records: Sequence[Record], retry_pause: float
) -> list[tuple[list[Record], BaseException | None]]:
    """Hand ``records`` to the producer in batches; each batch's records and its outcome."""
    by_partition, unroutable = await _group_by_partition(producer, records, retry_pause)
    handed: list[tuple[list[Record], asyncio.Future[Any]]] = []
    for (topic, partition), group in by_partition.items():
        for batch_records, batch in _fill_batches(producer, group):
            future = await _submit_batch(producer, batch, topic, partition, retry_pause)
            handed.append((batch_records, future))
    results = await asyncio.gather(*(future for _, future in handed), return_exceptions=True)
    outcomes = [
        (batch_records, result if isinstance(result, BaseException) else None)
        for (batch_records, _), result in zip(handed, results, strict=True)
    ]
    return outcomes + unroutable


async def _group_by_partition(
    producer: AIOKafkaProducer, records: Sequence[Record], retry_pause: float
) -> tuple[dict[tuple[str, int], list[Record]], list[tuple[list[Record], BaseException]]]:
    """Records by the partition they go to, in their order; and those of unknown topics.

    A keyed record goes where Kafka's default partitioner puts it (murmur2 of
    the key over all the topic's partitions); the records without a key of
    one call share a random partition, as Kafka's sticky partitioner does.
    """
    partitions: dict[str, list[int] | BaseException] = {}
    unkeyed: dict[str, int] = {}
    grouped: dict[tuple[str, int], list[Record]] = {}
    unroutable: dict[str, tuple[list[Record], BaseException]] = {}
    for record in records:
        partition = record.partition
        if partition is None:
            if record.topic not in partitions:
                partitions[record.topic] = await _partitions_of(producer, record.topic, retry_pause)
            known = partitions[record.topic]
            if isinstance(known, BaseException):
                unroutable.setdefault(record.topic, ([], known))[0].append(record)
                continue
            if record.key is None:
                partition = unkeyed.setdefault(record.topic, random.choice(known))
            else:
                partition = known[(murmur2(record.key) & 0x7FFFFFFF) % len(known)]
        grouped.setdefault((record.topic, partition), []).append(record)
    return grouped, list(unroutable.values())


async def _partitions_of(
    producer: AIOKafkaProducer, topic: str, retry_pause: float
) -> list[int] | BaseException:
    """The topic's partitions, waiting out an unreachable broker; the error if it has none."""
    while True:
        try:
            return sorted(await producer.partitions_for(topic))
        except Exception as exc:
            if not is_retriable(exc):
                return exc
            log.warning("no partitions known for %s yet: %r", topic, exc)
            await asyncio.sleep(retry_pause)


def _fill_batches(
    producer: AIOKafkaProducer, records: list[Record]
) -> list[tuple[list[Record], Any]]:
    """The records of one partition in closed batches (closed: sent without lingering)."""
    batches: list[tuple[list[Record], Any]] = []
    batch_records: list[Record] = []
    batch = producer.create_batch()
    for record in records:
        if batch.append(key=record.key, value=record.value, timestamp=None) is None:
            # Full: the first record of a batch always fits, however large.
            batch.close()
            batches.append((batch_records, batch))
            batch_records, batch = [], producer.create_batch()
            batch.append(key=record.key, value=record.value, timestamp=None)
        batch_records.append(record)
    batch.close()
    batches.append((batch_records, batch))
    return batches


async def _submit_batch(
    producer: AIOKafkaProducer, batch: Any, topic: str, partition: int, retry_pause: float
) -> asyncio.Future[Any]:
    while True:
        try:
            future: asyncio.Future[Any] = await producer.send_batch(
                batch, topic, partition=partition
            )
            return future
        except Exception as exc:
            if not is_retriable(exc):
                return _failed(exc)
            log.warning("cannot hand a batch for %s to the producer: %r", topic, exc)
            await asyncio.sleep(retry_pause)


async def _send_each(
    producer: AIOKafkaProducer, records: Sequence[Record], retry_pause: float
) -> list[Any]:
    """Send records one at a time; each one's acknowledgement or error."""
    futures = [await _send_when_possible(producer, record, retry_pause) for record in records]
    return await asyncio.gather(*futures, return_exceptions=True)


def _failed(exc: BaseException) -> asyncio.Future[Any]:
    failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    failed.set_exception(exc)
    return failed


async def _send_when_possible(
    producer: AIOKafkaProducer, record: Record, retry_pause: float
) -> asyncio.Future[Any]:
    while True:
        try:
            future: asyncio.Future[Any] = await producer.send(
                record.topic, record.value, key=record.key, partition=record.partition
            )
            return future
        except Exception as exc:
            if not is_retriable(exc):
                return _failed(exc)
            log.warning("cannot hand a record for %s to the producer: %r", record.topic, exc)
            await asyncio.sleep(retry_pause)


@dataclass(slots=True)
class SendStats:
    resent: int = 0
    refused: int = 0
    last_failure: str | None = None
    failing_since: float | None = None


@dataclass
class ResilientSender:
    """Send records, re-sending those whose delivery failed for a retriable reason.

    ``on_refused`` gets a record the broker will never take (too large, invalid
    topic) and returns a replacement to send instead (a dead letter), or None.
    """

    producer: AIOKafkaProducer
    on_refused: Callable[[Record, BaseException], Record | None]
    clock: Callable[[], float] = time.monotonic
    retry_pause: float = 1.0
    stats: SendStats = field(default_factory=SendStats)
    _retry: asyncio.Queue[PendingSend] = field(default_factory=asyncio.Queue, init=False)

    async def send(self, record: Record) -> PendingSend:
        pending = PendingSend(record)
        await self._submit(pending)
        return pending

    async def _submit(self, pending: PendingSend) -> None:
        """Hand the record to the producer, waiting out an unreachable broker."""
        while True:
            record = pending.record
            try:
                future = await self.producer.send(
                    record.topic, record.value, key=record.key, partition=record.partition
                )
            except Exception as exc:
                if not is_retriable(exc):
                    if self._refused(pending, exc):
                        continue
                    return
                self._failing(exc)
                await asyncio.sleep(self.retry_pause)
                continue
            pending.future = future
            future.add_done_callback(lambda done, p=pending: self._on_done(p, done))
            return

    def _on_done(self, pending: PendingSend, future: asyncio.Future[Any]) -> None:
        if future is not pending.future:
            return
        if future.cancelled():
            self._retry.put_nowait(pending)
            return
        exc = future.exception()
        if exc is None:
            self.stats.failing_since = None
        elif is_retriable(exc):
            self._failing(exc)
            self._retry.put_nowait(pending)
        elif self._refused(pending, exc):
            self._retry.put_nowait(pending)

    def _failing(self, exc: BaseException) -> None:
        name, detail = type(exc).__name__, str(exc)
        self.stats.last_failure = f"{name}: {detail}" if detail and detail != name else name
        if self.stats.failing_since is None:
            self.stats.failing_since = self.clock()

    def _refused(self, pending: PendingSend, exc: BaseException) -> bool:
        """Swap a record the broker refuses for its replacement; False when there is none."""
        self.stats.refused += 1
        replacement = None if pending.replaced else self.on_refused(pending.record, exc)
        if replacement is None:
            log.error(
                "the broker refused a record for %s and there is no replacement, giving up: %s",
                pending.record.topic,
                exc,
            )
            pending.abandoned = True
            return False
        pending.record = replacement
        pending.replaced = True
        return True

    async def resend_failed(self) -> None:
        """Run forever: send again every record whose delivery failed."""
        while True:
            batch = [await self._retry.get()]
            while not self._retry.empty():
                batch.append(self._retry.get_nowait())
            if self.stats.failing_since is not None:
                await asyncio.sleep(self.retry_pause)
            for pending in batch:
                self.stats.resent += 1
                await self._submit(pending)
