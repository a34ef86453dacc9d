"""The notifier against a real HTTP receiver (aiohttp on loopback) and, end to end, the real broker.

The receiver answers from a script (503, 429, a stall, ...) and records every
request; the tests check what a webhook owner would: one accepted delivery
per command and audience, each with a valid signature, nothing for forged
commands, and nothing again after a restart.
"""

from __future__ import annotations

import asyncio
import socket
import time
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
    """A webhook receiver on 127.0.0.1 that answers the first requests from ``script``."""

    script: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
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


def delivery(tmp_path: Path, **settings: Any) -> Delivery:
    store = DeliveredStore(tmp_path / "delivered.jsonl", capacity=100)
    deadletters = DeadLetters(tmp_path / "deadletter.jsonl")
    stats = NotifierStats()
    client = httpx.AsyncClient(timeout=httpx.Timeout(settings.get("timeout", 2.0)))
    deliverer = Deliverer(
        client, DeliverySettings(**{**FAST, **settings}), store, deadletters, stats
    )
    return Delivery(deliverer, store, deadletters, stats)


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
    args = mailwarden(
        "notifier", "--config", str(config_path), "--notifier-config", str(notifier_toml)
    )
    with running(args, tmp_path / "notifier.log") as program:
        await program.wait_for_output("caught up", 60)
        assert len(receiver.requests) == before
        returncode = program.stop()
    assert returncode == 0, program.output()

    # Lost positions: mail.control is read from the start, the delivered set holds.
    (config.state_dir / "notifier" / "positions.json").unlink()
    third = Notifier(config, settings)
    await run_until_caught_up(third)
    assert len(receiver.requests) == before
    assert third.stats.duplicates == 4
    assert third.stats.delivered == 0
    assert third.stats.ignored["forged"] == 1
