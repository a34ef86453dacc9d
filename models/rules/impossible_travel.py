"""Impossible travel: two logins of one account too far apart for the time between them.

If an account logs in from Berlin and, an hour later, from Sydney, either
its owner flew faster than any plane or someone else holds the password.
With a GeoIP2/GeoLite2 City database (``[geoip] city``) each successful
login is placed at coordinates; the rule compares it with the account's
previous located login (``models/rules/geo_history.py``). The distance is
the great-circle distance minus both locations' accuracy radii (a city
database's guess can be off by a hundred kilometres); if it is at least
``min_km`` (default 500) and the speed it implies is at least
``speed_kmh`` (default 1000 km/h, faster than an airliner), the rule
alerts (MITRE T1078).

VPNs and mobile carriers that route through distant gateways make honest
users "travel" too, so the default only alerts; ``action =
"suspend_login"`` also suspends the account's logins for ``duration``.
Quiet for the account for ``quiet`` (default an hour) after an alert.

Needs a City database: without one the detector leaves the rule out and
says so (``Detector.notices``).
"""

from __future__ import annotations

from collections.abc import Sequence

from models.events import AUTH, Event, iso_utc
from models.geo import distance_km
from models.policy import ImpossibleTravelSettings
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
from models.rules.geo_history import AccountGeoFeed
from models.rules.keys import EventKeys
from models.rules.keystore import QuietStore

# Two logins in the same second would mean infinite speed; time is counted
# from one second up.
MIN_SECONDS = 1.0


class ImpossibleTravelRule(Rule):
    name = "impossible_travel"
    scope = "account"
    kinds = frozenset({AUTH})

    def __init__(
        self, settings: ImpossibleTravelSettings, context: RuleContext, geo: AccountGeoFeed
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
        if seen is None or key is None or seen.previous is None:
            return NOTHING
        here, before = seen.location, seen.previous
        if here.latitude is None or here.longitude is None:
            return NOTHING
        settings = self.context.classes.pick(key, self.settings, self.name)
        if not settings.enabled:
            return NOTHING
        apart = distance_km(before.latitude, before.longitude, here.latitude, here.longitude)
        distance = max(0.0, apart - before.accuracy_km - here.accuracy_km)
        if distance < settings.min_km:
            return NOTHING
        seconds = max(abs(event.epoch - before.epoch), MIN_SECONDS)
        speed = distance / seconds * 3600
        if speed < settings.speed_kmh:
            return NOTHING
        if self.quiet.is_quiet(key, event.epoch):
            return NOTHING
        evidence = {
            "distance_km": round(distance),
            "great_circle_km": round(apart),
            "seconds": round(seconds),
            "speed_kmh": round(speed),
            "threshold": settings.speed_kmh,
            "from": {
                "ip": before.ip,
                "country": before.country,
                "at": iso_utc(before.epoch),
                "latitude": round(before.latitude, 2),
                "longitude": round(before.longitude, 2),
            },
            "to": {
                "ip": seen.ip,
                "country": here.country,
                "at": event.ts,
                "latitude": round(here.latitude, 2),
                "longitude": round(here.longitude, 2),
            },
            "sample_times": [iso_utc(before.epoch), event.ts],
        }
        finding = Finding(
            reason=(
                f"logins {round(distance)} km apart within {round(seconds)} s"
                f" ({round(speed)} km/h, threshold {settings.speed_kmh} km/h)"
            ),
            category="authentication",
            outcome="success",
            severity=SEVERITY_HIGH,
            evidence=evidence,
            user=key,
            source_ip=seen.ip,
            related_ips=(before.ip,),
            mitre="T1078",
        )
        actions: tuple[Action, ...] = ()
        if settings.action == "suspend_login":
            actions = (Action("suspend_login", "account", key, settings.duration),)
        decisions = self.decide(event, finding, actions, dry_run=settings.dry_run)
        self.quiet.silence(key, event.epoch, latest_expiry(decisions, event.epoch + settings.quiet))
        return decisions
