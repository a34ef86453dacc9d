"""PasswordSprayRule: one IP failing on many accounts is blocked; the accounts are not."""

from __future__ import annotations

from dataclasses import replace

from models.alerts import Alert
from models.commands import Command
from models.detector import Detector
from models.events import Event
from models.policy import AllowlistSettings, EnforcementSettings, Policy, StateSettings
from tests.unit.rules.kit import (
    SIGNING_KEY,
    fixture_events,
    fixture_expected,
    fixture_policy,
    make_event,
    project,
    run,
)

ATTACKER = "203.0.113.50"


def spray(ip: str, accounts: int, start: float = 0, kind: str = "auth") -> list[Event]:
    return [
        make_event(
            start + i * 5, kind, outcome="failure", user=f"user{i}@example.org", client_ip=ip
        )
        for i in range(accounts)
    ]


def test_fixture_gives_the_expected_decisions() -> None:
    detector = Detector(fixture_policy("password_spray"), SIGNING_KEY)
    decisions = run(detector, fixture_events("password_spray"))
    assert [project(d) for d in decisions] == fixture_expected("password_spray")


def test_ten_accounts_block_the_ip_and_never_an_account() -> None:
    decisions = run(Detector(Policy(), SIGNING_KEY), spray(ATTACKER, 12))
    commands = [d for d in decisions if isinstance(d, Command)]
    assert [(c.action, c.subject_type, c.subject) for c in commands] == [
        ("block_ip", "ip", ATTACKER)
    ]
    alert = next(d for d in decisions if isinstance(d, Alert))
    sample = alert.to_dict()["mailwarden"]["distinct"]["accounts"]["sample"]
    assert sample == [f"user{i}@example.org" for i in range(10)]


def test_nine_accounts_are_not_enough() -> None:
    assert run(Detector(Policy(), SIGNING_KEY), spray(ATTACKER, 9)) == []


def test_unknown_user_failures_count_as_failures_not_accounts() -> None:
    detector = Detector(Policy(), SIGNING_KEY)
    lost = [
        make_event(i * 2, "auth", outcome="failure", user=None, client_ip=ATTACKER, protocol="smtp")
        for i in range(90)
    ]
    assert run(detector, spray(ATTACKER, 9) + lost) == []  # 99 failures
    decisions = run(detector, [make_event(300, "auth", outcome="failure", client_ip=ATTACKER)])
    alert = next(d for d in decisions if isinstance(d, Alert))
    evidence = alert.to_dict()["mailwarden"]
    assert evidence["trigger"] == "failures"
    assert evidence["counts"] == {"failures": 100, "successes": 0}
    assert evidence["distinct"]["accounts"]["count"] == 9


def test_echoes_and_successes_are_not_failures() -> None:
    detector = Detector(Policy(), SIGNING_KEY)
    echoes = spray(ATTACKER, 20, kind="auth_echo")
    successes = [
        make_event(200 + i, "auth", outcome="success", user=f"u{i}@example.org", client_ip=ATTACKER)
        for i in range(20)
    ]
    assert run(detector, echoes + successes) == []


def test_spread_over_more_than_the_window_is_not_spraying() -> None:
    slow = [
        make_event(i * 120, "auth", outcome="failure", user=f"u{i}@example.org", client_ip=ATTACKER)
        for i in range(30)
    ]
    assert run(Detector(Policy(), SIGNING_KEY), slow) == []


def test_allowlisted_network_is_not_blocked() -> None:
    policy = replace(Policy(), allowlist=AllowlistSettings(ips=("203.0.113.0/24",)))
    decisions = run(Detector(policy, SIGNING_KEY), spray(ATTACKER, 12))
    assert [project(d)["type"] for d in decisions] == ["alert"]
    assert project(decisions[0])["allowlisted"] == [f"ip:{ATTACKER}"]


def test_dry_run_still_produces_the_marked_command() -> None:
    policy = replace(Policy(), enforcement=EnforcementSettings(dry_run=True))
    command, alert = run(Detector(policy, SIGNING_KEY), spray(ATTACKER, 10))
    assert isinstance(command, Command) and command.dry_run
    assert isinstance(alert, Alert) and alert.dry_run


def test_ipv6_subject_is_canonical_and_garbage_is_never_blocked() -> None:
    decisions = run(Detector(Policy(), SIGNING_KEY), spray("2001:DB8:0::7", 10))
    command = decisions[0]
    assert isinstance(command, Command) and command.subject == "2001:db8::7"
    decisions = run(Detector(Policy(), SIGNING_KEY), spray("unknown", 10))
    assert [project(d)["type"] for d in decisions] == ["alert"]


def test_a_crafted_user_name_cannot_point_at_another_ip() -> None:
    crafted = [
        make_event(
            i,
            "auth",
            outcome="failure",
            user=f"x{i} from 192.0.2.99 rip=192.0.2.99",
            client_ip=ATTACKER,
        )
        for i in range(10)
    ]
    commands = [d for d in run(Detector(Policy(), SIGNING_KEY), crafted) if isinstance(d, Command)]
    assert [c.subject for c in commands] == [ATTACKER]


def test_state_stays_bounded_with_a_hundred_thousand_ips() -> None:
    policy = replace(Policy(), state=StateSettings(max_keys=2000))
    detector = Detector(policy, SIGNING_KEY, scopes={"ip"})
    rule = next(rule for rule in detector.rules if rule.name == "password_spray")
    base = make_event(0, "auth", outcome="failure", user="victim@example.org")
    for index in range(100_000):
        base.client_ip = f"10.{index >> 16}.{(index >> 8) & 255}.{index & 255}"
        base.epoch += 0.001
        detector.process(base)
        assert len(rule.store) <= 2000
    assert rule.store.stats.evicted >= 98_000


def test_events_without_a_client_ip_do_not_reach_ip_rules() -> None:
    detector = Detector(Policy(), SIGNING_KEY, scopes={"ip"})
    local = Event(ts="", epoch=0.0, host=None, source="postfix", kind="auth", outcome="failure")
    assert detector.process(local) == []
    assert detector.keys_touched() == set()
