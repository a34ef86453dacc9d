"""The detector: routing by scope, determinism, and state that survives export and import."""

from __future__ import annotations

import heapq
from dataclasses import replace

import orjson
import pytest

from models.detector import Detector, UnknownScope
from models.events import Event
from models.policy import Policy, StateSettings
from models.rules import Decision
from tests.unit.rules.kit import SIGNING_KEY, fixture_events, fixture_policy, make_event, run

FIXTURES = ("smtp_burst", "password_spray", "brute_force", "bounce_storm")


def all_fixture_events() -> list[Event]:
    streams = [fixture_events(name) for name in FIXTURES]
    return list(heapq.merge(*streams, key=lambda event: event.epoch))


def as_json(decisions: list[Decision]) -> list[bytes]:
    return [decision.to_json() for decision in decisions]


def test_same_input_gives_byte_identical_output() -> None:
    events = all_fixture_events()
    first = as_json(run(Detector(Policy(), SIGNING_KEY), events))
    second = as_json(run(Detector(Policy(), SIGNING_KEY), all_fixture_events()))
    assert first == second
    # The seven decisions of the four fixtures, plus one: merged, erin@ gets her 19
    # failures of the brute-force fixture and one from the sprayers.
    assert len(first) == 8


def test_state_exported_mid_stream_gives_the_same_future_decisions() -> None:
    events = all_fixture_events()
    reference = Detector(Policy(), SIGNING_KEY)
    for split in range(0, len(events), 23):
        before, after = events[:split], events[split:]
        original = Detector(Policy(), SIGNING_KEY)
        run(original, before)
        restored = Detector(Policy(), SIGNING_KEY)
        for scope, key in original.keys_touched():
            state = original.export_state(scope, key)
            if state is not None:
                restored.import_state(scope, key, orjson.loads(orjson.dumps(state)))
        assert as_json(run(restored, after)) == as_json(run(original, after))
    # And the split runs saw what one uninterrupted run sees.
    assert len(run(reference, events)) == 8


def test_restored_quiet_period_prevents_a_second_command() -> None:
    burst = [
        make_event(i, "submission", user="alice@example.org", client_ip="192.0.2.5")
        for i in range(30)
    ]
    first = Detector(Policy(), SIGNING_KEY, scopes={"account"})
    assert len(run(first, burst)) == 2
    state = first.export_state("account", "alice@example.org")
    # The burst's window, the hourly history of outbound volume, and the offence
    # that escalation remembers.
    assert state is not None
    assert set(state) == {"smtp_burst", "outbound_volume", "offences.account"}
    second = Detector(Policy(), SIGNING_KEY, scopes={"account"})
    second.import_state("account", "alice@example.org", state)
    later = [
        make_event(600 + i, "submission", user="alice@example.org", client_ip="192.0.2.5")
        for i in range(40)
    ]
    assert run(second, later) == []


def test_scopes_select_the_rules() -> None:
    account = Detector(Policy(), SIGNING_KEY, scopes={"account"})
    ip = Detector(Policy(), SIGNING_KEY, scopes={"ip"})
    assert {rule.scope for rule in account.rules} == {"account"}
    assert {rule.name for rule in ip.rules} == {
        "password_spray",
        "prefix_spray",
        "credential_stuffing",
    }
    with pytest.raises(UnknownScope):
        Detector(Policy(), SIGNING_KEY, scopes={"prefix"})
    with pytest.raises(UnknownScope):
        account.export_state("domain", "x")


def test_keys_touched_names_changed_and_expired_keys_once() -> None:
    detector = Detector(Policy(), SIGNING_KEY)
    detector.process(
        make_event(0, "auth", outcome="failure", user="dave@example.org", client_ip="203.0.113.4")
    )
    assert detector.keys_touched() == {
        ("account", "dave@example.org"),
        ("ip", "203.0.113.4"),
        ("ip", "203.0.113.0/24"),
    }
    assert detector.keys_touched() == set()
    # Two hours later another key's event sweeps the idle ones away.
    detector.process(
        make_event(
            7200, "auth", outcome="failure", user="erin@example.org", client_ip="203.0.113.5"
        )
    )
    touched = detector.keys_touched()
    assert ("account", "dave@example.org") in touched
    assert ("ip", "203.0.113.4") in touched
    assert detector.export_state("account", "dave@example.org") is None


def test_a_million_keys_policy_is_honoured_at_small_scale() -> None:
    policy = replace(Policy(), state=StateSettings(max_keys=500))
    detector = Detector(policy, SIGNING_KEY)
    template = make_event(0, "auth", outcome="failure")
    for index in range(20_000):
        template.user = f"user{index}@example.org"
        template.client_ip = f"10.{index >> 16}.{(index >> 8) & 255}.{index & 255}"
        template.epoch += 0.01
        detector.process(template)
    stats = detector.stats()
    assert all(rule.keys <= 500 for rule in stats.rules.values())
    assert stats.rules["brute_force"].evicted + stats.rules["brute_force"].keys == 20_000


ALL_FIXTURES = (
    *FIXTURES,
    "credential_stuffing",
    "login_ip_spread",
    "insecure_auth",
    "prefix_spray",
    "recipient_fanout",
    "outbound_volume",
    "brute_force_pair",
)


def test_every_store_survives_export_and_import_mid_stream() -> None:
    """Split anywhere, restore every touched key, and the future decisions are the same."""
    policy = fixture_policy("brute_force_pair")  # every rule on, the pair block too
    streams = [fixture_events(name) for name in ALL_FIXTURES]
    events = list(heapq.merge(*streams, key=lambda event: event.epoch))
    for split in range(0, len(events), 197):
        before, after = events[:split], events[split:]
        original = Detector(policy, SIGNING_KEY)
        run(original, before)
        restored = Detector(policy, SIGNING_KEY)
        for scope, key in original.keys_touched():
            state = original.export_state(scope, key)
            if state is not None:
                restored.import_state(scope, key, orjson.loads(orjson.dumps(state)))
        assert as_json(run(restored, after)) == as_json(run(original, after))


def test_account_keys_are_normalized_everywhere() -> None:
    detector = Detector(Policy(), SIGNING_KEY)
    event = make_event(
        0, "auth", outcome="failure", user=" Dave@Example.ORG", client_ip="203.0.113.4"
    )
    detector.process(event)
    assert ("account", "dave@example.org") in detector.keys_touched()
    state = detector.export_state("account", "DAVE@example.org")
    assert state is not None and "brute_force" in state
    assert detector.state_key("account", " Dave@Example.ORG") == "dave@example.org"
    assert detector.state_key("ip", "203.0.113.4") == "203.0.113.4"
    assert detector.state_keys(event) == [
        ("account", "dave@example.org"),
        ("ip", "203.0.113.4"),
        ("ip", "203.0.113.0/24"),
        ("ip", "dave@example.org"),
    ]
    assert Detector(Policy(), SIGNING_KEY, scopes={"account"}).state_keys(event) == [
        ("account", "dave@example.org")
    ]


def test_store_names_and_counters_are_reported() -> None:
    detector = Detector(Policy(), SIGNING_KEY)
    run(
        detector,
        [make_event(0, "auth", outcome="failure", user="a@example.org", client_ip="203.0.113.4")],
    )
    stats = detector.stats()
    assert stats.stores["ip:auth_by_ip:600/10"].keys == 1
    assert stats.stores["ip:auth_by_prefix:600/10"].keys == 1
    assert stats.stores["account:brute_force"].events == 1
    # Spraying and stuffing read one store: one key, counted once.
    assert stats.rules["password_spray"].keys == stats.rules["credential_stuffing"].keys == 1
