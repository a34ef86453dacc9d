"""The Postfix policy adapter over real loopback sockets, with the lab's real requests."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from models.commands import Command
from models.enforcement import ActiveCommands, ClientReplies, smtp_responses
from streams.adapters.metrics import AdapterMetrics
from streams.adapters.postfix_policy import PostfixPolicyServer, RequestLimits
from streams.adapters.tcp import ConnectionLimits

from .conftest import KEY, SignCommand, ref

ALICE = "alice@mailwarden.test"
BOB = "bob@mailwarden.test"
CAROL = "carol@mailwarden.test"
BLOCKED_PREFIX = ipaddress.ip_network("127.0.0.16/30")  # .16-.19: S06, S07, S08, S09


def encode(attributes: dict[str, str]) -> bytes:
    return ("".join(f"{k}={v}\n" for k, v in attributes.items()) + "\n").encode()


def rcpt_request(sasl_username: str, client_address: str) -> dict[str, str]:
    return {
        "request": "smtpd_access_policy",
        "protocol_state": "RCPT",
        "client_address": client_address,
        "sasl_username": sasl_username,
        "sender": sasl_username,
        "recipient": "someone@example.net",
    }


@asynccontextmanager
async def policy_server(
    active: ActiveCommands,
    *,
    limits: ConnectionLimits | None = None,
    request_limits: RequestLimits | None = None,
    metrics: AdapterMetrics | None = None,
) -> AsyncIterator[tuple[PostfixPolicyServer, int]]:
    server = PostfixPolicyServer(active, metrics, limits=limits, request_limits=request_limits)
    await server.start("127.0.0.1", 0)
    try:
        yield server, server.address[1]
    finally:
        await server.close()


async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bytes:
    writer.write(request)
    await writer.drain()
    return await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)


def lab_requests(lab_dir: Path) -> list[dict[str, str]]:
    lines = (lab_dir / "postfix-policy-requests.jsonl").read_text().splitlines()
    return [json.loads(line)["request"] for line in lines if line.strip()]


def lab_commands(sign: SignCommand) -> dict[str, Command]:
    """alice suspended (REJECT), bob login-suspended answered HOLD, a blocked /30."""
    return {
        ALICE: sign("suspend_smtp", ALICE),
        BOB: sign("suspend_login", BOB, reason="success after 12 failures from 3 IPs"),
        "prefix": sign(
            "block_ip", str(BLOCKED_PREFIX), "prefix", reason="40 failures from the /30 in 600 s"
        ),
    }


def lab_state(commands: dict[str, Command], sign: SignCommand) -> ActiveCommands:
    """``commands``, and records for carol that must all be ignored."""
    active = ActiveCommands(KEY, smtp_responses({"suspend_login": "HOLD"}))
    for command in (
        *commands.values(),
        sign("isolate_sender", CAROL),
        sign("suspend_smtp", CAROL, dry_run=True),
        sign("suspend_smtp", CAROL, key=b"forged"),
        sign("suspend_smtp", CAROL, issued=1_000_000_000, duration=60),
    ):
        active.apply_record(command.to_json())
    return active


def expected_reply(request: dict[str, str], commands: dict[str, Command]) -> bytes:
    user = request["sasl_username"]
    if user == ALICE:
        return f"action=REJECT account suspended {ref(commands[ALICE])}\n\n".encode()
    if ipaddress.ip_address(request["client_address"]) in BLOCKED_PREFIX:
        return f"action=REJECT client address blocked {ref(commands['prefix'])}\n\n".encode()
    if user == BOB:
        return f"action=HOLD account suspended {ref(commands[BOB])}\n\n".encode()
    return b"action=DUNNO\n\n"


async def test_every_lab_request_on_one_persistent_connection(
    lab_dir: Path, sign: SignCommand
) -> None:
    requests = lab_requests(lab_dir)
    assert len(requests) == 39
    commands = lab_commands(sign)
    active = lab_state(commands, sign)
    assert active.stats.rejected == {"bad signature": 1}
    assert active.stats.dry_run == 1
    metrics = AdapterMetrics(active)
    async with policy_server(active, metrics=metrics) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        replies = [await ask(reader, writer, encode(request)) for request in requests]
        writer.close()
    assert replies == [expected_reply(request, commands) for request in requests]
    for reply in replies:
        assert b"threshold" not in reply and b"failures" not in reply
    counts = {
        verdict: sum(reply.startswith(f"action={verdict}".encode()) for reply in replies)
        for verdict in ("REJECT", "HOLD", "DUNNO")
    }
    # alice: 16 requests; .16-.19 not alice: 12; bob elsewhere: 6; the rest carol: 5.
    assert counts == {"REJECT": 28, "HOLD": 6, "DUNNO": 5}
    exposition = metrics.exposition().decode()
    assert 'mailwarden_adapter_requests_total{decision="REJECT"} 28.0' in exposition
    assert "mailwarden_adapter_request_seconds_count 39.0" in exposition
    assert 'mailwarden_adapter_control_rejected_total{reason="bad signature"} 1.0' in exposition


async def test_lab_requests_on_concurrent_connections(lab_dir: Path, sign: SignCommand) -> None:
    requests = lab_requests(lab_dir)
    commands = lab_commands(sign)
    active = lab_state(commands, sign)
    async with policy_server(active) as (_, port):

        async def one_client(share: list[dict[str, str]]) -> list[bytes]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                return [await ask(reader, writer, encode(request)) for request in share]
            finally:
                writer.close()

        shares = [requests[n::4] for n in range(4)]
        results = await asyncio.gather(*(one_client(share) for share in shares))
    for share, replies in zip(shares, results, strict=True):
        assert replies == [expected_reply(request, commands) for request in share]


async def test_request_split_into_single_bytes_and_pipelined_requests(sign: SignCommand) -> None:
    active = ActiveCommands(KEY)
    suspension = sign("suspend_smtp", ALICE)
    active.apply_record(suspension.to_json())
    refused = f"action=REJECT account suspended {ref(suspension)}\n\n".encode()
    async with policy_server(active) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for byte in encode(rcpt_request(ALICE, "192.0.2.1")):
            writer.write(bytes([byte]))
            await writer.drain()
        assert await asyncio.wait_for(reader.readuntil(b"\n\n"), 5) == refused
        writer.write(encode(rcpt_request(BOB, "192.0.2.1")) + encode(rcpt_request(ALICE, "::1")))
        first = await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)
        second = await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)
        assert (first, second) == (b"action=DUNNO\n\n", refused)
        writer.close()


async def test_malformed_lines_are_ignored_but_the_request_is_decided(sign: SignCommand) -> None:
    active = ActiveCommands(KEY)
    suspension = sign("suspend_smtp", ALICE)
    active.apply_record(suspension.to_json())
    metrics = AdapterMetrics(active)
    payload = (
        b"request=smtpd_access_policy\r\n"
        b"garbage without equals\n"
        b"=value without a name\n"
        b"sasl_username=alice@mailwarden.test\n"
        b"sasl_username=bob@mailwarden.test\n"  # a repeat does not override
        b"client_address=192.0.2.1\n\n"
    )
    async with policy_server(active, metrics=metrics) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await ask(reader, writer, payload) == (
            f"action=REJECT account suspended {ref(suspension)}\n\n".encode()
        )
        writer.close()
    assert 'malformed_requests_total{reason="ignored lines"} 1.0' in metrics.exposition().decode()


async def test_a_request_of_another_type_gets_dunno(sign: SignCommand) -> None:
    active = ActiveCommands(KEY)
    active.apply_record(sign("suspend_smtp", ALICE).to_json())
    request = rcpt_request(ALICE, "192.0.2.1") | {"request": "something_else"}
    async with policy_server(active) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await ask(reader, writer, encode(request)) == b"action=DUNNO\n\n"
        # The connection stays usable.
        assert (await ask(reader, writer, encode(rcpt_request(ALICE, "192.0.2.1")))).startswith(
            b"action=REJECT"
        )
        writer.close()


@pytest.mark.parametrize(
    "payload",
    [
        b"request=smtpd_access_policy\n" + b"helo_name=" + b"x" * 5000 + b"\n\n",
        b"".join(b"a%d=1\n" % n for n in range(20)) + b"\n",
    ],
    ids=["too many bytes", "too many attributes"],
)
async def test_oversized_request_closes_the_connection_without_an_answer(payload: bytes) -> None:
    active = ActiveCommands(KEY)
    metrics = AdapterMetrics(active)
    limits = RequestLimits(max_request=4096, max_attributes=10)
    async with policy_server(active, request_limits=limits, metrics=metrics) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(payload)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        # The server still serves others.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await ask(reader, writer, encode(rcpt_request(BOB, "192.0.2.1"))) == (
            b"action=DUNNO\n\n"
        )
        writer.close()
    assert 'malformed_requests_total{reason="too large"} 1.0' in metrics.exposition().decode()


async def test_idle_connection_is_closed() -> None:
    limits = ConnectionLimits(idle_timeout=0.2)
    async with policy_server(ActiveCommands(KEY), limits=limits) as (server, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"request=smtpd_access_policy\n")  # and then nothing
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        await asyncio.sleep(0.05)
        assert server.connections == 0


async def test_connections_over_the_limit_are_closed_at_once() -> None:
    limits = ConnectionLimits(max_connections=1)
    async with policy_server(ActiveCommands(KEY), limits=limits) as (_, port):
        first_reader, first_writer = await asyncio.open_connection("127.0.0.1", port)
        assert await ask(first_reader, first_writer, encode(rcpt_request(BOB, "192.0.2.1")))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        assert await ask(first_reader, first_writer, encode(rcpt_request(BOB, "192.0.2.1")))
        first_writer.close()


async def test_eof_inside_a_request_does_not_hurt_the_server() -> None:
    async with policy_server(ActiveCommands(KEY)) as (server, port):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"request=smtpd_access_policy\nsasl_user")
        await writer.drain()
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await ask(reader, writer, encode(rcpt_request(BOB, "192.0.2.1"))) == (
            b"action=DUNNO\n\n"
        )
        writer.close()
        await asyncio.sleep(0.05)
        assert server.connections == 0


async def test_rule_reason_replies_stay_one_line_on_the_wire(sign: SignCommand) -> None:
    active = ActiveCommands(KEY, replies=ClientReplies(rule_reason=True))
    crafted = "burst from user\naction=DUNNO\n\n\x1b[31m"
    suspension = sign("suspend_smtp", ALICE, reason=crafted)
    active.apply_record(suspension.to_json())
    async with policy_server(active) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        reply = await ask(reader, writer, encode(rcpt_request(ALICE, "192.0.2.1")))
        writer.close()
    assert reply == (
        f"action=REJECT burst from user action=DUNNO [31m {ref(suspension)}\n\n".encode()
    )


async def test_expiry_is_judged_at_request_time(sign: SignCommand) -> None:
    active = ActiveCommands(KEY)
    issued = time.time() - 60
    active.apply_record(sign("suspend_smtp", ALICE, issued=issued, duration=60.4).to_json())
    async with policy_server(active) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await ask(reader, writer, encode(rcpt_request(ALICE, "192.0.2.1")))).startswith(
            b"action=REJECT"
        )
        await asyncio.sleep(max(0.0, issued + 60.4 - time.time()) + 0.05)
        assert await ask(reader, writer, encode(rcpt_request(ALICE, "192.0.2.1"))) == (
            b"action=DUNNO\n\n"
        )
        writer.close()
