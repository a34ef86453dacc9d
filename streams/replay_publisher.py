"""`mailwarden replay --to-kafka`: historic events onto `mail.events`, for a live worker.

The events go out in event-time order, keyed as the publisher keys live
events (account, else client IP), through the same idempotent producer with
``acks=all``; a batch is sent again until the broker has acknowledged it.
"""

from __future__ import annotations

from collections.abc import Iterable

from mailwarden.config import Topics
from models.events import Event
from streams.producer import Record, deliver_all, new_producer
from streams.topics import ensure_topics

BATCH = 2000


async def publish_events(
    bootstrap: str, topics: Topics, partitions: int, events: Iterable[Event]
) -> int:
    """Publish ``events`` to the events topic; return how many the broker acknowledged."""
    await ensure_topics(bootstrap, topics, partitions)
    producer = new_producer(bootstrap, client_id="mailwarden-replay")
    await producer.start()
    sent = 0
    try:
        batch: list[Record] = []
        for event in events:
            key = event.key
            batch.append(Record(topics.events, key.encode() if key else None, event.to_json()))
            if len(batch) >= BATCH:
                sent += len(batch) - await deliver_all(producer, batch)
                batch = []
        if batch:
            sent += len(batch) - await deliver_all(producer, batch)
    finally:
        await producer.stop()
    return sent
