"""The detector: routes each event to the rules of its scopes and collects their decisions.

Used the same way by the Faust worker and by ``mailwarden replay``. The
worker runs one detector per scope: the ``account`` rules in the agent on
``mail.events`` and the ``ip`` rules in the agent on ``mail.events.by-ip``;
replay runs one detector with both. An account rule sees only events with a
``user`` and is keyed by it; an IP rule sees only events with a
``client_ip``. Both keys come from fixed fields set by the parsers, never
from free text.

State lives in the rules' window stores. For Faust tables it is exported per
``(scope, key)`` as ``{rule name: rule state}``; :meth:`Detector.keys_touched`
names the keys changed, evicted or expired since the last call, and
:meth:`Detector.export_state` returns None for a key that no longer has state,
which the worker turns into a table deletion.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from models.events import Event
from models.policy import Policy
from models.rules import SCOPES, Decision, Rule, build_rules


class UnknownScope(ValueError):
    """A scope other than ``account`` or ``ip`` was asked for."""


@dataclass(slots=True)
class RuleStats:
    """Per-rule counters: events seen by its store, late events, keys, evictions, firings."""

    events: int = 0
    late: int = 0
    keys: int = 0
    evicted: int = 0
    expired: int = 0
    fired: int = 0


@dataclass(slots=True)
class DetectorStats:
    events: int = 0
    decisions: int = 0
    rules: dict[str, RuleStats] = field(default_factory=dict)


class Detector:
    def __init__(
        self,
        policy: Policy,
        signing_key: bytes,
        scopes: Iterable[str] = frozenset({"account", "ip"}),
    ) -> None:
        wanted = frozenset(scopes)
        unknown = wanted - SCOPES
        if unknown:
            raise UnknownScope(f"unknown scope(s): {', '.join(sorted(unknown))}")
        self.scopes = wanted
        self.rules: list[Rule] = [
            rule for rule in build_rules(policy, signing_key) if rule.scope in wanted
        ]
        self._by_scope: dict[str, list[Rule]] = {
            scope: [rule for rule in self.rules if rule.scope == scope] for scope in SCOPES
        }
        # kind -> (account rules, ip rules) that look at it, so that an event
        # meets only the rules it concerns.
        self._routes: dict[str, tuple[list[Rule], list[Rule]]] = {}
        for rule in self.rules:
            for kind in rule.kinds:
                account, ip = self._routes.setdefault(kind, ([], []))
                (account if rule.scope == "account" else ip).append(rule)
        self._events = 0
        self._decisions = 0

    def process(self, event: Event) -> list[Decision]:
        """Feed one event to every rule of its scopes; return their decisions in rule order."""
        self._events += 1
        decisions: list[Decision] = []
        route = self._routes.get(event.kind)
        if route is None:
            return decisions
        account_rules, ip_rules = route
        user = event.user
        if user is not None:
            for rule in account_rules:
                found = rule.process(event, user)
                if found:
                    decisions.extend(found)
        address = event.client_ip
        if address is not None:
            for rule in ip_rules:
                found = rule.process(event, address)
                if found:
                    decisions.extend(found)
        self._decisions += len(decisions)
        return decisions

    def export_state(self, scope: str, key: str) -> dict[str, Any] | None:
        """The state of ``key`` in ``scope`` as JSON-able data, or None when no rule holds any."""
        state: dict[str, Any] = {}
        for rule in self._rules_of(scope):
            rule_state = rule.export_state(key)
            if rule_state is not None:
                state[rule.name] = rule_state
        return state or None

    def import_state(self, scope: str, key: str, data: dict[str, Any]) -> None:
        """Restore what :meth:`export_state` returned; state of absent rules is skipped."""
        for rule in self._rules_of(scope):
            rule_state = data.get(rule.name)
            if rule_state is not None:
                rule.import_state(key, rule_state)

    def keys_touched(self) -> set[tuple[str, str]]:
        """The ``(scope, key)`` pairs changed, evicted or expired since the last call."""
        touched: set[tuple[str, str]] = set()
        for rule in self.rules:
            store = rule.store
            if store.touched:
                touched.update((rule.scope, key) for key in store.touched)
                store.touched.clear()
        return touched

    def stats(self) -> DetectorStats:
        rules = {
            rule.name: RuleStats(
                events=rule.store.stats.events,
                late=rule.store.stats.late,
                keys=len(rule.store),
                evicted=rule.store.stats.evicted,
                expired=rule.store.stats.expired,
                fired=rule.fired,
            )
            for rule in self.rules
        }
        return DetectorStats(events=self._events, decisions=self._decisions, rules=rules)

    def _rules_of(self, scope: str) -> list[Rule]:
        rules = self._by_scope.get(scope)
        if rules is None:
            raise UnknownScope(f"unknown scope {scope!r}")
        return rules
