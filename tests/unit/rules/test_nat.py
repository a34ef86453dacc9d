"""NAT awareness: where many accounts log in successfully, more is needed to look like an attack."""

from __future__ import annotations

from dataclasses import replace

from models.alerts import Alert
from models.commands import Command
from models.detector import Detector
from models.events import Event
from models.policy import NatSettings, Policy
from tests.unit.rules.kit import SIGNING_KEY, make_event, run

OFFICE = "192.0.2.80"


def office_logins(users: int, start: float = 0) -> list[Event]:
    return [
        make_event(
            start + i * 20, "auth", outcome="success", user=f"emp{i}@example.org", client_ip=OFFICE
        )
        for i in range(users)
    ]


def typos(accounts: int, start: float) -> list[Event]:
    return [
        make_event(
            start + i, "auth", outcome="failure", user=f"emp{i}@example.org", client_ip=OFFICE
        )
        for i in range(accounts)
    ]


def spray_decisions(detector: Detector, events: list[Event]) -> list[Alert | Command]:
    return [d for d in run(detector, events) if d.rule == "password_spray"]


def test_many_successful_accounts_triple_the_spraying_threshold() -> None:
    # 12 accounts logged in within the hour; then 12 fail within a minute,
    # too few for a shared address (3 x 10), which a lone address would not survive.
    detector = Detector(replace(Policy(), nat=NatSettings(users=10)), SIGNING_KEY, scopes={"ip"})
    events = [*office_logins(12), *typos(12, start=2000)]
    assert spray_decisions(detector, events) == []
    lone = Detector(Policy(), SIGNING_KEY, scopes={"ip"})
    assert len(spray_decisions(lone, [e for e in events if e.outcome == "failure"])) == 2


def test_a_real_spray_from_a_shared_address_still_gets_blocked() -> None:
    detector = Detector(Policy(), SIGNING_KEY, scopes={"ip"})
    spray = [
        make_event(2000 + i, "auth", outcome="failure", user=f"x{i}@example.org", client_ip=OFFICE)
        for i in range(30)
    ]
    decisions = spray_decisions(detector, [*office_logins(12), *spray])
    command, alert = decisions
    assert isinstance(command, Command) and command.subject == OFFICE
    assert isinstance(alert, Alert)
    evidence = alert.to_dict()["mailwarden"]
    assert evidence["shared_network"] == {
        "accounts_logged_in": 12,
        "threshold_factor": 3.0,
        "exempt": False,
    }
    assert evidence["threshold"] == 30


def test_exempt_shared_addresses_are_reported_not_blocked() -> None:
    policy = replace(Policy(), nat=NatSettings(exempt=True))
    detector = Detector(policy, SIGNING_KEY, scopes={"ip"})
    spray = [
        make_event(2000 + i, "auth", outcome="failure", user=f"x{i}@example.org", client_ip=OFFICE)
        for i in range(30)
    ]
    decisions = spray_decisions(detector, [*office_logins(12), *spray])
    assert [type(d) for d in decisions] == [Alert]


def test_logins_older_than_the_nat_window_do_not_count() -> None:
    detector = Detector(Policy(), SIGNING_KEY, scopes={"ip"})
    events = [*office_logins(12), *typos(12, start=8000)]  # more than an hour later
    assert len(spray_decisions(detector, events)) == 2


def test_disabling_nat_awareness_removes_its_store() -> None:
    detector = Detector(replace(Policy(), nat=NatSettings(enabled=False)), SIGNING_KEY)
    run(detector, office_logins(3))
    assert detector.export_state("ip", OFFICE) is None
