"""Brute force on one account: many failed logins against the same account.

The failures are the attacker's doing and the account is the victim, so this
rule never issues a command against the account: locking it would hand the
attacker a denial of service. It alerts, with how many source IPs took part
and the IPs that failed most (``failures_in_run``: an IP's failures since it
last started failing, without a pause of a whole window); the IPs themselves are handled by the IP
rules (password spraying, and the (account, IP) block of
``models/rules/brute_force_pair.py`` when ``block_pair`` is on).

Counts ``auth`` events with outcome ``failure`` (never ``auth_echo``) by
normalized account. Default: 20 failures within 10 min raise one alert
(MITRE T1110.001), then the rule stays quiet for that account for an hour.
Classes of accounts may set other thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence

from models.events import AUTH, Event
from models.policy import BruteForceSettings
from models.rules.base import (
    NOTHING,
    SEVERITY_MEDIUM,
    Decision,
    Finding,
    Rule,
    RuleContext,
)
from models.rules.keys import EventKeys
from models.window import WindowSpec, WindowStore

TOP_SOURCES = 5


class BruteForceRule(Rule):
    name = "brute_force"
    scope = "account"
    kinds = frozenset({AUTH})

    def __init__(self, settings: BruteForceSettings, context: RuleContext) -> None:
        super().__init__(context, settings.dry_run)
        self.settings = settings
        self.store = WindowStore(
            WindowSpec(
                seconds=settings.window,
                buckets=settings.buckets,
                counts=("failures",),
                distincts=("source_ips",),
                distinct_cap=context.distinct_cap,
            ),
            context.max_keys,
            name=self.name,
        )

    def process(self, event: Event, keys: EventKeys) -> Sequence[Decision]:
        key = keys.account
        if event.outcome != "failure" or key is None:
            return NOTHING
        settings = self.context.classes.pick(key, self.settings, self.name)
        if not settings.enabled:
            return NOTHING
        store = self.store
        window = store.observe(key, event.epoch, (1,), (event.client_ip,))
        if window is None or event.epoch < window.quiet_until:
            return NOTHING
        failures = store.total(window, 0)
        if self.near(failures, settings.failures):
            store.note_time(window, event.epoch)
        if failures < settings.failures:
            return NOTHING
        window.quiet_until = event.epoch + settings.quiet
        ips = store.distinct_count(window, 0)
        sample = store.samples(window, 0)
        evidence = self.window_evidence(window, settings.failures)
        evidence["counts"] = {"failures": failures}
        evidence["distinct"] = {"source_ips": {"count": ips, "sample": sample}}
        evidence["top_sources"] = [
            {"ip": ip, "failures_in_run": run}
            for ip, run in store.top_tallies(window, 0, TOP_SOURCES)
        ]
        finding = Finding(
            reason=(
                f"{failures} failed logins within {settings.window} s from {ips} source IPs"
                f" (threshold {settings.failures})"
            ),
            category="authentication",
            outcome="failure",
            severity=SEVERITY_MEDIUM,
            evidence=evidence,
            user=key,
            source_ip=sample[0] if ips == 1 and sample else None,
            related_ips=tuple(sample),
            mitre="T1110.001",
        )
        return self.decide(event, finding, (), dry_run=settings.dry_run)
