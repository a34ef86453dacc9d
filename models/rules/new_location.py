"""New location: a successful login from a country the account has not logged in from lately.

A stolen password is mostly used from somewhere its owner never is. With a
GeoIP2/GeoLite2 City or Country database (``[geoip] city``), each
successful login is placed in a country; a country absent from the
account's last ``[geoip] memory`` (default 30 days) of logins raises an
alert (MITRE T1078). With ``new_asn = true`` and an ASN database
(``[geoip] asn``), a network (autonomous system) new to the account does too;
off by default, since phones roam between carriers.

Nothing is new to an account without a history: the rule stays silent
until the account's first located login is ``learning`` seconds old
(default one day). Quiet for the account for ``quiet`` (default an hour)
after an alert. ``action = "suspend_login"`` also suspends its logins for
``duration``; the default only alerts, as travellers and VPNs are many.

Needs a GeoIP database: without one the detector leaves the rule out and
says so (``Detector.notices``).
"""

from __future__ import annotations

from collections.abc import Sequence

from models.events import AUTH, Event
from models.policy import NewLocationSettings
from models.rules.base import (
    NOTHING,
    SEVERITY_MEDIUM,
    Action,
    Decision,
    Finding,
    Rule,
    RuleContext,
    StateStore,
    latest_expiry,
)
from models.rules.geo_history import AccountGeoFeed, GeoObservation
from models.rules.keys import EventKeys
from models.rules.keystore import QuietStore


class NewLocationRule(Rule):
    name = "new_location"
    scope = "account"
    kinds = frozenset({AUTH})

    def __init__(
        self, settings: NewLocationSettings, context: RuleContext, geo: AccountGeoFeed
    ) -> None:
        super().__init__(context, settings.dry_run)
        self.settings = settings
        self.geo = geo
        self.quiet = QuietStore(self.name, context.max_keys, idle=settings.quiet)

    @property
    def stores(self) -> tuple[StateStore, ...]:
        return (self.quiet,)

    def process(self, event: Event, keys: EventKeys) -> Sequence[Decision]:
        seen = self.geo.current
        key = keys.account
        if seen is None or key is None or not (seen.new_country or seen.new_asn):
            return NOTHING
        settings = self.context.classes.pick(key, self.settings, self.name)
        if not settings.enabled or seen.known_for < settings.learning:
            return NOTHING
        if not seen.new_country and not settings.new_asn:
            return NOTHING
        if self.quiet.is_quiet(key, event.epoch):
            return NOTHING
        finding = self._finding(event, key, seen)
        actions: tuple[Action, ...] = ()
        if settings.action == "suspend_login":
            actions = (Action("suspend_login", "account", key, settings.duration),)
        decisions = self.decide(event, finding, actions, dry_run=settings.dry_run)
        self.quiet.silence(key, event.epoch, latest_expiry(decisions, event.epoch + settings.quiet))
        return decisions

    def _finding(self, event: Event, key: str, seen: GeoObservation) -> Finding:
        location = seen.location
        what = f"country {location.country}" if seen.new_country else f"network AS{location.asn}"
        evidence = {
            "trigger": "country" if seen.new_country else "asn",
            "country": location.country,
            "asn": location.asn,
            "as_org": location.as_org,
            "known_countries": sorted(
                code for code in self.geo.known_countries(key) if code != location.country
            ),
            "account_known_for_seconds": round(seen.known_for),
            "sample_times": [event.ts],
        }
        return Finding(
            reason=f"login from {what}, not seen for this account"
            f" in the last {self.geo.settings.memory // 86400} days",
            category="authentication",
            outcome="success",
            severity=SEVERITY_MEDIUM,
            evidence=evidence,
            user=key,
            source_ip=seen.ip,
            mitre="T1078",
        )
