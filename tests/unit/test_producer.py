"""Re-sending what the broker did not acknowledge, against a scripted stand-in producer.

The real producer only fails this way during an outage (the integration test
freezes the broker); here each delivery's outcome is chosen, so every branch
of the re-send logic runs deterministically.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

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


async def test_deliver_all_waits_out_timeouts_and_skips_refusals() -> None:
    producer = ScriptedProducer([KafkaTimeoutError(), MessageSizeTooLargeError(), None])
    skipped = await deliver_all(producer, [EVENT, DEAD], retry_pause=0.01)
    assert skipped == 1
    assert producer.sent == [EVENT, DEAD, EVENT]
