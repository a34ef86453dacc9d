"""`mailwarden notifier`: tell users and the SOC about enforcement, by signed webhooks.

It reads `mail.control` (and, when ``notify_alerts`` is set, `mail.alerts`),
verifies every command with the signing key -- forged, unsigned and dry-run
commands are counted and ignored -- and turns the rest into notifications
(``models.notification``): one for the account's owner through the alternate
channel (``[user]``), one per SOC webhook (``[[soc]]``).

Delivery. A bounded in-memory queue feeds a few senders; a full queue makes
the reader wait, it does not drop. Each request has a deadline; 5xx, 429,
timeouts and connection errors are retried with exponential backoff and
jitter (honouring ``Retry-After``); other answers are final. A notification
that cannot be delivered is appended to ``<state_dir>/notifier/deadletter.jsonl``
with the last error, and logged: nothing is lost silently.

Exactly once, as far as it goes. Each settled (endpoint, id) pair -- delivered
or dead-lettered -- is appended to ``delivered.jsonl``; the newest ``remember``
of them are kept, and nothing in that set is sent again. The read positions
(``positions.json``) advance only past records whose notifications have all
settled, so a crash re-reads what was in flight. A restart with lost positions
re-reads `mail.control` from the start and the delivered set keeps users from
being told twice; between a 2xx and its line in ``delivered.jsonl`` a crash can
still repeat one request, with the same ``Idempotency-Key``.

On first start `mail.control` is read from the beginning (commands in force
notify; expired ones do not) and `mail.alerts` from its end.

Metrics (``streams.notifier_metrics``, ``--metrics-port``): records by outcome,
deliveries by webhook name and result, delivery time, the backlog and the
broker connection, which a periodic probe keeps honest while reading idles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import signal
import time
import tomllib
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import click
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from mailwarden.config import Config, ConfigError, load_config
from models.commands import InvalidCommand, verify_command
from models.notification import (
    AUDIENCES,
    SAMPLE_ALERT_CONTEXT,
    SAMPLE_COMMAND_CONTEXT,
    Audience,
    InvalidAlert,
    Notification,
    NotificationError,
    NotificationPolicy,
    Plan,
    notification_policy,
    plan_alert,
    plan_command,
    request_headers,
)
from streams.notifier_metrics import (
    DeliveryResult,
    MetricsUnavailable,
    NotifierMetrics,
    start_metrics_server,
)

log = logging.getLogger(__name__)

USER_AGENT = "mailwarden-notifier/1"
FETCH_TIMEOUT_MS = 500
FETCH_MAX_RECORDS = 500
RECONNECT_INITIAL = 0.5
RECONNECT_MAX = 30.0
# Seconds between checks that the broker still answers (a fetch from a dead
# broker just returns nothing), and how long one check may take.
PROBE_INTERVAL = 5.0
PROBE_TIMEOUT = 5.0
DETAIL_LIMIT = 200
_ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

Verdict = Literal["delivered", "retry", "final"]


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One webhook: the alternate-channel gateway (``user``) or a SOC receiver."""

    name: str
    audience: Audience
    url: str
    secret: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    # Seconds one request may take in all (connect, send, wait, read).
    timeout: float = 5.0
    max_attempts: int = 6
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    queue_size: int = 1000
    concurrency: int = 4
    # Settled (endpoint, id) pairs remembered; more than the commands ever in force at once.
    remember: int = 100_000
    # Seconds a stopping notifier still gives queued notifications.
    shutdown_grace: float = 10.0


@dataclass(frozen=True, slots=True)
class NotifierSettings:
    policy: NotificationPolicy
    delivery: DeliverySettings
    endpoints: tuple[Endpoint, ...]

    def endpoints_for(self, audience: Audience) -> list[Endpoint]:
        return [e for e in self.endpoints if e.audience == audience]


