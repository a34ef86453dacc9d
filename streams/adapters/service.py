"""Run one adapter process: control consumer, protocol server, metrics, clean stop.

The server starts listening at once and answers from whatever part of
`mail.control` has been read (see ``control.py`` on readiness); SIGTERM or
SIGINT close the listener, stop the consumer and flush background work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from mailwarden.config import Config
from models.commands import Command
from models.enforcement import ActiveCommands
from streams.adapters.control import ControlConsumer
from streams.adapters.metrics import AdapterMetrics, start_metrics_server
from streams.adapters.settings import AdapterSettings
from streams.adapters.tcp import parse_listen

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "::1", "localhost")


class Server(Protocol):
    name: str

    async def start(self, host: str, port: int) -> None: ...

    async def close(self) -> None: ...


class Background(Protocol):
    """Work that runs beside the server (e.g. a publisher) and is flushed at stop."""

    async def run(self) -> None: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class AdapterRuntime:
    """What every adapter is built from."""

    active: ActiveCommands
    control: ControlConsumer
    metrics: AdapterMetrics


def build_runtime(
    name: str,
    config: Config,
    settings: AdapterSettings,
    on_applied: Callable[[Command], None] | None = None,
) -> AdapterRuntime:
    active = ActiveCommands(config.require_signing_key(), settings.smtp_responses, settings.replies)
    control = ControlConsumer(
        active,
        config.kafka.bootstrap,
        config.topics.control,
        client_id=f"mailwarden-{name}",
        on_applied=on_applied,
    )
    return AdapterRuntime(active, control, AdapterMetrics(active, control))


async def serve(
    runtime: AdapterRuntime,
    make_server: Callable[[AdapterRuntime], Server],
    listen: str,
    *,
    metrics_port: int | None = None,
    background: Sequence[Background] = (),
) -> None:
    """Serve until SIGTERM or SIGINT."""
    host, port = parse_listen(listen)
    if host not in LOOPBACK:
        log.warning(
            "listening on %s: the adapters have no authentication of their own "
            "(Dovecot basic auth aside); keep them on loopback or behind a firewall",
            host,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = make_server(runtime)
    tasks = [asyncio.create_task(runtime.control.run(), name="control")]
    tasks += [asyncio.create_task(job.run(), name=type(job).__name__) for job in background]
    metrics_runner = None
    try:
        await server.start(host, port)
        if metrics_port is not None:
            metrics_runner = await start_metrics_server(runtime.metrics, "127.0.0.1", metrics_port)
            log.info("metrics on http://127.0.0.1:%d/metrics", metrics_port)
        await _until_stopped(stop, tasks)
    finally:
        log.info("stopping %s", server.name)
        await server.close()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for job in background:
            await job.close()
        if metrics_runner is not None:
            await metrics_runner.cleanup()


async def _until_stopped(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    """Wait for a signal; a background task that dies is an error, not a silent stop."""
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    for task in done:
        if task is not waiter:
            task.result()
            raise RuntimeError(f"background task {task.get_name()} stopped unexpectedly")
