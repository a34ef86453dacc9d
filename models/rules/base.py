"""What every rule shares: its scope, its state, and how it turns a finding into decisions.

A rule is pure: it sees events (already routed to it by key, see
``models/detector.py``) and event-time state, and returns alerts and signed
commands. The time written on a decision is the event time of the event
that triggered it, so replay and live produce the same ids.

State is kept in stores (:class:`StateStore`): a rule owns the stores only
it reads, and reads shared ones through the feeds that fill them once per
event (``models/rules/shared.py``), in the manner of weakforced's
statistics databases.

Acting goes through :meth:`Rule.decide`, the single place where allowlists,
escalation and dry run are applied: an allowlisted subject gets no command
(and, when the policy says so, an alert that says it was allowlisted); a
repeat offender's command lasts longer (``models/rules/ledger.py``); in dry
run the commands are still produced, marked ``dry_run``, for adapters to
log only.
"""

from __future__ import annotations

import ipaddress
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from models.alerts import Alert
from models.commands import Command, new_command
from models.events import Event, iso_utc
from models.policy import Allowlist, ClassIndex
from models.rules.keys import EventKeys, Networks
from models.rules.ledger import OffenceLedger
from models.window import KeyWindow, StoreStats, WindowStore

Scope = Literal["account", "ip"]
Decision = Alert | Command
SCOPES: frozenset[str] = frozenset({"account", "ip"})
SUBJECT_TYPES: tuple[str, ...] = ("account", "ip", "prefix")

# Elastic's severity bands (risk score conventions).
SEVERITY_LOW = 21
SEVERITY_MEDIUM = 47
SEVERITY_HIGH = 73
SEVERITY_CRITICAL = 99

NOTHING: tuple[Decision, ...] = ()


class StateStore(Protocol):
    """What the detector needs of any store: a name, its keys' state, what changed."""

    name: str
    touched: set[str]
    stats: StoreStats

    def __len__(self) -> int: ...

    def export_key(self, key: str) -> dict[str, Any] | None: ...

    def import_key(self, key: str, data: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What a rule needs from outside to act: signing key, allowlists, classes, ledgers."""

    signing_key: bytes
    allowlist: Allowlist
    dry_run: bool = False
    alert_allowlisted: bool = True
    max_keys: int = 1_000_000
    distinct_cap: int = 256
    classes: ClassIndex = field(default_factory=lambda: ClassIndex(()))
    networks: Networks = field(default_factory=Networks)
    # (scope, subject type) -> the offences of that scope's subjects.
    ledgers: dict[tuple[str, str], OffenceLedger] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Action:
    """A command a finding asks for, before allowlists, escalation and signing."""

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
    # The store whose counters stand for the rule in statistics.
    store: WindowStore

    def __init__(self, context: RuleContext, dry_run: bool = False) -> None:
        self.context = context
        self.dry_run = context.dry_run or dry_run
        self.fired = 0

    @property
    def stores(self) -> tuple[StateStore, ...]:
        """The stores this rule owns (shared ones belong to their feeds)."""
        return (self.store,)

    @abstractmethod
    def process(self, event: Event, keys: EventKeys) -> Sequence[Decision]:
        """Update the rule's state with ``event`` and return what it decides (often nothing)."""

    def is_allowlisted(self, subject_type: str, subject: str) -> bool:
        allowlist = self.context.allowlist
        if subject_type == "account":
            return allowlist.has_account(subject)
        if subject_type == "prefix":
            return allowlist.has_network(subject)
        return allowlist.has_ip(subject)

    def is_service_sender(self, event: Event, account: str) -> bool:
        """Whether mail-flow rules leave this mail alone (``[allowlist] senders``).

        Matches the submitting account or, when the event has one, the
        envelope sender.
        """
        allowlist = self.context.allowlist
        if not allowlist.has_senders:
            return False
        if allowlist.has_sender(account):
            return True
        return bool(event.sender) and allowlist.has_sender(event.sender or "")

    def decide(
        self,
        event: Event,
        finding: Finding,
        actions: tuple[Action, ...],
        source_ip: str | None = None,
        dry_run: bool = False,
    ) -> list[Decision]:
        """Turn a finding into signed commands (minus allowlisted subjects) and its alert.

        ``source_ip``, when given, is the IP whose behaviour led to commands
        against other subjects (accounts); if it is allowlisted, none is
        issued. ``dry_run`` marks this finding's commands dry run on top of
        the rule's and the policy's setting (a class of accounts may ask it).
        """
        self.fired += 1
        dry = self.dry_run or dry_run
        commands: list[Command] = []
        allowlisted: list[str] = []
        offences: dict[str, int] = {}
        if source_ip is not None and self.is_allowlisted("ip", source_ip):
            allowlisted.append(f"ip:{source_ip}")
            actions = ()
        for wanted in actions:
            subject = canonical_subject(wanted.subject_type, wanted.subject)
            if subject is None:
                continue
            label = f"{wanted.subject_type}:{subject}"
            if self.is_allowlisted(wanted.subject_type, subject):
                if label not in allowlisted:
                    allowlisted.append(label)
                continue
            ledger = self.context.ledgers.get((self.scope, wanted.subject_type))
            if ledger is None:
                rank, duration = 1, wanted.duration
            else:
                if label not in offences:
                    offences[label] = ledger.record(subject, event.epoch)
                rank = offences[label]
                duration = ledger.duration(wanted.duration, rank)
            commands.append(
                new_command(
                    action=wanted.action,
                    subject_type=wanted.subject_type,
                    subject=subject,
                    rule=self.name,
                    reason=finding.reason,
                    issued_epoch=event.epoch,
                    duration=duration,
                    key=self.context.signing_key,
                    dry_run=dry,
                )
            )
        evidence = dict(finding.evidence)
        if event.user is not None and finding.user is not None and event.user != finding.user:
            evidence["logged_user"] = event.user
        if offences:
            evidence["offences"] = offences
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
            dry_run=dry,
        )
        return [*commands, alert]

    def near(self, value: float, threshold: float) -> bool:
        """Whether a key is close enough to ``threshold`` to start noting evidence times."""
        return value >= threshold - self.store.spec.times

    def window_evidence(
        self, window: KeyWindow, threshold: float, store: WindowStore | None = None
    ) -> dict[str, Any]:
        """Evidence common to window rules: window length, threshold, the latest event times."""
        store = store or self.store
        return {
            "window_seconds": store.spec.seconds,
            "window_start": iso_utc(store.window_start(window)),
            "threshold": threshold,
            "sample_times": [iso_utc(t) for t in store.recent_times(window)],
        }


def latest_expiry(decisions: Sequence[Decision], fallback: float) -> float:
    """When the last command among ``decisions`` expires, or ``fallback`` if that is later.

    Rules stay quiet for a subject until then: escalation may have made the
    command longer than the rule's own duration.
    """
    return max([fallback, *(d.expires_epoch for d in decisions if isinstance(d, Command))])


def canonical_subject(subject_type: str, subject: str) -> str | None:
    """The subject as adapters will match it; None when an IP or prefix is not one."""
    if subject_type == "account":
        return subject
    try:
        if subject_type == "prefix":
            return str(ipaddress.ip_network(subject, strict=False))
        return str(ipaddress.ip_address(subject))
    except ValueError:
        return None
