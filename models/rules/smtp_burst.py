"""SMTP burst: an account submitting too many messages in a short time.

The classic sign of a stolen password being used to send spam: a mailbox
that normally sends a few messages an hour submits dozens in a minute. The
account itself misbehaves, so its SMTP service is suspended (not its IMAP or
POP access, and not the client IP, which may be a shared NAT).

Counts ``submission`` events that carry a ``user`` (Postfix ``client=...,
sasl_username=...``), by normalized account. Defaults: 30 submissions within
60 s suspend SMTP for one hour (longer for a repeat offender). Fires once per
episode: while the suspension it issued is still running (by event time) the
rule stays quiet for that account. Classes of accounts may set other
thresholds; service senders (``[allowlist] senders``) are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence

from models.events import SUBMISSION, Event
from models.policy import SmtpBurstSettings
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


class SmtpBurstRule(Rule):
    name = "smtp_burst"
    scope = "account"
    kinds = frozenset({SUBMISSION})

    def __init__(self, settings: SmtpBurstSettings, context: RuleContext) -> None:
        super().__init__(context, settings.dry_run)
        self.settings = settings
        self.store = WindowStore(
            WindowSpec(seconds=settings.window, buckets=settings.buckets, counts=("submissions",)),
            context.max_keys,
            name=self.name,
        )

    def process(self, event: Event, keys: EventKeys) -> Sequence[Decision]:
        key = keys.account
        if key is None:
            return NOTHING
        settings = self.context.classes.pick(key, self.settings, self.name)
        if not settings.enabled or self.is_service_sender(event, key):
            return NOTHING
        window = self.store.observe(key, event.epoch, (1,))
        if window is None or event.epoch < window.quiet_until:
            return NOTHING
        submissions = self.store.total(window, 0)
        if self.near(submissions, settings.threshold):
            self.store.note_time(window, event.epoch)
        if submissions < settings.threshold:
            return NOTHING
        evidence = self.window_evidence(window, settings.threshold)
        evidence["counts"] = {"submissions": submissions}
        finding = Finding(
            reason=(
                f"{submissions} submissions within {settings.window} s"
                f" (threshold {settings.threshold})"
            ),
            category="email",
            outcome="unknown",
            severity=SEVERITY_HIGH,
            evidence=evidence,
            user=key,
            source_ip=event.client_ip,
        )
        action = Action("suspend_smtp", "account", key, settings.duration)
        decisions = self.decide(event, finding, (action,), dry_run=settings.dry_run)
        window.quiet_until = latest_expiry(decisions, event.epoch + settings.duration)
        return decisions
