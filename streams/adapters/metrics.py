"""Prometheus metrics of an adapter, served from its own event loop.

Each adapter process has its own registry: request counters, refusals by
the action behind them, and latency, filled by the protocol server, plus
the state of its view of `mail.control` (commands in force, records by
outcome, rejected records by reason, lag, caught up, connected), read from
:class:`ActiveCommands` and :class:`ControlConsumer` at scrape time. The
scrape runs in the adapter's event loop (aiohttp), so it never reads that
state from another thread.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from models.enforcement import ActiveCommands, Decision
from streams.adapters.control import ControlConsumer
from streams.metrics_http import serve_metrics

# Answers come from memory: most take well under a millisecond.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5)


class AdapterMetrics:
    """The metrics one adapter exposes on ``/metrics``."""

    def __init__(self, active: ActiveCommands, control: ControlConsumer | None = None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mailwarden_adapter_requests",
            "Requests answered, by decision (REJECT, DEFER, HOLD, DUNNO, NOTFOUND, ...).",
            ["decision"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "mailwarden_adapter_refusals",
            "Requests refused, by the action of the command behind the refusal.",
            ["action"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mailwarden_adapter_request_seconds",
            "Time from a complete request to its answer being written.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.malformed = Counter(
            "mailwarden_adapter_malformed_requests",
            "Requests that broke the protocol or its limits, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.registry.register(ControlCollector(active, control))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def count_refusal(metrics: AdapterMetrics | None, decision: Decision) -> None:
    """Count a refusing ``decision`` under the action of its command."""
    if metrics is not None and decision.refuses and decision.command is not None:
        metrics.refusals.labels(decision.command.action).inc()


class ControlCollector(Collector):
    """Reads the enforcement state at scrape time."""

    def __init__(self, active: ActiveCommands, control: ControlConsumer | None) -> None:
        self._active = active
        self._control = control

    def collect(self) -> Iterator[Metric]:
        stats = self._active.stats
        records = CounterMetricFamily(
            "mailwarden_adapter_control_records",
            "Records read from mail.control, by what became of them.",
            labels=["outcome"],
        )
        for outcome, value in (
            ("applied", stats.applied),
            ("released", stats.released),
            ("dry_run", stats.dry_run),
            ("stale", stats.stale),
            ("duplicate", stats.duplicate),
            ("rejected", stats.rejected_total),
        ):
            records.add_metric([outcome], value)
        yield records
        rejected = CounterMetricFamily(
            "mailwarden_adapter_control_rejected",
            "Records on mail.control that were not correctly signed commands, by reason.",
            labels=["reason"],
        )
        for reason, value in sorted(stats.rejected.items()):
            rejected.add_metric([reason], value)
        yield rejected
        yield CounterMetricFamily(
            "mailwarden_adapter_commands_expired",
            "Commands dropped because they expired.",
            value=stats.expired,
        )
        yield GaugeMetricFamily(
            "mailwarden_adapter_commands_held",
            "Commands held in memory (in force, or expired and not yet pruned).",
            value=len(self._active),
        )
        if self._control is None:
            return
        status = self._control.status
        yield GaugeMetricFamily(
            "mailwarden_adapter_control_caught_up",
            "1 once the adapter has read mail.control up to the end seen at start.",
            value=int(status.caught_up),
        )
        yield GaugeMetricFamily(
            "mailwarden_adapter_control_connected",
            "1 while the broker answers the adapter's probes.",
            value=int(status.connected),
        )
        yield GaugeMetricFamily(
            "mailwarden_adapter_control_lag",
            "Records on mail.control not yet read, at the last probe (-1: unknown).",
            value=-1 if status.lag is None else status.lag,
        )
        yield CounterMetricFamily(
            "mailwarden_adapter_control_tombstones",
            "Unsigned tombstones seen on mail.control (ignored).",
            value=status.tombstones,
        )
        yield CounterMetricFamily(
            "mailwarden_adapter_control_reconnects",
            "Times the control consumer was rebuilt after a failure.",
            value=status.reconnects,
        )


async def start_metrics_server(metrics: AdapterMetrics, host: str, port: int) -> web.AppRunner:
    """Serve ``/metrics`` on ``host:port``; stop it with ``await runner.cleanup()``."""
    return await serve_metrics(metrics.exposition, host, port)
