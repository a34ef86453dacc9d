"""Credential stuffing: a login that succeeds from an IP, or a prefix, failing on many accounts.

An attacker replaying a leaked list of passwords fails on most accounts and
succeeds on the few whose owners reused the password. The success is the
dangerous part: that account is now in the attacker's hands. So the account
that succeeded is suspended from logging in and must reset its password; the
accounts that only failed are victims and are left alone (the IP itself is
the password-spraying rules' business).

Reads the shared ``auth_by_ip`` and (with ``by_prefix``) ``auth_by_prefix``
statistics: failures (never ``auth_echo``) feed a distinct count of failed
accounts per IP and per prefix. A success from an IP while its count is at
least ``failed_accounts`` (default 10 within 10 min), or from a prefix while
the prefix's count is at least ``prefix_failed_accounts`` (default 30: a pool
of addresses sharing the work), issues ``suspend_login`` and
``require_password_reset`` for the account (24 h, longer for a repeat
offence) and a critical alert (MITRE T1110.004). Only the first success of
an account from that IP or prefix in the window is judged.

Shared addresses (NAT, CGNAT) see many accounts fail too, but far more
logins succeed. Accounts that failed and then logged in successfully from
the same key mistyped: they are not counted among the failed accounts. The
rule acts only while failures make at least
``min_failure_ratio`` (default 0.8) of the key's logins in the window
(successes counted once per account), and where ``[nat]`` finds many
accounts logging in successfully the thresholds rise by ``[nat] factor``
(or, with ``exempt``, the rule only alerts). If the IP is allowlisted (a
webmail front end, say) nothing is issued.
"""

from __future__ import annotations

from collections.abc import Sequence

from models.events import AUTH, Event
from models.policy import CredentialStuffingSettings, NatSettings
from models.rules.base import (
    NOTHING,
    SEVERITY_CRITICAL,
    Action,
    Decision,
    Finding,
    Rule,
    RuleContext,
    StateStore,
)
from models.rules.keys import EventKeys
from models.rules.shared import (
    FAILED_ACCOUNTS,
    FAILURES,
    SUCCEEDED_ACCOUNTS,
    NetworkAuthFeed,
    SharedNetworkFeed,
)


class CredentialStuffingRule(Rule):
    name = "credential_stuffing"
    scope = "ip"
    kinds = frozenset({AUTH})

    def __init__(
        self,
        settings: CredentialStuffingSettings,
        context: RuleContext,
        by_ip: NetworkAuthFeed,
        by_prefix: NetworkAuthFeed | None,
        nat: SharedNetworkFeed | None,
        nat_settings: NatSettings,
    ) -> None:
        super().__init__(context, settings.dry_run)
        self.settings = settings
        self.by_ip = by_ip
        self.by_prefix = by_prefix
        self.store = by_ip.store
        self.nat = nat
        self.nat_settings = nat_settings

    @property
    def stores(self) -> tuple[StateStore, ...]:
        return ()

    def process(self, event: Event, keys: EventKeys) -> Sequence[Decision]:
        account = keys.account
        if event.outcome != "success" or account is None:
            return NOTHING
        settings = self.settings
        feeds = [(self.by_ip, settings.failed_accounts, self.nat_settings.users)]
        if self.by_prefix is not None:
            feeds.append(
                (self.by_prefix, settings.prefix_failed_accounts, self.nat_settings.prefix_users)
            )
        for feed, threshold, nat_users in feeds:
            decisions = self._judge(event, keys, account, feed, threshold, nat_users)
            if decisions:
                return decisions
        return NOTHING

    def _judge(
        self,
        event: Event,
        keys: EventKeys,
        account: str,
        feed: NetworkAuthFeed,
        threshold: int,
        nat_users: int,
    ) -> Sequence[Decision]:
        window, key = feed.window, feed.key
        if window is None or key is None or not feed.first_success:
            return NOTHING
        store = feed.store
        if store.distinct_count(window, FAILED_ACCOUNTS) < threshold:
            return NOTHING
        # Accounts that failed and then logged in from here mistyped; the
        # account of this login is among them if it failed first.
        guessed = store.values_without(window, FAILED_ACCOUNTS, SUCCEEDED_ACCOUNTS)
        failed = len(guessed)
        if failed < threshold:
            return NOTHING
        users = self.nat.users(key, event.epoch) if self.nat is not None else 0
        shared = users >= nat_users
        exempt = shared and self.nat_settings.exempt
        if shared and not exempt:
            threshold = min(round(threshold * self.nat_settings.factor), self.context.distinct_cap)
            if failed < threshold:
                return NOTHING
        failures = store.total(window, FAILURES)
        successes = store.distinct_count(window, SUCCEEDED_ACCOUNTS)
        settings = self.settings
        if failures < settings.min_failure_ratio * (failures + successes):
            return NOTHING
        store.note_time(window, event.epoch)
        evidence = self.window_evidence(window, threshold, store)
        evidence["trigger"] = feed.network
        evidence["counts"] = {"failures": failures, "successes": successes}
        sample = guessed[:10]
        evidence["distinct"] = {"failed_accounts": {"count": failed, "sample": sample}}
        evidence["protocol"] = event.protocol
        if feed.network == "prefix":
            evidence["prefix"] = key
        if shared:
            evidence["shared_network"] = {"accounts_logged_in": users, "exempt": exempt}
        where = "an IP that" if feed.network == "ip" else f"prefix {key}, which"
        finding = Finding(
            reason=(
                f"login succeeded from {where} failed on {failed} accounts within"
                f" {settings.window} s (threshold {threshold})"
            ),
            category="authentication",
            outcome="success",
            severity=SEVERITY_CRITICAL,
            evidence=evidence,
            user=account,
            source_ip=keys.ip,
            related_users=tuple(sample),
            mitre="T1110.004",
        )
        actions: tuple[Action, ...] = ()
        if not exempt:
            actions = (
                Action("suspend_login", "account", account, settings.duration),
                Action("require_password_reset", "account", account, settings.duration),
            )
        return self.decide(event, finding, actions, source_ip=keys.ip)
