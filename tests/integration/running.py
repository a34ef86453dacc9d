"""Helpers for tests that run mailwarden programs as subprocesses against the test broker.

A subprocess per program isolates Faust's process-wide state and is how the
programs run in production. Each program's output goes to a log file that a
failing test prints.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from mailwarden.config import Topics

SIGNING_KEY = "integration-test-signing-key"
REPO = Path(__file__).resolve().parents[2]


def write_config(
    directory: Path, bootstrap: str, topics: Topics, partitions: int, name: str = "mailwarden"
) -> Path:
    """A runtime config file for the test broker and topics; state under ``directory``."""
    config = directory / f"{name}.toml"
    topic_lines = "\n".join(
        f'{field} = "{getattr(topics, field)}"'
        for field in ("events", "events_by_ip", "alerts", "control", "deadletter")
    )
    config.write_text(
        f"""
[mailwarden]
state_dir = "state-{name}"
timezone = "UTC"

[kafka]
bootstrap = "{bootstrap}"
partitions = {partitions}

[topics]
{topic_lines}

[signing]
key = "{SIGNING_KEY}"
""",
        encoding="utf-8",
    )
    return config


def mailwarden(*args: str) -> list[str]:
    return [sys.executable, "-c", "from mailwarden.cli import main; main()", *args]


class Program:
    """A running mailwarden subprocess and its combined output."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        for name in ("MAILWARDEN_BOOTSTRAP", "MAILWARDEN_SIGNING_KEY", "MAILWARDEN_STATE_DIR"):
            if env is None or name not in env:
                environment.pop(name, None)
        self.process = subprocess.Popen(
            args, cwd=REPO, env=environment, stdout=self._log, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        return self.process.returncode

    async def wait_for_output(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if not self.alive():
                raise AssertionError(f"program exited before printing {text!r}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {timeout} s:\n{self.output()[-5000:]}")
            await asyncio.sleep(0.2)


@contextmanager
def running(
    args: list[str], log_path: Path, env: dict[str, str] | None = None
) -> Iterator[Program]:
    program = Program(args, log_path, env)
    try:
        yield program
    finally:
        program.stop()


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def collect(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout: float,
    program: Program | None = None,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read ``topic`` from the start until ``until(records)`` holds; fail after ``timeout``."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while not until(records):
            if program is not None and not program.alive():
                raise AssertionError(f"program exited:\n{program.output()[-5000:]}")
            if time.monotonic() > deadline:
                detail = program.output()[-5000:] if program else ""
                raise AssertionError(
                    f"{topic}: condition not met within {timeout} s; "
                    f"{len(records)} records read\n{detail}"
                )
            batches = await consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


def values(records: list[ConsumerRecord[bytes, bytes]]) -> list[dict[str, Any]]:
    return [orjson.loads(record.value) for record in records if record.value is not None]
