"""PrefixSprayRule: a pool of addresses in one prefix, each under the per-IP limit, is blocked."""

from __future__ import annotations

from dataclasses import replace

from models.alerts import Alert
from models.commands import Command, verify_command
from models.detector import Detector
from models.events import Event
from models.policy import AllowlistSettings, NetworkSettings, Policy
from tests.unit.rules.kit import (
    SIGNING_KEY,
    fixture_events,
    fixture_expected,
    fixture_policy,
    make_event,
    project,
    run,
)


def rotating(prefix: str, accounts: int, per_ip: int = 5, start: float = 0) -> list[Event]:
    """Failures on ``accounts`` accounts, a new address of ``prefix`` every ``per_ip`` of them."""
    return [
        make_event(
            start + i * 4,
            "auth",
            outcome="failure",
            user=f"staff{i}@example.org",
            client_ip=f"{prefix}.{10 + i // per_ip}",
            protocol="imap",
        )
        for i in range(accounts)
    ]


def prefix_decisions(decisions: list[Alert | Command]) -> list[Alert | Command]:
    return [d for d in decisions if d.rule == "prefix_spray"]


def test_fixture_gives_the_expected_decisions() -> None:
    detector = Detector(fixture_policy("prefix_spray"), SIGNING_KEY)
    decisions = run(detector, fixture_events("prefix_spray"))
    assert [project(d) for d in decisions] == fixture_expected("prefix_spray")


def test_thirty_accounts_across_a_slash_24_block_the_prefix_not_the_ips() -> None:
    decisions = run(Detector(Policy(), SIGNING_KEY), rotating("203.0.113", 32))
    # No address reached the per-IP threshold of 10 accounts.
    assert not [d for d in decisions if d.rule == "password_spray"]
    command, alert = prefix_decisions(decisions)
    assert isinstance(command, Command) and isinstance(alert, Alert)
    assert (command.action, command.subject_type, command.subject) == (
        "block_ip",
        "prefix",
        "203.0.113.0/24",
    )
    assert verify_command(command.to_json(), SIGNING_KEY) == command
    evidence = alert.to_dict()["mailwarden"]
    assert evidence["prefix"] == "203.0.113.0/24"
    assert evidence["distinct"]["accounts"]["count"] == 30
    assert alert.reason.startswith("prefix 203.0.113.0/24:")


def test_the_same_accounts_spread_over_many_prefixes_are_not_a_prefix_attack() -> None:
    events = [
        make_event(
            i * 4, "auth", outcome="failure", user=f"s{i}@example.org", client_ip=f"10.{i}.0.1"
        )
        for i in range(40)
    ]
    assert prefix_decisions(run(Detector(Policy(), SIGNING_KEY), events)) == []


def test_ipv6_prefixes_are_slash_64_and_configurable() -> None:
    events = [
        make_event(
            i,
            "auth",
            outcome="failure",
            user=f"s{i}@example.org",
            client_ip=f"2001:db8:0:7::{i + 1:x}",
        )
        for i in range(30)
    ]
    (command, _) = prefix_decisions(run(Detector(Policy(), SIGNING_KEY), events))
    assert isinstance(command, Command) and command.subject == "2001:db8:0:7::/64"
    wider = replace(Policy(), network=NetworkSettings(ipv4_prefix=16, ipv6_prefix=48))
    (command, _) = prefix_decisions(run(Detector(wider, SIGNING_KEY), events))
    assert isinstance(command, Command) and command.subject == "2001:db8::/48"


def test_a_prefix_holding_an_allowlisted_address_is_never_blocked() -> None:
    policy = replace(Policy(), allowlist=AllowlistSettings(ips=("203.0.113.250",)))
    decisions = prefix_decisions(run(Detector(policy, SIGNING_KEY), rotating("203.0.113", 30)))
    assert [project(d)["type"] for d in decisions] == ["alert"]
    assert project(decisions[0])["allowlisted"] == ["prefix:203.0.113.0/24"]


def test_quiet_while_the_block_runs_and_longer_the_second_time() -> None:
    detector = Detector(Policy(), SIGNING_KEY)
    first = prefix_decisions(run(detector, rotating("203.0.113", 40)))
    assert len(first) == 2
    assert prefix_decisions(run(detector, rotating("203.0.113", 40, start=1200))) == []
    again = prefix_decisions(run(detector, rotating("203.0.113", 40, start=4000)))
    command = again[0]
    assert isinstance(command, Command)
    assert command.expires_epoch - command.issued_epoch == 7200
