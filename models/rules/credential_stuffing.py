"""Credential stuffing: a login that succeeds from an IP that is failing on many accounts.

An attacker replaying a leaked list of passwords fails on most accounts and
succeeds on the few whose owners reused the password. The success is the
dangerous part: that account is now in the attacker's hands. So the account
that succeeded is suspended from logging in and must reset its password; the
accounts that only failed are victims and are left alone (the IP itself is
the password-spraying rule's business).

Per client IP, over ``auth`` events: failures (never ``auth_echo``) feed a
distinct count of failed accounts; a success from the same IP while that
count is at least ``failed_accounts`` (default 10 within 10 min) issues
``suspend_login`` and ``require_password_reset`` for the account (24 h) and
a critical alert (MITRE T1110.004). Each account is acted on once per window
and IP. Successes are counted only for IPs already failing.

Shared addresses (NAT, CGNAT) see many accounts fail too, but far more
logins succeed; so the rule acts only while failures make at least
``min_failure_ratio`` (default 0.8) of the IP's logins in the window. If the
IP is allowlisted (a webmail front end, say) nothing is issued.
"""

from __future__ import annotations

from collections.abc import Sequence

from models.events import AUTH, Event
from models.policy import CredentialStuffingSettings
from models.rules.base import (
    NOTHING,
    SEVERITY_CRITICAL,
    Action,
    Decision,
    Finding,
    Rule,
    RuleContext,
)
from models.window import WindowSpec, WindowStore

_FAILED = 0
_SUCCEEDED = 1


class CredentialStuffingRule(Rule):
    name = "credential_stuffing"
    scope = "ip"
    kinds = frozenset({AUTH})

    def __init__(self, settings: CredentialStuffingSettings, context: RuleContext) -> None:
        super().__init__(context, settings.dry_run)
        self.settings = settings
        self.store = WindowStore(
            WindowSpec(
                seconds=settings.window,
                buckets=settings.buckets,
                counts=("failures", "successes"),
                distincts=("failed_accounts", "succeeded_accounts"),
                distinct_cap=context.distinct_cap,
            ),
            context.max_keys,
        )

    def process(self, event: Event, key: str) -> Sequence[Decision]:
        if event.kind != AUTH:
            return NOTHING
        store = self.store
        settings = self.settings
        if event.outcome == "failure":
            window = store.observe(key, event.epoch, (1, 0), (event.user, None))
            if window is not None and self.near(
                store.distinct_count(window, _FAILED), settings.failed_accounts
            ):
                store.note_time(window, event.epoch)
            return NOTHING
        account = event.user
        if event.outcome != "success" or account is None:
            return NOTHING
        existing = store.get(key)
        if existing is None or store.has_value(existing, _SUCCEEDED, account):
            return NOTHING
        window = store.observe(key, event.epoch, (0, 1), (None, account))
        if window is None:
            return NOTHING
        failed = store.distinct_count(window, _FAILED)
        failures = store.total(window, 0)
        successes = store.total(window, 1)
        if failed < settings.failed_accounts:
            return NOTHING
        if failures < settings.min_failure_ratio * (failures + successes):
            return NOTHING
        store.note_time(window, event.epoch)
        evidence = self.window_evidence(window, settings.failed_accounts)
        evidence["counts"] = {"failures": failures, "successes": successes}
        sample = store.samples(window, _FAILED)
        evidence["distinct"] = {"failed_accounts": {"count": failed, "sample": sample}}
        evidence["protocol"] = event.protocol
        finding = Finding(
            reason=(
                f"login succeeded from an IP that failed on {failed} accounts within"
                f" {settings.window} s (threshold {settings.failed_accounts})"
            ),
            category="authentication",
            outcome="success",
            severity=SEVERITY_CRITICAL,
            evidence=evidence,
            user=account,
            source_ip=key,
            related_users=tuple(sample),
            mitre="T1110.004",
        )
        actions = (
            Action("suspend_login", "account", account, settings.duration),
            Action("require_password_reset", "account", account, settings.duration),
        )
        return self.decide(event, finding, actions, source_ip=key)
