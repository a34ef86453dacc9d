"""deny_insecure in the adapters: plaintext and weak-TLS logins refused, with the lab's requests.

The command state is the shared ActiveCommands, so release, expiry, order,
signatures and dry runs are exercised here through the adapters' decisions,
not re-tested as state.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from models.commands import Command
from models.enforcement import (
    ActiveCommands,
    ClientReplies,
    client_replies,
    smtp_responses,
    weak_tls,
)
from streams.adapters.dovecot_policy import DovecotPolicyServer, plaintext_login
from streams.adapters.metrics import AdapterMetrics
from streams.adapters.postfix_policy import PostfixPolicyServer, insecure_channel
from streams.adapters.socketmap import SocketmapServer

from .conftest import AUDIT_REASON, KEY, SignCommand, ref

ALICE = "alice@mailwarden.test"
BOB = "bob@mailwarden.test"
CAROL = "carol@mailwarden.test"
DAVE = "dave@mailwarden.test"

# Bodies as Dovecot 2.3.19 sent them in the lab (dovecot-authpolicy-requests.jsonl).
IMAP_PLAINTEXT = {
    "device_id": "",
    "local": "127.0.0.1",
    "login": ALICE,
    "mech": "PLAIN",
    "protocol": "imap",
    "pwhash": "00cd",
    "remote": "127.0.0.71",
    "secured": "",
    "session_id": "QAbCp0EvEtV/AAFH",
    "tls": False,
}
IMAP_STARTTLS = IMAP_PLAINTEXT | {"remote": "127.0.0.83", "secured": "TLS", "tls": True}
POP3_PLAINTEXT = IMAP_PLAINTEXT | {"protocol": "pop3", "remote": "127.0.0.72"}
POP3_TLS = POP3_PLAINTEXT | {"secured": "TLS", "tls": True}
# SMTP AUTH through Postfix: tls is always false, secured is Postfix's word.
SMTP_PLAINTEXT = IMAP_PLAINTEXT | {"protocol": "smtp", "session_id": "", "remote": "127.0.0.13"}
SMTP_TLS = SMTP_PLAINTEXT | {"secured": "secured", "remote": "127.0.0.11"}
# Webmail on the same host: rip == lip, which Dovecot calls secured.
IMAP_LOOPBACK = IMAP_PLAINTEXT | {"remote": "127.0.0.1", "secured": "secured"}


def deny(sign: SignCommand, account: str = ALICE, **kwargs: Any) -> Command:
    """deny_insecure as the insecure_auth rule issues it."""
    kwargs.setdefault("reason", "successful imap login over plaintext (minimum TLSv1.2)")
    return sign("deny_insecure", account, **kwargs)


def state(*commands: Command, replies: ClientReplies | None = None) -> ActiveCommands:
    active = ActiveCommands(KEY, smtp_responses({"suspend_login": "HOLD"}), replies)
    for command in commands:
        active.apply_record(command.to_json())
    return active


def dovecot(active: ActiveCommands, **kwargs: Any) -> DovecotPolicyServer:
    return DovecotPolicyServer(active, _NoSink(), **kwargs)


class _NoSink:
    def submit(self, event: object) -> bool:
        return True


def encrypted(refused: str) -> str:
    return f"encryption required {refused}"


# ---------------------------------------------------------------- the channel tests


@pytest.mark.parametrize(
    ("body", "plaintext"),
    [
        (IMAP_PLAINTEXT, True),
        (POP3_PLAINTEXT, True),
        (SMTP_PLAINTEXT, True),
        (IMAP_STARTTLS, False),
        (POP3_TLS, False),
        (SMTP_TLS, False),
        (IMAP_LOOPBACK, False),
        # Without %{secured} an SMTP request says nothing about TLS.
        ({k: v for k, v in SMTP_PLAINTEXT.items() if k != "secured"}, False),
        # Without %{secured} an IMAP request still has Dovecot's own tls flag.
        ({k: v for k, v in IMAP_PLAINTEXT.items() if k != "secured"}, True),
        ({k: v for k, v in IMAP_PLAINTEXT.items() if k != "tls"}, False),
        (IMAP_PLAINTEXT | {"tls": "false"}, False),
    ],
)
def test_plaintext_login(body: dict[str, Any], plaintext: bool) -> None:
    assert plaintext_login(body) is plaintext


@pytest.mark.parametrize(
    ("protocol", "weak"),
    [
        ("", True),
        ("SSLv3", True),
        ("TLSv1", True),
        ("TLSv1.1", True),
        ("TLSv1.2", False),
        ("TLSv1.3", False),
        ("TLSv1.4", False),  # unknown to the rule: not judged
        ("tlsv1", False),
    ],
)
def test_weak_tls(protocol: str, weak: bool) -> None:
    assert weak_tls(protocol) is weak
    assert insecure_channel({"encryption_protocol": protocol}) is weak


def test_a_policy_request_without_encryption_protocol_is_not_judged() -> None:
    assert insecure_channel({"request": "smtpd_access_policy", "sasl_username": ALICE}) is False


# ---------------------------------------------------------------- Dovecot


def test_dovecot_refuses_plaintext_and_allows_tls(sign: SignCommand) -> None:
    command = deny(sign)
    server = dovecot(state(command))
    for body in (IMAP_PLAINTEXT, POP3_PLAINTEXT, SMTP_PLAINTEXT):
        decision = server.decide(body)
        assert (decision.action, decision.reply) == ("REJECT", encrypted(ref(command))), body
        assert decision.command == command
    for body in (IMAP_STARTTLS, POP3_TLS, SMTP_TLS, IMAP_LOOPBACK):
        assert not server.decide(body).refuses, body
    assert not server.decide(IMAP_PLAINTEXT | {"login": BOB}).refuses
    # Accounts match as everywhere else: case and surrounding spaces do not matter.
    assert server.decide(IMAP_PLAINTEXT | {"login": " Alice@MailWarden.test"}).refuses


def test_dovecot_release_expiry_order_signature_and_dry_run(sign: SignCommand) -> None:
    now = 1_800_000_000.0
    server = dovecot(state(), clock=lambda: now)
    active = server.active

    def refused() -> bool:
        return server.decide(IMAP_PLAINTEXT).refuses

    active.apply_record(deny(sign, key=b"forged").to_json())
    active.apply_record(deny(sign, dry_run=True).to_json())
    assert not refused()
    command = deny(sign, issued=now - 60, duration=120)
    active.apply_record(command.to_json())
    assert refused()
    release = sign("release", ALICE, issued=now - 30, releases="deny_insecure")
    active.apply_record(release.to_json())
    assert not refused()
    # An older command arriving late does not undo the release.
    active.apply_record(deny(sign, issued=now - 50, duration=120).to_json())
    assert not refused()
    renewed = deny(sign, issued=now - 10, duration=20)
    active.apply_record(renewed.to_json())
    assert server.decide(IMAP_PLAINTEXT).reply == encrypted(ref(renewed))
    now += 10.0  # renewed expires now
    assert not refused()


def test_dovecot_suspension_and_block_take_precedence(sign: SignCommand) -> None:
    suspension = sign("suspend_login", ALICE)
    server = dovecot(state(deny(sign), suspension))
    assert server.decide(IMAP_PLAINTEXT).reply == f"account suspended {ref(suspension)}"
    assert server.decide(IMAP_STARTTLS).reply == f"account suspended {ref(suspension)}"
    block = sign("block_ip", IMAP_PLAINTEXT["remote"], "ip")
    server = dovecot(state(deny(sign), block))
    assert server.decide(IMAP_PLAINTEXT).reply == f"client address blocked {ref(block)}"


def test_dovecot_reply_text_and_rule_reason(sign: SignCommand) -> None:
    command = deny(sign)
    custom = dovecot(
        state(command, replies=client_replies({"deny_insecure": "use TLS, see https://help.test"}))
    )
    assert custom.decide(IMAP_PLAINTEXT).reply == f"use TLS, see https://help.test {ref(command)}"
    reasons = dovecot(state(command, replies=ClientReplies(rule_reason=True)))
    assert reasons.decide(IMAP_PLAINTEXT).reply == (
        f"successful imap login over plaintext (minimum TLSv1.2) {ref(command)}"
    )


async def test_every_lab_allow_request_over_http(lab_dir: Path, sign: SignCommand) -> None:
    lines = (lab_dir / "dovecot-authpolicy-requests.jsonl").read_text().splitlines()
    allows = [
        json.loads(line)["body"] for line in lines if line.strip() and "command=allow" in line
    ]
    assert len(allows) == 89
    command = deny(sign)
    active = state(
        command,
        deny(sign, BOB, key=b"forged"),
        deny(sign, "test@mailwarden.test", dry_run=True),
        deny(sign, CAROL, issued=1_000_000_000),  # expired long ago
    )
    metrics = AdapterMetrics(active)
    server = DovecotPolicyServer(active, _NoSink(), metrics)
    await server.start("127.0.0.1", 0)
    host, port = server.address
    try:
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=5) as client:
            replies = [(await client.post("/?command=allow", json=body)).json() for body in allows]
    finally:
        await server.close()
    refusal = {"status": -1, "msg": encrypted(ref(command))}
    expected = [
        refusal if body["login"] == ALICE and body["secured"] == "" else {"status": 0, "msg": ""}
        for body in allows
    ]
    assert replies == expected
    # alice: 8 IMAP and 5 POP3 without TLS, 2 SMTP AUTH Postfix saw unencrypted.
    assert replies.count(refusal) == 15
    exposition = metrics.exposition().decode()
    assert 'mailwarden_adapter_refusals_total{action="deny_insecure"} 15.0' in exposition
    assert 'mailwarden_adapter_requests_total{decision="REJECT"} 15.0' in exposition
    assert 'mailwarden_adapter_requests_total{decision="DUNNO"} 74.0' in exposition


# ---------------------------------------------------------------- Postfix


def lab_requests(lab_dir: Path) -> list[dict[str, str]]:
    lines = (lab_dir / "postfix-policy-requests.jsonl").read_text().splitlines()
    return [json.loads(line)["request"] for line in lines if line.strip()]


def test_postfix_refuses_only_weak_channels_of_denied_accounts(
    lab_dir: Path, sign: SignCommand
) -> None:
    requests = lab_requests(lab_dir)
    alice, bob = deny(sign), deny(sign, BOB)
    active = state(alice, bob)
    metrics = AdapterMetrics(active)
    server = PostfixPolicyServer(active, metrics)
    decisions = [server.decide(request) for request in requests]
    refused = [
        (request["client_address"], request["protocol_state"], decision.reply)
        for request, decision in zip(requests, decisions, strict=True)
        if decision.refuses
    ]
    # S03: alice submitted without STARTTLS; bob's TLSv1.2 (S02) is adequate.
    assert refused == [
        ("127.0.0.13", "RCPT", encrypted(ref(alice))),
        ("127.0.0.13", "END-OF-MESSAGE", encrypted(ref(alice))),
    ]
    assert all(d.action in ("REJECT", "DUNNO") for d in decisions)
    bob_tls12 = next(r for r in requests if r["encryption_protocol"] == "TLSv1.2")
    assert not server.decide(bob_tls12).refuses
    assert server.decide(bob_tls12 | {"encryption_protocol": "TLSv1.1"}).reply == encrypted(
        ref(bob)
    )
    exposition = metrics.exposition().decode()
    assert 'mailwarden_adapter_refusals_total{action="deny_insecure"} 3.0' in exposition


def test_postfix_strongest_verdict_wins(lab_dir: Path, sign: SignCommand) -> None:
    plaintext = next(r for r in lab_requests(lab_dir) if r["encryption_protocol"] == "")
    held = sign("suspend_login", ALICE)
    denied = deny(sign)
    server = PostfixPolicyServer(state(held, denied))
    # suspend_login is answered HOLD here; deny_insecure's REJECT is stronger.
    decision = server.decide(plaintext)
    assert (decision.action, decision.reply) == ("REJECT", encrypted(ref(denied)))
    over_tls = server.decide(plaintext | {"encryption_protocol": "TLSv1.3"})
    assert (over_tls.action, over_tls.reply) == ("HOLD", f"account suspended {ref(held)}")
    suspended = sign("suspend_smtp", ALICE)
    server = PostfixPolicyServer(state(suspended, denied))
    assert server.decide(plaintext).reply == f"account suspended {ref(suspended)}"


async def test_postfix_release_on_the_wire(lab_dir: Path, sign: SignCommand) -> None:
    plaintext = next(r for r in lab_requests(lab_dir) if r["encryption_protocol"] == "")
    request = ("".join(f"{k}={v}\n" for k, v in plaintext.items()) + "\n").encode()
    command = deny(sign, reason=AUDIT_REASON)
    active = state(command)
    server = PostfixPolicyServer(active)
    await server.start("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.address[1])

        async def ask() -> bytes:
            writer.write(request)
            await writer.drain()
            return await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)

        assert await ask() == f"action=REJECT {encrypted(ref(command))}\n\n".encode()
        active.apply_record(sign("release", ALICE, releases="deny_insecure").to_json())
        assert await ask() == b"action=DUNNO\n\n"
        writer.close()
    finally:
        await server.close()


def test_sasl_access_socketmap_does_not_act_on_deny_insecure(sign: SignCommand) -> None:
    server = SocketmapServer(state(deny(sign)))
    assert server.lookup(f"sasl_access {ALICE}".encode()) == "NOTFOUND "


# ---------------------------------------------------------------- the reply text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "non-empty string"),
        ("no\r\n550 x", "one line"),
        ("  padded", "surrounding spaces"),
        ("x" * 106, "at most 105"),
    ],
)
def test_bad_reply_texts_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        client_replies({"deny_insecure": text})


def test_the_reference_is_kept_with_a_long_rule_reason(sign: SignCommand) -> None:
    command = deny(sign, reason="r" * 300)
    reply = ClientReplies(rule_reason=True).reply(command)
    assert len(reply) == 120 and reply.endswith(f"... {ref(command)}")
    assert ClientReplies().reply(command) == encrypted(ref(command))
    assert state(command).decide_insecure(ALICE, 0.0).reply == encrypted(ref(command))
    assert not state(command).decide_insecure("", 0.0).refuses
    assert not state(command).decide_insecure(DAVE, 0.0).refuses


@pytest.mark.parametrize(
    ("protocol", "min_tls", "weak"),
    [
        ("TLSv1.2", "TLSv1.3", True),
        ("TLSv1.3", "TLSv1.3", False),
        ("TLSv1", "TLSv1", False),
        ("SSLv3", "TLSv1", True),
        ("", "SSLv3", True),
    ],
)
def test_weak_tls_follows_the_configured_minimum(protocol: str, min_tls: str, weak: bool) -> None:
    assert weak_tls(protocol, min_tls) is weak
    assert insecure_channel({"encryption_protocol": protocol}, min_tls) is weak


def test_postfix_refuses_tls12_when_the_minimum_is_raised(lab_dir: Path, sign: SignCommand) -> None:
    requests = lab_requests(lab_dir)
    bob = deny(sign, BOB)
    bob_tls12 = next(r for r in requests if r["encryption_protocol"] == "TLSv1.2")
    assert not PostfixPolicyServer(state(bob), None).decide(bob_tls12).refuses
    strict = PostfixPolicyServer(state(bob), None, min_tls="TLSv1.3")
    assert strict.decide(bob_tls12).reply == encrypted(ref(bob))
    assert not strict.decide(bob_tls12 | {"encryption_protocol": "TLSv1.3"}).refuses
