"""Benchmarks of the Kafka pipeline: worker throughput and end-to-end latency.

Both run the real programs (``mailwarden worker``, ``mailwarden tail``) as
subprocesses against a broker that is already running, on topics of their
own, and clean up their processes. ``mailwarden bench`` wires them up:

- :func:`worker_throughput`: pre-load N synthetic events into the events
  topic, start a worker, and time how long its consumer group takes to reach
  zero lag on both event topics (Faust commits every few seconds, so use
  enough events for the run to last well beyond that).
- :func:`end_to_end_latency`: a worker and a publisher on a log file; append
  submission lines for new accounts at a steady rate, each one enough (with a
  policy threshold of 1) to suspend its account, and time each line from its
  write to its command on the control topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from mailwarden.config import Topics
from models.events import DeliveryStatus, Event, Origin, Outcome, iso_utc
from models.policy import Policy
from streams.producer import new_producer
from streams.topics import ensure_topics
from streams.worker import ip_rule_kinds

BENCH_SIGNING_KEY = "bench-signing-key"
T0 = 1_790_000_000.0


class BenchError(RuntimeError):
    """A benchmark could not run to its end (a program died, a deadline passed)."""


@dataclass(slots=True, frozen=True)
class ThroughputResult:
    """One worker's run through pre-loaded events.

    ``startup_seconds`` runs from the worker's start to its first offset commit,
    ``seconds`` from there to zero lag; Faust commits every few seconds, which
    blurs both ends by that much. ``cpu_seconds`` is what the worker process
    spent in all (start-up included; None where /proc is missing): on a shared
    machine it moves less than the wall-clock rate does.
    """

    events: int
    forwarded: int
    partitions: int
    seconds: float
    startup_seconds: float
    cpu_seconds: float | None = None

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        cpu = "" if self.cpu_seconds is None else f", worker CPU {self.cpu_seconds:.1f} s"
        return (
            f"worker throughput: {self.events} events ({self.forwarded} forwarded by IP) "
            f"on {self.partitions} partitions: {self.events_per_second:,.0f} events/s "
            f"({self.seconds:.1f} s after a start-up of {self.startup_seconds:.1f} s{cpu})"
        )


@dataclass(slots=True, frozen=True)
class LatencyResult:
    lines: int
    rate: float
    latencies: tuple[float, ...]

    def percentile(self, q: float) -> float:
        return float(np.percentile(np.array(self.latencies), q)) if self.latencies else 0.0

    def summary(self) -> str:
        return (
            f"end-to-end latency (log line -> command on the control topic), "
            f"{len(self.latencies)}/{self.lines} lines at {self.rate:g}/s: "
            f"p50 {self.percentile(50) * 1000:.0f} ms, p99 {self.percentile(99) * 1000:.0f} ms, "
            f"max {max(self.latencies, default=0.0) * 1000:.0f} ms"
        )


def bench_topics() -> Topics:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    return Topics(
        events=f"{prefix}.mail.events",
        events_by_ip=f"{prefix}.mail.events.by-ip",
        alerts=f"{prefix}.mail.alerts",
        control=f"{prefix}.mail.control",
        deadletter=f"{prefix}.mail.deadletter",
    )


def write_bench_config(
    directory: Path, bootstrap: str, topics: Topics, partitions: int, policy: str | None = None
) -> Path:
    topic_lines = "\n".join(
        f'{name} = "{getattr(topics, name)}"'
        for name in ("events", "events_by_ip", "alerts", "control", "deadletter")
    )
    policy_line = ""
    if policy is not None:
        (directory / "policy.toml").write_text(policy, encoding="utf-8")
        policy_line = 'policy = "policy.toml"'
    config = directory / "mailwarden.toml"
    config.write_text(
        f'[mailwarden]\nstate_dir = "state"\n{policy_line}\n\n'
        f'[kafka]\nbootstrap = "{bootstrap}"\npartitions = {partitions}\n\n'
        f'[topics]\n{topic_lines}\n\n[signing]\nkey = "{BENCH_SIGNING_KEY}"\n',
        encoding="utf-8",
    )
    return config


@dataclass(slots=True)
class Running:
    """A mailwarden program started by a benchmark, and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def check(self) -> None:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise BenchError(f"{self.name} exited with {self.process.returncode}:\n{tail}")


