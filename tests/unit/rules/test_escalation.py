"""Escalation: each new command against the same subject lasts longer, by event time."""

from __future__ import annotations

from dataclasses import replace

import orjson

from models.commands import Command
from models.detector import Detector
from models.events import Event
from models.policy import EscalationSettings, Policy
from models.rules.ledger import OffenceLedger
from tests.unit.rules.kit import SIGNING_KEY, make_event, run

ATTACKER = "203.0.113.50"
HOUR = 3600.0
DAY = 86400.0


def spray(start: float, ip: str = ATTACKER) -> list[Event]:
    return [
        make_event(start + i, "auth", outcome="failure", user=f"u{i}@example.org", client_ip=ip)
        for i in range(10)
    ]


def blocks(detector: Detector, events: list[Event]) -> list[Command]:
    return [
        d for d in run(detector, events) if isinstance(d, Command) and d.rule == "password_spray"
    ]


def durations(detector: Detector, starts: list[float]) -> list[float]:
    found = []
    for start in starts:
        (command,) = blocks(detector, spray(start))
        found.append(command.expires_epoch - command.issued_epoch)
    return found


def test_each_offence_doubles_the_block_up_to_a_week() -> None:
    detector = Detector(Policy(), SIGNING_KEY, scopes={"ip"})
    # Each spray comes after the previous block expired.
    starts = [0.0, 2 * HOUR, 6 * HOUR, 14 * HOUR, 2 * DAY, 4 * DAY, 8 * DAY, 16 * DAY, 22 * DAY]
    assert durations(detector, starts) == [
        HOUR,
        2 * HOUR,
        4 * HOUR,
        8 * HOUR,
        16 * HOUR,
        32 * HOUR,
        64 * HOUR,
        128 * HOUR,
        7 * DAY,
    ]


def test_offences_are_forgotten_after_the_memory_and_counted_per_subject() -> None:
    policy = replace(Policy(), escalation=EscalationSettings(memory=int(DAY)))
    detector = Detector(policy, SIGNING_KEY, scopes={"ip"})
    assert durations(detector, [0.0, 2 * HOUR]) == [HOUR, 2 * HOUR]
    (other,) = blocks(detector, spray(3 * HOUR + 10, ip="198.51.100.1"))
    assert other.expires_epoch - other.issued_epoch == HOUR
    assert durations(detector, [3 * DAY]) == [HOUR]


def test_factor_one_turns_escalation_off() -> None:
    policy = replace(Policy(), escalation=EscalationSettings(factor=1.0))
    detector = Detector(policy, SIGNING_KEY, scopes={"ip"})
    assert durations(detector, [0.0, 2 * HOUR, 4 * HOUR]) == [HOUR, HOUR, HOUR]


def test_one_finding_is_one_offence_however_many_commands() -> None:
    detector = Detector(Policy(), SIGNING_KEY, scopes={"ip"})
    failures = [
        make_event(i, "auth", outcome="failure", user=f"u{i}@example.org", client_ip=ATTACKER)
        for i in range(10)
    ]
    success = make_event(30, "auth", outcome="success", user="kim@example.org", client_ip=ATTACKER)
    stuffing = [d for d in run(detector, [*failures, success]) if d.rule == "credential_stuffing"]
    suspend, reset, alert = stuffing
    assert isinstance(suspend, Command) and isinstance(reset, Command)
    assert suspend.expires_epoch - suspend.issued_epoch == DAY
    assert reset.expires_epoch - reset.issued_epoch == DAY
    assert alert.to_dict()["mailwarden"]["offences"] == {"account:kim@example.org": 1}


def test_ledger_is_bounded_exported_and_orders_late_offences() -> None:
    ledger = OffenceLedger("ip", EscalationSettings(history=3), max_keys=10)
    assert [ledger.record("x", t) for t in (100.0, 200.0, 300.0, 400.0)] == [1, 2, 3, 3]
    assert ledger.record("x", 250.0) == 2  # a late offence ranks after those before it
    data = ledger.export_key("x")
    assert data is not None and len(data["times"]) == 3
    other = OffenceLedger("ip", EscalationSettings(history=3), max_keys=10)
    other.import_key("x", orjson.loads(orjson.dumps(data)))
    assert other.export_key("x") == data
    assert ledger.duration(100, 1) == 100
    assert ledger.duration(100, 3) == 400
    assert ledger.duration(10 * DAY, 2) == 10 * DAY  # never below the rule's own duration
