"""Where each account logs in from: the shared state of the new-location and travel rules.

Per normalized account, from successful logins whose client IP the GeoIP
databases place (``models/geo.py``):

- the countries and the networks (ASNs) it logged in from, each with the
  event time it was last seen; at most ``[geoip] countries`` and
  ``networks`` of them (the least recently seen go first), and forgotten
  after ``[geoip] memory`` (default 30 days) without a login from there;
- the previous located login (time, IP, coordinates, accuracy, country);
- when the account was first seen, so rules can wait for a history before
  calling anything "new".

:class:`AccountGeoFeed` fills it once per event, before the rules run, and
exposes what this login changed as :attr:`AccountGeoFeed.current`. A login
older than the previous one (bounded disorder) updates the sets but not
the previous login.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.events import AUTH, Event
from models.geo import GeoLookup, Location
from models.policy import GeoipSettings
from models.rules.base import StateStore
from models.rules.keys import EventKeys
from models.rules.keystore import KeyedEntry, KeyedStore
from models.rules.shared import Feed


@dataclass(frozen=True, slots=True)
class PreviousLogin:
    epoch: float
    ip: str
    latitude: float
    longitude: float
    accuracy_km: float
    country: str | None


@dataclass(frozen=True, slots=True)
class GeoObservation:
    """What one located login tells about its account."""

    ip: str
    location: Location
    known_for: float  # seconds since the account's first located login
    new_country: bool  # a country the account has not logged in from within memory
    new_asn: bool
    previous: PreviousLogin | None  # the latest located login before this one


class AccountGeo(KeyedEntry):
    __slots__ = ("asns", "countries", "first_seen", "previous")

    def __init__(self, last_seen: float) -> None:
        super().__init__(last_seen)
        self.first_seen = last_seen
        self.countries: dict[str, float] = {}
        self.asns: dict[str, float] = {}
        self.previous: PreviousLogin | None = None


class AccountGeoStore(KeyedStore[AccountGeo]):
    def __init__(self, settings: GeoipSettings, max_keys: int) -> None:
        super().__init__("geo_history", max_keys, idle=settings.memory)
        self.settings = settings

    def new_entry(self, epoch: float) -> AccountGeo:
        return AccountGeo(epoch)

    def encode(self, entry: AccountGeo) -> dict[str, Any]:
        previous = entry.previous
        return {
            "first_seen": entry.first_seen,
            "countries": [[code, seen] for code, seen in entry.countries.items()],
            "asns": [[asn, seen] for asn, seen in entry.asns.items()],
            "previous": None
            if previous is None
            else [
                previous.epoch,
                previous.ip,
                previous.latitude,
                previous.longitude,
                previous.accuracy_km,
                previous.country,
            ],
        }

    def decode(self, data: dict[str, Any]) -> AccountGeo:
        entry = AccountGeo(float(data["first_seen"]))
        entry.countries = {str(code): float(seen) for code, seen in data["countries"]}
        entry.asns = {str(asn): float(seen) for asn, seen in data["asns"]}
        previous = data["previous"]
        if previous is not None:
            epoch, ip, latitude, longitude, accuracy, country = previous
            entry.previous = PreviousLogin(
                float(epoch),
                str(ip),
                float(latitude),
                float(longitude),
                float(accuracy),
                None if country is None else str(country),
            )
        return entry


class AccountGeoFeed(Feed):
    scope = "account"
    kinds = frozenset({AUTH})

    def __init__(self, geo: GeoLookup, settings: GeoipSettings, max_keys: int) -> None:
        self.geo = geo
        self.settings = settings
        self.store = AccountGeoStore(settings, max_keys)
        self.current: GeoObservation | None = None

    @property
    def stores(self) -> tuple[StateStore, ...]:
        return (self.store,)

    def known_countries(self, account: str) -> list[str]:
        entry = self.store.get(account)
        return [] if entry is None else list(entry.countries)

    def observe(self, event: Event, keys: EventKeys) -> None:
        self.current = None
        account, ip = keys.account, keys.ip
        if event.outcome != "success" or account is None or ip is None:
            return
        location = self.geo.locate(ip)
        if location is None:
            return
        epoch = event.epoch
        entry = self.store.entry(account, epoch)
        assert entry is not None
        entry.first_seen = min(entry.first_seen, epoch)
        oldest = epoch - self.settings.memory
        new_country = _remember(
            entry.countries, location.country, epoch, oldest, self.settings.countries
        )
        asn = None if location.asn is None else str(location.asn)
        new_asn = _remember(entry.asns, asn, epoch, oldest, self.settings.networks)
        previous = entry.previous
        lat, lon = location.latitude, location.longitude
        if lat is not None and lon is not None and (previous is None or epoch >= previous.epoch):
            entry.previous = PreviousLogin(
                epoch, ip, lat, lon, location.accuracy_km, location.country
            )
        self.current = GeoObservation(
            ip=ip,
            location=location,
            known_for=epoch - entry.first_seen,
            new_country=new_country,
            new_asn=new_asn,
            previous=previous,
        )


def _remember(
    seen: dict[str, float], value: str | None, epoch: float, oldest: float, limit: int
) -> bool:
    """Note ``value`` as seen at ``epoch``; whether it is new to an account that had others.

    Entries not seen since ``oldest`` are forgotten first; beyond ``limit``
    the least recently seen goes.
    """
    for stale in [v for v, last in seen.items() if last < oldest]:
        del seen[stale]
    if value is None:
        return False
    last = seen.get(value)
    new = last is None and bool(seen)
    seen[value] = epoch if last is None else max(last, epoch)
    if len(seen) > limit:
        del seen[min(seen, key=seen.__getitem__)]
    return new
