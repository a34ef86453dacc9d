"""What every rule shares: its scope, its window store, and how it turns a finding into decisions.

A rule is pure: it sees events (already routed to it by key, see
``models/detector.py``) and its own event-time state, and returns alerts and
signed commands. The time written on a decision is the event time of the
event that triggered it, so replay and live produce the same ids.

Acting goes through :meth:`Rule.decide`, the single place where allowlists
and dry run are applied: an allowlisted subject gets no command (and, when
the policy says so, an alert that says it was allowlisted); in dry run the
commands are still produced, marked ``dry_run``, for adapters to log only.
"""

from __future__ import annotations

import ipaddress
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from models.alerts import Alert
from models.commands import Command, new_command
from models.events import Event, iso_utc
from models.policy import Allowlist
from models.window import KeyWindow, WindowStore

Scope = Literal["account", "ip"]
Decision = Alert | Command
SCOPES: frozenset[str] = frozenset({"account", "ip"})

# Elastic's severity bands (risk score conventions).
SEVERITY_LOW = 21
SEVERITY_MEDIUM = 47
SEVERITY_HIGH = 73
SEVERITY_CRITICAL = 99

NOTHING: tuple[Decision, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What a rule needs from outside to act: the key to sign with, allowlists, global dry run."""

    signing_key: bytes
    allowlist: Allowlist
    dry_run: bool = False
    alert_allowlisted: bool = True
    max_keys: int = 1_000_000
    distinct_cap: int = 256


@dataclass(frozen=True, slots=True)
class Action:
    """A command a finding asks for, before allowlists and signing."""

    action: str
    subject_type: str
    subject: str
    duration: float


@dataclass(slots=True)
class Finding:
    """What a rule found, in the words of the alert that reports it."""

    reason: str
    category: str
    outcome: str
    severity: int
    evidence: dict[str, Any]
    user: str | None = None
    source_ip: str | None = None
    related_users: tuple[str, ...] = ()
    related_ips: tuple[str, ...] = ()
    mitre: str | None = None


class Rule(ABC):
    """One detection rule over the events of one scope (account or IP)."""

    name: ClassVar[str]
    scope: ClassVar[Scope]
    # The event kinds the rule looks at; the detector hands it no others.
    kinds: ClassVar[frozenset[str]]
    store: WindowStore

    def __init__(self, context: RuleContext, dry_run: bool = False) -> None:
        self.context = context
        self.dry_run = context.dry_run or dry_run
        self.fired = 0

    @abstractmethod
    def process(self, event: Event, key: str) -> Sequence[Decision]:
        """Update the state of ``key`` with ``event`` and return what it decides (often nothing)."""

    def export_state(self, key: str) -> dict[str, Any] | None:
        return self.store.export_key(key)

    def import_state(self, key: str, data: dict[str, Any]) -> None:
        self.store.import_key(key, data)

    def is_allowlisted(self, subject_type: str, subject: str) -> bool:
        if subject_type == "account":
            return self.context.allowlist.has_account(subject)
        return self.context.allowlist.has_ip(subject)

    def decide(
        self,
        event: Event,
        finding: Finding,
        actions: tuple[Action, ...],
        source_ip: str | None = None,
    ) -> list[Decision]:
        """Turn a finding into signed commands (minus allowlisted subjects) and its alert.

        ``source_ip``, when given, is the IP whose behaviour led to commands
        against other subjects (accounts); if it is allowlisted, none is issued.
        """
        self.fired += 1
        commands: list[Command] = []
        allowlisted: list[str] = []
        if source_ip is not None and self.is_allowlisted("ip", source_ip):
            allowlisted.append(f"ip:{source_ip}")
            actions = ()
        for wanted in actions:
            subject = _canonical_subject(wanted.subject_type, wanted.subject)
            if subject is None:
                continue
            if self.is_allowlisted(wanted.subject_type, subject):
                allowlisted.append(f"{wanted.subject_type}:{subject}")
                continue
            commands.append(
                new_command(
                    action=wanted.action,
                    subject_type=wanted.subject_type,
                    subject=subject,
                    rule=self.name,
                    reason=finding.reason,
                    issued_epoch=event.epoch,
                    duration=wanted.duration,
                    key=self.context.signing_key,
                    dry_run=self.dry_run,
                )
            )
        evidence = dict(finding.evidence)
        if allowlisted:
            if not self.context.alert_allowlisted and not commands:
                return list(commands)
            evidence["allowlisted"] = allowlisted
        alert = Alert(
            rule=self.name,
            epoch=event.epoch,
            category=finding.category,
            outcome=finding.outcome,
            severity=finding.severity,
            reason=finding.reason,
            user=finding.user,
            source_ip=finding.source_ip,
            evidence=evidence,
            related_users=list(finding.related_users),
            related_ips=list(finding.related_ips),
            commands=[command.id for command in commands],
            mitre=finding.mitre,
            dry_run=self.dry_run,
        )
        return [*commands, alert]

    def near(self, value: float, threshold: float) -> bool:
        """Whether a key is close enough to ``threshold`` to start noting evidence times."""
        return value >= threshold - self.store.spec.times

    def window_evidence(self, window: KeyWindow, threshold: float) -> dict[str, Any]:
        """Evidence common to window rules: window length, threshold, the latest event times."""
        store = self.store
        return {
            "window_seconds": store.spec.seconds,
            "window_start": iso_utc(store.window_start(window)),
            "threshold": threshold,
            "sample_times": [iso_utc(t) for t in store.recent_times(window)],
        }


def _canonical_subject(subject_type: str, subject: str) -> str | None:
    """The subject as adapters will match it; None when an IP subject is not an address."""
    if subject_type != "ip":
        return subject
    try:
        return str(ipaddress.ip_address(subject))
    except ValueError:
        return None
