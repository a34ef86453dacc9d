"""Login IP spread: one account logging in successfully from many IPs in a short time.

A stolen password tends to be used from many places at once: botnets, proxy
pools, several buyers of the same credential. An owner with a phone and a
laptop logs in from a handful. Mobile networks and VPNs also move users
between addresses, so this rule alerts only; it never suspends.

Per account, over successful ``auth`` events: the distinct client IPs.
Default: 10 distinct IPs within 30 min raise one alert (MITRE T1078), then
the rule stays quiet for the account for an hour.
"""

from __future__ import annotations

from collections.abc import Sequence

from models.events import AUTH, Event
from models.policy import LoginIpSpreadSettings
from models.rules.base import (
    NOTHING,
    SEVERITY_MEDIUM,
    Decision,
    Finding,
    Rule,
    RuleContext,
)
from models.window import WindowSpec, WindowStore


class LoginIpSpreadRule(Rule):
    name = "login_ip_spread"
    scope = "account"
    kinds = frozenset({AUTH})

    def __init__(self, settings: LoginIpSpreadSettings, context: RuleContext) -> None:
        super().__init__(context)
        self.settings = settings
        self.store = WindowStore(
            WindowSpec(
                seconds=settings.window,
                buckets=settings.buckets,
                counts=("logins",),
                distincts=("source_ips",),
                distinct_cap=context.distinct_cap,
            ),
            context.max_keys,
        )

    def process(self, event: Event, key: str) -> Sequence[Decision]:
        if event.kind != AUTH or event.outcome != "success" or event.client_ip is None:
            return NOTHING
        store = self.store
        window = store.observe(key, event.epoch, (1,), (event.client_ip,))
        if window is None or event.epoch < window.quiet_until:
            return NOTHING
        settings = self.settings
        ips = store.distinct_count(window, 0)
        if self.near(ips, settings.ips):
            store.note_time(window, event.epoch)
        if ips < settings.ips:
            return NOTHING
        window.quiet_until = event.epoch + settings.quiet
        sample = store.samples(window, 0)
        evidence = self.window_evidence(window, settings.ips)
        evidence["counts"] = {"logins": store.total(window, 0)}
        evidence["distinct"] = {"source_ips": {"count": ips, "sample": sample}}
        finding = Finding(
            reason=(
                f"successful logins from {ips} distinct IPs within {settings.window} s"
                f" (threshold {settings.ips})"
            ),
            category="authentication",
            outcome="success",
            severity=SEVERITY_MEDIUM,
            evidence=evidence,
            user=key,
            related_ips=tuple(sample),
            mitre="T1078",
        )
        return self.decide(event, finding, ())
