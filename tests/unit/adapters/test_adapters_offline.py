"""Adapters without a broker: they keep answering from what they know, and say so."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from models.enforcement import ActiveCommands
from models.events import Event
from streams.adapters.cli import adapter_group
from streams.adapters.control import ControlConsumer, ControlSettings
from streams.adapters.postfix_policy import PostfixPolicyServer
from streams.adapters.report_sink import KafkaEventSink

from .conftest import KEY, SignCommand, ref

FAST_RETRY = ControlSettings(retry_initial=0.05, retry_max=0.2, request_timeout_ms=1000)
MAILWARDEN = Path(sys.executable).parent / "mailwarden"


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_broker_keeps_serving_the_known_state(sign: SignCommand) -> None:
    active = ActiveCommands(KEY)
    suspension = sign("suspend_smtp", "alice@x")
    active.apply_record(suspension.to_json())
    control = ControlConsumer(
        active, f"127.0.0.1:{closed_port()}", "mail.control", settings=FAST_RETRY
    )
    task = asyncio.create_task(control.run())
    server = PostfixPolicyServer(active)
    await server.start("127.0.0.1", 0)
    try:
        assert not await control.wait_caught_up(timeout=1.0)
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(b"request=smtpd_access_policy\nsasl_username=alice@x\nclient_address=::1\n\n")
        assert await asyncio.wait_for(reader.readuntil(b"\n\n"), 5) == (
            f"action=REJECT account suspended {ref(suspension)}\n\n".encode()
        )
        writer.close()
        assert control.status.reconnects >= 2
        assert not control.status.connected and not control.caught_up
        assert not task.done()
    finally:
        await server.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_report_sink_buffers_then_drops_and_counts_what_it_lost() -> None:
    sink = KafkaEventSink(
        f"127.0.0.1:{closed_port()}", "mail.events", capacity=3, retry_initial=0.05
    )
    event = Event(ts="2026-11-27T05:42:55+00:00", epoch=0.0, host=None, source="t", kind="auth")
    assert [sink.submit(event) for _ in range(4)] == [True, True, True, False]
    task = asyncio.create_task(sink.run())
    await asyncio.sleep(0.5)
    assert sink.stats.failed_attempts >= 1
    assert sink.pending == 3 and sink.stats.published == 0
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await sink.close(flush_timeout=0.3)
    assert sink.pending == 0
    assert sink.stats.dropped == 4  # one refused, three lost at close


def test_missing_signing_key_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAILWARDEN_SIGNING_KEY", raising=False)
    config = tmp_path / "c.toml"
    config.write_text("[kafka]\nbootstrap = '127.0.0.1:1'\n")
    result = CliRunner().invoke(adapter_group, ["postfix-policy", "--config", str(config)])
    assert result.exit_code == 1
    assert "no signing key" in result.output


def test_bad_listen_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[signing]\nkey = 'k'\n")
    result = CliRunner().invoke(
        adapter_group, ["socketmap", "--config", str(config), "--listen", "nowhere"]
    )
    assert result.exit_code == 2
    assert "HOST:PORT" in result.output


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"adapter exited early with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listened on {port}")


@pytest.mark.parametrize("adapter", ["postfix-policy", "socketmap", "dovecot-policy"])
def test_cli_adapter_serves_without_a_broker_and_stops_on_sigterm(
    tmp_path: Path, adapter: str
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"[kafka]\nbootstrap = '127.0.0.1:{closed_port()}'\n[signing]\nkey = 'k'\n")
    port, metrics_port = closed_port(), closed_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILWARDEN_")}
    args = ["adapter", adapter, "--config", str(config), "--listen", f"127.0.0.1:{port}"]
    process = subprocess.Popen(
        [str(MAILWARDEN), *args, "--metrics-port", str(metrics_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        wait_for_port(port, process)
        if adapter == "postfix-policy":
            with socket.create_connection(("127.0.0.1", port), 5) as sock:
                sock.sendall(b"request=smtpd_access_policy\nsasl_username=a@b\n\n")
                assert sock.recv(100) == b"action=DUNNO\n\n"
        elif adapter == "socketmap":
            with socket.create_connection(("127.0.0.1", port), 5) as sock:
                sock.sendall(b"15:sasl_access a@b,")
                assert sock.recv(100) == b"9:NOTFOUND ,"
        else:
            reply = httpx.post(f"http://127.0.0.1:{port}/?command=allow", json={"login": "a@b"})
            assert reply.json() == {"status": 0, "msg": ""}
        wait_for_port(metrics_port, process)
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert "mailwarden_adapter_control_connected 0.0" in metrics
        assert "mailwarden_adapter_control_caught_up 0.0" in metrics
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output.decode(errors="replace")
    assert b"stopping" in output
