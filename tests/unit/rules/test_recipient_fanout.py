"""RecipientFanoutRule: one account mailing very many people or domains within an hour."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from models.alerts import Alert
from models.commands import Command
from models.detector import Detector
from models.events import Event
from models.policy import Policy, RecipientFanoutSettings
from tests.unit.rules.kit import (
    SIGNING_KEY,
    fixture_events,
    fixture_expected,
    fixture_policy,
    make_event,
    project,
    run,
)

SENDER = "ivan@example.org"


def with_fanout(**knobs: Any) -> Policy:
    fanout = replace(RecipientFanoutSettings(), **knobs)
    return replace(Policy(), rules=replace(Policy().rules, recipient_fanout=fanout))


def deliveries(recipients: list[str], start: float = 0, gap: float = 5) -> list[Event]:
    return [
        make_event(
            start + i * gap,
            "delivery",
            user=SENDER,
            recipient=rcpt,
            status="sent",
            queue_id=f"Q{i}",
        )
        for i, rcpt in enumerate(recipients)
    ]


def fanout(decisions: list[Alert | Command]) -> list[Alert | Command]:
    return [d for d in decisions if d.rule == "recipient_fanout"]


def test_fixture_gives_the_expected_decisions() -> None:
    detector = Detector(fixture_policy("recipient_fanout"), SIGNING_KEY)
    decisions = run(detector, fixture_events("recipient_fanout"))
    assert [project(d) for d in decisions] == fixture_expected("recipient_fanout")


def test_150_distinct_recipients_suspend_smtp() -> None:
    rcpts = [f"r{i}@mail{i % 10}.example.net" for i in range(150)]
    command, alert = fanout(run(Detector(Policy(), SIGNING_KEY), deliveries(rcpts)))
    assert isinstance(command, Command) and isinstance(alert, Alert)
    assert (command.action, command.subject) == ("suspend_smtp", SENDER)
    evidence = alert.to_dict()["mailwarden"]
    assert evidence["trigger"] == "recipients"
    assert evidence["distinct"]["recipients"]["count"] == 150
    assert evidence["distinct"]["domains"]["count"] == 10


def test_retries_and_case_variants_of_one_recipient_count_once() -> None:
    rcpts = [f"R{i % 100}@Example.net" if i % 2 else f"r{i % 100}@example.net" for i in range(400)]
    assert fanout(run(Detector(Policy(), SIGNING_KEY), deliveries(rcpts))) == []


def test_fifty_domains_are_enough() -> None:
    rcpts = [f"someone@domain{i}.example" for i in range(50)]
    decisions = fanout(run(Detector(Policy(), SIGNING_KEY), deliveries(rcpts)))
    assert decisions[-1].to_dict()["mailwarden"]["trigger"] == "domains"


def test_queued_recipients_count_before_any_delivery_but_retries_do_not() -> None:
    big = make_event(0, "queued", user=SENDER, nrcpt=149, queue_id="Q1")
    retry = make_event(
        600, "queued", user=SENDER, nrcpt=149, queue_id="Q1", detail="queue active again (retry)"
    )
    detector = Detector(Policy(), SIGNING_KEY)
    assert fanout(run(detector, [big, retry])) == []
    decisions = fanout(
        run(detector, [make_event(700, "queued", user=SENDER, nrcpt=1, queue_id="Q2")])
    )
    assert [type(d) for d in decisions] == [Command, Alert]


def test_action_alert_or_isolate() -> None:
    rcpts = [f"r{i}@example.net" for i in range(150)]
    (alert,) = fanout(run(Detector(with_fanout(action="alert"), SIGNING_KEY), deliveries(rcpts)))
    assert isinstance(alert, Alert)
    command, _ = fanout(
        run(Detector(with_fanout(action="isolate_sender"), SIGNING_KEY), deliveries(rcpts))
    )
    assert isinstance(command, Command) and command.action == "isolate_sender"


def test_spread_over_more_than_the_window_is_fine() -> None:
    rcpts = [f"r{i}@example.net" for i in range(300)]
    assert fanout(run(Detector(Policy(), SIGNING_KEY), deliveries(rcpts, gap=30))) == []
