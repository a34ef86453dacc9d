"""The whole pipeline, each program in its own process, against the real broker.

Lines appended to a Postfix log -> ``mailwarden tail`` -> mail.events ->
``mailwarden worker`` -> a signed suspend_smtp on mail.control ->
``mailwarden adapter postfix-policy`` answers ``REJECT`` over TCP for the
account whose password was stolen, and nothing changes for anyone else.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailwarden.config import Topics
from tests.integration.running import Program, mailwarden, running, write_config
from tests.support.kafka import TEST_PARTITIONS

pytestmark = pytest.mark.kafka

STOLEN = "stolen@example.org"
BYSTANDER = "bystander@example.org"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def submission_line(user: str, epoch: float, sequence: int) -> bytes:
    stamp = datetime.fromtimestamp(epoch, tz=UTC).strftime("%b %d %H:%M:%S")
    return (
        f"{stamp} mx1 postfix/submission/smtpd[31337]: {sequence:011X}: "
        f"client=unknown[198.51.100.77], sasl_method=PLAIN, sasl_username={user}\n"
    ).encode()


async def ask_policy(port: int, user: str) -> str:
    """One Postfix policy request at RCPT time; the ``action=`` line of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        request = (
            "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
            "client_address=198.51.100.77\nclient_name=unknown\nsasl_method=PLAIN\n"
            f"sasl_username={user}\nsender={user}\nrecipient=someone@example.net\n"
            "instance=1.2.3\nsize=0\n\n"
        )
        writer.write(request.encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.readuntil(b"\n\n"), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    return answer.decode().splitlines()[0]


async def answer_for(port: int, user: str, adapter: Program) -> str | None:
    try:
        return await ask_policy(port, user)
    except OSError:
        assert adapter.alive(), adapter.output()[-5000:]
        return None


async def test_stolen_account_is_rejected_by_postfix_policy_within_seconds(
    tmp_path: Path, kafka_bootstrap: str, unique_topics: Topics
) -> None:
    config = write_config(tmp_path, kafka_bootstrap, unique_topics, TEST_PARTITIONS, name="e2e")
    port = free_port()
    mail_log = tmp_path / "mail.log"
    mail_log.touch()
    app_id = f"e2e-{uuid.uuid4().hex[:8]}"
    listen = f"127.0.0.1:{port}"
    with ExitStack() as stack:
        worker = stack.enter_context(
            running(
                mailwarden("worker", "--config", str(config), "--app-id", app_id),
                tmp_path / "worker.log",
            )
        )
        tail = stack.enter_context(
            running(
                mailwarden("tail", str(mail_log), "--config", str(config), "--host", "mx1"),
                tmp_path / "tail.log",
            )
        )
        adapter = stack.enter_context(
            running(
                mailwarden(
                    "adapter", "postfix-policy", "--config", str(config), "--listen", listen
                ),
                tmp_path / "adapter.log",
            )
        )
        programs = (worker, tail, adapter)
        deadline = time.monotonic() + 60
        while await answer_for(port, STOLEN, adapter) is None:
            assert time.monotonic() < deadline, adapter.output()[-5000:]
            await asyncio.sleep(0.5)
        assert await ask_policy(port, STOLEN) == "action=DUNNO"

        # 40 messages in 40 seconds, stamped just before now: the stolen password
        # sending spam. The burst rule suspends SMTP after 30 within 60 s.
        now = time.time()
        with open(mail_log, "ab") as log:
            for n in range(40):
                log.write(submission_line(STOLEN, now - 40 + n, n + 1))
            log.write(submission_line(BYSTANDER, now, 99))

        deadline = time.monotonic() + 120
        while (answer := await ask_policy(port, STOLEN)) == "action=DUNNO":
            for program in programs:
                assert program.alive(), program.output()[-5000:]
            assert time.monotonic() < deadline, "\n\n".join(p.output()[-3000:] for p in programs)
            await asyncio.sleep(0.5)
        # A generic reply with a reference to the command, never the rule's thresholds.
        refusal = re.fullmatch(r"action=REJECT account suspended \(ref ([0-9a-f]{8})\)", answer)
        assert refusal is not None, answer
        assert f", id {refusal[1]}" in adapter.output(), adapter.output()[-3000:]
        assert await ask_policy(port, BYSTANDER) == "action=DUNNO"
        assert tail.stop() == 0
    assert "tail stopped: 41 lines" in tail.output()
