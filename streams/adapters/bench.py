"""Benchmark of the Postfix policy adapter: answers per second and latency.

Clients behave like smtpd: N persistent connections, each with one request
outstanding at a time (send, wait for ``action=...``, send the next). The
requests have the attributes and size of real Postfix requests at RCPT. By
default the server (with its metrics) runs in a child process with a
synthetic state (suspended accounts, blocked IPs and prefixes) so that
client and server do not share one event loop; ``target`` measures an
adapter that is already running.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import secrets
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection

from models.commands import new_command
from models.enforcement import ActiveCommands
from streams.adapters.metrics import AdapterMetrics
from streams.adapters.postfix_policy import PostfixPolicyServer

SUSPENDED_SHARE = 100  # one request in this many is from a suspended account


@dataclass(slots=True, frozen=True)
class BenchResult:
    requests: int
    connections: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    decisions: dict[str, int]

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        decisions = ", ".join(f"{k} {v}" for k, v in sorted(self.decisions.items()))
        return (
            f"{self.requests} policy requests over {self.connections} persistent connections "
            f"in {self.seconds:.2f} s: {self.per_second:,.0f} answers/s, "
            f"latency p50 {self.p50_ms:.3f} ms, p99 {self.p99_ms:.3f} ms, "
            f"max {self.max_ms:.3f} ms ({decisions})"
        )


def policy_request(n: int) -> bytes:
    """A realistic RCPT-stage request; every SUSPENDED_SHARE-th one is a suspended account."""
    user = (
        f"suspended{n % 1000}@example.org" if n % SUSPENDED_SHARE == 0 else f"user{n}@example.org"
    )
    attributes = {
        "request": "smtpd_access_policy",
        "protocol_state": "RCPT",
        "protocol_name": "ESMTP",
        "client_address": f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}",
        "client_name": "unknown",
        "client_port": str(40000 + n % 20000),
        "reverse_client_name": "unknown",
        "server_address": "192.0.2.25",
        "server_port": "587",
        "helo_name": f"client{n}.example.net",
        "sender": user,
        "recipient": f"rcpt{n}@example.com",
        "recipient_count": "0",
        "queue_id": "",
        "instance": f"{n:x}.6b09185f.1d4d8.0",
        "size": "2048",
        "etrn_domain": "",
        "stress": "",
        "sasl_method": "PLAIN",
        "sasl_username": user,
        "sasl_sender": "",
        "ccert_subject": "",
        "ccert_issuer": "",
        "ccert_fingerprint": "",
        "ccert_pubkey_fingerprint": "",
        "encryption_protocol": "TLSv1.3",
        "encryption_cipher": "TLS_AES_256_GCM_SHA384",
        "encryption_keysize": "256",
        "policy_context": "submission",
    }
    return ("".join(f"{k}={v}\n" for k, v in attributes.items()) + "\n").encode()


def synthetic_state(accounts: int, addresses: int, prefixes: int, now: float) -> ActiveCommands:
    """An ActiveCommands holding that many suspended accounts, blocked IPs and prefixes."""
    key = secrets.token_bytes(32)
    active = ActiveCommands(key)

    def add(action: str, subject_type: str, subject: str) -> None:
        command = new_command(
            action=action,
            subject_type=subject_type,
            subject=subject,
            rule="bench",
            reason="benchmark",
            issued_epoch=now,
            duration=86400,
            key=key,
        )
        active.apply_record(command.to_json())

    for n in range(accounts):
        add("suspend_smtp", "account", f"suspended{n}@example.org")
    for n in range(addresses):
        add("block_ip", "ip", f"172.16.{n >> 8 & 255}.{n & 255}")
    for n in range(prefixes):
        add(
            "block_ip",
            "prefix",
            f"2001:db8:{n:x}::/48" if n % 2 else f"100.{n % 64}.{n % 250}.0/24",
        )
    return active


async def _client(
    host: str, port: int, requests: list[bytes], latencies: list[float], decisions: Counter[str]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for request in requests:
            started = time.perf_counter()
            writer.write(request)
            reply = await reader.readuntil(b"\n\n")
            latencies.append(time.perf_counter() - started)
            decisions[reply[len(b"action=") :].split(b" ", 1)[0].strip().decode()] += 1
    finally:
        writer.close()


async def bench_policy(host: str, port: int, connections: int, requests: int) -> BenchResult:
    """Send ``requests`` requests spread over ``connections`` connections; measure."""
    per_connection = max(1, requests // connections)
    batches = [
        [policy_request(c * per_connection + n) for n in range(per_connection)]
        for c in range(connections)
    ]
    latencies: list[float] = []
    decisions: Counter[str] = Counter()
    started = time.perf_counter()
    await asyncio.gather(*(_client(host, port, b, latencies, decisions) for b in batches))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    cuts = statistics.quantiles(ordered, n=100) if len(ordered) > 1 else ordered * 99
    return BenchResult(
        requests=len(ordered),
        connections=connections,
        seconds=elapsed,
        p50_ms=cuts[49] * 1000,
        p99_ms=cuts[98] * 1000,
        max_ms=ordered[-1] * 1000,
        decisions=dict(decisions),
    )


def _serve_synthetic(pipe: Connection, accounts: int, addresses: int, prefixes: int) -> None:
    async def main() -> None:
        active = synthetic_state(accounts, addresses, prefixes, time.time())
        server = PostfixPolicyServer(active, AdapterMetrics(active))
        await server.start("127.0.0.1", 0)
        pipe.send(server.address[1])
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        await server.close()

    asyncio.run(main())


def run_bench(
    connections: int,
    requests: int,
    *,
    target: tuple[str, int] | None = None,
    accounts: int = 10000,
    addresses: int = 10000,
    prefixes: int = 1000,
) -> BenchResult:
    """Benchmark ``target``, or a synthetic adapter in a child process."""
    if target is not None:
        return asyncio.run(bench_policy(target[0], target[1], connections, requests))
    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.get_context("spawn").Process(
        target=_serve_synthetic, args=(theirs, accounts, addresses, prefixes), daemon=True
    )
    child.start()
    try:
        if not ours.poll(120):
            raise RuntimeError("the benchmark server did not start")
        port = int(ours.recv())
        return asyncio.run(bench_policy("127.0.0.1", port, connections, requests))
    finally:
        ours.send("stop")
        child.join(10)
        if child.is_alive():
            child.kill()
            child.join()
