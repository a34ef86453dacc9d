"""The Dovecot auth policy adapter over real HTTP, with the lab's real requests."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from models.commands import Command
from models.enforcement import ActiveCommands
from models.events import Event
from streams.adapters.dovecot_policy import (
    DovecotPolicyServer,
    basic_authorization,
    report_event,
    tls_of,
)
from streams.adapters.metrics import AdapterMetrics

from .conftest import KEY, SignCommand, ref

CAROL = "carol@mailwarden.test"
BLOCKED_IP = "127.0.0.42"  # bob's IMAP STARTTLS login (D02)
BLOCKED_PREFIX = ipaddress.ip_network("127.0.0.80/29")  # .81-.86 in the capture
NOT_SENT = {"Host", "Content-Length", "Connection", "Date"}


class ListSink:
    """Collects report events; ``accept`` False makes it behave like a full queue."""

    def __init__(self, accept: bool = True) -> None:
        self.events: list[Event] = []
        self.accept = accept

    def submit(self, event: Event) -> bool:
        if self.accept:
            self.events.append(event)
        return self.accept


@asynccontextmanager
async def policy_http(
    active: ActiveCommands,
    sink: ListSink,
    *,
    authorization: str | None = None,
    metrics: AdapterMetrics | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    server = DovecotPolicyServer(active, sink, metrics, authorization=authorization, host="mail")
    await server.start("127.0.0.1", 0)
    host, port = server.address
    try:
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=5) as client:
            yield client
    finally:
        await server.close()


def lab_commands(sign: SignCommand) -> dict[str, Command]:
    """The commands that refuse: carol's login, one address and one prefix."""
    return {
        CAROL: sign("suspend_login", CAROL, reason="success after 12 failures from 3 IPs"),
        BLOCKED_IP: sign(
            "block_ip", BLOCKED_IP, "ip", reason="failures on 10 accounts (threshold 10)"
        ),
        "prefix": sign("block_ip", str(BLOCKED_PREFIX), "prefix", reason="40 failures in 600 s"),
    }


def lab_state(sign: SignCommand, commands: dict[str, Command] | None = None) -> ActiveCommands:
    """``commands`` (by default :func:`lab_commands`) and records that refuse no login."""
    active = ActiveCommands(KEY)
    for command in (
        *(commands or lab_commands(sign)).values(),
        sign("suspend_smtp", "alice@mailwarden.test"),  # SMTP only: IMAP logins pass
        sign("suspend_login", "bob@mailwarden.test", key=b"forged"),
    ):
        active.apply_record(command.to_json())
    return active


def expected_allow(body: dict[str, Any], commands: dict[str, Command]) -> dict[str, Any]:
    if body["login"] == CAROL:
        return {"status": -1, "msg": f"account suspended {ref(commands[CAROL])}"}
    if body["remote"] == BLOCKED_IP:
        return {"status": -1, "msg": f"client address blocked {ref(commands[BLOCKED_IP])}"}
    if ipaddress.ip_address(body["remote"]) in BLOCKED_PREFIX:
        return {"status": -1, "msg": f"client address blocked {ref(commands['prefix'])}"}
    return {"status": 0, "msg": ""}


def expected_tls(body: dict[str, Any]) -> str | None:
    if body["tls"]:
        return "TLS"
    if body["protocol"] == "smtp":
        return "none" if body["secured"] == "" else None
    return "none"


async def test_every_lab_request(lab_dir: Path, sign: SignCommand) -> None:
    lines = (lab_dir / "dovecot-authpolicy-requests.jsonl").read_text().splitlines()
    captured = [json.loads(line) for line in lines if line.strip()]
    assert len(captured) == 146
    sink = ListSink()
    commands = lab_commands(sign)
    active = lab_state(sign, commands)
    metrics = AdapterMetrics(active)
    reports: list[dict[str, Any]] = []
    async with policy_http(active, sink, metrics=metrics) as client:
        for record in captured:
            headers = {k: v for k, v in record["headers"].items() if k not in NOT_SENT}
            body = record["body"]
            response = await client.post(
                record["path"], content=json.dumps(body).encode(), headers=headers
            )
            assert response.status_code == 200
            assert response.headers["Content-Type"].startswith("application/json")
            if record["path"] == "/?command=allow":
                assert response.json() == expected_allow(body, commands), body
                assert "threshold" not in response.text and "failures" not in response.text
            else:
                assert record["path"] == "/?command=report"
                assert response.json() == {"status": 0, "msg": ""}
                reports.append(body)
    assert len(sink.events) == len(reports) == 57
    for line, (event, body) in enumerate(zip(sink.events, reports, strict=True), start=1):
        assert event.source == "dovecot-policy" and event.kind == "auth_report"
        assert event.outcome == ("success" if body["success"] else "failure")
        assert (event.user, event.client_ip, event.protocol) == (
            body["login"],
            body["remote"],
            body["protocol"],
        )
        assert event.tls == expected_tls(body)
        assert event.extra == {"pwhash": body["pwhash"], "policy_reject": body["policy_reject"]}
        assert event.session == (body["session_id"] or None)
        assert event.mech == body["mech"]
        assert event.host == "mail"
        assert event.origin is not None and event.origin.line == line
        assert Event.from_json(event.to_json()) == event
    refused = sum(
        1 for r in captured if "allow" in r["path"] and expected_allow(r["body"], commands)["msg"]
    )
    assert refused == 29  # carol's 20 allows, 2 from .42, 7 more from the /29
    exposition = metrics.exposition().decode()
    assert f'mailwarden_adapter_requests_total{{decision="REJECT"}} {refused}.0' in exposition
    assert 'mailwarden_adapter_requests_total{decision="report"} 57.0' in exposition


