"""Prometheus metrics of `mailwarden notifier`, served from its own event loop.

Counters and the delivery-time histogram are filled as records are read and
notifications settle; the backlog (notifications not yet settled, and the age
of the oldest), the broker connection and catching up are read from the
notifier at scrape time. Labels are bounded: ``topic`` is one of the topics
read, ``outcome`` one of the notifier's fixed reasons, ``endpoint`` a webhook
*name* from the config (never its URL, which may hold a token).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Iterable, Iterator
from typing import Literal, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.metrics_http import serve_metrics

log = logging.getLogger(__name__)

# A delivery takes milliseconds when the receiver answers at once and minutes
# when it is retried with backoff (6 tries, up to 60 s apart, by default).
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
DELIVERY_RESULTS = ("delivered", "retried", "dead_letter")

DeliveryResult = Literal["delivered", "retried", "dead_letter"]


class MetricsUnavailable(RuntimeError):
    """The metrics address cannot be listened on."""


class NotifierState(Protocol):
    """What the notifier tells a scrape about itself."""

    connected: bool
    caught_up: asyncio.Event

    def pending_notifications(self) -> int: ...

    def oldest_pending_seconds(self) -> float: ...


class NotifierMetrics:
    """The metrics one notifier exposes on ``/metrics``."""

    def __init__(self, endpoints: Iterable[str]) -> None:
        self.registry = CollectorRegistry()
        self.records = Counter(
            "mailwarden_notifier_records",
            "Records read, by topic and what became of them (notified, or why not).",
            ["topic", "outcome"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "mailwarden_notifier_deliveries",
            "Notifications delivered or dead-lettered, and tries repeated, by webhook name.",
            ["endpoint", "result"],
            registry=self.registry,
        )
        self.delivery_seconds = Histogram(
            "mailwarden_notifier_delivery_seconds",
            "Time from a notification's first try to it being delivered or dead-lettered.",
            ["endpoint"],
            buckets=DELIVERY_BUCKETS,
            registry=self.registry,
        )
        # Every webhook's series exist from the start, so increase() sees the first one.
        for endpoint in endpoints:
            for result in DELIVERY_RESULTS:
                self.deliveries.labels(endpoint, result)
            self.delivery_seconds.labels(endpoint)

    def watch(self, state: NotifierState) -> None:
        """Report ``state``'s backlog and connection at every scrape."""
        self.registry.register(NotifierStateCollector(state))

    def count_record(self, topic: str, outcome: str) -> None:
        self.records.labels(topic, outcome).inc()

    def count_retry(self, endpoint: str) -> None:
        self.deliveries.labels(endpoint, "retried").inc()

    def count_settled(self, endpoint: str, result: DeliveryResult, seconds: float) -> None:
        self.deliveries.labels(endpoint, result).inc()
        self.delivery_seconds.labels(endpoint).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class NotifierStateCollector(Collector):
    """Reads the notifier's backlog and connection at scrape time, in its event loop."""

    def __init__(self, state: NotifierState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "mailwarden_notifier_queue_depth",
            "Notifications read and not yet settled (queued, being sent or waiting to retry).",
            value=self._state.pending_notifications(),
        )
        yield GaugeMetricFamily(
            "mailwarden_notifier_oldest_pending_seconds",
            "Age of the oldest notification not yet settled; 0 when there is none.",
            value=self._state.oldest_pending_seconds(),
        )
        yield GaugeMetricFamily(
            "mailwarden_notifier_connected",
            "1 while the broker answers the notifier's reads and probes.",
            value=int(self._state.connected),
        )
        yield GaugeMetricFamily(
            "mailwarden_notifier_caught_up",
            "1 once everything up to the end offsets seen at start is read and settled.",
            value=int(self._state.caught_up.is_set()),
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def start_metrics_server(metrics: NotifierMetrics, host: str, port: int) -> web.AppRunner:
    """Serve ``/metrics`` on ``host:port`` (0: any free port; see ``runner.addresses``).

    Stop it with ``await runner.cleanup()``.
    """
    if not is_loopback(host):
        log.warning(
            "serving metrics on %s: /metrics has no authentication and names the webhooks; "
            "keep it on loopback or behind a firewall",
            host,
        )

    try:
        runner = await serve_metrics(metrics.exposition, host, port)
    except OSError as exc:
        raise MetricsUnavailable(f"cannot serve metrics on {host}:{port}: {exc}") from exc
    log.info("metrics on http://%s/metrics", _display(host, runner.addresses[0][1]))
    return runner


def _display(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
