"""``mailwarden worker``: the Faust app that runs the detector on the event topics.

Two agents, one per rule scope:

- on ``mail.events`` (keyed by account, else client IP) the ``account`` rules
  run for events with a user, and every event with a client IP whose kind an
  IP rule reads is forwarded to ``mail.events.by-ip`` keyed by the IP's prefix;
- on ``mail.events.by-ip`` the ``ip`` rules run.

Each agent takes events in batches (``stream.take_events``), runs them
through its own in-memory :class:`models.detector.Detector`, publishes the
decisions (alerts to ``mail.alerts``, signed commands to ``mail.control``) and
then writes the state of every key the batch touched, once, to a plain Faust
table whose changelog Faust replays on recovery. Faust's windowed tables are
not used: they expire by wall clock (see ``../shared/notes``); the detector's
windows run on event time.

The detector is a cache in front of the table: a key's state is imported from
the table the first time the key is seen (after a start or a rebalance), and
written back after every batch that touched it, so the two agree at every
batch boundary.

Records pass through as raw bytes (``streams/raw_schema.py``: no codec
lookups); the worker decodes JSON itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import click
import faust
import orjson
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from mailwarden.config import Config, ConfigError, Topics, load_config
from mailwarden.geoip import GeoipError, open_geo
from models.commands import Command
from models.detector import Detector
from models.events import Event
from models.geo import GeoLookup
from models.policy import Policy, PolicyError, load_policy
from models.rules import Decision
from models.rules.keys import Networks
from streams.deadletter import deadletter_json
from streams.producer import Record, deliver_all, new_producer
from streams.raw_schema import BytesSchema
from streams.topics import TopicError, ensure_topics

log = logging.getLogger(__name__)
# How long a stopping worker waits to deliver the outputs of its last batch.
STOP_DELIVERY_TIMEOUT = 30.0

STATS_EVERY = 60.0
DEFAULT_APP_ID = "mailwarden"


@dataclass(slots=True, frozen=True)
class WorkerSettings:
    app_id: str = DEFAULT_APP_ID
    replication_factor: int = 1
    batch_size: int = 1000
    batch_within: float = 0.05


@dataclass(slots=True, frozen=True)
class Incoming:
    """One record taken from an event topic."""

    topic: str
    partition: int
    offset: int
    value: bytes


@dataclass(slots=True, frozen=True)
class StateWrite:
    """A key's exported state (None: the key has no state left) for its changelog partition."""

    key: bytes
    partition: int
    value: bytes | None


@dataclass(slots=True)
class BatchResult:
    decisions: list[Decision] = field(default_factory=list)
    forward: list[tuple[bytes, bytes]] = field(default_factory=list)
    deadletters: list[bytes] = field(default_factory=list)
    state: list[StateWrite] = field(default_factory=list)


