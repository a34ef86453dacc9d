"""Account classes and service senders applied by the rules (parsing is in test_policy.py)."""

from __future__ import annotations

from models.alerts import Alert
from models.commands import Command
from models.detector import Detector
from models.events import Event
from models.policy import policy_from_dict
from tests.unit.rules.kit import SIGNING_KEY, make_event, run


def submissions(user: str, count: int, sender: str | None = None) -> list[Event]:
    return [
        make_event(
            i, "submission", user=user, client_ip="192.0.2.7", queue_id=f"Q{i}", sender=sender
        )
        for i in range(count)
    ]


def burst(decisions: list[Alert | Command]) -> list[Alert | Command]:
    return [d for d in decisions if d.rule == "smtp_burst"]


POLICY = policy_from_dict(
    {
        "classes": {
            "lists": {
                "domains": ["lists.example.org"],
                "rules": {"smtp_burst": {"threshold": 50, "duration": 600}},
            },
            "shadow": {
                "accounts": ["trial@example.org"],
                "rules": {"smtp_burst": {"dry_run": True}},
            },
            "off": {
                "accounts": ["Relay@Lists.example.org"],
                "rules": {"smtp_burst": {"enabled": False}},
            },
        }
    }
)


def test_a_domain_class_raises_the_threshold_for_its_accounts_only() -> None:
    detector = Detector(POLICY, SIGNING_KEY)
    assert burst(run(detector, submissions("news@lists.example.org", 49))) == []
    command, _ = burst(
        run(Detector(POLICY, SIGNING_KEY), submissions("news@lists.example.org", 50))
    )
    assert isinstance(command, Command)
    assert command.expires_epoch - command.issued_epoch == 600
    assert len(burst(run(Detector(POLICY, SIGNING_KEY), submissions("bob@example.org", 30)))) == 2


def test_an_account_class_beats_its_domain_class_and_may_turn_a_rule_off() -> None:
    assert (
        burst(run(Detector(POLICY, SIGNING_KEY), submissions("relay@lists.example.org", 80))) == []
    )


def test_a_class_may_ask_for_dry_run() -> None:
    command, alert = burst(run(Detector(POLICY, SIGNING_KEY), submissions("trial@example.org", 30)))
    assert isinstance(command, Command) and command.dry_run
    assert isinstance(alert, Alert) and alert.dry_run


def test_service_senders_match_the_account_or_the_envelope_sender() -> None:
    policy = policy_from_dict(
        {"allowlist": {"senders": ["@notify.example.org", "tickets@example.org"]}}
    )
    assert (
        burst(run(Detector(policy, SIGNING_KEY), submissions("bot@notify.example.org", 60))) == []
    )
    assert burst(run(Detector(policy, SIGNING_KEY), submissions("tickets@example.org", 60))) == []
    by_sender = submissions("helpdesk@example.org", 60, sender="tickets@example.org")
    assert burst(run(Detector(policy, SIGNING_KEY), by_sender)) == []
    assert burst(run(Detector(policy, SIGNING_KEY), submissions("bob@example.org", 30)))
