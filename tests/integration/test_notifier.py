"""The notifier against a real HTTP receiver (aiohttp on loopback) and, end to end, the real broker.

The receiver answers from a script (503, 429, a stall, ...) and records every
request; the tests check what a webhook owner would: one accepted delivery
per command and audience, each with a valid signature, nothing for forged
commands, and nothing again after a restart -- and what an operator would:
the counters and the backlog on the notifier's ``/metrics``, scraped over HTTP.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client.parser import text_string_to_metric_families

from mailwarden.config import Topics, load_config
from models.alerts import Alert
from models.commands import Command, new_command
from models.notification import (
    IDEMPOTENCY_HEADER,
    Notification,
    SignatureError,
    verify_signature,
)
from streams.notifier import (
    DeadLetters,
    DeliveredStore,
    Deliverer,
    DeliverySettings,
    Endpoint,
    Notifier,
    NotifierStats,
    notifier_settings,
)
from streams.notifier_metrics import NotifierMetrics, start_metrics_server
from tests.integration.running import SIGNING_KEY, mailwarden, produce, running, write_config
from tests.support.kafka import TEST_PARTITIONS

USER_SECRET = b"user-gateway-secret-for-tests"
SOC_SECRET = b"soc-webhook-secret-for-tests"
FAST = {"timeout": 2.0, "max_attempts": 4, "backoff_initial": 0.01, "backoff_max": 0.05}
STALL = -1  # a scripted answer: wait longer than the client's timeout


@dataclass
class Received:
    path: str
    headers: CIMultiDict[str]
    body: bytes
    status: int

    @property
    def payload(self) -> dict[str, Any]:
        result: dict[str, Any] = orjson.loads(self.body)
        return result


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that answers the first requests from ``script``.

    A path in ``always`` gets that status every time; a path in ``gated``
    waits for ``gate`` before answering, counted in ``waiting`` meanwhile.
    """

    script: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    always: dict[str, int] = field(default_factory=dict)
    gated: set[str] = field(default_factory=set)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: Counter[str] = field(default_factory=Counter)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.path in self.gated:
            self.waiting[request.path] += 1
            await self.gate.wait()
            self.waiting[request.path] -= 1
        if request.path in self.always:
            status = self.always[request.path]
        else:
            status = self.script.pop(0) if self.script else 200
        if status == STALL:
            await asyncio.sleep(1.0)
            status = 200
        self.requests.append(Received(request.path, CIMultiDict(request.headers), body, status))
        extra = {"Retry-After": "0"} if status == 429 else {}
        return web.Response(status=status, headers=extra)

    def accepted(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path and r.status == 200]


# On the test's own loop: a server on the session loop would never answer the test.
@pytest_asyncio.fixture(loop_scope="function")
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()
    app = web.Application()
    app.router.add_post("/{name}", state.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = runner.addresses[0][1]
    try:
        yield state
    finally:
        await runner.cleanup()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def verified(request: Received, secret: bytes) -> bool:
    try:
        verify_signature(request.body, request.headers, secret, now=time.time())
    except SignatureError:
        return False
    return True


# --------------------------------------------------------------------------- delivery, no broker


@dataclass
class Delivery:
    deliverer: Deliverer
    store: DeliveredStore
    deadletters: DeadLetters
    stats: NotifierStats
    metrics: NotifierMetrics

    def deliveries(self, result: str) -> float | None:
        return self.metrics.registry.get_sample_value(
            "mailwarden_notifier_deliveries_total", {"endpoint": "soc", "result": result}
        )


def delivery(tmp_path: Path, **settings: Any) -> Delivery:
    store = DeliveredStore(tmp_path / "delivered.jsonl", capacity=100)
    deadletters = DeadLetters(tmp_path / "deadletter.jsonl")
    stats = NotifierStats()
    metrics = NotifierMetrics(["soc"])
    client = httpx.AsyncClient(timeout=httpx.Timeout(settings.get("timeout", 2.0)))
    deliverer = Deliverer(
        client,
        DeliverySettings(**{**FAST, **settings}),
        store,
        deadletters,
        stats,
        metrics=metrics,
    )
    return Delivery(deliverer, store, deadletters, stats, metrics)


NOTE = Notification("0123456789abcdef", "soc", {"type": "notification", "text": "hello"})


async def send(tmp_path: Path, url: str, **settings: Any) -> tuple[str, Delivery]:
    setup = delivery(tmp_path, **settings)
    endpoint = Endpoint("soc", "soc", url, SOC_SECRET)
    try:
        outcome = await setup.deliverer.deliver(endpoint, NOTE)
    finally:
        await setup.deliverer.client.aclose()
    return outcome, setup


def dead_letters(setup: Delivery) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in setup.deadletters.path.read_bytes().splitlines()]


