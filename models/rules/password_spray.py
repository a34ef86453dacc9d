"""Password spraying: one IP failing logins against many different accounts.

A sprayer tries one or two common passwords on many accounts, staying under
any per-account limit; seen from the attacking IP it is many distinct
accounts failing. The IP is the attacker, so the IP is blocked; the accounts
are victims and are left alone.

Counts ``auth`` events with outcome ``failure`` (never ``auth_echo``, which
repeats an attempt already counted) by client IP. A failure whose account is
unknown (``user`` null, as in Postfix "Connection lost to authentication
server" with ``sasl_username=(unavailable)``) counts as a failure but not as
a distinct account. Defaults, within 10 min: failures on 10 distinct
accounts, or 100 failures whatever the accounts, block the IP for one hour
(MITRE T1110.003). Once per episode: quiet while the block is running.

Shared addresses (office or campus NAT, CGNAT) also see many accounts fail,
drowned in many more successes; an attacker's logins mostly fail. So the IP
is blocked only if failures make at least ``min_failure_ratio`` (default
0.5) of its logins in the window. Successes are counted only for IPs already
failing, so ordinary logins cost no state. The price: an attacker holding
one working password could dilute its failures with successful logins;
credential stuffing and login-spread alerts watch that side.
"""

from __future__ import annotations

from collections.abc import Sequence

from models.events import AUTH, Event
from models.policy import PasswordSpraySettings
from models.rules.base import (
    NOTHING,
    SEVERITY_HIGH,
    Action,
    Decision,
    Finding,
    Rule,
    RuleContext,
)
from models.window import WindowSpec, WindowStore


class PasswordSprayRule(Rule):
    name = "password_spray"
    scope = "ip"
    kinds = frozenset({AUTH})

    def __init__(self, settings: PasswordSpraySettings, context: RuleContext) -> None:
        super().__init__(context, settings.dry_run)
        self.settings = settings
        self.store = WindowStore(
            WindowSpec(
                seconds=settings.window,
                buckets=settings.buckets,
                counts=("failures", "successes"),
                distincts=("accounts",),
                distinct_cap=context.distinct_cap,
            ),
            context.max_keys,
        )

    def process(self, event: Event, key: str) -> Sequence[Decision]:
        if event.kind != AUTH:
            return NOTHING
        store = self.store
        if event.outcome == "success":
            # Successes only matter for IPs that are failing: no key is made for them.
            store.observe(key, event.epoch, (0, 1), (None,), create=False)
            return NOTHING
        if event.outcome != "failure":
            return NOTHING
        window = store.observe(key, event.epoch, (1, 0), (event.user,))
        if window is None or event.epoch < window.quiet_until:
            return NOTHING
        settings = self.settings
        accounts = store.distinct_count(window, 0)
        failures = store.total(window, 0)
        successes = store.total(window, 1)
        if self.near(accounts, settings.accounts) or self.near(failures, settings.failures):
            store.note_time(window, event.epoch)
        if accounts >= settings.accounts:
            trigger, reason = (
                "distinct_accounts",
                f"failed logins on {accounts} distinct accounts within {settings.window} s"
                f" (threshold {settings.accounts})",
            )
        elif failures >= settings.failures:
            trigger, reason = (
                "failures",
                f"{failures} failed logins within {settings.window} s"
                f" (threshold {settings.failures})",
            )
        else:
            return NOTHING
        if failures < settings.min_failure_ratio * (failures + successes):
            return NOTHING
        window.quiet_until = event.epoch + settings.duration
        sample = store.samples(window, 0)
        evidence = self.window_evidence(
            window, settings.accounts if trigger == "distinct_accounts" else settings.failures
        )
        evidence["trigger"] = trigger
        evidence["counts"] = {"failures": failures, "successes": successes}
        evidence["distinct"] = {"accounts": {"count": accounts, "sample": sample}}
        finding = Finding(
            reason=reason,
            category="authentication",
            outcome="failure",
            severity=SEVERITY_HIGH,
            evidence=evidence,
            source_ip=key,
            related_users=tuple(sample),
            mitre="T1110.003",
        )
        return self.decide(event, finding, (Action("block_ip", "ip", key, settings.duration),))
