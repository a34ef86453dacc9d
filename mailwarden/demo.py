"""`mailwarden demo`: the main job on one machine, start to finish.

Starts a local Kafka broker, the worker, the Postfix policy adapter and the
publisher, writes a story of log lines into the file the publisher follows,
prints the alerts and commands as they arrive, then asks the policy adapter as
Postfix would. Everything it started is stopped on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click
import orjson
from aiokafka import AIOKafkaConsumer

from mailwarden import demo_story
from mailwarden.config import Topics
from streams.broker import KafkaBroker
from streams.topics import ensure_topics

DECISION_TIMEOUT = 180.0


@dataclass
class DemoRun:
    workdir: Path
    bootstrap: str
    signing_key: str
    policy_port: int
    log_file: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def config_file(self) -> Path:
        return self.workdir / "mailwarden.toml"

    def write_config(self) -> None:
        self.config_file.write_text(
            "[mailwarden]\n"
            f'state_dir = "{self.workdir / "state"}"\n'
            "[kafka]\n"
            f'bootstrap = "{self.bootstrap}"\n'
            "partitions = 2\n"
            "[signing]\n"
            f'key = "{self.signing_key}"\n',
            encoding="utf-8",
        )

    def spawn(self, name: str, *args: str) -> None:
        out = (self.workdir / f"{name}.log").open("wb")
        command = [sys.executable, "-m", "mailwarden.cli", *args]
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        self.processes.append(process)
        click.echo(f"  started {name:<15} pid {process.pid}  (output: {out.name})")

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _write(log_file: Path, lines: Iterator[str], pause: float = 0.0) -> int:
    count = 0
    with log_file.open("a", encoding="utf-8") as out:
        for line in lines:
            out.write(line + "\n")
            out.flush()
            count += 1
            if pause:
                time.sleep(pause)
    return count


async def _watch_decisions(bootstrap: str, topics: Topics, expected: set[str]) -> set[str]:
    """Print alerts and commands until every expected (action, subject) has been seen."""
    consumer = AIOKafkaConsumer(
        topics.alerts,
        topics.control,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: set[str] = set()
    deadline = time.monotonic() + DECISION_TIMEOUT
    try:
        while not expected <= seen and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if record.value is None:
                        continue
                    doc = orjson.loads(record.value)
                    if doc.get("type") == "alert":
                        click.secho(
                            f"  ALERT   {doc['rule']['name']:<16} {doc['event']['reason']}",
                            fg="yellow",
                        )
                    elif doc.get("type") == "command":
                        seen.add(f"{doc['action']}:{doc['subject']}")
                        click.secho(
                            f"  COMMAND {doc['action']:<16} {doc['subject_type']} "
                            f"{doc['subject']}  until {doc['expires_at']}  "
                            f"(rule {doc['rule']}, ref {doc['id'][:8]})",
                            fg="red",
                        )
    finally:
        await consumer.stop()
    return seen


def _ask_policy(port: int, sasl_username: str, client_address: str) -> str:
    """One request in Postfix's policy delegation protocol, as smtpd sends it at RCPT."""
    attributes = {
        "request": "smtpd_access_policy",
        "protocol_state": "RCPT",
        "protocol_name": "ESMTP",
        "client_address": client_address,
        "client_name": "unknown",
        "helo_name": "client.example",
        "sender": sasl_username,
        "recipient": "someone@example.net",
        "sasl_method": "PLAIN" if sasl_username else "",
        "sasl_username": sasl_username,
        "encryption_protocol": "TLSv1.3",
        "policy_context": "submission",
    }
    payload = "".join(f"{k}={v}\n" for k, v in attributes.items()) + "\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload.encode())
        reply = b""
        while not reply.endswith(b"\n\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.decode().strip()


def _wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.2)
    raise click.ClickException(f"the policy adapter did not listen on port {port}")