@dataclass(slots=True)
class ScopeStats:
    events: int = 0
    alerts: int = 0
    commands: int = 0
    deadletters: int = 0
    state_writes: int = 0


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives ``key``."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class ScopeRunner:
    """One scope's detector, fed in batches, with its state mirrored to a table.

    ``stored_state`` looks a key up in the table. ``forward_key`` (account
    scope only) gives the key an event with a client IP is forwarded under to
    the IP topic, if its kind is one of ``forward_kinds``. Kafka is not
    touched here: the Faust agent hands records in and publishes what
    :meth:`run_batch` returns.
    """

    def __init__(
        self,
        scope: str,
        new_detector: Callable[[], Detector],
        stored_state: Callable[[bytes], bytes | None],
        partitions: int,
        *,
        forward_key: Callable[[str], bytes] | None = None,
        forward_kinds: frozenset[str] = frozenset(),
        max_keys: int = 2_000_000,
    ) -> None:
        self.scope = scope
        self.stats = ScopeStats()
        self._new_detector = new_detector
        self._stored_state = stored_state
        self._partitions = partitions
        self._forward_key = forward_key
        self._forward_kinds = forward_kinds
        self._max_keys = max_keys
        self.detector = new_detector()
        # Keys loaded from the table since the last reset, with the partition
        # of the events that read them: their changelog partition.
        self._home: dict[str, int] = {}
        self._reset_requested = False
        self._reported_at = 0.0

    def request_reset(self) -> None:
        """Forget cached state before the next batch (partitions moved to other workers)."""
        self._reset_requested = True

    def report_now_and_then(self, now: float) -> None:
        if now - self._reported_at < STATS_EVERY:
            return
        self._reported_at = now
        s = self.stats
        log.info(
            "%s rules: %d events, %d alerts, %d commands, %d dead letters, %d state writes",
            self.scope,
            s.events,
            s.alerts,
            s.commands,
            s.deadletters,
            s.state_writes,
        )

    def run_batch(self, batch: Sequence[Incoming], now: float) -> BatchResult:
        if self._reset_requested:
            self.detector = self._new_detector()
            self._home.clear()
            self._reset_requested = False
        result = BatchResult()
        for item in batch:
            self._run_one(item, result, now)
        result.state = self._state_writes()
        self.stats.events += len(batch)
        self.stats.deadletters += len(result.deadletters)
        self.stats.state_writes += len(result.state)
        for decision in result.decisions:
            if isinstance(decision, Command):
                self.stats.commands += 1
            else:
                self.stats.alerts += 1
        return result

    def _run_one(self, item: Incoming, result: BatchResult, now: float) -> None:
        try:
            event = Event.from_json(item.value)
            if (
                self._forward_key is not None
                and event.client_ip
                and event.kind in self._forward_kinds
            ):
                result.forward.append((self._forward_key(event.client_ip), item.value))
            for _, key in self.detector.state_keys(event):
                self._load(key, item.partition)
            result.decisions.extend(self.detector.process(event))
        except Exception as exc:
            # A record no parser of ours wrote (or a detector bug on odd input)
            # must not stop the agent: keep it as a dead letter and go on.
            log.warning(
                "%s agent: record %s[%d]@%d is not a usable event: %s",
                self.scope,
                item.topic,
                item.partition,
                item.offset,
                exc,
            )
            origin = {"topic": item.topic, "partition": item.partition, "offset": item.offset}
            reason = f"not a usable event ({type(exc).__name__}: {exc})"
            result.deadletters.append(
                deadletter_json(item.value, reason, origin, received_epoch=now)
            )

    def _load(self, key: str, partition: int) -> None:
        if key in self._home:
            return
        if len(self._home) >= self._max_keys:
            # Re-importing is harmless: the table equals the detector at batch boundaries.
            self._home.clear()
        self._home[key] = partition
        stored = self._stored_state(key.encode())
        if stored is not None:
            self.detector.import_state(self.scope, key, orjson.loads(stored))

    def _state_writes(self) -> list[StateWrite]:
        writes = []
        for scope, key in self.detector.keys_touched():
            if scope != self.scope:
                continue
            data = self.detector.export_state(scope, key)
            raw_key = key.encode()
            partition = self._home.get(key)
            if partition is None:
                partition = key_partition(raw_key, self._partitions)
            writes.append(StateWrite(raw_key, partition, orjson.dumps(data) if data else None))
        return writes


def ip_rule_kinds(policy: Policy, signing_key: bytes) -> frozenset[str]:
    """The event kinds the policy's IP rules look at: the only ones worth forwarding by IP.

    The detector hands an event to the IP feeds and rules only when a rule of
    the scope takes its kind, so the IP agent would do nothing with the others.
    """
    detector = Detector(policy, signing_key, scopes={"ip"})
    return frozenset(kind for rule in detector.rules for kind in rule.kinds)


