"""`mailwarden adapter mapfile` against the real broker, run as production runs it.

Signed commands go to mail.control; the adapter process writes the map files
and runs a real reload executable that records each call; a release makes
the entry vanish and reloads again.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from mailwarden.config import Topics
from models.commands import Command, new_command
from tests.integration.running import SIGNING_KEY, Program, mailwarden, write_config
from tests.support.kafka import TEST_PARTITIONS

pytestmark = pytest.mark.kafka

KEY = SIGNING_KEY.encode()
DEADLINE = 40.0
BLOCKED_IP = "192.0.2.7"
SUSPENDED = "alice@mailwarden.test"


def command(
    action: str,
    subject: str,
    subject_type: str,
    *,
    key: bytes = KEY,
    releases: str | None = None,
) -> Command:
    return new_command(
        action=action,
        subject_type=subject_type,
        subject=subject,
        rule="integration",
        reason="mailwarden test",
        issued_epoch=time.time(),
        duration=3600,
        key=key,
        releases=releases,
    )


async def publish(bootstrap: str, topic: str, *commands: Command) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for record in commands:
            await producer.send_and_wait(topic, record.to_json(), key=record.key.encode())
    finally:
        await producer.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read(path: Path) -> str:
    return path.read_text(encoding="ascii") if path.exists() else ""


async def until(program: Program, what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert program.alive(), program.output()
        assert time.monotonic() < deadline, f"no {what} within {DEADLINE} s:\n{program.output()}"
        await asyncio.sleep(0.1)


async def test_mapfile_adapter_writes_reloads_and_releases(
    kafka_bootstrap: str, unique_topics: Topics, tmp_path: Path
) -> None:
    topic = unique_topics.control
    blocked = command("block_ip", BLOCKED_IP, "ip")
    # Before start: the adapter must rebuild these from the topic.
    await publish(
        kafka_bootstrap,
        topic,
        blocked,
        command("block_ip", "192.0.2.66", "ip", key=b"forged"),
    )
    marker = tmp_path / "reloads.txt"
    script = tmp_path / "reload.py"
    script.write_text(
        f"import sys\nopen({str(marker)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n",
        encoding="utf-8",
    )
    config = write_config(tmp_path, kafka_bootstrap, unique_topics, TEST_PARTITIONS)
    with config.open("a", encoding="utf-8") as handle:
        handle.write(
            f"""
[adapters.mapfile]
reload_command = [{str(sys.executable)!r}, {str(script)!r}, "reload", "$(id)"]
check_interval = 0.2

[[adapters.mapfile.outputs]]
path = "client_access"
actions = ["block_ip"]

[[adapters.mapfile.outputs]]
path = "sasl_access"
actions = ["suspend_smtp", "suspend_login"]
"""
        )
    client_access, sasl_access = tmp_path / "client_access", tmp_path / "sasl_access"
    metrics_port = free_port()
    args = ["adapter", "mapfile", "--config", str(config), "--metrics-port", str(metrics_port)]
    program = Program(mailwarden(*args), tmp_path / "adapter.log", env=None)
    try:
        await until(program, "blocked IP in the map", lambda: BLOCKED_IP in read(client_access))
        await until(program, "reload", lambda: read(marker) == "reload $(id)\n")
        reply = f"client address blocked (ref {blocked.id[:8]})"
        assert f"{BLOCKED_IP} REJECT {reply}\n" in read(client_access)
        assert "mailwarden test" not in read(client_access)
        assert "192.0.2.66" not in read(client_access)

        await publish(kafka_bootstrap, topic, command("suspend_smtp", SUSPENDED, "account"))
        await until(program, "suspended account", lambda: SUSPENDED in read(sasl_access))
        await until(program, "second reload", lambda: len(read(marker).splitlines()) == 2)

        release = command("release", BLOCKED_IP, "ip", releases="block_ip")
        await publish(kafka_bootstrap, topic, release)
        await until(program, "release", lambda: BLOCKED_IP not in read(client_access))
        await until(program, "third reload", lambda: len(read(marker).splitlines()) == 3)
        assert SUSPENDED in read(sasl_access)

        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        assert 'mailwarden_adapter_control_rejected_total{reason="bad signature"} 1.0' in metrics
        assert 'mailwarden_adapter_mapfile_reloads_total{outcome="ok"} 3.0' in metrics
        assert f'mailwarden_adapter_mapfile_entries{{path="{client_access}"}} 0.0' in metrics
        assert f'mailwarden_adapter_mapfile_entries{{path="{sasl_access}"}} 1.0' in metrics
    finally:
        program.stop()
    assert "stopping mapfile adapter" in program.output()
