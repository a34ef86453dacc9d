"""The detector: routes each event to the feeds and rules of its scopes and collects decisions.

Used the same way by the Faust worker and by ``mailwarden replay``. The
worker runs one detector per scope: the ``account`` rules in the agent on
``mail.events`` and the ``ip`` rules in the agent on ``mail.events.by-ip``;
replay runs one detector with both. An account rule sees only events with a
``user`` and is keyed by the normalized account name (stripped, case-folded:
``models/rules/keys.py``); an IP rule sees only events with a ``client_ip``
and is keyed by it, or by its prefix. Both keys come from fixed fields set
by the parsers, never from free text.

For each event, the feeds of a scope first fill the stores its rules share
(``models/rules/shared.py``), then its rules run in a fixed order.

State lives in stores, each with a name unique in its scope: the rules' own,
the shared ones, and the offence ledgers of escalation. For Faust tables it
is exported per ``(scope, key)`` as ``{store name: key state}``; a key may be
an account, an IP or a prefix (IP scope). :meth:`Detector.keys_touched`
names the keys changed, evicted or expired since the last call, and
:meth:`Detector.export_state` returns None for a key that no longer has
state, which the worker turns into a table deletion. :meth:`Detector.state_keys`
names the keys an event may read, so that a worker loads them all before
processing it.

GeoIP rules need a :class:`models.geo.GeoLookup` (``geo=``); without one they
are left out and :attr:`Detector.notices` says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from models.events import Event
from models.geo import GeoLookup
from models.policy import Policy
from models.rules import SCOPES, Decision, Feed, Rule, build_rule_set
from models.rules.base import StateStore
from models.rules.keys import EventKeys, account_key
from models.rules.shared import NetworkAuthFeed, SharedNetworkFeed


class UnknownScope(ValueError):
    """A scope other than ``account`` or ``ip`` was asked for."""


@dataclass(slots=True)
class RuleStats:
    """Per-rule counters of its main store (shared stores count for each rule reading them)."""

    events: int = 0
    late: int = 0
    keys: int = 0
    evicted: int = 0
    expired: int = 0
    fired: int = 0


@dataclass(slots=True)
class StoreCounters:
    """Per-store counters: events, late events, keys held, evictions, expiries."""

    events: int = 0
    late: int = 0
    keys: int = 0
    evicted: int = 0
    expired: int = 0


@dataclass(slots=True)
class DetectorStats:
    events: int = 0
    decisions: int = 0
    rules: dict[str, RuleStats] = field(default_factory=dict)
    stores: dict[str, StoreCounters] = field(default_factory=dict)


@dataclass(slots=True)
class _Route:
    """The feeds and rules one event kind meets, per scope."""

    account_feeds: list[Feed] = field(default_factory=list)
    account_rules: list[Rule] = field(default_factory=list)
    ip_feeds: list[Feed] = field(default_factory=list)
    ip_rules: list[Rule] = field(default_factory=list)


class Detector:
    def __init__(
        self,
        policy: Policy,
        signing_key: bytes,
        scopes: Iterable[str] = frozenset({"account", "ip"}),
        geo: GeoLookup | None = None,
    ) -> None:
        wanted = frozenset(scopes)
        unknown = wanted - SCOPES
        if unknown:
            raise UnknownScope(f"unknown scope(s): {', '.join(sorted(unknown))}")
        self.scopes = wanted
        rule_set = build_rule_set(policy, signing_key, geo)
        self.notices: list[str] = list(rule_set.notices)
        self.rules: list[Rule] = [rule for rule in rule_set.rules if rule.scope in wanted]
        feeds = [feed for feed in rule_set.feeds if feed.scope in wanted]
        self._networks = rule_set.context.networks
        self._stores: dict[str, list[StateStore]] = {scope: [] for scope in SCOPES}
        for feed in feeds:
            self._add_stores(feed.scope, feed.stores)
        for rule in self.rules:
            self._add_stores(rule.scope, rule.stores)
        for (scope, _), ledger in rule_set.context.ledgers.items():
            if scope in wanted:
                self._add_stores(scope, (ledger,))
        self._reads_prefixes = any(
            (isinstance(feed, NetworkAuthFeed) and feed.network == "prefix")
            or (isinstance(feed, SharedNetworkFeed) and feed.by_prefix)
            for feed in feeds
        )
        self._ip_rules_act_on_accounts = any(
            rule.scope == "ip" and rule.name == "credential_stuffing" for rule in self.rules
        )
        self._routes: dict[str, _Route] = {}
        for feed in feeds:
            for kind in feed.kinds:
                route = self._routes.setdefault(kind, _Route())
                (route.account_feeds if feed.scope == "account" else route.ip_feeds).append(feed)
        for rule in self.rules:
            for kind in rule.kinds:
                route = self._routes.setdefault(kind, _Route())
                (route.account_rules if rule.scope == "account" else route.ip_rules).append(rule)
        self._events = 0
        self._decisions = 0

    def _add_stores(self, scope: str, stores: Iterable[StateStore]) -> None:
        held = self._stores[scope]
        for store in stores:
            if any(store is known for known in held):
                continue
            if any(store.name == known.name for known in held):
                raise ValueError(f"two stores named {store.name!r} in scope {scope}")
            held.append(store)

    def process(self, event: Event) -> list[Decision]:
        """Feed one event to every feed and rule of its scopes; return decisions in rule order."""
        self._events += 1
        decisions: list[Decision] = []
        route = self._routes.get(event.kind)
        if route is None:
            return decisions
        user = event.user
        keys = EventKeys(
            account_key(user) if user is not None else None, event.client_ip, self._networks
        )
        if keys.account is not None and route.account_rules:
            for feed in route.account_feeds:
                feed.observe(event, keys)
            for rule in route.account_rules:
                found = rule.process(event, keys)
                if found:
                    decisions.extend(found)
        if keys.ip is not None and route.ip_rules:
            for feed in route.ip_feeds:
                feed.observe(event, keys)
            for rule in route.ip_rules:
                found = rule.process(event, keys)
                if found:
                    decisions.extend(found)
        self._decisions += len(decisions)
        return decisions

    def state_key(self, scope: str, subject: str) -> str:
        """The key state of ``subject`` is kept under in ``scope`` (accounts are normalized)."""
        self._stores_of(scope)
        if scope == "account":
            return account_key(subject) or subject
        return subject

    def state_keys(self, event: Event) -> list[tuple[str, str]]:
        """The ``(scope, key)`` pairs whose state processing ``event`` may read."""
        found: list[tuple[str, str]] = []
        account = account_key(event.user) if event.user is not None else None
        if "account" in self.scopes and account is not None:
            found.append(("account", account))
        ip = event.client_ip
        if "ip" in self.scopes and ip is not None:
            found.append(("ip", ip))
            if self._reads_prefixes:
                prefix = self._networks.prefix_of(ip)
                if prefix is not None:
                    found.append(("ip", prefix))
            if self._ip_rules_act_on_accounts and account is not None:
                found.append(("ip", account))
        return found

    def export_state(self, scope: str, key: str) -> dict[str, Any] | None:
        """The state of ``key`` in ``scope`` as JSON-able data, or None when no store holds any."""
        key = self.state_key(scope, key)
        state: dict[str, Any] = {}
        for store in self._stores_of(scope):
            store_state = store.export_key(key)
            if store_state is not None:
                state[store.name] = store_state
        return state or None

    def import_state(self, scope: str, key: str, data: dict[str, Any]) -> None:
        """Restore what :meth:`export_state` returned; state of absent stores is skipped."""
        key = self.state_key(scope, key)
        for store in self._stores_of(scope):
            store_state = data.get(store.name)
            if store_state is not None:
                store.import_key(key, store_state)

    def keys_touched(self) -> set[tuple[str, str]]:
        """The ``(scope, key)`` pairs changed, evicted or expired since the last call."""
        touched: set[tuple[str, str]] = set()
        for scope, stores in self._stores.items():
            for store in stores:
                if store.touched:
                    touched.update((scope, key) for key in store.touched)
                    store.touched.clear()
        return touched

    def stats(self) -> DetectorStats:
        rules = {}
        for rule in self.rules:
            store = rule.stores[0] if rule.stores else rule.store
            rules[rule.name] = RuleStats(
                events=store.stats.events,
                late=store.stats.late,
                keys=len(store),
                evicted=store.stats.evicted,
                expired=store.stats.expired,
                fired=rule.fired,
            )
        stores = {
            f"{scope}:{store.name}": StoreCounters(
                events=store.stats.events,
                late=store.stats.late,
                keys=len(store),
                evicted=store.stats.evicted,
                expired=store.stats.expired,
            )
            for scope, held in sorted(self._stores.items())
            for store in held
        }
        return DetectorStats(
            events=self._events, decisions=self._decisions, rules=rules, stores=stores
        )

    def _stores_of(self, scope: str) -> list[StateStore]:
        if scope not in self.scopes:
            if scope in SCOPES:
                return []
            raise UnknownScope(f"unknown scope {scope!r}")
        return self._stores[scope]
