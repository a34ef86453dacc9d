"""``mailwarden tail``: follow mail logs and publish their events to Kafka.

Lines are read by :class:`streams.follower.FileFollower`, parsed by one
:mod:`mailwarden.engines` parser for this host (Postfix and Dovecot lines of one
host must share it for their correlation), and published: events to
``mail.events`` keyed by account (else client IP), unparsed lines to
``mail.deadletter`` with the reason. Ignored housekeeping lines are counted.

Nothing is lost: a file's checkpoint moves only past lines whose records the
broker acknowledged; while the broker is away the producer waits and retries
and the followers stop reading once ``max_waiting`` lines are in flight.

The parser's Postfix queue id -> account map outlives a restart
(:mod:`streams.correlation_store`): it is saved whenever checkpoints move and
at a clean shutdown, and restored before the first line, so a message queued
before a restart is still delivered or bounced under its account. Sessions
and recent failures start empty: the lines after the checkpoints rebuild them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click
import orjson
from aiokafka import AIOKafkaProducer

from mailwarden.config import Config, load_config
from mailwarden.engines import EngineName, EngineUnavailable, open_parser, parsers_option
from mailwarden.native import log_parsers_in_use
from models.events import Origin
from streams.checkpoint import AckTracker, CheckpointStore
from streams.correlation_store import CorrelationStore
from streams.deadletter import deadletter_json
from streams.follower import MAX_LINE_BYTES, FileFollower, FilePosition, Line
from streams.producer import (
    Record,
    ResilientSender,
    SendStats,
    new_producer,
    start_producer,
)

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 1.0
# A full queue map (200,000 ids) takes about half a second to save; between
# periodic snapshots at least this many times the last one's duration passes.
SNAPSHOT_COST_FACTOR = 10.0
# After this long without acknowledgements, say that the broker is the problem.
STALL_WARNING_AFTER = 5.0


@dataclass(slots=True)
class TailStats:
    lines: int = 0
    events: int = 0
    deadletters: int = 0
    ignored: Counter[str] = field(default_factory=Counter)

    def line(self, waiting: int, sends: SendStats, rate: float | None = None) -> str:
        per_second = f" ({rate:.1f}/s)" if rate is not None else ""
        return (
            f"{self.lines} lines{per_second}, {self.events} events, "
            f"{self.deadletters} dead letters, {sum(self.ignored.values())} ignored, "
            f"{waiting} waiting for the broker, {sends.resent} records sent again, "
            f"{sends.refused} refused"
        )


@dataclass(slots=True)
class PublisherSettings:
    host: str
    timezone: str
    from_start: bool = False
    poll_interval: float = 0.1
    partial_timeout: float = 5.0
    stats_interval: float = 60.0
    max_waiting: int = 10_000
    shutdown_timeout: float = 10.0
    engine: EngineName = "auto"


@dataclass
class _Followed:
    follower: FileFollower
    tracker: AckTracker
    saved: FilePosition | None = None


class Publisher:
    """Follow files and publish what their lines say; :meth:`run` until ``stop`` is set."""

    def __init__(
        self,
        config: Config,
        paths: Sequence[Path],
        settings: PublisherSettings,
        producer_factory: Callable[[], AIOKafkaProducer] | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.topics = config.topics
        self.stats = TailStats()
        self.checkpoints = CheckpointStore(config.state_dir / "tail")
        # ``now`` lets the parser infer the year of syslog stamps that have none.
        self.parser = open_parser(
            settings.host, settings.timezone, now=time.time(), engine=settings.engine
        )
        log.info("parsers: %s engine", self.parser.name)
        self.correlation = CorrelationStore(self.checkpoints.directory, settings.host)
        self.correlation.restore_into(self.parser)
        self._snapshot_pending = False
        self._next_snapshot = 0.0
        self._producer_factory = producer_factory or (
            lambda: new_producer(
                config.kafka.bootstrap, client_id=f"mailwarden-tail-{settings.host}"
            )
        )
        self._files = [self._followed(path) for path in paths]

    def _followed(self, path: Path) -> _Followed:
        start = self.checkpoints.load(path)
        follower = FileFollower(
            path,
            start=start,
            from_start=self.settings.from_start,
            poll_interval=self.settings.poll_interval,
            partial_timeout=self.settings.partial_timeout,
        )
        return _Followed(follower, AckTracker(start), saved=start)

    @property
    def waiting(self) -> int:
        return sum(f.tracker.waiting for f in self._files)

    async def run(self, stop: asyncio.Event) -> None:
        producer = await start_producer(self._producer_factory, self.config.kafka.bootstrap, stop)
        if producer is None:
            return
        sender = ResilientSender(producer, on_refused=self._refused_record)
        log.info(
            "tail: following %s as host %s; checkpoints in %s",
            ", ".join(f.follower.name for f in self._files),
            self.settings.host,
            self.checkpoints.directory,
        )
        following = [asyncio.create_task(self._follow(f, sender)) for f in self._files]
        background = [
            asyncio.create_task(sender.resend_failed()),
            asyncio.create_task(self._save_checkpoints_forever()),
            asyncio.create_task(self._report_forever(sender)),
        ]
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([stopped, *following], return_when=asyncio.FIRST_COMPLETED)
        failures = [t.exception() for t in following if t.done() and not t.cancelled()]
        await self._shut_down(producer, sender, following, background)
        stopped.cancel()
        for failure in failures:
            if failure is not None:
                # Everything acknowledged is checkpointed; fail loudly so that
                # the service manager restarts us from there.
                raise failure

    async def _follow(self, followed: _Followed, sender: ResilientSender) -> None:
        tracker = followed.tracker
        async for line in followed.follower.lines():
            records = self.records_for(followed.follower.name, line)
            sends = [await sender.send(record) for record in records]
            tracker.add(line.position, sends, time.monotonic())
            while tracker.waiting >= self.settings.max_waiting and not followed.follower.stopped:
                await asyncio.sleep(0.05)
                tracker.advance()

    def records_for(self, path: str, line: Line) -> list[Record]:
        """The records one line becomes: its events, a dead letter, or nothing if ignored."""
        self.stats.lines += 1
        origin = Origin(path=path, line=line.number, host=self.settings.host, offset=line.offset)
        if line.truncated:
            reason = f"line of {line.length} bytes is longer than the {MAX_LINE_BYTES} byte limit"
            return [self._deadletter(line.data, reason, origin, length=line.length)]
        result = self.parser.feed_json(line.data, origin)
        if result.events:
            records = []
            for value, key in zip(result.events, result.keys, strict=True):
                records.append(Record(self.topics.events, key.encode() if key else None, value))
                self.stats.events += 1
            return records
        if result.ignored is not None:
            self.stats.ignored[result.ignored] += 1
            return []
        return [self._deadletter(line.data, result.error or "the parser returned nothing", origin)]

    def _deadletter(
        self, raw: bytes, reason: str, origin: Origin, *, length: int | None = None
    ) -> Record:
        self.stats.deadletters += 1
        value = deadletter_json(
            raw, reason, asdict(origin), received_epoch=time.time(), length=length
        )
        key = f"{origin.host}:{origin.path}".encode("utf-8", "surrogateescape")
        return Record(self.topics.deadletter, key, value)

    def _refused_record(self, record: Record, exc: BaseException) -> Record | None:
        """An event the broker refuses (too large) becomes a dead letter, with the reason."""
        if record.topic != self.topics.events or record.value is None:
            return None
        # The value is an event we encoded ourselves; its origin says where it came from.
        origin = orjson.loads(record.value).get("origin") or {}
        reason = f"the broker refused the event ({type(exc).__name__}: {exc})"
        self.stats.deadletters += 1
        value = deadletter_json(record.value, reason, origin, received_epoch=time.time())
        return Record(self.topics.deadletter, record.key, value)

    def save_checkpoints(self, *, final: bool = False) -> None:
        """Save the checkpoints that moved and, if any did, the correlation snapshot.

        The snapshot is saved with them once its last save is paid for (see
        ``SNAPSHOT_COST_FACTOR``), and always when ``final``.
        """
        moved = False
        for followed in self._files:
            position = followed.tracker.advance()
            if position is not None and position != followed.saved:
                self.checkpoints.save(followed.follower.name, position)
                followed.saved = position
                moved = True
        if moved:
            self._snapshot_pending = True
        if self._snapshot_pending and (final or time.monotonic() >= self._next_snapshot):
            self._save_correlation()

    def _save_correlation(self) -> None:
        # The snapshot may hold lines read past the checkpoints; those are read
        # again at the next start and the parser recognises them (replay).
        started = time.monotonic()
        try:
            self.correlation.save(self.parser)
        except OSError as exc:
            log.warning("cannot save correlation snapshot %s: %s", self.correlation.file, exc)
        finished = time.monotonic()
        self._snapshot_pending = False
        self._next_snapshot = finished + SNAPSHOT_COST_FACTOR * (finished - started)

    async def _save_checkpoints_forever(self) -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_EVERY)
            self.save_checkpoints()

    async def _report_forever(self, sender: ResilientSender) -> None:
        interval = self.settings.stats_interval
        lines_before, started = self.stats.lines, time.monotonic()
        while True:
            await asyncio.sleep(min(interval, STALL_WARNING_AFTER))
            self._warn_if_stalled(sender)
            now = time.monotonic()
            if now - started >= interval:
                rate = (self.stats.lines - lines_before) / (now - started)
                log.info("tail: %s", self.stats.line(self.waiting, sender.stats, rate))
                lines_before, started = self.stats.lines, now

    def _warn_if_stalled(self, sender: ResilientSender) -> None:
        now = time.monotonic()
        oldest = min(
            (since for f in self._files if (since := f.tracker.oldest_since()) is not None),
            default=None,
        )
        if oldest is None or now - oldest < STALL_WARNING_AFTER:
            return
        failure = sender.stats.last_failure
        log.warning(
            "broker unavailable, %d lines waiting (oldest read %.0f s ago)%s",
            self.waiting,
            now - oldest,
            f"; last error: {failure}" if failure else "",
        )

    async def _shut_down(
        self,
        producer: AIOKafkaProducer,
        sender: ResilientSender,
        following: list[asyncio.Task[None]],
        background: list[asyncio.Task[None]],
    ) -> None:
        for followed in self._files:
            followed.follower.stop()
        _, stuck = await asyncio.wait(following, timeout=2.0)
        for task in stuck:
            task.cancel()
        deadline = time.monotonic() + self.settings.shutdown_timeout
        while self.waiting and time.monotonic() < deadline:
            for followed in self._files:
                followed.tracker.advance()
            await asyncio.sleep(0.05)
        self.save_checkpoints(final=True)
        if self.waiting:
            log.warning(
                "stopping with %d lines unacknowledged; they are read again at the next start",
                self.waiting,
            )
        for task in background:
            task.cancel()
        await asyncio.gather(*background, *stuck, return_exceptions=True)
        try:
            await asyncio.wait_for(producer.stop(), self.settings.shutdown_timeout)
        except TimeoutError:
            log.warning("the producer did not stop within %.0f s", self.settings.shutdown_timeout)
        log.info("tail stopped: %s", self.stats.line(self.waiting, sender.stats))


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiokafka logs every reconnection attempt, ten a second while the broker
    # is away; the publisher reports the outage itself, with the last error.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


async def run_until_signalled(publisher: Publisher) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await publisher.run(stop)


@click.command("tail")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Runtime configuration (TOML); defaults plus MAILWARDEN_* environment otherwise.",
)
@click.option("--host", help="Name of this mail host (default: [mailwarden] host, else hostname).")
@click.option(
    "--from-start/--from-end",
    default=False,
    help="Where to start a file that has no checkpoint yet (default: at its end).",
)
@click.option("--timezone", help="Time zone of log stamps that carry none (default: config).")
@click.option(
    "--stats-interval",
    type=click.FloatRange(min=1.0),
    default=60.0,
    show_default=True,
    help="Seconds between statistics lines on stderr.",
)
@parsers_option
def tail_command(
    files: tuple[Path, ...],
    config_path: Path | None,
    host: str | None,
    from_start: bool,
    timezone: str | None,
    stats_interval: float,
    engine: EngineName,
) -> None:
    """Follow mail log FILES (like tail -F) and publish their events to Kafka.

    Each file resumes from its checkpoint under the state directory. Events go
    to the events topic, lines that cannot be parsed to the dead-letter topic.
    Stops cleanly on SIGTERM or SIGINT.
    """
    configure_logging()
    log_parsers_in_use(log)
    try:
        config = load_config(config_path)
        settings = PublisherSettings(
            host=host or config.host or socket.gethostname(),
            timezone=timezone or config.timezone,
            from_start=from_start,
            stats_interval=stats_interval,
            engine=engine,
        )
        publisher = Publisher(config, files, settings)
    except EngineUnavailable as exc:
        raise click.ClickException(f"--parsers rust: {exc}") from exc
    except ValueError as exc:  # ConfigError, CheckpointError, an unknown time zone
        raise click.ClickException(str(exc)) from exc
    asyncio.run(run_until_signalled(publisher))
