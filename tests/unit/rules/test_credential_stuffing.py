"""CredentialStuffingRule: a success amid many failures from one IP costs that account its login."""

from __future__ import annotations

from dataclasses import replace

from models.alerts import Alert
from models.commands import Command
from models.detector import Detector
from models.events import Event
from models.policy import AllowlistSettings, Policy
from tests.unit.rules.kit import (
    SIGNING_KEY,
    fixture_events,
    fixture_expected,
    fixture_policy,
    make_event,
    project,
    run,
)

ATTACKER = "198.51.100.66"


def failures(ip: str, accounts: int, start: float = 0) -> list[Event]:
    return [
        make_event(start + i, "auth", outcome="failure", user=f"u{i}@example.org", client_ip=ip)
        for i in range(accounts)
    ]


def success(at: float, user: str, ip: str = ATTACKER) -> Event:
    return make_event(at, "auth", outcome="success", user=user, client_ip=ip)


def stuffing_only() -> Detector:
    return Detector(Policy(), SIGNING_KEY, scopes={"ip"})


def test_fixture_gives_the_expected_decisions() -> None:
    detector = Detector(fixture_policy("credential_stuffing"), SIGNING_KEY)
    decisions = run(detector, fixture_events("credential_stuffing"))
    assert [project(d) for d in decisions] == fixture_expected("credential_stuffing")


def test_success_after_ten_failed_accounts_suspends_login_and_demands_a_reset() -> None:
    decisions = run(stuffing_only(), [*failures(ATTACKER, 10), success(60, "kim@example.org")])
    commands = [d for d in decisions if isinstance(d, Command) and d.rule == "credential_stuffing"]
    assert [(c.action, c.subject) for c in commands] == [
        ("suspend_login", "kim@example.org"),
        ("require_password_reset", "kim@example.org"),
    ]
    alert = next(d for d in decisions if isinstance(d, Alert) and d.rule == "credential_stuffing")
    assert alert.commands == [c.id for c in commands]
    assert alert.severity == 99
    # The accounts that only failed are victims: nothing against them.
    assert all(c.subject_type != "account" or c.subject == "kim@example.org" for c in commands)


def test_success_after_few_failures_is_not_stuffing() -> None:
    assert run(stuffing_only(), [*failures(ATTACKER, 9), success(60, "kim@example.org")]) == []


def test_success_from_an_ip_that_never_failed_is_not_tracked() -> None:
    detector = stuffing_only()
    assert run(detector, [success(0, "kim@example.org", "192.0.2.8")]) == []
    # Only the NAT store remembers who logged in there; the login statistics
    # that stuffing and spraying share hold failing addresses only.
    state = detector.export_state("ip", "192.0.2.8")
    assert state is not None and set(state) == {"logins_by_network"}


def test_each_account_is_acted_on_once() -> None:
    detector = stuffing_only()
    run(detector, failures(ATTACKER, 10))
    first = run(detector, [success(60, "kim@example.org")])
    again = run(detector, [success(70, "kim@example.org")])
    other = run(detector, [success(80, "lee@example.org")])
    assert len(first) == 3 and again == [] and len(other) == 3


def test_a_shared_address_with_mostly_successes_is_left_alone() -> None:
    detector = stuffing_only()
    run(detector, failures(ATTACKER, 1))
    logins = [success(1 + i, f"s{i}@example.org") for i in range(50)]
    assert run(detector, [*logins, *failures(ATTACKER, 12, start=100)]) == []
    assert run(detector, [success(200, "late@example.org")]) == []


def test_allowlisted_source_ip_vetoes_the_commands() -> None:
    policy = replace(Policy(), allowlist=AllowlistSettings(ips=(ATTACKER,)))
    detector = Detector(policy, SIGNING_KEY, scopes={"ip"})
    decisions = run(detector, [*failures(ATTACKER, 10), success(60, "kim@example.org")])
    stuffing = [project(d) for d in decisions if d.rule == "credential_stuffing"]
    assert [d["type"] for d in stuffing] == ["alert"]
    assert stuffing[0]["allowlisted"] == [f"ip:{ATTACKER}"]


def test_a_success_from_a_prefix_failing_on_thirty_accounts() -> None:
    # Ten addresses of one /24 fail on three accounts each: no address reaches 10.
    pool = [
        make_event(
            i * 2,
            "auth",
            outcome="failure",
            user=f"u{i}@example.org",
            client_ip=f"198.51.100.{i // 3}",
        )
        for i in range(30)
    ]
    decisions = run(stuffing_only(), [*pool, success(100, "kim@example.org", "198.51.100.77")])
    stuffing = [d for d in decisions if d.rule == "credential_stuffing"]
    assert [type(d) for d in stuffing] == [Command, Command, Alert]
    evidence = stuffing[-1].to_dict()["mailwarden"]
    assert (evidence["trigger"], evidence["prefix"]) == ("prefix", "198.51.100.0/24")
    assert evidence["distinct"]["failed_accounts"]["count"] == 30


def test_by_prefix_can_be_turned_off() -> None:
    pool = [
        make_event(
            i * 2,
            "auth",
            outcome="failure",
            user=f"u{i}@example.org",
            client_ip=f"198.51.100.{i // 3}",
        )
        for i in range(30)
    ]
    settings = replace(Policy().rules.credential_stuffing, by_prefix=False)
    policy = replace(Policy(), rules=replace(Policy().rules, credential_stuffing=settings))
    detector = Detector(policy, SIGNING_KEY, scopes={"ip"})
    decisions = run(detector, [*pool, success(100, "kim@example.org", "198.51.100.77")])
    assert [d for d in decisions if d.rule == "credential_stuffing"] == []


def test_a_shared_address_needs_three_times_the_failed_accounts() -> None:
    detector = stuffing_only()
    regulars = [success(i * 60, f"emp{i}@example.org") for i in range(10)]
    run(detector, regulars)
    # The NAT guard of the failure ratio is met (10 vs 30 failures)...
    many = failures(ATTACKER, 12, start=1000) + failures(ATTACKER, 12, start=1100)
    decisions = run(detector, [*many, success(1200, "kim@example.org")])
    assert [d for d in decisions if d.rule == "credential_stuffing"] == []
    more = [
        make_event(
            1300 + i, "auth", outcome="failure", user=f"v{i}@example.org", client_ip=ATTACKER
        )
        for i in range(20)
    ]
    decisions = run(detector, [*more, success(1400, "lee@example.org")])
    stuffing = [d for d in decisions if d.rule == "credential_stuffing"]
    # The ten regulars, and kim and lee themselves.
    shared = stuffing[-1].to_dict()["mailwarden"]["shared_network"]
    assert shared == {"accounts_logged_in": 12, "exempt": False}


def test_accounts_are_normalized_and_the_logged_spelling_kept() -> None:
    decisions = run(stuffing_only(), [*failures(ATTACKER, 10), success(60, " Kim@Example.ORG")])
    suspend = next(
        d for d in decisions if isinstance(d, Command) and d.rule == "credential_stuffing"
    )
    assert suspend.subject == "kim@example.org"
    alert = next(d for d in decisions if isinstance(d, Alert) and d.rule == "credential_stuffing")
    assert alert.to_dict()["user"] == {"name": "kim@example.org"}
    assert alert.to_dict()["mailwarden"]["logged_user"] == " Kim@Example.ORG"