def ip_routing_key(networks: Networks) -> Callable[[str], bytes]:
    """Forward by-IP events keyed by the client's prefix (/24, /64 by default).

    Rules keep state per IP and per prefix; keying by prefix puts both on one
    partition, so one worker sees every address of a prefix.
    """

    def key(ip: str) -> bytes:
        return (networks.prefix_of(ip) or ip).encode()

    return key


def faust_brokers(bootstrap: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap.split(",") if server.strip()]


def build_app(
    config: Config,
    policy: Policy,
    signing_key: bytes,
    settings: WorkerSettings,
    geo: GeoLookup | None = None,
) -> faust.App:
    """The Faust app with its two agents and state tables, not yet started."""
    partitions = config.kafka.partitions
    app = faust.App(
        settings.app_id,
        broker=faust_brokers(config.kafka.bootstrap),
        store="memory://",
        topic_partitions=partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        web_enabled=False,
        datadir=str(config.state_dir / "worker" / settings.app_id),
        producer_acks=-1,
        processing_guarantee="at_least_once",
        key_serializer="raw",
        value_serializer="raw",
    )
    topics = config.topics
    events_topic = app.topic(topics.events, schema=BytesSchema())
    by_ip_topic = app.topic(topics.events_by_ip, schema=BytesSchema())

    def table(scope: str) -> Any:
        # bytes key and value types make Faust use the raw codec: we store orjson.
        return app.Table(
            f"{scope}-state",
            default=None,
            partitions=partitions,
            key_type=bytes,
            value_type=bytes,
        )

    def runner(scope: str, state_table: Any, **forwarding: Any) -> ScopeRunner:
        return ScopeRunner(
            scope,
            lambda: Detector(policy, signing_key, scopes={scope}, geo=geo),
            state_table.get,
            partitions,
            **forwarding,
        )

    networks = Networks(policy.network.ipv4_prefix, policy.network.ipv6_prefix)
    account_table, ip_table = table("account"), table("ip")
    account = runner(
        "account",
        account_table,
        forward_key=ip_routing_key(networks),
        forward_kinds=ip_rule_kinds(policy, signing_key),
    )
    ip = runner("ip", ip_table)

    async def consume(runner: ScopeRunner, stream: Any, state_table: Any) -> None:
        # Our own producer rather than Faust's topic.send: one Faust send costs
        # about as much as processing the event (measured 2.6k vs 4.8k events/s).
        # Waiting for every acknowledgement before the next batch keeps
        # at-least-once: Faust acks (and later commits) a batch only after it.
        producer = new_producer(
            config.kafka.bootstrap, client_id=f"{settings.app_id}-{runner.scope}"
        )
        await producer.start()
        changelog = state_table.changelog_topic_name
        try:
            async for events in stream.take_events(
                settings.batch_size, within=settings.batch_within
            ):
                batch = [
                    Incoming(e.message.topic, e.message.partition, e.message.offset, e.value)
                    for e in events
                ]
                result = runner.run_batch(batch, time.time())
                result.state = apply_state(state_table.data, result.state)
                await _deliver_before_ack(producer, output_records(result, topics, changelog))
                runner.report_now_and_then(time.monotonic())
        finally:
            await producer.stop()

    @app.agent(events_topic, name="account-rules")
    async def account_agent(stream: Any) -> None:
        await consume(account, stream, account_table)

    @app.agent(by_ip_topic, name="ip-rules")
    async def ip_agent(stream: Any) -> None:
        await consume(ip, stream, ip_table)

    def forget_cached_state(sender: Any, *args: Any, **kwargs: Any) -> None:
        account.request_reset()
        ip.request_reset()

    # mode's signal typing rejects plain receivers; the call contract is (sender, *args, **kw).
    app.on_partitions_revoked.connect(cast(Any, forget_cached_state))

    return app


