"""Stopping aiokafka clients whose broker is gone, without losing our own task.

aiokafka's ``stop()`` cancels its internal fetch tasks and awaits them; when
the broker is unreachable that CancelledError escapes into the caller, which
would end the adapter's consumer loop as if it had been cancelled itself. The
stop runs in its own task, bounded in time, and its outcome is only logged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

log = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0


class KafkaClient(Protocol):
    async def stop(self) -> None: ...


async def stop_client(client: KafkaClient, timeout: float = STOP_TIMEOUT) -> None:
    """Stop ``client``; never raises except when the calling task is cancelled."""
    stopping = asyncio.ensure_future(client.stop())
    done, _ = await asyncio.wait([stopping], timeout=timeout)
    if not done:
        stopping.cancel()
        log.warning("a Kafka client did not stop within %.1f s; abandoned it", timeout)
    elif not stopping.cancelled() and stopping.exception() is not None:
        log.debug("a Kafka client stopped with %r", stopping.exception())
