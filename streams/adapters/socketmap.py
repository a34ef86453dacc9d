"""Postfix socketmap server (socketmap_table(5)) for two maps.

Each request is one netstring ``<len>:<name> <key>,``; each reply one
netstring ``OK <data>``, ``NOTFOUND `` or ``PERM <reason>``. Postfix keeps the
connection for further lookups and does not generate partial keys (no
``@domain`` or parent-domain lookups) for socketmap tables.

Maps (the ``name`` in ``socketmap:inet:127.0.0.1:10041:<name>``):

``sasl_access``
    For ``check_sasl_access``: the key is the SASL login name. A suspended
    account (``suspend_smtp``, ``suspend_login``) gives ``OK REJECT <reply>``
    (or the configured HOLD/DEFER verdict), anything else ``NOTFOUND``. The
    lookup carries no TLS state, so ``deny_insecure`` is not acted on here
    (the policy service does it).
``sender_transport``
    For ``sender_dependent_default_transport_maps``: the key is the envelope
    sender. An account under ``isolate_sender`` gives ``OK <isolation
    transport>`` (``isolated:`` by default), anything else ``NOTFOUND``. The
    sender is taken as the account, so Postfix must tie senders to logins
    (``reject_sender_login_mismatch``, see docs/adapters.md).

Netstrings are parsed strictly: decimal length without leading zeros, at most
``max_frame`` bytes, then ``:``, the payload and ``,``. Anything else loses
the framing, so the connection is closed (Postfix retries, then treats the
lookup as failed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from models.enforcement import ActiveCommands
from streams.adapters.metrics import AdapterMetrics, count_refusal
from streams.adapters.tcp import ConnectionLimits, TcpService

log = logging.getLogger(__name__)

SASL_ACCESS = "sasl_access"
SENDER_TRANSPORT = "sender_transport"
DEFAULT_ISOLATION_TRANSPORT = "isolated:"
# Postfix rejects replies over 100000 characters; ours are far shorter.
MAX_REPLY = 100000
# Lookup keys are addresses and login names: a few hundred bytes at most.
MAX_FRAME = 10000


class NetstringError(ValueError):
    """The bytes on the connection are not a well-formed netstring within the limits."""


def encode_netstring(payload: bytes) -> bytes:
    return b"%d:%s," % (len(payload), payload)


async def read_netstring(
    reader: asyncio.StreamReader, max_frame: int, idle_timeout: float
) -> bytes | None:
    """One netstring's payload; None at a clean EOF between requests."""
    try:
        header = await asyncio.wait_for(reader.readuntil(b":"), idle_timeout)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise NetstringError("connection closed inside a netstring length") from exc
        return None
    except asyncio.LimitOverrunError as exc:
        raise NetstringError("netstring length too long") from exc
    digits = header[:-1]
    if not digits.isdigit() or (len(digits) > 1 and digits.startswith(b"0")):
        raise NetstringError(f"bad netstring length {digits[:20]!r}")
    if len(digits) > len(str(max_frame)) or int(digits) > max_frame:
        raise NetstringError(f"netstring of {digits[:20].decode()} bytes is over {max_frame}")
    body = await asyncio.wait_for(reader.readexactly(int(digits) + 1), idle_timeout)
    if body[-1:] != b",":
        raise NetstringError("netstring not terminated by ','")
    return body[:-1]


def validate_transport(transport: str) -> str:
    """An isolation transport must be one printable token such as ``isolated:``."""
    if not transport or any(not "!" <= ch <= "~" for ch in transport) or ":" not in transport:
        raise ValueError(
            f"isolation transport must look like 'transport:' or 'transport:nexthop', "
            f"got {transport!r}"
        )
    return transport


class SocketmapServer(TcpService):
    """Answers ``sasl_access`` and ``sender_transport`` lookups."""

    name = "socketmap"

    def __init__(
        self,
        active: ActiveCommands,
        metrics: AdapterMetrics | None = None,
        *,
        isolation_transport: str = DEFAULT_ISOLATION_TRANSPORT,
        limits: ConnectionLimits | None = None,
        max_frame: int = MAX_FRAME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(limits, max_frame)
        self.active = active
        self.metrics = metrics
        self.isolation_transport = validate_transport(isolation_transport)
        self._clock = clock

    def lookup(self, payload: bytes) -> str:
        """The reply (without netstring framing) for one request payload."""
        name_raw, sep, key_raw = payload.partition(b" ")
        name = name_raw.decode("ascii", "replace")
        key = key_raw.decode("utf-8", "surrogateescape")
        if not sep:
            return "PERM request is not '<name> <key>'"
        if name == SASL_ACCESS:
            decision = self.active.decide_smtp(key, "", self._clock())
            if not decision.refuses:
                return "NOTFOUND "
            count_refusal(self.metrics, decision)
            command = decision.command
            log.info(
                "sasl_access %r: %s %s (rule %s, id %s, reason %r)",
                key,
                decision.action,
                decision.reply,
                command.rule if command else "",
                command.id if command else "",
                command.reason if command else "",
            )
            return f"OK {decision.action} {decision.reply}".rstrip()
        if name == SENDER_TRANSPORT:
            command = self.active.account_command("isolate_sender", key, self._clock())
            if command is None:
                return "NOTFOUND "
            log.info("sender_transport %r: %s (id %s)", key, self.isolation_transport, command.id)
            return f"OK {self.isolation_transport}"
        return f"PERM unknown map {name[:40]!a}"

    async def serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        while True:
            try:
                payload = await read_netstring(reader, self.read_limit, self.limits.idle_timeout)
            except NetstringError as exc:
                if self.metrics is not None:
                    self.metrics.malformed.labels("bad netstring").inc()
                log.warning("closing socketmap connection from %s: %s", peer, exc)
                return
            if payload is None:
                return
            started = time.perf_counter()
            reply = self.lookup(payload)
            writer.write(encode_netstring(reply.encode("ascii")[:MAX_REPLY]))
            await writer.drain()
            if self.metrics is not None:
                self.metrics.requests.labels(reply.split(" ", 1)[0]).inc()
                self.metrics.latency.observe(time.perf_counter() - started)
