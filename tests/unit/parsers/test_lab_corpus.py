"""Every labelled line of the lab corpus (real Postfix 3.7 + Dovecot 2.3 output).

The two files are merged by timestamp (stable: a file's own order is kept) and
fed through ONE parser, as the publisher does for one host, so correlation
between Postfix and Dovecot lines is exercised. For each line the label's
kind, user, address, protocol and TLS version are checked against what the
parser emitted; the exceptions are few and each is explained where it is
allowed (``_EXPLAINED``). Then the counting invariant: per client address,
the ``auth`` failures (weighted by ``attempts``) equal the attempts the driver
made, and every successful login or SMTP AUTH session gives exactly one
``auth`` success.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from models.events import Event, Origin
from parsers.api import LogParser

FLOW_KINDS = {"submission", "queued", "message_id", "reject", "hold"}
SESSION_KINDS = {"connect", "disconnect", "logout", "kick"}
# Kinds that must never come from a line labelled "other".
COUNTED_KINDS = {"auth", "auth_echo", "submission", "reject", "hold"}
# Lines whose account or address is known only through correlation.
CORRELATED_KINDS = {"message_id", "queued", "delivery", "dsn", "logout", "kick", "queue_admin"}

# Failed attempts the lab driver made, per source address (scenarios.jsonl).
ATTEMPTS_BY_IP = {
    "127.0.0.21": 1,  # S11
    "127.0.0.22": 3,  # S12
    "127.0.0.23": 5,  # S13, two of them without a user name anywhere
    "127.0.0.24": 1,  # S14
    "127.0.0.51": 1,
    "127.0.0.52": 3,
    "127.0.0.53": 1,
    "127.0.0.54": 1,
    "127.0.0.55": 1,
    "127.0.0.58": 4,  # D15
    "127.0.0.61": 1,  # A01 IMAP
    "127.0.0.62": 1,  # A01 POP3
    "127.0.0.63": 1,  # A01 SMTP: Dovecot policy line + Postfix SASL line, one attempt
    "127.0.0.83": 1,  # X03
    "127.0.0.86": 1,  # X06: no passdb line, the login summary is the only record
}
# Successful logins / SMTP AUTH sessions per source address.
SUCCESSES_BY_IP = {
    **{f"127.0.0.{n}": 1 for n in (11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 27, 28)},
    **{f"127.0.0.{n}": 1 for n in (31, 32, 33, 34, 35, 85)},
    **{f"127.0.0.{n}": 1 for n in (41, 42, 43, 44, 45, 46, 56, 64, 65, 71, 72, 81, 82, 84)},
    "::1": 2,  # S17 (SMTP) and D14 (IMAP)
}


@dataclass
class Parsed:
    label: dict[str, object]
    events: list[Event]
    ignored: str | None
    error: str | None


def parse_lab(lab_dir: Path) -> list[Parsed]:
    labels = [json.loads(line) for line in (lab_dir / "events.jsonl").read_text().splitlines()]
    postfix = (lab_dir / "postfix.log").read_text().splitlines()
    dovecot = (lab_dir / "dovecot.log").read_text().splitlines()
    assert len(labels) == len(postfix) + len(dovecot)
    items = [(line[:15], 0, n, "postfix.log", line, labels[n]) for n, line in enumerate(postfix)]
    items += [
        (line[:15], 1, n, "dovecot.log", line, labels[len(postfix) + n])
        for n, line in enumerate(dovecot)
    ]
    items.sort(key=lambda item: (item[0], item[1], item[2]))
    parser = LogParser(year=2026)
    parsed = []
    for _stamp, _file, number, path, line, label in items:
        assert label["line"] == line
        result = parser.feed(line, Origin(path, number + 1))
        parsed.append(Parsed(label, result.events, result.ignored, result.error))
    return parsed


@pytest.fixture(scope="module")
def lab(lab_dir: Path) -> list[Parsed]:
    return parse_lab(lab_dir)


def primary_event(item: Parsed) -> Event | None:
    """The event that carries the label's meaning, or None when the kinds disagree."""
    kind, detail = item.label["kind"], str(item.label["detail"])
    for event in item.events:
        if _carries(kind, detail, event):
            return event
    return None


