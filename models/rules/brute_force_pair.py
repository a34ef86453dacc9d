"""Brute force from one IP on one account: block that IP (optional, ``block_pair``).

Brute force (``models/rules/brute_force.py``) only alerts: the account is the
victim. When ``[rules.brute_force] block_pair = true``, an IP that keeps
failing on the same account is blocked as well: ``block_ip`` of the
attacking IP, never anything against the account. The subject is the IP
alone; the account it attacked is named in the reason and the evidence (the
command contract has no (account, IP) subject, and an IP guessing one
account's password is an attacker for every account).

Reads the shared ``auth_by_ip`` statistics: the tally of the account among
the IP's failed accounts counts the IP's failures on it since it last
started failing, without a pause of a whole window (default 10 min).
Default: ``pair_failures = 10`` block the IP for ``pair_duration`` (one
hour), longer for a repeat offender. Quiet while the IP's block runs,
whichever rule issued it.

A client with a stale saved password fails the same way from its owner's
address, which is why this is off by default; and an address where many
accounts log in successfully (``[nat]``, an office or CGNAT) is never
blocked for it, only reported, once per run that crosses the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

from models.events import AUTH, Event
from models.policy import BruteForceSettings, NatSettings
from models.rules.base import (
    NOTHING,
    SEVERITY_MEDIUM,
    Action,
    Decision,
    Finding,
    Rule,
    RuleContext,
    StateStore,
    latest_expiry,
)
from models.rules.keys import EventKeys
from models.rules.shared import FAILED_ACCOUNTS, NetworkAuthFeed, SharedNetworkFeed


class BruteForcePairRule(Rule):
    name = "brute_force_pair"
    scope = "ip"
    kinds = frozenset({AUTH})

    def __init__(
        self,
        settings: BruteForceSettings,
        context: RuleContext,
        auth: NetworkAuthFeed,
        nat: SharedNetworkFeed | None,
        nat_settings: NatSettings,
    ) -> None:
        super().__init__(context, settings.dry_run)
        self.settings = settings
        self.auth = auth
        self.store = auth.store
        self.nat = nat
        self.nat_settings = nat_settings

    @property
    def stores(self) -> tuple[StateStore, ...]:
        return ()

    def process(self, event: Event, keys: EventKeys) -> Sequence[Decision]:
        account, ip = keys.account, keys.ip
        window = self.auth.window
        if event.outcome != "failure" or account is None or ip is None or window is None:
            return NOTHING
        if event.epoch < window.quiet_until:
            return NOTHING
        settings = self.settings
        store = self.store
        run = store.tally(window, FAILED_ACCOUNTS, account)
        if self.near(run, settings.pair_failures):
            store.note_time(window, event.epoch)
        if run < settings.pair_failures:
            return NOTHING
        users = self.nat.users(ip, event.epoch) if self.nat is not None else 0
        shared = users >= self.nat_settings.users
        if shared and run > settings.pair_failures:
            return NOTHING  # reported when the run crossed the threshold
        evidence = self.window_evidence(window, settings.pair_failures)
        evidence["account"] = account
        evidence["counts"] = {"failures_on_account": run}
        actions: tuple[Action, ...] = (Action("block_ip", "ip", ip, settings.pair_duration),)
        if shared:
            evidence["shared_network"] = {"accounts_logged_in": users}
            actions = ()
        finding = Finding(
            reason=(
                f"{run} failed logins on {account} from this IP without a pause of"
                f" {settings.window} s (threshold {settings.pair_failures})"
            ),
            category="authentication",
            outcome="failure",
            severity=SEVERITY_MEDIUM,
            evidence=evidence,
            source_ip=ip,
            related_users=(account,),
            mitre="T1110.001",
        )
        decisions = self.decide(event, finding, actions)
        if actions:
            # The IP's window is shared with password spraying: one block silences both.
            window.quiet_until = latest_expiry(decisions, event.epoch + settings.pair_duration)
        return decisions
