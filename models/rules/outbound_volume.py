"""Outbound volume: an account sending far more in an hour than its own history says it does.

SMTP burst catches a spam run in its first minute; a patient spammer sends
a steady stream instead, a message every few seconds for hours. Judged
against a fixed limit that stream either passes or the limit hurts busy
senders, so each account is judged against itself: its counts of submitted
messages per event-time hour over the last ``history_days`` (default 7),
kept as a ring of hourly counters (``models/rules/hourly.py``).

The limit for an hour is robust to the account's own spikes: over the
*active* hours of its history (hours with at least one message), the median
plus ``mad_factor`` (default 10) times the spread, and never below
``min_hourly`` (default 50). The spread is the scaled median absolute
deviation (``1.4826 * MAD``, a standard deviation for normal data), but at
least the square root of the median: hourly counts are Poisson-like, and a
sender as regular as clockwork (MAD 0) must not be caught by an ordinary
hour. An account seen for less than
``learning_hours`` (default 48), or with fewer than three active hours,
gets ``cold_start_hourly`` (default 100) instead. Per-domain and per-class
overrides (``[classes.<name>]``) give bulk senders higher limits; service
senders (``[allowlist] senders``) are not counted.

When the count of the event's hour reaches the limit, the rule issues
``action`` (default ``isolate_sender``: the account's outgoing mail is held
apart for review rather than refused; ``suspend_smtp`` refuses it; ``alert``
only reports) for ``duration`` (longer for a repeat offender), and stays
quiet for the account until it expires. The limit is worked out once per
account and hour, and only once the hour's count reaches the lowest limit
possible, so ordinary senders cost one counter increment per message.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.events import SUBMISSION, Event, iso_utc
from models.policy import OutboundVolumeSettings
from models.rules.base import (
    NOTHING,
    SEVERITY_HIGH,
    Action,
    Decision,
    Finding,
    Rule,
    RuleContext,
    StateStore,
    latest_expiry,
)
from models.rules.hourly import HOUR, HourlyCounts, HourlyHistory
from models.rules.keys import EventKeys

MIN_ACTIVE_HOURS = 3
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True, slots=True)
class HourlyLimit:
    """The limit of one account for one hour, and what it was derived from."""

    limit: float
    cold_start: bool
    active_hours: int
    median: float
    spread: float


def hourly_limit(
    history: np.ndarray[tuple[int], np.dtype[np.uint16]],
    known_hours: int,
    settings: OutboundVolumeSettings,
) -> HourlyLimit:
    """The hourly limit an account with this history of hourly counts gets."""
    active = history[history > 0].astype(np.float64)
    if known_hours < settings.learning_hours or active.size < MIN_ACTIVE_HOURS:
        return HourlyLimit(float(settings.cold_start_hourly), True, int(active.size), 0.0, 0.0)
    median = float(np.median(active))
    mad = float(np.median(np.abs(active - median))) * MAD_TO_SIGMA
    spread = max(mad, math.sqrt(median))
    limit = max(float(settings.min_hourly), median + settings.mad_factor * spread)
    return HourlyLimit(limit, False, int(active.size), median, spread)


class OutboundVolumeRule(Rule):
    name = "outbound_volume"
    scope = "account"
    kinds = frozenset({SUBMISSION})

    def __init__(self, settings: OutboundVolumeSettings, context: RuleContext) -> None:
        super().__init__(context, settings.dry_run)
        self.settings = settings
        self.history = HourlyCounts(self.name, settings.history_days * 24, context.max_keys)

    @property
    def stores(self) -> tuple[StateStore, ...]:
        return (self.history,)

    def process(self, event: Event, keys: EventKeys) -> Sequence[Decision]:
        key = keys.account
        if key is None:
            return NOTHING
        settings = self.context.classes.pick(key, self.settings, self.name)
        if not settings.enabled or self.is_service_sender(event, key):
            return NOTHING
        counted = self.history.add(key, event.epoch)
        if counted is None:
            return NOTHING
        entry, hour = counted
        count = self.history.count(entry, hour)
        if count < min(settings.min_hourly, settings.cold_start_hourly):
            return NOTHING
        if event.epoch < entry.keep_until:
            return NOTHING
        if entry.limit_hour == hour and count < entry.limit:
            return NOTHING
        limit = self._limit(entry, hour, settings)
        entry.limit, entry.limit_hour = limit.limit, hour
        if count < limit.limit:
            return NOTHING
        evidence = {
            "hour_start": iso_utc(hour * HOUR),
            "threshold": round(limit.limit, 2),
            "counts": {"messages_this_hour": count},
            "baseline": {
                "cold_start": limit.cold_start,
                "history_hours": self.history.hours,
                "active_hours": limit.active_hours,
                "median": round(limit.median, 2),
                "spread": round(limit.spread, 2),
            },
            "sample_times": [event.ts],
        }
        basis = "for a new account" if limit.cold_start else "from its own history"
        finding = Finding(
            reason=(
                f"{count} messages within the hour, above the limit of {limit.limit:.0f} {basis}"
            ),
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
        entry.keep_until = latest_expiry(decisions, event.epoch + settings.duration)
        return decisions

    def _limit(
        self, entry: HourlyHistory, hour: int, settings: OutboundVolumeSettings
    ) -> HourlyLimit:
        known_hours = hour - entry.first_hour
        return hourly_limit(self.history.history(entry, hour), known_hours, settings)
