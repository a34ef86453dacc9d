"""BruteForceRule: failures against one account raise an alert and never act on the victim."""

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

VICTIM = "dave@example.org"


def failures(count: int, ips: list[str], start: float = 0) -> list[Event]:
    return [
        make_event(
            start + i * 10, "auth", outcome="failure", user=VICTIM, client_ip=ips[i % len(ips)]
        )
        for i in range(count)
    ]


def test_fixture_gives_the_expected_decisions() -> None:
    detector = Detector(fixture_policy("brute_force"), SIGNING_KEY)
    decisions = run(detector, fixture_events("brute_force"))
    assert [project(d) for d in decisions] == fixture_expected("brute_force")


def test_the_victim_is_never_the_subject_of_a_command() -> None:
    detector = Detector(Policy(), SIGNING_KEY)
    decisions = run(detector, failures(200, ["203.0.113.1", "203.0.113.2"]))
    assert all(d.subject != VICTIM for d in decisions if isinstance(d, Command))
    assert [d.rule for d in decisions if isinstance(d, Alert)] == ["brute_force"]


def test_nineteen_failures_are_below_the_threshold() -> None:
    assert run(Detector(Policy(), SIGNING_KEY), failures(19, ["203.0.113.1"])) == []


def test_evidence_names_the_source_ips() -> None:
    (alert,) = run(Detector(Policy(), SIGNING_KEY), failures(20, ["203.0.113.9"]))
    assert isinstance(alert, Alert)
    doc = alert.to_dict()
    assert doc["source"] == {"ip": "203.0.113.9"}
    assert doc["mailwarden"]["distinct"]["source_ips"] == {"count": 1, "sample": ["203.0.113.9"]}
    assert doc["mailwarden"]["counts"] == {"failures": 20}
    assert doc["threat"] == {"technique": {"id": ["T1110.001"]}}
    assert len(doc["mailwarden"]["sample_times"]) == 5


def test_quiet_for_an_hour_after_an_alert() -> None:
    detector = Detector(Policy(), SIGNING_KEY)
    assert len(run(detector, failures(25, ["203.0.113.1"]))) == 1
    assert run(detector, failures(25, ["203.0.113.1"], start=1200)) == []
    assert len(run(detector, failures(25, ["203.0.113.1"], start=3900))) == 1


def test_allowlisting_the_account_does_not_hide_the_attack() -> None:
    policy = replace(Policy(), allowlist=AllowlistSettings(accounts=(VICTIM,)))
    decisions = run(Detector(policy, SIGNING_KEY), failures(20, ["203.0.113.1"]))
    assert [project(d)["type"] for d in decisions] == ["alert"]


def test_evidence_ranks_the_ips_that_failed_most() -> None:
    events = failures(20, ["203.0.113.1", "203.0.113.2", "203.0.113.1", "203.0.113.3"])
    (alert,) = run(Detector(Policy(), SIGNING_KEY), events)
    assert alert.to_dict()["mailwarden"]["top_sources"] == [
        {"ip": "203.0.113.1", "failures_in_run": 10},
        {"ip": "203.0.113.2", "failures_in_run": 5},
        {"ip": "203.0.113.3", "failures_in_run": 5},
    ]


def test_spellings_of_one_account_are_one_account() -> None:
    spellings = ["Dave@Example.org", "dave@example.org ", "DAVE@example.org"]
    events = [
        make_event(
            i * 10, "auth", outcome="failure", user=spellings[i % 3], client_ip="203.0.113.1"
        )
        for i in range(20)
    ]
    (alert,) = run(Detector(Policy(), SIGNING_KEY), events)
    assert alert.to_dict()["user"] == {"name": VICTIM}
    assert alert.to_dict()["mailwarden"]["logged_user"] == "dave@example.org "