def _carries(kind: object, detail: str, event: Event) -> bool:
    if kind == "auth_failure":
        return event.kind in ("auth", "auth_echo") and event.outcome == "failure"
    if kind == "login":
        return event.kind == "auth" and event.outcome == "success"
    if kind == "submission":
        return event.kind in FLOW_KINDS
    if kind == "delivery":
        return event.kind == "delivery" and event.status in ("sent", "deferred")
    if kind == "bounce":
        return _is_bounce(detail, event)
    if kind == "tls":
        return event.kind == "tls"
    if kind == "connect":
        return event.kind in SESSION_KINDS
    return kind == "other"


def _is_bounce(detail: str, event: Event) -> bool:
    if detail == "delivery_bounced":
        return event.kind == "delivery" and event.status == "bounced"
    if detail == "expired_returned_to_sender":
        return event.kind == "delivery" and event.status == "expired"
    if detail == "sender_non-delivery_notification":
        return event.kind == "dsn" and event.detail == "sender non-delivery notification"
    if detail == "ndr_message_id":
        return event.kind == "message_id"
    if detail == "ndr_queued":
        return event.kind == "queued" and event.sender == ""
    if detail == "ndr_delivery_sent":
        return (
            event.kind == "delivery"
            and event.status == "sent"
            and "non-delivery notice" in (event.detail or "")
        )
    return False


# Each exception: label detail -> why the field may legitimately differ.
_EXPLAINED = {
    # Postfix writes the NDR's cleanup and qmgr lines BEFORE "sender non-delivery
    # notification: NDRQID" links the NDR to the bounced message, so no parser
    # reading lines in order can name the account on those two lines.
    "ndr_message_id": "precedes the line that links the notice to its message",
    "ndr_queued": "precedes the line that links the notice to its message",
    "delay_dsn_message_id": "precedes the line that links the notice to its message",
}


def _is_local_submission(item: Parsed) -> bool:
    """S20: local sendmail. No SASL account exists; the sender is in ``sender``."""
    return item.label["scenario"] == "S20"


def test_every_line_is_understood(lab: list[Parsed]) -> None:
    errors = [(item.label["line"], item.error) for item in lab if item.error]
    assert errors == []


def test_kinds_agree_with_labels(lab: list[Parsed]) -> None:
    wrong: list[tuple[object, object, object]] = []
    for item in lab:
        kind = item.label["kind"]
        if kind == "other":
            counted = [e.kind for e in item.events if e.kind in COUNTED_KINDS]
            if counted:
                wrong.append((item.label["line"], "other", counted))
            continue
        if primary_event(item) is None:
            got = [(e.kind, e.outcome, e.status) for e in item.events] or item.ignored
            wrong.append((item.label["line"], kind, got))
    assert wrong == []


def test_users_agree_with_labels(lab: list[Parsed]) -> None:
    wrong = []
    for item in lab:
        event = primary_event(item)
        expected = item.label["user"]
        if event is None or item.label["kind"] == "other" or expected is None:
            continue
        detail = str(item.label["detail"])
        if _is_local_submission(item):
            # No SASL account exists for a local sendmail; the parser never turns an
            # envelope sender into an account (test_local_submission checks these).
            assert event.user is None
            continue
        if event.kind in ("reject", "hold"):
            # The account is not logged there: the label's user is the envelope sender.
            got = event.sender if event.user is None else event.user
        else:
            got = event.user
        required = bool(item.label["user_in_line"]) or event.kind in CORRELATED_KINDS
        if detail in _EXPLAINED or (item.label["scenario"] == "S13" and got is None):
            # S13: "sasl_username=(unavailable)"; the name is in no line at all.
            required = False
        if (required and got != expected) or (got is not None and got != expected):
            wrong.append((item.label["line"], expected, got))
    assert wrong == []


def test_addresses_agree_with_labels(lab: list[Parsed]) -> None:
    wrong = []
    for item in lab:
        event = primary_event(item)
        if event is None or item.label["kind"] == "other":
            continue
        expected = item.label["ip"]
        required = bool(item.label["ip_in_line"]) or (
            event.kind in CORRELATED_KINDS and str(item.label["detail"]) not in _EXPLAINED
        )
        got = event.client_ip
        if (required and got != expected) or (got is not None and got != expected):
            wrong.append((item.label["line"], expected, got))
    assert wrong == []