def notifier_settings(raw: Mapping[str, Any], base: Path) -> NotifierSettings:
    """Validate a notifier config (``etc/notifier.toml``); ``base`` resolves secret files."""
    unknown = set(raw) - {"notifier", "delivery", "user", "soc"}
    if unknown:
        raise ConfigError(f"notifier config has unknown sections: {', '.join(sorted(unknown))}")
    section = raw.get("notifier", {})
    if not isinstance(section, dict):
        raise ConfigError("[notifier] must be a table")
    try:
        policy = notification_policy(section)
    except NotificationError as exc:
        raise ConfigError(str(exc)) from exc
    delivery = _delivery_settings(raw.get("delivery", {}))
    endpoints: list[Endpoint] = []
    user = raw.get("user")
    if user is not None:
        if not isinstance(user, dict):
            raise ConfigError("[user] must be a table (one alternate-channel gateway)")
        endpoints.append(_endpoint({"name": "user", **user}, "user", base))
    soc = raw.get("soc", [])
    if not isinstance(soc, list):
        raise ConfigError("soc must be an array of tables: [[soc]]")
    endpoints.extend(_endpoint(entry, "soc", base) for entry in soc)
    if not endpoints:
        raise ConfigError("nothing to notify: configure [user] and/or [[soc]] webhooks")
    names = [e.name for e in endpoints]
    if len(set(names)) != len(names):
        raise ConfigError(f"webhook names must be distinct: {', '.join(names)}")
    return NotifierSettings(policy=policy, delivery=delivery, endpoints=tuple(endpoints))


def _delivery_settings(values: object) -> DeliverySettings:
    if not isinstance(values, dict):
        raise ConfigError("[delivery] must be a table")
    defaults = DeliverySettings()
    known = set(DeliverySettings.__dataclass_fields__)
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"[delivery] has unknown keys: {', '.join(sorted(unknown))}")
    merged: dict[str, Any] = {}
    for name in known:
        default = getattr(defaults, name)
        value = values.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"[delivery] {name} must be a positive number, not {value!r}")
        if isinstance(default, int) and not isinstance(value, int):
            raise ConfigError(f"[delivery] {name} must be an integer, not {value!r}")
        merged[name] = value
    settings = DeliverySettings(**merged)
    if settings.backoff_max < settings.backoff_initial:
        raise ConfigError("[delivery] backoff_max must be at least backoff_initial")
    return settings


def _endpoint(values: object, audience: Audience, base: Path) -> Endpoint:
    where = "[user]" if audience == "user" else "[[soc]]"
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(values) - {"name", "url", "secret", "secret_file"}
    if unknown:
        raise ConfigError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
    name = values.get("name")
    if not isinstance(name, str) or not _ENDPOINT_NAME.match(name):
        raise ConfigError(f"{where} needs a name of letters, digits, '.', '_', '-': {name!r}")
    url = values.get("url")
    try:
        parsed = httpx.URL(url) if isinstance(url, str) else None
    except httpx.InvalidURL as exc:
        raise ConfigError(f"{where} {name}: bad url: {exc}") from exc
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"{where} {name}: url must be an http(s) URL, not {url!r}")
    return Endpoint(name=name, audience=audience, url=str(url), secret=_secret(values, where, base))


def _secret(values: Mapping[str, Any], where: str, base: Path) -> bytes:
    if ("secret" in values) == ("secret_file" in values):
        raise ConfigError(f"{where} {values['name']}: set exactly one of secret, secret_file")
    if "secret_file" in values:
        path = base / str(values["secret_file"])
        try:
            secret = path.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"{where} {values['name']}: cannot read {path}: {exc}") from exc
    else:
        secret = str(values["secret"]).encode()
    if len(secret) < 16:
        raise ConfigError(f"{where} {values['name']}: the secret must have at least 16 bytes")
    return secret


def load_notifier_settings(path: str | Path) -> NotifierSettings:
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"notifier config not found: {file}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: {exc}") from exc
    return notifier_settings(raw, file.resolve().parent)


# --------------------------------------------------------------------------- durable state


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds")


class StateError(RuntimeError):
    """The state directory cannot be written: the notifier stops rather than forget."""


def _append_line(path: Path, doc: Mapping[str, Any]) -> None:
    """Append one JSON line and fsync it: a settled notification survives a crash."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, orjson.dumps(doc) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StateError(f"cannot append to {path}: {exc}") from exc


def _replace_file(path: Path, body: bytes) -> None:
    """Write ``body`` to ``path`` atomically: the old or the new content, never a torn one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except OSError as exc:
        raise StateError(f"cannot write {path}: {exc}") from exc


