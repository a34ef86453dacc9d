"""Shared statistics: stores several rules read, filled once per event by a feed.

weakforced keeps one statistics database per key type with a declared field
map, updated once per login and read by every policy. The feeds here do the
same for the IP scope:

``auth_by_ip`` / ``auth_by_prefix`` (:class:`NetworkAuthFeed`)
    per client IP, and per prefix, over a sliding window: ``failures`` and
    ``successes`` (counts), ``failed_accounts`` (distinct, with a tally per
    account) and ``succeeded_accounts`` (distinct). Failures make a key;
    successes are counted only for keys that already failed, so that the
    many ordinary logins cost no state. Password spraying, prefix spraying,
    credential stuffing and the (account, IP) brute-force block read them.
``logins_by_network`` (:class:`SharedNetworkFeed`)
    per client IP, and per prefix, the distinct accounts that logged in
    *successfully* over ``[nat] window``: an address where many people log in
    is an office, a campus or a carrier-grade NAT, whose handful of typos
    must not look like spraying.

A feed is fed by the detector before the rules of the event's scope run,
and exposes what this event did (``window``, ``first_success``) to them.
Rules with equal window shapes share one store; a rule configured with
another window gets its own (named after the shape), fed the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal

from models.events import AUTH, Event
from models.rules.base import Scope, StateStore
from models.rules.keys import EventKeys
from models.window import KeyWindow, WindowSpec, WindowStore

Network = Literal["ip", "prefix"]

# Fields of the auth_by_* stores.
FAILURES = 0
SUCCESSES = 1
FAILED_ACCOUNTS = 0
SUCCEEDED_ACCOUNTS = 1


class Feed(ABC):
    """Fills shared stores from the events of one scope, once per event."""

    scope: ClassVar[Scope]
    kinds: ClassVar[frozenset[str]]

    @property
    @abstractmethod
    def stores(self) -> tuple[StateStore, ...]:
        """The stores this feed fills (exported with the scope's state)."""

    @abstractmethod
    def observe(self, event: Event, keys: EventKeys) -> None:
        """Add ``event`` to the stores."""


class NetworkAuthFeed(Feed):
    """Logins per client IP or per prefix, for the spraying and stuffing rules."""

    scope = "ip"
    kinds = frozenset({AUTH})

    def __init__(
        self, network: Network, seconds: int, buckets: int, max_keys: int, distinct_cap: int
    ) -> None:
        self.network = network
        self.store = WindowStore(
            WindowSpec(
                seconds=seconds,
                buckets=buckets,
                counts=("failures", "successes"),
                distincts=("failed_accounts", "succeeded_accounts"),
                distinct_cap=distinct_cap,
            ),
            max_keys,
            name=f"auth_by_{network}:{seconds}/{buckets}",
        )
        # What the event being processed did: the key's window (None when the
        # event did not reach the store) and whether it was the first success
        # of its account in the window.
        self.window: KeyWindow | None = None
        self.key: str | None = None
        self.first_success = False

    @property
    def stores(self) -> tuple[StateStore, ...]:
        return (self.store,)

    def key_of(self, keys: EventKeys) -> str | None:
        return keys.ip if self.network == "ip" else keys.prefix

    def observe(self, event: Event, keys: EventKeys) -> None:
        self.window = None
        self.first_success = False
        key = self.key = self.key_of(keys)
        if key is None:
            return
        store = self.store
        account = keys.account
        if event.outcome == "failure":
            self.window = store.observe(key, event.epoch, (1, 0), (account, None))
        elif event.outcome == "success":
            existing = store.get(key)
            if existing is None:
                return
            if account is not None:
                self.first_success = not store.has_value(
                    existing, SUCCEEDED_ACCOUNTS, account, event.epoch
                )
            self.window = store.observe(key, event.epoch, (0, 1), (None, account), create=False)


class SharedNetworkFeed(Feed):
    """Distinct accounts logging in successfully per IP and per prefix (NAT awareness)."""

    scope = "ip"
    kinds = frozenset({AUTH})

    def __init__(
        self, seconds: int, buckets: int, cap: int, max_keys: int, by_prefix: bool
    ) -> None:
        self.by_prefix = by_prefix
        self.store = WindowStore(
            WindowSpec(
                seconds=seconds, buckets=buckets, distincts=("accounts",), distinct_cap=cap, times=0
            ),
            max_keys,
            name="logins_by_network",
        )

    @property
    def stores(self) -> tuple[StateStore, ...]:
        return (self.store,)

    def observe(self, event: Event, keys: EventKeys) -> None:
        account = keys.account
        if event.outcome != "success" or account is None or keys.ip is None:
            return
        store = self.store
        network_keys = (keys.ip, keys.prefix) if self.by_prefix else (keys.ip,)
        for key in network_keys:
            # Only distinct counts are read: a login already counted in this bucket adds nothing.
            if key is not None and not store.holds_fresh(key, event.epoch, 0, account):
                store.observe(key, event.epoch, (), (account,))

    def users(self, key: str | None, epoch: float) -> int:
        """Distinct accounts that logged in successfully from ``key`` in the window at ``epoch``."""
        if key is None:
            return 0
        window = self.store.get(key)
        return 0 if window is None else self.store.live_distinct_count(window, 0, epoch)