async def test_server_errors_are_retried_until_accepted(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script = [503, 500, 429]
    outcome, setup = await send(tmp_path, receiver.url("/soc"))
    assert outcome == "delivered"
    assert [r.status for r in receiver.requests] == [503, 500, 429, 200]
    assert {r.headers[IDEMPOTENCY_HEADER] for r in receiver.requests} == {NOTE.id}
    assert all(verified(r, SOC_SECRET) for r in receiver.requests)
    assert "soc|0123456789abcdef" in setup.store
    assert not setup.deadletters.path.exists()
    assert [setup.deliveries(r) for r in ("delivered", "retried", "dead_letter")] == [1, 3, 0]


async def test_a_client_error_is_final_and_dead_lettered(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.script = [400]
    outcome, setup = await send(tmp_path, receiver.url("/soc"))
    assert outcome == "dead_lettered"
    assert len(receiver.requests) == 1
    [letter] = dead_letters(setup)
    assert letter["error"] == "HTTP 400"
    assert letter["attempts"] == 1
    assert letter["payload"] == NOTE.payload
    assert "soc|0123456789abcdef" in setup.store


async def test_giving_up_after_max_attempts_writes_a_dead_letter(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.script = [503] * 10
    outcome, setup = await send(tmp_path, receiver.url("/soc"), max_attempts=3)
    assert outcome == "dead_lettered"
    assert len(receiver.requests) == 3
    assert dead_letters(setup)[0]["attempts"] == 3
    assert setup.stats.retries == 2
    assert [setup.deliveries(r) for r in ("delivered", "retried", "dead_letter")] == [0, 2, 1]


async def test_a_stalled_request_times_out_and_is_retried(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.script = [STALL]
    outcome, setup = await send(tmp_path, receiver.url("/soc"), timeout=0.2)
    assert outcome == "delivered"
    assert setup.stats.attempts == 2
    assert setup.stats.retries == 1


async def test_connection_errors_are_retried_then_dead_lettered(tmp_path: Path) -> None:
    outcome, setup = await send(tmp_path, f"http://127.0.0.1:{closed_port()}/soc", max_attempts=2)
    assert outcome == "dead_lettered"
    [letter] = dead_letters(setup)
    assert letter["attempts"] == 2
    assert "Connect" in letter["error"]


# --------------------------------------------------------------------------- end to end, with Kafka


def signed_command(subject: str, action: str, **kwargs: Any) -> Command:
    return new_command(
        action=action,
        subject_type=kwargs.pop("subject_type", "account"),
        subject=subject,
        rule="smtp_burst",
        reason="120 messages in 600 s",
        issued_epoch=time.time(),
        duration=3600.0,
        key=kwargs.pop("key", SIGNING_KEY.encode()),
        **kwargs,
    )


def notifier_raw(receiver: Receiver) -> dict[str, Any]:
    return {
        "notifier": {"notify_alerts": True, "alert_min_severity": 73},
        "delivery": {**FAST, "concurrency": 2},
        "user": {"url": receiver.url("/user"), "secret": USER_SECRET.decode()},
        "soc": [{"name": "soc", "url": receiver.url("/soc"), "secret": SOC_SECRET.decode()}],
    }


def write_notifier_config(path: Path, receiver: Receiver) -> None:
    raw = notifier_raw(receiver)
    delivery_lines = "\n".join(f"{k} = {v}" for k, v in raw["delivery"].items())
    path.write_text(
        f"""
[notifier]
notify_alerts = true

[delivery]
{delivery_lines}

[user]
url = "{receiver.url("/user")}"
secret = "{USER_SECRET.decode()}"

[[soc]]
name = "soc"
url = "{receiver.url("/soc")}"
secret = "{SOC_SECRET.decode()}"
""",
        encoding="utf-8",
    )


async def run_until_caught_up(
    notifier: Notifier,
    after_ready: Callable[[], Awaitable[None]] | None = None,
    until: Callable[[], bool] = lambda: True,
) -> None:
    """Run ``notifier`` until it has read and settled everything and ``until()`` holds."""
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(stop))
    try:
        await asyncio.wait_for(notifier.ready.wait(), 30)
        if after_ready is not None:
            await after_ready()
        await asyncio.wait_for(notifier.caught_up.wait(), 30)
        await wait_for(until, 30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.05)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(port: int) -> Samples:
    """Every sample on ``http://127.0.0.1:port/metrics``, parsed as Prometheus does."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def series(samples: Samples, name: str) -> dict[tuple[str, ...], float]:
    """The samples of ``name`` keyed by their label values, in label-name order."""
    return {
        tuple(value for _, value in sorted(labels)): value
        for (sample_name, labels), value in samples.items()
        if sample_name == name
    }


@pytest.mark.kafka
async def test_each_command_is_notified_once_signed_and_never_again(
    tmp_path: Path, kafka_bootstrap: str, unique_topics: Topics, receiver: Receiver
) -> None:
    html_name = "<script>alert(1)</script>@x"
    crlf_name = "a\r\nBcc: evil@x"
    suspended = signed_command(html_name, "suspend_smtp")
    reset = signed_command(crlf_name, "require_password_reset")
    forged = signed_command("victim@x", "require_password_reset", key=b"not-the-key")
    unsigned = Command(**{**signed_command("other@x", "suspend_login").to_dict(), "sig": ""})
    dry = signed_command("dry@x", "suspend_login", dry_run=True)
    blocked = signed_command("203.0.113.7", "block_ip", subject_type="ip")
    commands = [suspended, forged, unsigned, reset, dry, blocked]
    await produce(
        kafka_bootstrap, unique_topics.control, [(c.key.encode(), c.to_json()) for c in commands]
    )
    alert = Alert(
        rule="password_spray",
        epoch=time.time(),
        category="authentication",
        outcome="failure",
        severity=99,
        reason="40 accounts failed",
        source_ip="203.0.113.7",
    )

    config_path = write_config(tmp_path, kafka_bootstrap, unique_topics, TEST_PARTITIONS)
    config = load_config(config_path)
    settings = notifier_settings(notifier_raw(receiver), tmp_path)
    receiver.script = [503, 503]
    first = Notifier(config, settings)

    async def publish_alert() -> None:
        await produce(kafka_bootstrap, unique_topics.alerts, [(b"203.0.113.7", alert.to_json())])

    await run_until_caught_up(first, publish_alert, lambda: len(receiver.accepted("/soc")) == 3)

    assert [r.status for r in receiver.requests[:2]] == [503, 503]
    users, socs = receiver.accepted("/user"), receiver.accepted("/soc")
    assert sorted(r.payload["id"] for r in users) == sorted([suspended.id, reset.id])
    assert sorted(r.payload["id"] for r in socs) == sorted([suspended.id, reset.id, alert.id])
    assert all(verified(r, USER_SECRET) for r in users)
    assert all(verified(r, SOC_SECRET) for r in socs)
    assert not any(verified(r, SOC_SECRET) for r in users)
    assert all(r.headers[IDEMPOTENCY_HEADER] == r.payload["id"] for r in users + socs)
    # Every refused request was re-sent and then accepted.
    refused = {r.headers[IDEMPOTENCY_HEADER] for r in receiver.requests if r.status != 200}
    assert refused <= {r.payload["id"] for r in users + socs}
    sent_ids = {r.payload["id"] for r in receiver.requests}
    assert not sent_ids & {forged.id, unsigned.id, dry.id, blocked.id}
    assert first.stats.ignored == {
        "forged": 1, "unsigned": 1, "dry_run": 1, "not_notified": 1
    }  # fmt: skip
    by_account = {r.payload["account"]: r.payload for r in users}
    assert by_account[crlf_name]["text"].count("\n") == 0
    assert "a Bcc: evil@x" in by_account[crlf_name]["text"]
    assert by_account[html_name]["channel_hint"] == "sms"

    # A restart of the real command resumes where the first one stopped: nothing again.
    before = len(receiver.requests)
    notifier_toml = tmp_path / "notifier.toml"
    write_notifier_config(notifier_toml, receiver)
    metrics_port = closed_port()
    args = mailwarden(
        "notifier",
        "--config",
        str(config_path),
        "--notifier-config",
        str(notifier_toml),
        "--metrics-port",
        str(metrics_port),
    )
    with running(args, tmp_path / "notifier.log") as program:
        await program.wait_for_output("caught up", 60)
        assert len(receiver.requests) == before
        samples = await scrape(metrics_port)
        returncode = program.stop()
    assert returncode == 0, program.output()
    assert sample(samples, "mailwarden_notifier_connected") == 1
    assert sample(samples, "mailwarden_notifier_caught_up") == 1
    assert sample(samples, "mailwarden_notifier_queue_depth") == 0
    # Series for every configured webhook exist from the start, at zero.
    assert series(samples, "mailwarden_notifier_deliveries_total") == {
        (endpoint, result): 0.0
        for endpoint in ("soc", "user")
        for result in ("dead_letter", "delivered", "retried")
    }

    # Lost positions: mail.control is read from the start, the delivered set holds.
    (config.state_dir / "notifier" / "positions.json").unlink()
    third = Notifier(config, settings)
    await run_until_caught_up(third)
    assert len(receiver.requests) == before
    assert third.stats.duplicates == 4
    assert third.stats.delivered == 0
    assert third.stats.ignored["forged"] == 1
    records = {
        outcome: third.metrics.registry.get_sample_value(
            "mailwarden_notifier_records_total",
            {"topic": unique_topics.control, "outcome": outcome},
        )
        for outcome in ("already_notified", "notified", "forged", "unsigned", "dry_run")
    }
    assert records == {
        "already_notified": 2, "notified": None, "forged": 1, "unsigned": 1, "dry_run": 1
    }  # fmt: skip


@pytest.mark.kafka
async def test_metrics_count_records_and_deliveries_and_the_backlog_drains(
    tmp_path: Path, kafka_bootstrap: str, unique_topics: Topics, receiver: Receiver
) -> None:
    suspended = signed_command("jane@example.org", "suspend_smtp")
    reset = signed_command("joe@example.org", "require_password_reset")
    forged = signed_command("victim@x", "suspend_login", key=b"not-the-key")
    dry = signed_command("dry@x", "suspend_login", dry_run=True)
    await produce(
        kafka_bootstrap,
        unique_topics.control,
        [(c.key.encode(), c.to_json()) for c in (suspended, reset, forged, dry)],
    )
    quiet_alert = Alert(
        rule="password_spray",
        epoch=time.time(),
        category="authentication",
        outcome="failure",
        severity=10,
        reason="3 accounts failed",
        source_ip="203.0.113.9",
    )
    # The user gateway accepts everything; the SOC webhook holds every request
    # until the gate opens, then answers 500 until the notifier gives up.
    receiver.always["/soc"] = 500
    receiver.gated.add("/soc")
    raw = notifier_raw(receiver)
    raw["delivery"] = {**FAST, "timeout": 20.0, "concurrency": 4}
    config = load_config(write_config(tmp_path, kafka_bootstrap, unique_topics, TEST_PARTITIONS))
    notifier = Notifier(config, notifier_settings(raw, tmp_path))
    runner = await start_metrics_server(notifier.metrics, "127.0.0.1", 0)
    port = runner.addresses[0][1]
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(stop))
    try:
        await asyncio.wait_for(notifier.ready.wait(), 30)
        await produce(
            kafka_bootstrap, unique_topics.alerts, [(b"203.0.113.9", quiet_alert.to_json())]
        )
        await wait_for(
            lambda: len(receiver.accepted("/user")) == 2 and receiver.waiting["/soc"] == 2, 30
        )
        backed_up = await scrape(port)
        receiver.gate.set()
        await asyncio.wait_for(notifier.caught_up.wait(), 30)
        await wait_for(lambda: notifier.stats.records == 5, 30)
        settled = await scrape(port)
    finally:
        receiver.gate.set()
        stop.set()
        await asyncio.wait_for(task, 30)
        await runner.cleanup()

    # While the SOC webhook held both its requests, they were the backlog.
    assert sample(backed_up, "mailwarden_notifier_queue_depth") == 2
    assert sample(backed_up, "mailwarden_notifier_oldest_pending_seconds") > 0
    assert sample(backed_up, "mailwarden_notifier_deliveries_total", endpoint="user",
                  result="delivered") == 2  # fmt: skip
    assert sample(backed_up, "mailwarden_notifier_deliveries_total", endpoint="soc",
                  result="dead_letter") == 0  # fmt: skip

    assert series(settled, "mailwarden_notifier_records_total") == {
        ("dry_run", unique_topics.control): 1,
        ("forged", unique_topics.control): 1,
        ("notified", unique_topics.control): 2,
        ("below_severity", unique_topics.alerts): 1,
    }
    # FAST allows 4 tries: each SOC notification is retried 3 times, then dead-lettered.
    assert series(settled, "mailwarden_notifier_deliveries_total") == {
        ("soc", "dead_letter"): 2,
        ("soc", "delivered"): 0,
        ("soc", "retried"): 6,
        ("user", "dead_letter"): 0,
        ("user", "delivered"): 2,
        ("user", "retried"): 0,
    }
    assert len(receiver.requests) == 2 + 2 * 4
    for endpoint in ("soc", "user"):
        count = sample(settled, "mailwarden_notifier_delivery_seconds_count", endpoint=endpoint)
        below_inf = sample(
            settled, "mailwarden_notifier_delivery_seconds_bucket", endpoint=endpoint, le="+Inf"
        )
        assert count == below_inf == 2
    # The SOC deliveries waited at the gate; the user ones did not.
    assert sample(settled, "mailwarden_notifier_delivery_seconds_sum", endpoint="soc") > sample(
        settled, "mailwarden_notifier_delivery_seconds_sum", endpoint="user"
    )
    assert sample(settled, "mailwarden_notifier_queue_depth") == 0
    assert sample(settled, "mailwarden_notifier_oldest_pending_seconds") == 0
    assert sample(settled, "mailwarden_notifier_connected") == 1
    assert sample(settled, "mailwarden_notifier_caught_up") == 1
    # No URL, secret or account name ever becomes a label.
    body = "".join(f"{name}{sorted(labels)}" for name, labels in settled)
    assert "127.0.0.1" not in body
    assert "example.org" not in body


def test_metrics_on_an_address_other_than_loopback_are_warned_about(
    tmp_path: Path,
) -> None:
    # 192.0.2.1 (TEST-NET-1) is never an address of this host: the warning is
    # logged, then listening fails with a clear error, and no port is opened.
    config_path = write_config(tmp_path, f"127.0.0.1:{closed_port()}", Topics(), TEST_PARTITIONS)
    notifier_toml = tmp_path / "notifier.toml"
    notifier_toml.write_text(
        f"""
[[soc]]
name = "soc"
url = "http://127.0.0.1:{closed_port()}/soc"
secret = "{SOC_SECRET.decode()}"
""",
        encoding="utf-8",
    )
    args = mailwarden(
        "notifier",
        "--config",
        str(config_path),
        "--notifier-config",
        str(notifier_toml),
        "--metrics-host",
        "192.0.2.1",
        "--metrics-port",
        str(closed_port()),
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MAILWARDEN_")}
    result = subprocess.run(
        args, env=environment, capture_output=True, text=True, timeout=60, check=False
    )
    assert "WARNING" in result.stderr
    assert "serving metrics on 192.0.2.1: /metrics has no authentication" in result.stderr
    assert result.returncode == 1
    assert "cannot serve metrics on 192.0.2.1" in result.stderr
