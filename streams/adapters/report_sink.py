"""Publish the Dovecot adapter's report events to `mail.events`, off the request path.

Dovecot waits for the policy answer (``auth_policy_server_timeout_msecs``,
2 s by default), so a report is only queued in memory and answered at once; a
background task publishes the queue with an idempotent ``acks=all`` producer,
in batches. While the broker is away the queue holds up to ``capacity``
events and publishing retries with backoff; beyond that new events are
dropped, counted and logged, because refusing or delaying logins over a
monitoring feed would be worse. Events in the queue when the process stops
are flushed for a few seconds, and whatever is left is counted as lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from models.events import Event
from streams.adapters.clients import stop_client
from streams.producer import new_producer

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SinkStats:
    submitted: int = 0
    published: int = 0
    dropped: int = 0
    failed_attempts: int = 0


class KafkaEventSink:
    """A :class:`~streams.adapters.dovecot_policy.ReportSink` that publishes to Kafka."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        capacity: int = 10000,
        batch_size: int = 500,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.stats = SinkStats()
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=capacity)
        self._batch_size = batch_size
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._producer: AIOKafkaProducer | None = None
        self._inflight: list[Event] = []
        self._client_id = f"mailwarden-dovecot-policy-{uuid.uuid4().hex[:8]}"

    @property
    def pending(self) -> int:
        return self._queue.qsize() + len(self._inflight)

    def submit(self, event: Event) -> bool:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            return False
        self.stats.submitted += 1
        return True

    async def run(self) -> None:
        """Publish until cancelled."""
        delay = self._retry_initial
        while True:
            if not self._inflight:
                self._inflight = await self._next_batch()
            try:
                await self._publish_inflight()
                delay = self._retry_initial
            except (KafkaError, OSError) as exc:
                self.stats.failed_attempts += 1
                log.warning(
                    "could not publish %d report events to %s (%s: %s); retrying in %.1f s",
                    len(self._inflight),
                    self.topic,
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await self._drop_producer()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)

    async def close(self, flush_timeout: float = 5.0) -> None:
        """Flush what is queued (for at most ``flush_timeout`` s), then stop the producer."""
        while not self._queue.empty():
            self._inflight.append(self._queue.get_nowait())
        if self._inflight:
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                await asyncio.wait_for(self._publish_inflight(), flush_timeout)
        if self._inflight:
            log.error("lost %d report events not yet published", len(self._inflight))
            self.stats.dropped += len(self._inflight)
            self._inflight = []
        await self._drop_producer()

    async def _next_batch(self) -> list[Event]:
        batch = [await self._queue.get()]
        while len(batch) < self._batch_size and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _publish_inflight(self) -> None:
        """Send ``_inflight``; keep in it only what was not acknowledged."""
        producer = await self._started_producer()
        sent: list[tuple[Event, asyncio.Future[object]]] = []
        unsent: list[Event] = []
        error: KafkaError | None = None
        for index, event in enumerate(self._inflight):
            key = event.key.encode("utf-8", "surrogateescape") if event.key else None
            try:
                sent.append((event, await producer.send(self.topic, event.to_json(), key=key)))
            except KafkaError as exc:
                unsent, error = self._inflight[index:], exc
                break
        results = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
        failed = [
            event
            for (event, _), result in zip(sent, results, strict=True)
            if isinstance(result, BaseException)
        ]
        self.stats.published += len(sent) - len(failed)
        self._inflight = failed + unsent
        if error is not None:
            raise error
        if failed:
            raise KafkaError(f"{len(failed)} events were not acknowledged")

    async def _started_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = new_producer(
                self.bootstrap, client_id=self._client_id, request_timeout_ms=15000
            )
            try:
                await producer.start()
            except BaseException:
                await stop_client(producer)
                raise
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await stop_client(producer)
