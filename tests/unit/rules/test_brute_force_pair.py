"""BruteForcePairRule: with block_pair, an IP that keeps failing on one account is blocked."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from models.alerts import Alert
from models.commands import Command
from models.detector import Detector
from models.events import Event
from models.policy import BruteForceSettings, Policy
from tests.unit.rules.kit import (
    SIGNING_KEY,
    fixture_events,
    fixture_expected,
    fixture_policy,
    make_event,
    project,
    run,
)

VICTIM = "dave@example.org"
ATTACKER = "203.0.113.66"


def with_pairs(**knobs: Any) -> Policy:
    brute = replace(BruteForceSettings(), block_pair=True, **knobs)
    return replace(Policy(), rules=replace(Policy().rules, brute_force=brute))


def guesses(count: int, ip: str = ATTACKER, gap: float = 15, start: float = 0) -> list[Event]:
    return [
        make_event(start + i * gap, "auth", outcome="failure", user=VICTIM, client_ip=ip)
        for i in range(count)
    ]


def test_fixture_gives_the_expected_decisions() -> None:
    detector = Detector(fixture_policy("brute_force_pair"), SIGNING_KEY)
    decisions = run(detector, fixture_events("brute_force_pair"))
    assert [project(d) for d in decisions] == fixture_expected("brute_force_pair")


def test_off_by_default() -> None:
    detector = Detector(Policy(), SIGNING_KEY)
    assert all(rule.name != "brute_force_pair" for rule in detector.rules)
    assert not [d for d in run(detector, guesses(30)) if isinstance(d, Command)]


def test_ten_failures_block_the_ip_never_the_account() -> None:
    decisions = run(Detector(with_pairs(), SIGNING_KEY), guesses(10))
    command, alert = decisions
    assert isinstance(command, Command) and isinstance(alert, Alert)
    assert (command.action, command.subject_type, command.subject) == ("block_ip", "ip", ATTACKER)
    assert VICTIM in command.reason
    assert alert.to_dict()["mailwarden"]["account"] == VICTIM
    assert alert.related_users == [VICTIM]


def test_the_account_name_is_compared_normalized() -> None:
    spellings = ["Dave@Example.org", " dave@example.org", "DAVE@EXAMPLE.ORG"]
    events = [
        make_event(i * 10, "auth", outcome="failure", user=spellings[i % 3], client_ip=ATTACKER)
        for i in range(10)
    ]
    decisions = run(Detector(with_pairs(), SIGNING_KEY), events)
    assert [type(d) for d in decisions] == [Command, Alert]


def test_failures_on_different_accounts_do_not_add_up() -> None:
    events = [
        make_event(
            i * 10, "auth", outcome="failure", user=f"u{i % 3}@example.org", client_ip=ATTACKER
        )
        for i in range(27)
    ]
    pair = [
        d for d in run(Detector(with_pairs(), SIGNING_KEY), events) if d.rule == "brute_force_pair"
    ]
    assert pair == []


def test_one_block_silences_password_spray_for_that_ip_too() -> None:
    detector = Detector(with_pairs(), SIGNING_KEY)
    run(detector, guesses(10))
    spray = [
        make_event(200 + i, "auth", outcome="failure", user=f"s{i}@example.org", client_ip=ATTACKER)
        for i in range(12)
    ]
    assert [d for d in run(detector, spray) if isinstance(d, Command)] == []


def test_threshold_and_duration_come_from_the_policy() -> None:
    decisions = run(
        Detector(with_pairs(pair_failures=3, pair_duration=60), SIGNING_KEY), guesses(3)
    )
    command = decisions[0]
    assert isinstance(command, Command)
    assert command.expires_epoch - command.issued_epoch == 60