def test_protocols_agree_with_labels(lab: list[Parsed]) -> None:
    wrong = []
    for item in lab:
        event = primary_event(item)
        if event is None or item.label["kind"] == "other":
            continue
        if _is_local_submission(item):
            # pickup: no network protocol; the label says smtp for the whole scenario
            assert event.protocol is None
            continue
        expected, got = item.label["protocol"], event.protocol
        # Dovecot's auth process does not know which login service asked
        # (IMAP, POP3 or a Postfix SASL request), so its passdb lines have no
        # protocol unless they pair with a Postfix line already seen.
        passdb = item.label["detail"] in (
            "passdb_password_mismatch",
            "passdb_unknown_user",
            "auth_policy_reject",
        )
        if got is None and (passdb or str(item.label["detail"]) in _EXPLAINED):
            continue
        if got != expected:
            wrong.append((item.label["line"], expected, got))
    assert wrong == []


def _tls_matches(expected: object, got: str | None) -> bool:
    if expected is False:
        return got == "none"
    return got == expected


def test_tls_agrees_with_labels(lab: list[Parsed]) -> None:
    wrong = []
    for item in lab:
        event = primary_event(item)
        expected = item.label["tls"]
        if event is None or item.label["kind"] == "other" or expected is None:
            continue
        got = event.tls
        line = str(item.label["line"])
        # Required where the line or its session says it: smtpd lines after the
        # handshake or in a plaintext session, Dovecot login-process lines.
        smtpd_session_line = (
            "/smtpd[" in line
            and not line.split(": ", 1)[1].startswith("connect from")
            and event.kind != "tls"
        )
        dovecot_login_line = "-login: " in line or ")<" in line
        required = smtpd_session_line or dovecot_login_line
        if got is None and event.kind == "tls" and event.outcome == "failure":
            # A refused handshake: the label has what the client offered, which no
            # log line states (T03/T04).
            required = False
        if got is None and dovecot_login_line and isinstance(expected, str):
            # Default login_log_format says "TLS" without the version; the %k
            # lines (X01-X04) and every plaintext line are still checked.
            required = False
        if (required or got is not None) and not _tls_matches(expected, got):
            wrong.append((line, expected, got))
    assert wrong == []


def test_local_submission(lab: list[Parsed]) -> None:
    pickup = [e for item in lab for e in item.events if e.service == "pickup"]
    assert [(e.kind, e.user, e.sender, e.client_ip) for e in pickup] == [
        ("submission", None, "alice@mailwarden.test", None)
    ]


def test_each_failed_attempt_counts_once(lab: list[Parsed]) -> None:
    counted: Counter[str] = Counter()
    for item in lab:
        for event in item.events:
            if event.kind == "auth" and event.outcome == "failure" and event.client_ip:
                counted[event.client_ip] += event.attempts or 1
    assert dict(counted) == ATTEMPTS_BY_IP


def test_each_login_counts_once(lab: list[Parsed]) -> None:
    counted: Counter[str] = Counter()
    for item in lab:
        for event in item.events:
            if event.kind == "auth" and event.outcome == "success" and event.client_ip:
                counted[event.client_ip] += 1
    assert dict(counted) == SUCCESSES_BY_IP


def test_smtp_auth_success_carries_the_session_tls(lab: list[Parsed]) -> None:
    successes = {
        e.client_ip: e.tls
        for item in lab
        for e in item.events
        if e.kind == "auth" and e.outcome == "success" and e.protocol == "smtp"
    }
    assert successes["127.0.0.12"] == "TLSv1.2"  # S02, STARTTLS forced to 1.2
    assert successes["127.0.0.13"] == "none"  # S03, plaintext
    assert successes["127.0.0.14"] == "TLSv1.3"  # S04, smtps wrapper mode


def test_deliveries_name_the_submitting_account(lab: list[Parsed]) -> None:
    bounced = [
        e for item in lab for e in item.events if e.kind == "delivery" and e.status == "bounced"
    ]
    assert {(e.user, e.client_ip, e.recipient) for e in bounced} >= {
        ("alice@mailwarden.test", "127.0.0.15", "reject1@example.net"),
        ("carol@mailwarden.test", "127.0.0.27", "reject2@example.net"),
    }
    expired = [
        e for item in lab for e in item.events if e.kind == "delivery" and e.status == "expired"
    ]
    assert {(e.user, e.client_ip) for e in expired} == {
        ("alice@mailwarden.test", "127.0.0.15"),
        ("bob@mailwarden.test", "127.0.0.28"),
    }
