"""InsecureAuthRule: a working password sent in plaintext or over old TLS raises an alert."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

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


def login(at: float, tls: str | None, outcome: str = "success") -> Event:
    return make_event(
        at,
        "auth",
        outcome=outcome,
        user="a@example.org",
        client_ip="192.0.2.1",
        tls=tls,
        protocol="imap",
    )


def with_knobs(**knobs: Any) -> Policy:
    policy = Policy()
    insecure = replace(policy.rules.insecure_auth, **knobs)
    return replace(policy, rules=replace(policy.rules, insecure_auth=insecure))


def test_fixture_gives_the_expected_decisions() -> None:
    detector = Detector(fixture_policy("insecure_auth"), SIGNING_KEY)
    decisions = run(detector, fixture_events("insecure_auth"))
    assert [project(d) for d in decisions] == fixture_expected("insecure_auth")


def test_plaintext_and_old_tls_alert_modern_and_unknown_do_not() -> None:
    for tls, alerts in (("none", 1), ("TLSv1", 1), ("TLSv1.1", 1), ("TLSv1.2", 0), (None, 0)):
        decisions = run(Detector(Policy(), SIGNING_KEY), [login(0, tls)])
        assert len(decisions) == alerts, tls


def test_one_alert_per_day_per_account() -> None:
    detector = Detector(Policy(), SIGNING_KEY)
    assert len(run(detector, [login(0, "none"), login(3600, "none")])) == 1
    assert len(run(detector, [login(86_500, "none")])) == 1


def test_min_tls_and_deny_come_from_the_policy() -> None:
    detector = Detector(with_knobs(min_tls="TLSv1.3", deny=True), SIGNING_KEY)
    command, alert = run(detector, [login(0, "TLSv1.2")])
    assert isinstance(command, Command) and isinstance(alert, Alert)
    assert (command.action, command.subject) == ("deny_insecure", "a@example.org")
    assert command.expires_epoch - command.issued_epoch == 86_400


def test_a_trusted_channel_dovecot_calls_secured_is_not_insecure() -> None:
    webmail = replace(login(0, "none"), client_ip="127.0.0.1", extra={"secured": True})
    assert run(Detector(Policy(), SIGNING_KEY), [webmail]) == []
    assert len(run(Detector(Policy(), SIGNING_KEY), [login(0, "none")])) == 1