@contextlib.contextmanager
def program(args: list[str], log: Path) -> Iterator[Running]:
    """Run ``mailwarden ARGS`` with output to ``log``; SIGTERM (then kill) it at the end."""
    command = [sys.executable, "-c", "from mailwarden.cli import main; main()", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILWARDEN_")}
    with open(log, "ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        yield Running(args[0], process, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def process_cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a running process (Linux /proc), None if unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name, which is in parentheses and may hold spaces.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def synthetic_events(count: int, seed: int = 7) -> Iterator[Event]:
    """A mix like a busy mail host: logins (5 % failing), submissions, deliveries."""
    rng = random.Random(seed)
    for n in range(count):
        epoch = T0 + n * 0.01
        account = f"user{rng.randrange(20_000)}@example.org"
        address = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        draw = rng.random()
        kind: str = "auth"
        outcome: Outcome | None = "success"
        status: DeliveryStatus | None = None
        if draw < 0.05:
            outcome = "failure"
        elif draw < 0.35:
            kind, outcome = "submission", None
        elif draw < 0.50:
            kind, outcome, status = "delivery", None, "sent"
        yield Event(
            ts=iso_utc(epoch),
            epoch=epoch,
            host="mx1",
            source="postfix" if kind != "auth" else "dovecot",
            kind=kind,
            outcome=outcome,
            protocol="smtp" if kind != "auth" else "imap",
            user=account,
            client_ip=address if kind != "delivery" else None,
            status=status,
            tls="TLSv1.3",
            origin=Origin(path="/var/log/mail.log", line=n + 1, host="mx1", offset=n * 150),
        )


async def _preload(bootstrap: str, topic: str, count: int) -> int:
    """Produce ``count`` events; return how many the worker forwards by IP.

    The worker forwards an event with a client IP whose kind the IP rules of
    the policy (here the defaults) look at.
    """
    forwarded_kinds = ip_rule_kinds(Policy(), BENCH_SIGNING_KEY.encode())
    producer = new_producer(bootstrap, client_id="mailwarden-bench", linger_ms=20)
    await producer.start()
    forwarded = 0
    try:
        pending = []
        for event in synthetic_events(count):
            forwarded += event.client_ip is not None and event.kind in forwarded_kinds
            key = event.key.encode() if event.key else None
            pending.append(await producer.send(topic, event.to_json(), key=key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return forwarded


async def _group_progress(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> tuple[int, int]:
    """(committed, end) offsets summed over ``partitions`` for the consumer's group."""
    ends = await consumer.end_offsets(partitions)
    committed = 0
    for tp in partitions:
        committed += await consumer.committed(tp) or 0
    return committed, sum(ends.values())


async def worker_throughput(
    bootstrap: str,
    events: int = 100_000,
    partitions: int = 4,
    workdir: Path | None = None,
    timeout: float = 900.0,
) -> ThroughputResult:
    """Time one worker through ``events`` pre-loaded events (both agents, to zero lag)."""
    with tempfile.TemporaryDirectory(prefix="mw-bench-", dir=workdir) as tmp:
        directory = Path(tmp)
        topics = bench_topics()
        await ensure_topics(bootstrap, topics, partitions)
        forwarded = await _preload(bootstrap, topics.events, events)
        config = write_bench_config(directory, bootstrap, topics, partitions)
        app_id = f"bench-{uuid.uuid4().hex[:8]}"
        log = directory / "worker.log"
        tps = [
            TopicPartition(t, p)
            for t in (topics.events, topics.events_by_ip)
            for p in range(partitions)
        ]
        watcher = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=app_id)
        await watcher.start()
        try:
            with program(["worker", "--config", str(config), "--app-id", app_id], log) as worker:
                started = time.monotonic()
                first_progress: float | None = None
                deadline = started + timeout
                while True:
                    worker.check()
                    if time.monotonic() > deadline:
                        raise BenchError(f"worker did not catch up within {timeout} s")
                    committed, end = await _group_progress(watcher, tps)
                    now = time.monotonic()
                    if committed and first_progress is None:
                        first_progress = now
                    if end >= events + forwarded and committed >= end:
                        cpu_seconds = process_cpu_seconds(worker.process.pid)
                        break
                    await asyncio.sleep(0.25)
        finally:
            await watcher.stop()
        finished = time.monotonic()
        began = first_progress or started
        return ThroughputResult(
            events=events,
            forwarded=forwarded,
            partitions=partitions,
            seconds=finished - began,
            startup_seconds=began - started,
            cpu_seconds=cpu_seconds,
        )


LATENCY_POLICY = """
[rules.smtp_burst]
threshold = 1
"""


def _submission_line(account: str, sequence: int, now: float) -> bytes:
    stamp = datetime.fromtimestamp(now, tz=UTC).strftime("%b %d %H:%M:%S")
    return (
        f"{stamp} mx1 postfix/submission/smtpd[4242]: {sequence:011X}: "
        f"client=unknown[192.0.2.10], sasl_method=PLAIN, sasl_username={account}\n"
    ).encode()


async def end_to_end_latency(
    bootstrap: str,
    rate: float = 20.0,
    lines: int = 400,
    partitions: int = 4,
    workdir: Path | None = None,
    ready_timeout: float = 120.0,
) -> LatencyResult:
    """Latency from a log line's write to its command, at ``rate`` lines per second."""
    with tempfile.TemporaryDirectory(prefix="mw-bench-", dir=workdir) as tmp:
        directory = Path(tmp)
        topics = bench_topics()
        await ensure_topics(bootstrap, topics, partitions)
        config = write_bench_config(directory, bootstrap, topics, partitions, LATENCY_POLICY)
        mail_log = directory / "mail.log"
        mail_log.touch()
        worker_args = [
            "worker",
            "--config",
            str(config),
            "--app-id",
            f"bench-{uuid.uuid4().hex[:8]}",
        ]
        tail_args = [
            "tail",
            str(mail_log),
            "--config",
            str(config),
            "--host",
            "mx1",
            "--from-start",
        ]
        consumer = AIOKafkaConsumer(
            topics.control, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            with (
                program(worker_args, directory / "worker.log") as worker,
                program(tail_args, directory / "tail.log") as tail,
            ):
                await _warm_up(mail_log, consumer, (worker, tail), ready_timeout)
                latencies = await _measure(mail_log, consumer, rate, lines, (worker, tail))
        finally:
            await consumer.stop()
        return LatencyResult(lines=lines, rate=rate, latencies=tuple(latencies))


async def _arrivals(consumer: AIOKafkaConsumer, arrived: dict[str, float]) -> None:
    batches = await consumer.getmany(timeout_ms=20)
    now = time.monotonic()
    for records in batches.values():
        for record in records:
            command = orjson.loads(record.value)
            arrived.setdefault(command["subject"], now)


async def _warm_up(
    mail_log: Path,
    consumer: AIOKafkaConsumer,
    programs: tuple[Running, ...],
    timeout: float,
) -> None:
    """Until the pipeline answers: worker up, partitions assigned, publisher following."""
    arrived: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    sequence = 0
    while not any(subject.startswith("warmup") for subject in arrived):
        for running in programs:
            running.check()
        if time.monotonic() > deadline:
            raise BenchError(f"no command came through within {timeout} s")
        sequence += 1
        with open(mail_log, "ab") as log:
            log.write(_submission_line(f"warmup{sequence}@example.org", sequence, time.time()))
        for _ in range(25):
            await _arrivals(consumer, arrived)


async def _measure(
    mail_log: Path,
    consumer: AIOKafkaConsumer,
    rate: float,
    lines: int,
    programs: tuple[Running, ...],
) -> list[float]:
    written: dict[str, float] = {}
    arrived: dict[str, float] = {}
    interval = 1.0 / rate
    started = time.monotonic()
    with open(mail_log, "ab", buffering=0) as log:
        for n in range(lines):
            next_write = started + n * interval
            while time.monotonic() < next_write:
                await _arrivals(consumer, arrived)
            account = f"marker{n}-{uuid.uuid4().hex[:6]}@example.org"
            log.write(_submission_line(account, 1_000_000 + n, time.time()))
            written[account] = time.monotonic()
    deadline = time.monotonic() + 30
    while len(set(written) & set(arrived)) < lines and time.monotonic() < deadline:
        for running in programs:
            running.check()
        await _arrivals(consumer, arrived)
    return sorted(arrived[a] - written[a] for a in written if a in arrived)
