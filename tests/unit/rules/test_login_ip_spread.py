"""LoginIpSpreadRule: successful logins of one account from many IPs raise an alert."""

from __future__ import annotations

from dataclasses import replace

from models.alerts import Alert
from models.commands import Command
from models.detector import Detector
from models.events import Event
from models.policy import Policy
from tests.unit.rules.kit import (
    SIGNING_KEY,
    fixture_events,
    fixture_expected,
    fixture_policy,
    make_event,
    project,
    run,
)


def logins(
    user: str, ips: int, start: float = 0, gap: float = 60, outcome: str = "success"
) -> list[Event]:
    return [
        make_event(start + i * gap, "auth", outcome=outcome, user=user, client_ip=f"203.0.113.{i}")
        for i in range(ips)
    ]


def test_fixture_gives_the_expected_decisions() -> None:
    detector = Detector(fixture_policy("login_ip_spread"), SIGNING_KEY)
    decisions = run(detector, fixture_events("login_ip_spread"))
    assert [project(d) for d in decisions] == fixture_expected("login_ip_spread")


def test_ten_addresses_raise_one_alert_and_no_command() -> None:
    decisions = run(Detector(Policy(), SIGNING_KEY), logins("m@example.org", 15))
    assert [type(d) for d in decisions] == [Alert]
    evidence = decisions[0].to_dict()["mailwarden"]
    assert evidence["distinct"]["source_ips"]["count"] == 10
    assert evidence["distinct"]["source_ips"]["sample"][0] == "203.0.113.0"


def test_failed_logins_do_not_count() -> None:
    failed = logins("m@example.org", 15, outcome="failure")
    spread = [
        d for d in run(Detector(Policy(), SIGNING_KEY), failed) if d.rule == "login_ip_spread"
    ]
    assert spread == []


def test_addresses_spread_over_hours_are_not_counted_together() -> None:
    assert run(Detector(Policy(), SIGNING_KEY), logins("m@example.org", 20, gap=400)) == []


def test_eight_networks_are_enough_where_ten_addresses_are_not_reached() -> None:
    events = [
        make_event(i * 60, "auth", outcome="success", user="m@example.org", client_ip=f"10.{i}.0.1")
        for i in range(8)
    ]
    (alert,) = run(Detector(Policy(), SIGNING_KEY), events)
    assert isinstance(alert, Alert)
    evidence = alert.to_dict()["mailwarden"]
    assert evidence["trigger"] == "distinct_prefixes"
    assert evidence["distinct"]["source_prefixes"]["sample"][:2] == ["10.0.0.0/24", "10.1.0.0/24"]


def test_suspend_login_when_configured() -> None:
    spread = replace(Policy().rules.login_ip_spread, action="suspend_login")
    policy = replace(Policy(), rules=replace(Policy().rules, login_ip_spread=spread))
    decisions = run(Detector(policy, SIGNING_KEY), logins("m@example.org", 10))
    command, alert = decisions
    assert isinstance(command, Command) and isinstance(alert, Alert)
    assert (command.action, command.subject) == ("suspend_login", "m@example.org")
