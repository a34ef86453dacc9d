"""OutboundVolumeRule: an account sending far more in an hour than its own history allows."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from models.alerts import Alert
from models.commands import Command
from models.detector import Detector
from models.events import Event
from models.policy import AllowlistSettings, OutboundVolumeSettings, Policy
from models.rules.outbound_volume import hourly_limit
from tests.unit.rules.kit import (
    SIGNING_KEY,
    T0,
    fixture_events,
    fixture_expected,
    fixture_policy,
    make_event,
    project,
    run,
)

HOUR = 3600
DAY = 86400
USER = "kate@example.org"
# Offsets below count from the first full event-time hour after T0.
ALIGN = HOUR - T0 % HOUR


def with_volume(**knobs: Any) -> Policy:
    volume = replace(OutboundVolumeSettings(), **knobs)
    return replace(Policy(), rules=replace(Policy().rules, outbound_volume=volume))


def hour_of(start: float, count: int, user: str = USER) -> list[Event]:
    """``count`` submissions spread evenly over the hour that begins at ``start``."""
    gap = HOUR / max(count, 1)
    return [
        make_event(
            ALIGN + start + i * gap,
            "submission",
            user=user,
            client_ip="192.0.2.31",
            queue_id=f"Q{start}.{i}",
        )
        for i in range(count)
    ]


def history(days: int, per_hour: int) -> list[Event]:
    """Office hours (9 to 17) of ``days`` days with ``per_hour`` messages each."""
    return [
        event
        for day in range(days)
        for hour in range(9, 18)
        for event in hour_of(day * DAY + hour * HOUR, per_hour)
    ]


def volume(decisions: list[Alert | Command]) -> list[Alert | Command]:
    return [d for d in decisions if d.rule == "outbound_volume"]


def test_fixture_gives_the_expected_decisions() -> None:
    detector = Detector(fixture_policy("outbound_volume"), SIGNING_KEY)
    decisions = run(detector, fixture_events("outbound_volume"))
    assert [project(d) for d in decisions] == fixture_expected("outbound_volume")


def test_limit_is_median_plus_scaled_mad_of_active_hours_with_a_floor() -> None:
    settings = OutboundVolumeSettings()
    counts = np.zeros(167, dtype=np.uint16)
    counts[:20] = [40, 50, 60, 45, 55] * 4
    limit = hourly_limit(counts, known_hours=100, settings=settings)
    assert not limit.cold_start
    assert (limit.median, limit.active_hours) == (50.0, 20)
    assert round(limit.spread, 3) == round(5 * 1.4826, 3)  # above sqrt(50)
    assert round(limit.limit, 2) == round(50 + 10 * 5 * 1.4826, 2)
    regular = np.zeros(167, dtype=np.uint16)
    regular[:30] = 400  # MAD 0: the Poisson spread sqrt(400) = 20 stands in
    assert hourly_limit(regular, known_hours=100, settings=settings).limit == 400 + 10 * 20
    quiet = np.zeros(167, dtype=np.uint16)
    quiet[:10] = 2
    assert hourly_limit(quiet, known_hours=100, settings=settings).limit == 50  # the floor
    assert hourly_limit(quiet, known_hours=10, settings=settings).cold_start  # too young
    assert hourly_limit(np.zeros(167, dtype=np.uint16), 100, settings).limit == 100


def test_a_new_account_gets_the_cold_start_limit() -> None:
    detector = Detector(Policy(), SIGNING_KEY)
    assert volume(run(detector, hour_of(0, 99, user="new@example.org"))) == []
    decisions = volume(
        run(Detector(Policy(), SIGNING_KEY), hour_of(0, 100, user="new@example.org"))
    )
    command, alert = decisions
    assert isinstance(command, Command) and command.action == "isolate_sender"
    assert isinstance(alert, Alert)
    assert alert.evidence["baseline"]["cold_start"] is True
    assert alert.evidence["counts"] == {"messages_this_hour": 100}


def test_a_busy_sender_is_judged_against_its_own_history() -> None:
    detector = Detector(Policy(), SIGNING_KEY)
    # Three days of 80 an hour: above the cold-start limit, normal for this account.
    assert volume(run(detector, history(3, 80))) == []
    assert volume(run(detector, hour_of(3 * DAY + 10 * HOUR, 150))) == []
    # Median 80, MAD 0, spread sqrt(80): the limit is 80 + 10 * 8.94, about 169.
    decisions = volume(run(detector, hour_of(3 * DAY + 11 * HOUR, 200)))
    assert [type(d) for d in decisions] == [Command, Alert]
    evidence = decisions[1].evidence  # type: ignore[union-attr]
    assert evidence["threshold"] == 169.44
    assert evidence["counts"] == {"messages_this_hour": 170}


def test_history_older_than_the_ring_is_forgotten() -> None:
    detector = Detector(with_volume(history_days=2), SIGNING_KEY)
    run(detector, history(1, 80))
    # A week later the account is new again: 100 an hour is the limit.
    decisions = volume(run(detector, hour_of(8 * DAY, 100)))
    assert decisions and decisions[-1].evidence["baseline"]["cold_start"] is True  # type: ignore[union-attr]


def test_action_and_service_senders() -> None:
    events = hour_of(0, 120, user="news@example.org")
    suspend = volume(run(Detector(with_volume(action="suspend_smtp"), SIGNING_KEY), events))
    assert isinstance(suspend[0], Command) and suspend[0].action == "suspend_smtp"
    (alert,) = volume(run(Detector(with_volume(action="alert"), SIGNING_KEY), events))
    assert isinstance(alert, Alert)
    allow = replace(Policy(), allowlist=AllowlistSettings(senders=("@example.org",)))
    assert volume(run(Detector(allow, SIGNING_KEY), events)) == []


def test_state_round_trips_and_late_events_count_in_their_hour() -> None:
    detector = Detector(Policy(), SIGNING_KEY)
    run(detector, history(2, 6))
    late = make_event(ALIGN + DAY + 12 * HOUR + 5, "submission", user=USER, queue_id="late")
    run(detector, [make_event(ALIGN + 2 * DAY, "submission", user=USER, queue_id="x"), late])
    state = detector.export_state("account", USER)
    assert state is not None
    ring = state["outbound_volume"]["hours"]
    assert len(ring) == 7 * 24 and sum(ring) == 2 * 9 * 6 + 2
    restored = Detector(Policy(), SIGNING_KEY)
    restored.import_state("account", USER, state)
    assert restored.export_state("account", USER) == state