class DeliveredStore:
    """The (endpoint, id) pairs already settled, newest ``capacity`` kept, in a JSONL file."""

    def __init__(self, path: Path, capacity: int) -> None:
        self.path = path
        self.capacity = capacity
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._lines = 0

    def load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        for number, line in enumerate(raw.splitlines(), 1):
            try:
                key = orjson.loads(line)["key"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                # A crash mid-append leaves at most the last line torn.
                log.warning("%s:%d: skipped an unreadable line", self.path, number)
                continue
            self._remember(str(key))
            self._lines += 1
        log.info("%d delivered notifications remembered from %s", len(self._keys), self.path)

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str, outcome: str, epoch: float) -> None:
        _append_line(self.path, {"key": key, "outcome": outcome, "at": _iso(epoch)})
        self._remember(key)
        self._lines += 1
        if self._lines > 2 * self.capacity:
            self._compact()

    def _remember(self, key: str) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self.capacity:
            self._keys.popitem(last=False)

    def _compact(self) -> None:
        body = b"".join(orjson.dumps({"key": key}) + b"\n" for key in self._keys)
        _replace_file(self.path, body)
        self._lines = len(self._keys)


class PositionFile:
    """Per-partition read positions that are safe to resume from, as JSON."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[TopicPartition, int]:
        try:
            data = orjson.loads(self.path.read_bytes())
            return {
                TopicPartition(topic, int(partition)): int(offset)
                for topic, offsets in data.items()
                for partition, offset in offsets.items()
            }
        except FileNotFoundError:
            return {}
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"positions file {self.path} is unreadable ({exc}); remove it to re-read "
                "mail.control from the start (delivered notifications are not repeated)"
            ) from exc

    def save(self, positions: Mapping[TopicPartition, int]) -> None:
        data: dict[str, dict[str, int]] = {}
        for tp, offset in sorted(positions.items()):
            data.setdefault(tp.topic, {})[str(tp.partition)] = offset
        _replace_file(self.path, orjson.dumps(data, option=orjson.OPT_SORT_KEYS))


class SettledOffsets:
    """Per partition, how far every record read has had all its notifications settled.

    A record holds its partition's position back while any of its
    notifications is queued or being sent; records behind it wait.
    """

    def __init__(self) -> None:
        self._holds: dict[TopicPartition, dict[int, int]] = {}
        self._settled: dict[TopicPartition, int] = {}

    def read(self, tp: TopicPartition, offset: int) -> None:
        self._holds.setdefault(tp, {})[offset] = 0

    def hold(self, tp: TopicPartition, offset: int) -> None:
        self._holds[tp][offset] += 1

    def release(self, tp: TopicPartition, offset: int) -> None:
        self._holds[tp][offset] -= 1
        self._advance(tp)

    def _advance(self, tp: TopicPartition) -> None:
        holds = self._holds.get(tp, {})
        while holds:
            offset, count = next(iter(holds.items()))
            if count:
                return
            del holds[offset]
            self._settled[tp] = offset + 1

    def start_at(self, tp: TopicPartition, offset: int) -> None:
        self._settled.setdefault(tp, offset)

    def positions(self) -> dict[TopicPartition, int]:
        for tp in list(self._holds):
            self._advance(tp)
        return dict(self._settled)

    @property
    def pending(self) -> int:
        return sum(1 for holds in self._holds.values() for count in holds.values() if count)


class DeadLetters:
    """``deadletter.jsonl``: notifications given up on, with why, for an operator to re-send."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, doc: Mapping[str, Any]) -> None:
        _append_line(self.path, doc)


# --------------------------------------------------------------------------- delivery


@dataclass(slots=True)
class NotifierStats:
    records: int = 0
    # Why a record notified nobody: unsigned, forged, malformed, dry_run, expired, ...
    ignored: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    queued: int = 0
    attempts: int = 0
    retries: int = 0
    delivered: int = 0
    dead_lettered: int = 0


@dataclass(frozen=True, slots=True)
class Job:
    endpoint: Endpoint
    notification: Notification
    key: str
    tp: TopicPartition
    offset: int


