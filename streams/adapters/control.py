"""Keep an :class:`ActiveCommands` fed from `mail.control`, through broker outages.

Every adapter instance reads the whole control topic from the beginning, on
its own: no consumer group, no committed offsets, so two adapters never share
(or steal) partitions and a restarted adapter rebuilds the full state.

Readiness: the end offsets seen when the partitions are first assigned are the
target; once every partition's position has reached its target the consumer
is *caught up* (``caught_up``, :meth:`ControlConsumer.wait_caught_up`). Until
then the adapter already answers from what it has read -- an answer from a
partial history is better than none, and the metric and log say so.

Broker outages: the adapter keeps answering from the last known state. A
periodic probe (the end offsets, which also give the lag) notices the broker
is gone and says so once in the log; after a few failed probes, or when the
consumer cannot start, the client is rebuilt with exponential backoff and
resumes at the positions it had reached.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError

from models.commands import Command
from models.enforcement import ActiveCommands
from streams.adapters.clients import stop_client

log = logging.getLogger(__name__)

FETCH_TIMEOUT_MS = 500
FETCH_MAX_RECORDS = 2000
PRUNE_INTERVAL = 60.0
DETAIL_LIMIT = 200


class ControlTopicMissing(RuntimeError):
    """The control topic does not exist (yet): retried like an outage."""


@dataclass(slots=True)
class ControlSettings:
    """Timings of the consumer; the defaults suit production, tests shorten them."""

    retry_initial: float = 0.5
    retry_max: float = 30.0
    probe_interval: float = 5.0
    probe_timeout: float = 5.0
    # Failed probes in a row after which the client is rebuilt.
    probe_failures_to_reconnect: int = 3
    request_timeout_ms: int = 15000


@dataclass(slots=True)
class ControlStatus:
    """What the adapter can say about its view of `mail.control`."""

    connected: bool = False
    caught_up: bool = False
    lag: int | None = None
    tombstones: int = 0
    reconnects: int = 0
    started_at: float = field(default_factory=time.monotonic)
    caught_up_after: float | None = None


class ControlConsumer:
    """Reads `mail.control` from the start into ``active``; run with :meth:`run`."""

    def __init__(
        self,
        active: ActiveCommands,
        bootstrap: str,
        topic: str,
        *,
        settings: ControlSettings | None = None,
        clock: Callable[[], float] = time.time,
        client_id: str = "mailwarden-adapter",
        on_applied: Callable[[Command], None] | None = None,
    ) -> None:
        self.active = active
        self.on_applied = on_applied
        self.bootstrap = bootstrap
        self.topic = topic
        self.settings = settings or ControlSettings()
        self.status = ControlStatus()
        self._clock = clock
        self._client_id = f"{client_id}-{uuid.uuid4().hex[:8]}"
        self._positions: dict[TopicPartition, int] = {}
        self._targets: dict[TopicPartition, int] | None = None
        self._caught_up = asyncio.Event()
        self._last_prune = 0.0
        self._ever_connected = False

    @property
    def caught_up(self) -> bool:
        return self.status.caught_up

    async def wait_caught_up(self, timeout: float | None = None) -> bool:
        """True once caught up; False if ``timeout`` seconds passed first."""
        try:
            await asyncio.wait_for(self._caught_up.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        """Consume until cancelled, reconnecting with backoff after failures."""
        delay = self.settings.retry_initial
        while True:
            # Subscribed without a group: all partitions, no offsets committed,
            # each new partition read from the start.
            consumer = AIOKafkaConsumer(
                self.topic,
                bootstrap_servers=self.bootstrap,
                client_id=self._client_id,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                request_timeout_ms=self.settings.request_timeout_ms,
            )
            try:
                try:
                    await consumer.start()
                except UnknownTopicOrPartitionError as exc:
                    raise ControlTopicMissing(f"topic {self.topic!r} does not exist") from exc
                partitions = await self._assign(consumer)
                self._mark_connected(True)
                delay = self.settings.retry_initial
                await self._consume(consumer, partitions)
            except (KafkaError, OSError, ControlTopicMissing, TimeoutError) as exc:
                self._mark_connected(False, exc)
            except Exception as exc:
                # A client bug must not freeze the commands in force: rebuild.
                log.exception("unexpected error reading %s", self.topic)
                self._mark_connected(False, exc)
            finally:
                await stop_client(consumer)
            self.status.reconnects += 1
            log.info("reconnecting to %s in %.1f s", self.bootstrap, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.retry_max)

    async def _assign(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        partitions = sorted(consumer.assignment())
        if not partitions:
            raise ControlTopicMissing(f"topic {self.topic!r} has no partitions")
        for tp in partitions:
            if tp in self._positions:
                consumer.seek(tp, self._positions[tp])
        if self._targets is None:
            self._targets = dict(await consumer.end_offsets(partitions))
            log.info(
                "reading %s from the start up to its end offsets now: %s",
                self.topic,
                ", ".join(f"{tp.partition}:{end}" for tp, end in sorted(self._targets.items())),
            )
        return partitions

    async def _consume(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        failed_probes = 0
        next_probe = time.monotonic() + self.settings.probe_interval
        while True:
            batches = await consumer.getmany(
                timeout_ms=FETCH_TIMEOUT_MS, max_records=FETCH_MAX_RECORDS
            )
            now = self._clock()
            for tp, records in batches.items():
                for record in records:
                    self._apply(record, now)
                if records:
                    self._positions[tp] = records[-1].offset + 1
            if not self.status.caught_up:
                await self._check_caught_up(consumer, partitions)
            if now - self._last_prune >= PRUNE_INTERVAL:
                self._last_prune = now
                self.active.prune(now)
            if time.monotonic() >= next_probe:
                next_probe = time.monotonic() + self.settings.probe_interval
                if await self._probe(consumer, partitions):
                    failed_probes = 0
                else:
                    failed_probes += 1
                    if failed_probes >= self.settings.probe_failures_to_reconnect:
                        raise TimeoutError(f"{failed_probes} probes of {self.bootstrap} failed")

    def _apply(self, record: ConsumerRecord[bytes, bytes], now: float) -> None:
        if record.value is None:
            # A tombstone carries no signature: anyone able to write the topic
            # could send one, so it must not lift anything. Expiry does.
            self.status.tombstones += 1
            log.debug("ignored a tombstone at %s/%d", record.partition, record.offset)
            return
        result = self.active.apply(record.value, now)
        command = result.command
        if result.outcome == "rejected":
            log.warning(
                "ignored an unverifiable record at %d/%d: %r",
                record.partition,
                record.offset,
                result.detail[:DETAIL_LIMIT],
            )
        elif command is not None and result.outcome == "applied":
            if self.on_applied is not None:
                self.on_applied(command)
            log.log(
                self._state_log_level(),
                "applied %s %s %r until %s (rule %s, id %s)",
                command.action,
                command.subject_type,
                command.subject,
                command.expires_at,
                command.rule,
                command.id,
            )
        elif command is not None and result.outcome == "released":
            log.log(
                self._state_log_level(),
                "released %s %s %r (rule %s, id %s)",
                command.releases,
                command.subject_type,
                command.subject,
                command.rule,
                command.id,
            )

    def _state_log_level(self) -> int:
        # Replaying the history at start would flood the log; live changes do not.
        return logging.INFO if self.status.caught_up else logging.DEBUG

    async def _check_caught_up(
        self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
    ) -> None:
        targets = self._targets or {}
        for tp in partitions:
            if await self._position(consumer, tp) < targets.get(tp, 0):
                return
        self.status.caught_up = True
        self.status.caught_up_after = time.monotonic() - self.status.started_at
        self._caught_up.set()
        stats = self.active.stats
        log.info(
            "caught up with %s in %.2f s: %d records, %d commands in force, %d rejected",
            self.topic,
            self.status.caught_up_after,
            stats.records,
            len(self.active),
            stats.rejected_total,
        )

    async def _probe(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> bool:
        try:
            ends = await asyncio.wait_for(
                consumer.end_offsets(partitions), self.settings.probe_timeout
            )
        except (KafkaError, OSError, TimeoutError) as exc:
            self._mark_connected(False, exc)
            return False
        self._mark_connected(True)
        lag = 0
        for tp in partitions:
            lag += max(0, ends.get(tp, 0) - await self._position(consumer, tp))
        self.status.lag = lag
        return True

    async def _position(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
        """The next offset to read in ``tp``, as the client knows it.

        Asked rather than derived from the last record, because a fetch can
        move past offsets that hold no record (compaction, control records).
        """
        position = int(await asyncio.wait_for(consumer.position(tp), self.settings.probe_timeout))
        self._positions[tp] = position
        return position

    def _mark_connected(self, connected: bool, error: BaseException | None = None) -> None:
        if connected and not self.status.connected:
            log.info("reading %s from %s", self.topic, self.bootstrap)
            self._ever_connected = True
        elif not connected and (self.status.connected or not self._ever_connected):
            log.warning(
                "%s %s at %s (%s); answering from the %d commands known",
                "lost" if self._ever_connected else "cannot read",
                self.topic,
                self.bootstrap,
                str(error) or type(error).__name__,
                len(self.active),
            )
        self.status.connected = connected
