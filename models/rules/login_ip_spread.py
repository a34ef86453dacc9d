"""Login IP spread: one account logging in successfully from many IPs or networks.

A stolen password tends to be used from many places at once: botnets, proxy
pools, several buyers of the same credential. An owner with a phone and a
laptop logs in from a handful (one provider caps authenticated SMTP at 5
distinct IPs per 30 min). Mobile networks and VPNs also move users between
addresses, mostly inside one network, so distinct prefixes (``[network]``)
are counted beside distinct IPs.

Per normalized account, over successful ``auth`` events: the distinct client
IPs and their distinct prefixes. Default: 10 distinct IPs, or 8 distinct
prefixes, within 30 min raise one alert (MITRE T1078), then the rule stays
quiet for the account for an hour. ``action = "suspend_login"`` also
suspends the account's logins for ``duration`` (longer for a repeat
offender); the default only alerts. Classes of accounts may set other
thresholds and actions.
"""

from __future__ import annotations

from collections.abc import Sequence

from models.events import AUTH, Event
from models.policy import LoginIpSpreadSettings
from models.rules.base import (
    NOTHING,
    SEVERITY_MEDIUM,
    Action,
    Decision,
    Finding,
    Rule,
    RuleContext,
    latest_expiry,
)
from models.rules.keys import EventKeys
from models.window import WindowSpec, WindowStore

_IPS = 0
_PREFIXES = 1


class LoginIpSpreadRule(Rule):
    name = "login_ip_spread"
    scope = "account"
    kinds = frozenset({AUTH})

    def __init__(self, settings: LoginIpSpreadSettings, context: RuleContext) -> None:
        super().__init__(context, settings.dry_run)
        self.settings = settings
        self.store = WindowStore(
            WindowSpec(
                seconds=settings.window,
                buckets=settings.buckets,
                counts=("logins",),
                distincts=("source_ips", "source_prefixes"),
                distinct_cap=context.distinct_cap,
            ),
            context.max_keys,
            name=self.name,
        )

    def process(self, event: Event, keys: EventKeys) -> Sequence[Decision]:
        key, ip = keys.account, keys.ip
        if event.outcome != "success" or key is None or ip is None:
            return NOTHING
        settings = self.context.classes.pick(key, self.settings, self.name)
        if not settings.enabled:
            return NOTHING
        store = self.store
        window = store.observe(key, event.epoch, (1,), (ip, keys.prefix))
        if window is None or event.epoch < window.quiet_until:
            return NOTHING
        ips = store.distinct_count(window, _IPS)
        prefixes = store.distinct_count(window, _PREFIXES)
        if self.near(ips, settings.ips) or self.near(prefixes, settings.prefixes):
            store.note_time(window, event.epoch)
        if ips >= settings.ips:
            threshold, what = settings.ips, f"{ips} distinct IPs"
        elif prefixes >= settings.prefixes:
            threshold, what = settings.prefixes, f"{prefixes} distinct networks"
        else:
            return NOTHING
        sample = store.samples(window, _IPS)
        evidence = self.window_evidence(window, threshold)
        evidence["trigger"] = "distinct_ips" if threshold == settings.ips else "distinct_prefixes"
        evidence["counts"] = {"logins": store.total(window, 0)}
        evidence["distinct"] = {
            "source_ips": {"count": ips, "sample": sample},
            "source_prefixes": {"count": prefixes, "sample": store.samples(window, _PREFIXES)},
        }
        finding = Finding(
            reason=f"successful logins from {what} within {settings.window} s"
            f" (threshold {threshold})",
            category="authentication",
            outcome="success",
            severity=SEVERITY_MEDIUM,
            evidence=evidence,
            user=key,
            related_ips=tuple(sample),
            mitre="T1078",
        )
        actions: tuple[Action, ...] = ()
        if settings.action == "suspend_login":
            actions = (Action("suspend_login", "account", key, settings.duration),)
        decisions = self.decide(event, finding, actions, dry_run=settings.dry_run)
        window.quiet_until = latest_expiry(decisions, event.epoch + settings.quiet)
        return decisions