async def _deliver_before_ack(producer: Any, records: Sequence[Record]) -> None:
    """Deliver a batch's outputs even when the agent is cancelled meanwhile.

    Faust's ``take_events`` acks a batch in a ``finally``, cancellation
    included, so a stop during delivery would commit offsets whose state and
    commands never reached Kafka. Finishing the delivery first keeps the acks
    true; the bound keeps a stop from hanging on a broker that is gone.
    """
    delivery = asyncio.ensure_future(deliver_all(producer, records))
    try:
        await asyncio.shield(delivery)
    except asyncio.CancelledError:
        try:
            await asyncio.wait_for(delivery, timeout=STOP_DELIVERY_TIMEOUT)
        except TimeoutError:
            log.error(
                "stopping with %d output records of a batch unacknowledged by Kafka: "
                "their state and decisions are lost, though the batch's events are acked",
                len(records),
            )
        raise


def apply_state(store: Any, writes: Sequence[StateWrite]) -> list[StateWrite]:
    """Update the table's local store; return the changelog records to publish.

    A key that never reached the table needs no tombstone.
    """
    published = []
    for write in writes:
        if write.value is None:
            if write.key not in store:
                continue
            del store[write.key]
        else:
            store[write.key] = write.value
        published.append(write)
    return published


def output_records(result: BatchResult, topics: Topics, changelog: str) -> list[Record]:
    """Decisions, forwarded events, dead letters and state changes of one batch, in that order."""
    records = []
    for decision in result.decisions:
        topic = topics.control if isinstance(decision, Command) else topics.alerts
        records.append(Record(topic, decision.key.encode(), decision.to_json()))
    records.extend(Record(topics.events_by_ip, key, value) for key, value in result.forward)
    records.extend(Record(topics.deadletter, None, value) for value in result.deadletters)
    records.extend(Record(changelog, w.key, w.value, w.partition) for w in result.state)
    return records


async def prepare_topics(config: Config) -> int:
    """Create the topics the worker reads and writes; return the replication factor to use.

    The state changelogs Faust creates get the same replication as our topics
    (``min(3, brokers)``): state on one broker would be lost with it.
    """
    await ensure_topics(config.kafka.bootstrap, config.topics, config.kafka.partitions)
    admin = AIOKafkaAdminClient(bootstrap_servers=config.kafka.bootstrap)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
    finally:
        await admin.close()
    return min(3, len(cluster["brokers"]))


@click.command("worker")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Runtime configuration (TOML); defaults plus MAILWARDEN_* environment otherwise.",
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Detection policy (TOML); default: the config's, else built-in defaults.",
)
@click.option(
    "--app-id",
    default=DEFAULT_APP_ID,
    show_default=True,
    envvar="MAILWARDEN_APP_ID",
    help="Faust application id: the consumer group and the prefix of the state topics.",
)
def worker_command(config_path: Path | None, policy_path: Path | None, app_id: str) -> None:
    """Run the detection worker: events in, alerts and signed commands out.

    Start as many as there are partitions to spread the load; Faust moves
    partitions and their state between them. Stops cleanly on SIGTERM.
    """
    try:
        config = load_config(config_path)
        policy = load_policy(policy_path or config.policy_path)
        signing_key = config.require_signing_key()
        geo = open_geo(policy.geoip)
    except (ConfigError, PolicyError, GeoipError) as exc:
        raise click.ClickException(str(exc)) from exc
    for notice in Detector(policy, signing_key, geo=geo).notices:
        log.warning("%s", notice)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        replication = loop.run_until_complete(prepare_topics(config))
    except (TopicError, KafkaError) as exc:
        raise click.ClickException(
            f"cannot prepare topics on {config.kafka.bootstrap}: {exc}"
        ) from exc
    settings = WorkerSettings(app_id=app_id, replication_factor=replication)
    app = build_app(config, policy, signing_key, settings, geo)
    Path(app.conf.datadir).mkdir(parents=True, exist_ok=True)
    worker = faust.Worker(app, loop=loop, loglevel="INFO", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
