"""Brute force on one account: many failed logins against the same account.

The failures are the attacker's doing and the account is the victim, so this
rule never issues a command against the account: locking it would hand the
attacker a denial of service. It alerts, with how many source IPs took part;
the IPs themselves are handled by the IP rules (password spraying).

Counts ``auth`` events with outcome ``failure`` (never ``auth_echo``) by
account. Default: 20 failures within 10 min raise one alert (MITRE
T1110.001), then the rule stays quiet for that account for an hour.
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
from models.window import WindowSpec, WindowStore


class BruteForceRule(Rule):
    name = "brute_force"
    scope = "account"
    kinds = frozenset({AUTH})

    def __init__(self, settings: BruteForceSettings, context: RuleContext) -> None:
        super().__init__(context)
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
        )

    def process(self, event: Event, key: str) -> Sequence[Decision]:
        if event.kind != AUTH or event.outcome != "failure":
            return NOTHING
        store = self.store
        window = store.observe(key, event.epoch, (1,), (event.client_ip,))
        if window is None or event.epoch < window.quiet_until:
            return NOTHING
        settings = self.settings
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
        return self.decide(event, finding, ())
