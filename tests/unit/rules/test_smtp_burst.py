"""SmtpBurstRule: many submissions from one account suspend its SMTP service."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from models.alerts import Alert
from models.commands import Command, verify_command
from models.detector import Detector
from models.events import Event
from models.policy import AllowlistSettings, EnforcementSettings, Policy, RuleSettings
from models.policy import SmtpBurstSettings as Settings
from models.rules import Decision
from tests.unit.rules.kit import (
    SIGNING_KEY,
    fixture_events,
    fixture_expected,
    fixture_policy,
    make_event,
    project,
    run,
)


def submissions(user: str, start: float, count: int, gap: float) -> list[Event]:
    return [
        make_event(
            start + i * gap, "submission", user=user, client_ip="198.51.100.7", protocol="smtp"
        )
        for i in range(count)
    ]


def with_burst(policy: Policy, **knobs: Any) -> Policy:
    rules = replace(policy.rules, smtp_burst=replace(policy.rules.smtp_burst, **knobs))
    return replace(policy, rules=rules)


def test_fixture_gives_the_expected_decisions() -> None:
    detector = Detector(fixture_policy("smtp_burst"), SIGNING_KEY)
    decisions = run(detector, fixture_events("smtp_burst"))
    assert [project(d) for d in decisions] == fixture_expected("smtp_burst")


def test_below_the_threshold_nothing_happens() -> None:
    detector = Detector(Policy(), SIGNING_KEY)
    assert run(detector, submissions("bob@example.org", 0, 29, 1.0)) == []


def test_only_submissions_count() -> None:
    detector = Detector(Policy(), SIGNING_KEY)
    logins = [
        make_event(i, "auth", outcome="success", user="bob@example.org", client_ip="192.0.2.1")
        for i in range(40)
    ]
    assert run(detector, logins) == []


def burst_only(decisions: list[Decision]) -> list[Decision]:
    """The smtp_burst decisions (140 messages in an hour also exceed outbound_volume)."""
    return [d for d in decisions if d.rule == "smtp_burst"]


def test_fires_once_per_episode_and_again_after_the_suspension() -> None:
    detector = Detector(Policy(), SIGNING_KEY)
    first = burst_only(run(detector, submissions("alice@example.org", 0, 60, 1.0)))
    assert [type(d) for d in first] == [Command, Alert]
    command = first[0]
    assert isinstance(command, Command)
    assert command.issued_epoch == make_event(29, "submission").epoch
    assert command.expires_epoch == command.issued_epoch + 3600
    # Still suspended by event time: no second command.
    assert burst_only(run(detector, submissions("alice@example.org", 1800, 40, 1.0))) == []
    again = burst_only(run(detector, submissions("alice@example.org", 3700, 40, 1.0)))
    assert [type(d) for d in again] == [Command, Alert]
    # A repeat offender: its third command (outbound_volume isolated it in
    # between) lasts 2 ** 2 times as long.
    second, alert = again
    assert isinstance(second, Command) and isinstance(alert, Alert)
    assert alert.evidence["offences"] == {"account:alice@example.org": 3}
    assert second.expires_epoch - second.issued_epoch == 4 * 3600


def test_commands_are_signed_and_verifiable() -> None:
    detector = Detector(Policy(), SIGNING_KEY)
    command, alert = run(detector, submissions("alice@example.org", 0, 30, 1.0))
    assert isinstance(command, Command) and isinstance(alert, Alert)
    assert verify_command(command.to_json(), SIGNING_KEY) == command
    assert alert.commands == [command.id]
    assert command.subject == "alice@example.org"
    assert (command.action, command.subject_type) == ("suspend_smtp", "account")


def test_dry_run_marks_commands_and_alerts() -> None:
    for policy in (
        replace(Policy(), enforcement=EnforcementSettings(dry_run=True)),
        with_burst(Policy(), dry_run=True),
    ):
        detector = Detector(policy, SIGNING_KEY)
        command, alert = run(detector, submissions("alice@example.org", 0, 30, 1.0))
        assert isinstance(command, Command) and command.dry_run
        assert isinstance(alert, Alert) and alert.dry_run


def test_allowlisted_account_gets_an_alert_but_no_command() -> None:
    allowlist = AllowlistSettings(accounts=("Newsletter@Example.org",))
    policy = replace(Policy(), allowlist=allowlist)
    decisions = run(
        Detector(policy, SIGNING_KEY), submissions("newsletter@example.org", 0, 30, 1.0)
    )
    assert [project(d)["type"] for d in decisions] == ["alert"]
    assert project(decisions[0])["allowlisted"] == ["account:newsletter@example.org"]
    silent = replace(policy, allowlist=replace(allowlist, alert=False))
    events = submissions("newsletter@example.org", 0, 30, 1.0)
    assert run(Detector(silent, SIGNING_KEY), events) == []


def test_disabled_rule_does_not_run() -> None:
    policy = replace(Policy(), rules=RuleSettings(smtp_burst=Settings(enabled=False)))
    detector = Detector(policy, SIGNING_KEY)
    assert all(rule.name != "smtp_burst" for rule in detector.rules)
    assert run(detector, submissions("alice@example.org", 0, 60, 1.0)) == []


def test_threshold_and_duration_come_from_the_policy() -> None:
    policy = with_burst(Policy(), threshold=5, duration=600)
    command, _ = run(Detector(policy, SIGNING_KEY), submissions("a@example.org", 0, 5, 1.0))
    assert isinstance(command, Command)
    assert command.expires_epoch - command.issued_epoch == 600
