"""Recipient fan-out: an account mailing a great many different people, or domains, at once.

Spam sent through a stolen account goes to long harvested lists, spread
over many domains; a person writes to a circle of correspondents. So per
normalized account and window (default one hour) the rule counts:

- distinct recipients and distinct recipient domains of the ``delivery``
  events of mail the account submitted (each attempt names one recipient;
  retries of the same recipient count once);
- the recipients announced by ``queued`` events (``nrcpt``), which arrive
  before any delivery: a message to 500 recipients is seen at once. A
  message put back in the active queue ("queue active again") is not
  counted twice.

Defaults: 150 distinct recipients (or 150 queued recipients) or 50 distinct
domains within an hour issue ``action`` (default ``suspend_smtp``;
``isolate_sender`` holds the mail for review, ``alert`` only reports) for
``duration`` (longer for a repeat offender); quiet while it runs. Classes
of accounts give newsletter senders higher limits; service senders
(``[allowlist] senders``) are not counted. Recipient addresses are compared
case-folded and kept only up to the highest threshold per account, so a
heavy sender's state stays small.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from models.events import DELIVERY, QUEUED, Event
from models.policy import RecipientFanoutSettings
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

_RECIPIENTS = 0
_DOMAINS = 1
_RETRY = "queue active again"


class RecipientFanoutRule(Rule):
    name = "recipient_fanout"
    scope = "account"
    kinds = frozenset({DELIVERY, QUEUED})

    def __init__(self, settings: RecipientFanoutSettings, context: RuleContext) -> None:
        super().__init__(context, settings.dry_run)
        self.settings = settings
        self.store = WindowStore(
            WindowSpec(
                seconds=settings.window,
                buckets=settings.buckets,
                counts=("queued_recipients",),
                distincts=("recipients", "domains"),
                distinct_cap=max(settings.recipients, settings.domains, _class_maximum(context)),
            ),
            context.max_keys,
            name=self.name,
        )

    def process(self, event: Event, keys: EventKeys) -> Sequence[Decision]:
        key = keys.account
        if key is None:
            return NOTHING
        observed = _observation(event)
        if observed is None:
            return NOTHING
        settings = self.context.classes.pick(key, self.settings, self.name)
        if not settings.enabled or self.is_service_sender(event, key):
            return NOTHING
        queued, recipient, domain = observed
        store = self.store
        window = store.observe(key, event.epoch, (queued,), (recipient, domain))
        if window is None or event.epoch < window.quiet_until:
            return NOTHING
        recipients = store.distinct_count(window, _RECIPIENTS)
        domains = store.distinct_count(window, _DOMAINS)
        announced = store.total(window, 0)
        widest = max(recipients, announced)
        if self.near(widest, settings.recipients) or self.near(domains, settings.domains):
            store.note_time(window, event.epoch)
        if widest >= settings.recipients:
            trigger, threshold = "recipients", settings.recipients
            what = f"{widest} recipients"
        elif domains >= settings.domains:
            trigger, threshold = "domains", settings.domains
            what = f"{domains} recipient domains"
        else:
            return NOTHING
        evidence = self.window_evidence(window, threshold)
        evidence["trigger"] = trigger
        evidence["counts"] = {"queued_recipients": announced}
        evidence["distinct"] = {
            "recipients": {"count": recipients, "sample": store.samples(window, _RECIPIENTS, 5)},
            "domains": {"count": domains, "sample": store.samples(window, _DOMAINS)},
        }
        finding = Finding(
            reason=f"mail to {what} within {settings.window} s (threshold {threshold})",
            category="email",
            outcome="unknown",
            severity=SEVERITY_HIGH,
            evidence=evidence,
            user=key,
            source_ip=event.client_ip,
        )
        actions: tuple[Action, ...] = ()
        if settings.action != "alert":
            actions = (Action(settings.action, "account", key, settings.duration),)
        decisions = self.decide(event, finding, actions, dry_run=settings.dry_run)
        window.quiet_until = latest_expiry(decisions, event.epoch + settings.duration)
        return decisions


def _observation(event: Event) -> tuple[int, str | None, str | None] | None:
    """(queued recipients, recipient, recipient domain) of a mail-flow event, or None."""
    if event.kind == QUEUED:
        if not event.nrcpt or (event.detail or "").startswith(_RETRY):
            return None
        return event.nrcpt, None, None
    recipient = (event.recipient or "").strip().casefold()
    if not recipient:
        return None
    _, at, domain = recipient.rpartition("@")
    # Domains repeat across accounts: interned, each is kept once.
    return 0, recipient, sys.intern(domain) if at and domain else None


def _class_maximum(context: RuleContext) -> int:
    """The highest distinct threshold any class sets (classes may raise them)."""
    return max(
        (
            max(c.rules.recipient_fanout.recipients, c.rules.recipient_fanout.domains)
            for c in context.classes.classes
        ),
        default=0,
    )