def status_verdict(status: int) -> Verdict:
    """2xx delivered; 5xx and 429 worth another try; anything else is the receiver's final no."""
    if 200 <= status < 300:
        return "delivered"
    if status >= 500 or status == 429:
        return "retry"
    return "final"


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Seconds before try ``attempt + 1``: doubling from ``initial``, capped, half of it jittered.

    Jitter spreads the retries of many notifications that failed together.
    """
    ceiling = min(maximum, initial * 2.0 ** (attempt - 1))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def retry_after_seconds(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


def delivery_key(endpoint: Endpoint, notification: Notification) -> str:
    return f"{endpoint.name}|{notification.id}"


class Deliverer:
    """Sends one notification to one endpoint, retrying, until it is delivered or dead-lettered."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        settings: DeliverySettings,
        store: DeliveredStore,
        deadletters: DeadLetters,
        stats: NotifierStats,
        *,
        metrics: NotifierMetrics | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.store = store
        self.deadletters = deadletters
        self.stats = stats
        self.metrics = metrics
        self._clock = clock
        self._rng = rng or random.Random()

    async def deliver(self, endpoint: Endpoint, notification: Notification) -> str:
        """``"delivered"`` or ``"dead_lettered"``; either way the pair is settled for good."""
        key = delivery_key(endpoint, notification)
        body = notification.body()
        started = time.monotonic()
        error = ""
        attempt = 0
        for attempt in range(1, self.settings.max_attempts + 1):
            verdict, error, retry_after = await self._attempt(endpoint, notification, body)
            if verdict == "delivered":
                self.store.add(key, "delivered", self._clock())
                self.stats.delivered += 1
                self._count_settled(endpoint, "delivered", started)
                log.info(
                    "delivered %s notification %s to %s (try %d)",
                    notification.audience,
                    notification.id,
                    endpoint.name,
                    attempt,
                )
                return "delivered"
            if verdict == "final" or attempt == self.settings.max_attempts:
                break
            delay = backoff_delay(
                attempt, self.settings.backoff_initial, self.settings.backoff_max, self._rng
            )
            if retry_after is not None:
                delay = max(delay, min(retry_after, self.settings.backoff_max))
            self.stats.retries += 1
            if self.metrics is not None:
                self.metrics.count_retry(endpoint.name)
            log.info(
                "%s for %s notification %s; try %d in %.2f s",
                error,
                endpoint.name,
                notification.id,
                attempt + 1,
                delay,
            )
            await asyncio.sleep(delay)
        self.deadletters.write(
            {
                "type": "notification_deadletter",
                "failed_at": _iso(self._clock()),
                "endpoint": endpoint.name,
                "audience": notification.audience,
                "id": notification.id,
                "attempts": attempt,
                "error": error,
                "payload": notification.payload,
            }
        )
        self.store.add(key, "dead_lettered", self._clock())
        self.stats.dead_lettered += 1
        self._count_settled(endpoint, "dead_letter", started)
        log.error(
            "gave up on %s notification %s to %s after %d tries (%s); written to %s",
            notification.audience,
            notification.id,
            endpoint.name,
            attempt,
            error,
            self.deadletters.path,
        )
        return "dead_lettered"

    def _count_settled(self, endpoint: Endpoint, result: DeliveryResult, started: float) -> None:
        if self.metrics is not None:
            self.metrics.count_settled(endpoint.name, result, time.monotonic() - started)

    async def _attempt(
        self, endpoint: Endpoint, notification: Notification, body: bytes
    ) -> tuple[Verdict, str, float | None]:
        headers = request_headers(notification, body, endpoint.secret, int(self._clock()))
        self.stats.attempts += 1
        try:
            async with asyncio.timeout(self.settings.timeout):
                response = await self.client.post(endpoint.url, content=body, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            return "retry", f"no answer within {self.settings.timeout:g} s", None
        except httpx.TransportError as exc:
            return "retry", f"{type(exc).__name__}: {exc}"[:DETAIL_LIMIT], None
        verdict = status_verdict(response.status_code)
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        return verdict, f"HTTP {response.status_code}", retry_after


# --------------------------------------------------------------------------- the service


class TopicMissing(RuntimeError):
    """A topic to read does not exist (yet): retried like a broker outage."""


class Notifier:
    """Reads the topics, plans notifications and has them delivered; run with :meth:`run`."""

    def __init__(
        self,
        config: Config,
        settings: NotifierSettings,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.signing_key = config.require_signing_key()
        self.stats = NotifierStats()
        self.metrics = NotifierMetrics(e.name for e in settings.endpoints)
        self.metrics.watch(self)
        # Whether the broker answered the last read or probe.
        self.connected = False
        state = config.state_dir / "notifier"
        self.store = DeliveredStore(state / "delivered.jsonl", settings.delivery.remember)
        self.position_file = PositionFile(state / "positions.json")
        self.deadletters = DeadLetters(state / "deadletter.jsonl")
        self.offsets = SettledOffsets()
        # Set once partitions are assigned and positioned: later records will be read.
        self.ready = asyncio.Event()
        # Set once everything up to the end offsets seen at start-up is read and settled.
        self.caught_up = asyncio.Event()
        self._clock = clock
        self._rng = rng
        self._queue: asyncio.Queue[Job] = asyncio.Queue(settings.delivery.queue_size)
        # Delivery keys not yet settled -> when they were read (monotonic), oldest first.
        self._in_flight: dict[str, float] = {}
        self._read: dict[TopicPartition, int] = {}
        self._saved: dict[TopicPartition, int] = {}
        self._targets: dict[TopicPartition, int] | None = None
        self._started = time.monotonic()

    @property
    def topics(self) -> list[str]:
        topics = [self.config.topics.control]
        if self.settings.policy.notify_alerts:
            topics.append(self.config.topics.alerts)
        return topics

    def pending_notifications(self) -> int:
        return len(self._in_flight)

    def oldest_pending_seconds(self) -> float:
        # Insertion order is reading order, and settling only removes keys.
        oldest = next(iter(self._in_flight.values()), None)
        return 0.0 if oldest is None else max(0.0, time.monotonic() - oldest)

    async def run(self, stop: asyncio.Event) -> None:
        """Notify until ``stop`` is set, then give queued notifications a grace period."""
        self.store.load()
        self._saved = self.position_file.load()
        for tp, offset in self._saved.items():
            self.offsets.start_at(tp, offset)
        for audience in AUDIENCES:
            if not self.settings.endpoints_for(audience):
                log.warning(
                    "no %s webhook configured: %s notifications are not sent", audience, audience
                )
        timeout = httpx.Timeout(self.settings.delivery.timeout)
        headers = {"User-Agent": USER_AGENT}
        async with httpx.AsyncClient(timeout=timeout, headers=headers) as client:
            deliverer = Deliverer(
                client,
                self.settings.delivery,
                self.store,
                self.deadletters,
                self.stats,
                metrics=self.metrics,
                clock=self._clock,
                rng=self._rng,
            )
            async with asyncio.TaskGroup() as tasks:
                senders = [
                    tasks.create_task(self._send_loop(deliverer))
                    for _ in range(self.settings.delivery.concurrency)
                ]
                reader = tasks.create_task(self._read_loop())
                await stop.wait()
                reader.cancel()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._queue.join(), self.settings.delivery.shutdown_grace
                    )
                for sender in senders:
                    sender.cancel()
        self._save_positions()
        log.info("stopped: %s", self.summary())

    def summary(self) -> str:
        s = self.stats
        ignored = ", ".join(f"{k} {v}" for k, v in sorted(s.ignored.items())) or "none"
        return (
            f"{s.records} records, {s.delivered} delivered, {s.dead_lettered} dead-lettered, "
            f"{s.retries} retries, {s.duplicates} already notified, ignored: {ignored}"
        )

    async def _send_loop(self, deliverer: Deliverer) -> None:
        while True:
            job = await self._queue.get()
            try:
                await deliverer.deliver(job.endpoint, job.notification)
            finally:
                self._queue.task_done()
            # Only a settled job lets its record's position advance; a cancelled one is redone.
            self._in_flight.pop(job.key, None)
            self.offsets.release(job.tp, job.offset)

    async def _read_loop(self) -> None:
        delay = RECONNECT_INITIAL
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.config.kafka.bootstrap,
                client_id="mailwarden-notifier",
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            try:
                await consumer.start()
                partitions = await self._assign(consumer)
                self.connected = True
                delay = RECONNECT_INITIAL
                await self._consume(consumer, partitions)
            except (KafkaError, OSError, TopicMissing) as exc:
                self.connected = False
                log.warning(
                    "reading from %s failed (%s: %s); again in %.1f s",
                    self.config.kafka.bootstrap,
                    type(exc).__name__,
                    exc,
                    delay,
                )
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    async def _partitions(self) -> list[TopicPartition]:
        # A consumer only knows the partitions of topics it already reads;
        # the admin client asks the broker.
        admin = AIOKafkaAdminClient(bootstrap_servers=self.config.kafka.bootstrap)
        try:
            await admin.start()
            described = await admin.describe_topics(self.topics)
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        partitions: list[TopicPartition] = []
        for topic in described:
            if topic["error_code"] != 0 or not topic["partitions"]:
                raise TopicMissing(f"topic {topic['topic']!r} does not exist")
            numbers = sorted(p["partition"] for p in topic["partitions"])
            partitions.extend(TopicPartition(topic["topic"], n) for n in numbers)
        return partitions

    async def _assign(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        partitions = await self._partitions()
        consumer.assign(partitions)
        for tp in partitions:
            if tp in self._read:
                consumer.seek(tp, self._read[tp])
            elif tp in self._saved:
                consumer.seek(tp, self._saved[tp])
            elif tp.topic == self.config.topics.control:
                await consumer.seek_to_beginning(tp)
            else:
                # Alerts from before the first start are history, not news.
                await consumer.seek_to_end(tp)
            # Resolves a lazy seek now, so records published after `ready` are read.
            self._read[tp] = await consumer.position(tp)
            self.offsets.start_at(tp, self._read[tp])
        if self._targets is None:
            self._targets = dict(await consumer.end_offsets(partitions))
        log.info("reading %s from %s", ", ".join(self.topics), self.config.kafka.bootstrap)
        self.ready.set()
        return partitions

    async def _consume(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        next_probe = time.monotonic() + PROBE_INTERVAL
        while True:
            batches = await consumer.getmany(
                timeout_ms=FETCH_TIMEOUT_MS, max_records=FETCH_MAX_RECORDS
            )
            for tp, records in batches.items():
                for record in records:
                    await self._handle(tp, record)
                    self._read[tp] = record.offset + 1
            self._save_positions()
            if not self.caught_up.is_set():
                self._check_caught_up(partitions)
            if time.monotonic() >= next_probe:
                await self._probe(consumer, partitions)
                next_probe = time.monotonic() + PROBE_INTERVAL

    async def _probe(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        """Ask the broker for the end offsets: only to know whether it still answers."""
        try:
            await asyncio.wait_for(consumer.end_offsets(partitions), PROBE_TIMEOUT)
        except (KafkaError, OSError, TimeoutError) as exc:
            if self.connected:
                log.warning(
                    "lost %s (%s); queued notifications are still sent",
                    self.config.kafka.bootstrap,
                    str(exc) or type(exc).__name__,
                )
            self.connected = False
            return
        if not self.connected:
            log.info("%s answers again", self.config.kafka.bootstrap)
        self.connected = True

    def _check_caught_up(self, partitions: list[TopicPartition]) -> None:
        targets = self._targets or {}
        if any(self._read.get(tp, 0) < targets.get(tp, 0) for tp in partitions):
            return
        if self.offsets.pending:
            return
        self.caught_up.set()
        log.info("caught up in %.2f s: %s", time.monotonic() - self._started, self.summary())

    def _save_positions(self) -> None:
        positions = self.offsets.positions()
        if positions != self._saved:
            self.position_file.save(positions)
            self._saved = positions

    async def _handle(self, tp: TopicPartition, record: ConsumerRecord[bytes, bytes]) -> None:
        self.stats.records += 1
        self.offsets.read(tp, record.offset)
        plan = self._plan(tp, record)
        if plan.skipped is not None:
            self.stats.ignored[plan.skipped] += 1
        queued = duplicates = 0
        for notification in plan.notifications:
            for endpoint in self.settings.endpoints_for(notification.audience):
                key = delivery_key(endpoint, notification)
                if key in self.store or key in self._in_flight:
                    self.stats.duplicates += 1
                    duplicates += 1
                    continue
                self._in_flight[key] = time.monotonic()
                self.offsets.hold(tp, record.offset)
                self.stats.queued += 1
                queued += 1
                # A full queue makes the reader wait: back pressure, not loss.
                await self._queue.put(Job(endpoint, notification, key, tp, record.offset))
        self.metrics.count_record(tp.topic, plan.skipped or record_outcome(queued, duplicates))

    def _plan(self, tp: TopicPartition, record: ConsumerRecord[bytes, bytes]) -> Plan:
        where = f"{tp.topic}/{tp.partition}/{record.offset}"
        if record.value is None:
            return Plan(skipped="tombstone")
        try:
            if tp.topic == self.config.topics.control:
                try:
                    command = verify_command(record.value, self.signing_key)
                except InvalidCommand as exc:
                    log.warning("ignored an unverifiable command at %s: %s", where, exc)
                    return Plan(skipped=_rejection(exc))
                return plan_command(command, self.settings.policy, self._clock())
            try:
                return plan_alert(record.value, self.settings.policy)
            except InvalidAlert as exc:
                log.warning("ignored an unreadable alert at %s: %s", where, exc)
                return Plan(skipped="malformed")
        except NotificationError as exc:
            log.error(
                "cannot notify about %s: %s; written to %s", where, exc, self.deadletters.path
            )
            self.deadletters.write(
                {
                    "type": "notification_deadletter",
                    "failed_at": _iso(self._clock()),
                    "error": str(exc)[:DETAIL_LIMIT],
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "offset": record.offset,
                    "record": record.value.decode("utf-8", "replace"),
                }
            )
            return Plan(skipped="unrenderable")


def record_outcome(queued: int, duplicates: int) -> str:
    """What became of a record that asked for notifications."""
    if queued:
        return "notified"
    if duplicates:
        return "already_notified"
    # Its audiences have no webhook configured (warned about at start).
    return "no_webhook"


def _rejection(exc: InvalidCommand) -> str:
    reason = str(exc)
    if reason == "unsigned":
        return "unsigned"
    if reason == "bad signature":
        return "forged"
    return "malformed"


# --------------------------------------------------------------------------- command line


def sample_messages(settings: NotifierSettings) -> list[tuple[str, str, str | None]]:
    """(template name, text, html) of every template, rendered with sample values."""
    templates = settings.policy.templates
    out = []
    for key in templates.names():
        audience: Audience = "soc" if key.startswith("soc.") else "user"
        action = key.split(".", 1)[1]
        sample = SAMPLE_ALERT_CONTEXT if key == "soc.alert" else SAMPLE_COMMAND_CONTEXT
        rendered = templates.render(audience, action, sample)
        out.append((key, rendered.text, rendered.html))
    return out


async def run_until_signalled(
    notifier: Notifier, metrics_address: tuple[str, int] | None = None
) -> None:
    """Run ``notifier``, and its ``/metrics`` at ``(host, port)`` if given, until a signal."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if metrics_address is None:
        await notifier.run(stop)
        return
    runner = await start_metrics_server(notifier.metrics, *metrics_address)
    try:
        await notifier.run(stop)
    finally:
        await runner.cleanup()


@click.command("notifier")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="MAILWARDEN_CONFIG",
    help="mailwarden TOML config (broker, topics, signing key, state_dir).",
)
@click.option(
    "--notifier-config",
    "notifier_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="MAILWARDEN_NOTIFIER_CONFIG",
    required=True,
    help="Notifier TOML config: webhooks, secrets, templates (see etc/notifier.toml).",
)
@click.option("--check", is_flag=True, help="Check the configs, print sample messages, exit.")
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve Prometheus metrics on http://127.0.0.1:PORT/metrics (default: none).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Address for --metrics-port; anything but loopback is warned about.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
    default="INFO",
    show_default=True,
)
def notifier_command(
    config_path: Path | None,
    notifier_path: Path,
    check: bool,
    metrics_port: int | None,
    metrics_host: str,
    log_level: str,
) -> None:
    """Notify account owners (alternate channel) and the SOC (webhooks) of enforcement."""
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        config = load_config(config_path)
        settings = load_notifier_settings(notifier_path)
        notifier = Notifier(config, settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if check:
        for endpoint in settings.endpoints:
            click.echo(f"webhook {endpoint.name} ({endpoint.audience}): {endpoint.url}")
        for key, text, html in sample_messages(settings):
            click.echo(f"--- {key}\n{text}")
            if html is not None:
                click.echo(f"--- {key} (html)\n{html}")
        return
    metrics_address = None if metrics_port is None else (metrics_host, metrics_port)
    try:
        asyncio.run(run_until_signalled(notifier, metrics_address))
    except* (ConfigError, StateError, MetricsUnavailable) as group:
        raise click.ClickException("; ".join(map(str, group.exceptions))) from None
