"""BounceStormRule: an account whose mail mostly bounces has its SMTP suspended."""

from __future__ import annotations

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

SENDER = "frank@example.org"


def deliveries(statuses: list[str], start: float = 0, gap: float = 30) -> list[Event]:
    return [
        make_event(start + i * gap, "delivery", user=SENDER, status=status, queue_id=f"Q{i}")
        for i, status in enumerate(statuses)
    ]


def test_fixture_gives_the_expected_decisions() -> None:
    detector = Detector(fixture_policy("bounce_storm"), SIGNING_KEY)
    decisions = run(detector, fixture_events("bounce_storm"))
    assert [project(d) for d in decisions] == fixture_expected("bounce_storm")


def test_half_of_twenty_bounced_suspends() -> None:
    statuses = ["sent", "bounced"] * 10
    command, alert = run(Detector(Policy(), SIGNING_KEY), deliveries(statuses))
    assert isinstance(command, Command)
    assert (command.action, command.subject) == ("suspend_smtp", SENDER)
    assert isinstance(alert, Alert)
    assert alert.to_dict()["mailwarden"]["ratio"] == 0.5


def test_nine_of_twenty_is_below_the_ratio() -> None:
    statuses = ["bounced"] * 9 + ["sent"] * 11
    assert run(Detector(Policy(), SIGNING_KEY), deliveries(statuses)) == []


def test_expired_counts_as_failed_and_deferred_is_not_final() -> None:
    detector = Detector(Policy(), SIGNING_KEY)
    assert run(detector, deliveries(["deferred"] * 50 + ["expired"] * 19)) == []
    decisions = run(detector, deliveries(["expired"], start=2000))
    assert [project(d)["type"] for d in decisions] == ["command", "alert"]
    assert project(decisions[1])["counts"] == {"final_deliveries": 20, "bounced_or_expired": 20}


def test_bounces_spread_over_hours_do_not_add_up() -> None:
    slow = deliveries(["bounced"] * 40, gap=400)
    assert run(Detector(Policy(), SIGNING_KEY), slow) == []


def test_deliveries_without_a_submitting_account_are_nobodys() -> None:
    anonymous = [make_event(i, "delivery", status="bounced", queue_id=f"Q{i}") for i in range(40)]
    assert run(Detector(Policy(), SIGNING_KEY), anonymous) == []
