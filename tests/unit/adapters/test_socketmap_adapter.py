"""The socketmap adapter over real loopback sockets: strict netstrings, both maps."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from models.enforcement import ActiveCommands, smtp_responses
from streams.adapters.metrics import AdapterMetrics
from streams.adapters.socketmap import SocketmapServer, encode_netstring, validate_transport

from .conftest import KEY, SignCommand, ref

ALICE = "alice@mailwarden.test"
CAROL = "carol@mailwarden.test"


@asynccontextmanager
async def socketmap_server(
    active: ActiveCommands,
    *,
    isolation_transport: str = "isolated:",
    metrics: AdapterMetrics | None = None,
) -> AsyncIterator[tuple[SocketmapServer, int]]:
    server = SocketmapServer(active, metrics, isolation_transport=isolation_transport)
    await server.start("127.0.0.1", 0)
    try:
        yield server, server.address[1]
    finally:
        await server.close()


async def read_reply(reader: asyncio.StreamReader) -> bytes:
    header = await asyncio.wait_for(reader.readuntil(b":"), 5)
    body = await asyncio.wait_for(reader.readexactly(int(header[:-1]) + 1), 5)
    assert body.endswith(b",")
    return body[:-1]


async def lookup(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str, key: str
) -> bytes:
    writer.write(encode_netstring(f"{name} {key}".encode()))
    await writer.drain()
    return await read_reply(reader)


def state(sign: SignCommand, **responses: str) -> tuple[ActiveCommands, bytes]:
    """alice suspended, carol isolated, a forged isolation; and alice's reply text."""
    active = ActiveCommands(KEY, smtp_responses(responses))
    suspension = sign("suspend_smtp", ALICE)
    for command in (
        suspension,
        sign("isolate_sender", CAROL),
        sign("isolate_sender", "bob@mailwarden.test", key=b"forged"),
    ):
        active.apply_record(command.to_json())
    return active, f"account suspended {ref(suspension)}".encode()


async def test_every_lab_sasl_user_and_sender(lab_dir: Path, sign: SignCommand) -> None:
    lines = (lab_dir / "postfix-policy-requests.jsonl").read_text().splitlines()
    requests = [json.loads(line)["request"] for line in lines if line.strip()]
    active, suspended = state(sign)
    async with socketmap_server(active, isolation_transport="isolated:") as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for request in requests:
            user, sender = request["sasl_username"], request["sender"]
            access = await lookup(reader, writer, "sasl_access", user)
            transport = await lookup(reader, writer, "sender_transport", sender)
            want_access = b"OK REJECT " + suspended if user == ALICE else b"NOTFOUND "
            want_transport = b"OK isolated:" if sender == CAROL else b"NOTFOUND "
            assert (access, transport) == (want_access, want_transport), request
            assert b"threshold" not in access
        writer.close()


async def test_keys_compare_case_insensitively_and_verdict_is_configurable(
    sign: SignCommand,
) -> None:
    active, suspended = state(sign, suspend_smtp="HOLD")
    async with socketmap_server(active, isolation_transport="isolated:[relay.test]:25") as (
        _,
        port,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await lookup(reader, writer, "sasl_access", "ALICE@mailwarden.TEST") == (
            b"OK HOLD " + suspended
        )
        assert await lookup(reader, writer, "sender_transport", "Carol@Mailwarden.test") == (
            b"OK isolated:[relay.test]:25"
        )
        assert await lookup(reader, writer, "sender_transport", "<>") == b"NOTFOUND "
        assert await lookup(reader, writer, "sasl_access", "") == b"NOTFOUND "
        writer.close()


async def test_unknown_map_and_request_without_key_are_perm(sign: SignCommand) -> None:
    async with socketmap_server(state(sign)[0]) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await lookup(reader, writer, "virtual", ALICE) == b"PERM unknown map 'virtual'"
        writer.write(encode_netstring(b"sasl_access"))
        assert (await read_reply(reader)).startswith(b"PERM ")
        writer.write(encode_netstring("\u00e9t\u00e9 x".encode()))
        assert (await read_reply(reader)).startswith(b"PERM unknown map")
        writer.close()


async def test_pipelined_and_byte_by_byte_requests(sign: SignCommand) -> None:
    active, suspended = state(sign)
    async with socketmap_server(active) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        two = encode_netstring(b"sasl_access " + ALICE.encode()) + encode_netstring(
            b"sasl_access nobody@x"
        )
        writer.write(two)
        assert await read_reply(reader) == b"OK REJECT " + suspended
        assert await read_reply(reader) == b"NOTFOUND "
        for byte in encode_netstring(b"sender_transport " + CAROL.encode()):
            writer.write(bytes([byte]))
            await writer.drain()
        assert await read_reply(reader) == b"OK isolated:"
        writer.close()


@pytest.mark.parametrize(
    "payload",
    [
        b"05:abcde,",  # leading zero
        b"-5:abcde,",
        b"5 :abcde,",
        b":abc,",
        b"5:abcde;",  # wrong terminator
        b"99999999999:x",  # longer than any frame we accept
        b"20000:" + b"x" * 100,  # over max_frame
        b"1" * 20000,  # a length that never ends
    ],
)
async def test_malformed_netstrings_close_the_connection(sign: SignCommand, payload: bytes) -> None:
    active, suspended = state(sign)
    metrics = AdapterMetrics(active)
    async with socketmap_server(active, metrics=metrics) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(payload)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await lookup(reader, writer, "sasl_access", ALICE) == b"OK REJECT " + suspended
        writer.close()
    assert 'malformed_requests_total{reason="bad netstring"} 1.0' in metrics.exposition().decode()


async def test_metrics_count_replies(sign: SignCommand) -> None:
    active, _ = state(sign)
    metrics = AdapterMetrics(active)
    async with socketmap_server(active, metrics=metrics) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await lookup(reader, writer, "sasl_access", ALICE)
        await lookup(reader, writer, "sasl_access", "nobody@x")
        await lookup(reader, writer, "nosuchmap", "x")
        writer.close()
    exposition = metrics.exposition().decode()
    for label in ("OK", "NOTFOUND", "PERM"):
        assert f'mailwarden_adapter_requests_total{{decision="{label}"}} 1.0' in exposition


@pytest.mark.parametrize("transport", ["", "isolated", "isolated: relay", "isol\nated:"])
def test_bad_isolation_transports_are_refused(transport: str) -> None:
    with pytest.raises(ValueError, match="isolation transport"):
        validate_transport(transport)


def test_encode_netstring() -> None:
    assert encode_netstring(b"OK isolated:") == b"12:OK isolated:,"
    assert encode_netstring(b"") == b"0:,"
