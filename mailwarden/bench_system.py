"""Benchmarks of the running system: broker, worker, pipeline latency, adapters, replay.

Each command starts what it measures (a local broker, the worker, an adapter)
and stops it again, so `mailwarden bench all` runs on a bare machine with
Java and Maven.
"""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from streams.broker import BrokerError, KafkaBroker, measure_broker_startup


def _child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@click.command("broker")
@click.option("--runs", type=click.IntRange(min=1), default=3, show_default=True)
def broker_bench(runs: int) -> None:
    """Kafka broker start-up time on fresh data directories."""
    try:
        measure_broker_startup(runs)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("pipeline")
@click.option("--events", type=click.IntRange(min=1000), default=100_000, show_default=True)
@click.option("--rate", type=float, default=20.0, show_default=True, help="Lines/s for latency.")
@click.option("--lines", type=click.IntRange(min=10), default=400, show_default=True)
@click.option("--partitions", type=click.IntRange(min=1), default=4, show_default=True)
def pipeline_bench(events: int, rate: float, lines: int, partitions: int) -> None:
    """Worker throughput (events/s) and log-line-to-command latency (p50, p99)."""
    from streams.bench import end_to_end_latency, worker_throughput

    with (
        tempfile.TemporaryDirectory(prefix="mw-bench-broker-") as tmp,
        KafkaBroker.start(Path(tmp) / "kafka") as broker,
    ):
        click.echo(f"broker at {broker.bootstrap}")
        throughput = asyncio.run(
            worker_throughput(broker.bootstrap, events=events, partitions=partitions)
        )
        click.echo(throughput.summary())
        latency = asyncio.run(
            end_to_end_latency(broker.bootstrap, rate=rate, lines=lines, partitions=partitions)
        )
        click.echo(latency.summary())


@click.command("policy")
@click.option("--connections", type=click.IntRange(1, 1000), default=8, show_default=True)
@click.option("--requests", type=click.IntRange(1), default=40_000, show_default=True)
def policy_bench(connections: int, requests: int) -> None:
    """Postfix policy adapter: answers per second and latency over loopback."""
    from streams.adapters.bench import run_bench

    click.echo(run_bench(connections, requests, target=None).summary())


@click.command("replay")
@click.option("--accounts", type=click.IntRange(min=10), default=2000, show_default=True)
@click.option("--days", type=click.IntRange(min=1), default=1, show_default=True)
def replay_bench(accounts: int, days: int) -> None:
    """Replay throughput (parse and detect, one core) on a simulated population."""
    mailwarden = [sys.executable, "-m", "mailwarden.cli"]
    with tempfile.TemporaryDirectory(prefix="mw-bench-replay-") as tmp:
        out = Path(tmp)
        subprocess.run(
            [*mailwarden, "simulate", "--out", str(out), "--accounts", str(accounts),
             "--days", str(days)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        logs = sorted(out.glob("*.log"))
        total = 0
        for log in logs:
            with log.open("rb") as handle:
                total += sum(1 for _ in handle)
        cpu_before = _child_cpu_seconds()
        began = time.perf_counter()
        subprocess.run(
            [*mailwarden, "replay", "--host", "mx1", *map(str, logs)],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wall = time.perf_counter() - began
        cpu = _child_cpu_seconds() - cpu_before
    click.echo(
        f"replay: {total:,} lines ({accounts} accounts x {days} day(s)) in {cpu:.1f} CPU s "
        f"({wall:.1f} s wall): {total / cpu:,.0f} lines per CPU second, parse and detect"
    )