async def test_policy_rejected_report_from_the_lab_becomes_a_failure_event(
    lab_dir: Path, sign: SignCommand
) -> None:
    lines = (lab_dir / "dovecot-authpolicy-requests.jsonl").read_text().splitlines()
    a01 = next(
        json.loads(line)["body"]
        for line in lines
        if '"policy_reject": true' in line and '"127.0.0.61"' in line
    )
    sink = ListSink()
    async with policy_http(lab_state(sign), sink) as client:
        response = await client.post("/?command=report", json=a01)
    assert response.json() == {"status": 0, "msg": ""}
    (event,) = sink.events
    assert (event.user, event.client_ip, event.outcome) == (CAROL, "127.0.0.61", "failure")
    assert event.extra["policy_reject"] is True


async def test_basic_auth_when_configured(sign: SignCommand) -> None:
    body = {"login": CAROL, "remote": "192.0.2.1", "protocol": "imap"}
    authorization = basic_authorization("dovecot:s3cret")
    commands = lab_commands(sign)
    active = lab_state(sign, commands)
    async with policy_http(active, ListSink(), authorization=authorization) as client:
        assert (await client.post("/?command=allow", json=body)).status_code == 401
        wrong = {"Authorization": basic_authorization("dovecot:guess")}
        assert (await client.post("/?command=allow", json=body, headers=wrong)).status_code == 401
        right = await client.post("/?command=allow", json=body, auth=("dovecot", "s3cret"))
        assert right.status_code == 200
        assert right.json() == {"status": -1, "msg": f"account suspended {ref(commands[CAROL])}"}


@pytest.mark.parametrize(
    ("path", "content", "status"),
    [
        ("/?command=allow", b"{not json", 400),
        ("/?command=allow", b"[1, 2]", 400),
        ("/?command=reset", b"{}", 400),
        ("/", b"{}", 400),
        ("/?command=allow", b'{"login": "' + b"x" * 70000 + b'"}', 413),
    ],
)
async def test_bad_requests(sign: SignCommand, path: str, content: bytes, status: int) -> None:
    sink = ListSink()
    async with policy_http(lab_state(sign), sink) as client:
        response = await client.post(path, content=content)
        assert response.status_code == status
        # The server is still fine afterwards.
        ok = await client.post("/?command=allow", json={"login": "x@y", "remote": "192.0.2.1"})
        assert ok.json() == {"status": 0, "msg": ""}
    assert sink.events == []


async def test_fields_of_the_wrong_type_are_treated_as_missing(sign: SignCommand) -> None:
    sink = ListSink()
    async with policy_http(lab_state(sign), sink) as client:
        allow = await client.post("/?command=allow", json={"login": [CAROL], "remote": 42})
        assert allow.json() == {"status": 0, "msg": ""}
        report = await client.post("/?command=report", json={"login": 1, "success": "yes"})
        assert report.json() == {"status": 0, "msg": ""}
    (event,) = sink.events
    assert (event.user, event.client_ip, event.outcome) == (None, None, "failure")


async def test_a_full_sink_does_not_fail_the_report(sign: SignCommand) -> None:
    async with policy_http(lab_state(sign), ListSink(accept=False)) as client:
        response = await client.post("/?command=report", json={"login": "a@b", "success": True})
    assert response.status_code == 200 and response.json() == {"status": 0, "msg": ""}


async def test_ipv4_mapped_remote_is_blocked_and_reported_as_ipv4(sign: SignCommand) -> None:
    sink = ListSink()
    commands = lab_commands(sign)
    async with policy_http(lab_state(sign, commands), sink) as client:
        body = {"login": "dave@x", "remote": "::ffff:127.0.0.42"}
        allow = await client.post("/?command=allow", json=body)
        blocked = f"client address blocked {ref(commands[BLOCKED_IP])}"
        assert allow.json() == {"status": -1, "msg": blocked}
        await client.post("/?command=report", json=body | {"success": False})
    assert sink.events[0].client_ip == "127.0.0.42"


@pytest.mark.parametrize(
    ("body", "tls"),
    [
        ({"protocol": "imap", "tls": True, "secured": "TLS"}, "TLS"),
        ({"protocol": "imap", "tls": False, "secured": "secured"}, "none"),  # loopback plaintext
        ({"protocol": "pop3", "tls": False, "secured": ""}, "none"),
        ({"protocol": "smtp", "tls": False, "secured": "secured"}, None),  # TLS or trusted
        ({"protocol": "smtp", "tls": False, "secured": ""}, "none"),
        ({"protocol": "imap"}, None),
    ],
)
def test_tls_of(body: dict[str, Any], tls: str | None) -> None:
    assert tls_of(body) == tls


def test_report_event_keeps_only_an_ip_as_client_ip() -> None:
    event = report_event(
        {"login": "a@b", "remote": "1.2.3.4, 5.6.7.8", "success": True},
        1_795_758_175.5,
        host=None,
        sequence=7,
    )
    assert event.client_ip is None and event.outcome == "success"
    assert event.ts == "2026-11-27T05:42:55.500000+00:00"
    assert event.origin is not None and event.origin.line == 7


def test_basic_authorization_needs_user_and_password() -> None:
    assert basic_authorization("u:p") == "Basic dTpw"
    with pytest.raises(ValueError, match="user:password"):
        basic_authorization("nocolon")
