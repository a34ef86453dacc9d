"""Bounce storm: most of an account's outgoing mail bounces.

Spam sent through a hijacked account goes to harvested or invented
addresses, so a large share of it bounces; a legitimate sender's bounce
ratio stays low. The account misbehaves, so its SMTP service is suspended.

Over ``delivery`` events that carry the submitting ``user`` (correlated by
the parser from the queue id), with a final status: ``sent``, ``bounced`` or
``expired`` (``deferred`` is not final and is ignored). Default: within one
hour, at least 20 final deliveries of which at least half bounced or expired
suspend SMTP for one hour (longer for a repeat offender). Once per episode:
quiet while the suspension runs. Classes of accounts may set other
thresholds; service senders (``[allowlist] senders``) are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence

from models.events import DELIVERY, Event
from models.policy import BounceStormSettings
from models.rules.base import (
    NOTHING,
    SEVERITY_HIGH,
    Action,
    Decision,
    Finding,
    Rule,
    RuleContext,
    latest_expiry,
)
from models.rules.keys import EventKeys
from models.window import WindowSpec, WindowStore

_FAILED = frozenset({"bounced", "expired"})
_FINAL = frozenset({"sent", "bounced", "expired"})


class BounceStormRule(Rule):
    name = "bounce_storm"
    scope = "account"
    kinds = frozenset({DELIVERY})

    def __init__(self, settings: BounceStormSettings, context: RuleContext) -> None:
        super().__init__(context, settings.dry_run)
        self.settings = settings
        self.store = WindowStore(
            WindowSpec(
                seconds=settings.window, buckets=settings.buckets, counts=("final", "failed")
            ),
            context.max_keys,
            name=self.name,
        )

    def process(self, event: Event, keys: EventKeys) -> Sequence[Decision]:
        key = keys.account
        if event.status not in _FINAL or key is None:
            return NOTHING
        settings = self.context.classes.pick(key, self.settings, self.name)
        if not settings.enabled or self.is_service_sender(event, key):
            return NOTHING
        failed = 1 if event.status in _FAILED else 0
        store = self.store
        window = store.observe(key, event.epoch, (1, failed))
        if window is None or event.epoch < window.quiet_until:
            return NOTHING
        final = store.total(window, 0)
        bounced = store.total(window, 1)
        if self.near(final, settings.min_deliveries):
            store.note_time(window, event.epoch)
        if final < settings.min_deliveries or bounced < settings.ratio * final:
            return NOTHING
        ratio = bounced / final
        evidence = self.window_evidence(window, settings.ratio)
        evidence["counts"] = {"final_deliveries": final, "bounced_or_expired": bounced}
        evidence["ratio"] = round(ratio, 4)
        evidence["min_deliveries"] = settings.min_deliveries
        finding = Finding(
            reason=(
                f"{bounced} of {final} deliveries bounced or expired within {settings.window} s"
                f" (ratio {ratio:.2f}, threshold {settings.ratio:.2f})"
            ),
            category="email",
            outcome="unknown",
            severity=SEVERITY_HIGH,
            evidence=evidence,
            user=key,
        )
        action = Action("suspend_smtp", "account", key, settings.duration)
        decisions = self.decide(event, finding, (action,), dry_run=settings.dry_run)
        window.quiet_until = latest_expiry(decisions, event.epoch + settings.duration)
        return decisions