def _run(run: DemoRun, topics: Topics) -> bool:
    click.secho("\n== 1. a normal morning", bold=True)
    lines = _write(run.log_file, demo_story.normal_traffic(demo_story.LineClock()))
    click.echo(f"  wrote {lines} lines of normal IMAP logins and submissions")
    time.sleep(2)
    click.secho(f"\n== 2. {demo_story.SPRAYING_IP} sprays one password over many accounts",
                bold=True)  # fmt: skip
    lines = _write(run.log_file, demo_story.password_spray(demo_story.LineClock()), pause=0.05)
    click.echo(f"  wrote {lines} lines")
    click.secho(f"\n== 3. {demo_story.STOLEN_ACCOUNT}'s password was stolen: "
                f"{demo_story.SPAM_MESSAGES} messages in seconds", bold=True)  # fmt: skip
    lines = _write(run.log_file, demo_story.stolen_account_spam(demo_story.LineClock()))
    click.echo(f"  wrote {lines} lines")

    click.secho("\n== 4. what mailwarden decided", bold=True)
    expected = {
        f"block_ip:{demo_story.SPRAYING_IP}",
        f"suspend_smtp:{demo_story.STOLEN_ACCOUNT}",
    }
    seen = asyncio.run(_watch_decisions(run.bootstrap, topics, expected))
    missing = expected - seen
    if missing:
        click.secho(f"  no command within {DECISION_TIMEOUT:.0f}s for: {sorted(missing)}",
                    fg="red")  # fmt: skip

    click.secho("\n== 5. Postfix asks the policy adapter", bold=True)
    time.sleep(1.0)  # the adapter reads mail.control on its own consumer
    normal_user = f"{demo_story.NORMAL_USERS[0]}@{demo_story.DOMAIN}"
    questions = [
        (demo_story.STOLEN_ACCOUNT, demo_story.STOLEN_FROM_IP, "REJECT"),
        ("", demo_story.SPRAYING_IP, "REJECT"),
        (normal_user, demo_story.NORMAL_IPS[0], "DUNNO"),
    ]
    ok = not missing
    for user, ip, want in questions:
        answer = _ask_policy(run.policy_port, user, ip)
        good = answer.split("=", 1)[-1].startswith(want)
        ok = ok and good
        who = f"sasl_username={user or '(none)'} client_address={ip}"
        click.secho(f"  {who:<62} -> {answer}", fg="green" if good else "red")
    return ok


@click.command()
@click.option("--keep", is_flag=True, help="Keep the working directory (logs, broker data).")
def demo(keep: bool) -> None:
    """Watch a spraying IP and a stolen account get caught and refused."""
    workdir = Path(tempfile.mkdtemp(prefix="mailwarden-demo-"))
    topics = Topics()
    click.secho("mailwarden demo", bold=True)
    click.echo(f"  working directory {workdir}")
    broker = KafkaBroker.start(workdir / "kafka")
    click.echo(f"  Kafka broker ready at {broker.bootstrap} (pid {broker.pid})")
    run = DemoRun(
        workdir=workdir,
        bootstrap=broker.bootstrap,
        signing_key=secrets.token_hex(32),
        policy_port=_free_port(),
        log_file=workdir / "mail.log",
    )
    ok = False
    try:
        asyncio.run(ensure_topics(broker.bootstrap, topics, partitions=2))
        run.write_config()
        run.log_file.touch()
        config = str(run.config_file)
        run.spawn("worker", "worker", "--config", config)
        run.spawn(
            "policy-adapter",
            "adapter", "postfix-policy", "--config", config,
            "--listen", f"127.0.0.1:{run.policy_port}",
        )  # fmt: skip
        run.spawn("publisher", "tail", "--config", config, "--host", "mx1", str(run.log_file))
        _wait_for_port(run.policy_port)
        ok = _run(run, topics)
    finally:
        run.stop_all()
        broker.stop()
        if not keep and os.environ.get("MAILWARDEN_DEMO_KEEP") is None:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            click.echo(f"  kept {workdir}")
    if not ok:
        raise click.ClickException("the demo did not end as expected; see the output above")
    click.secho("\nThe stolen account and the spraying IP are refused; normal users pass.",
                fg="green", bold=True)  # fmt: skip
