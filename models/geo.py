"""Where an IP is: country, coordinates and network (ASN), from MaxMind-format databases.

Pure given its readers: :class:`GeoLookup` wraps objects with a ``get(ip)``
method returning the record of the network holding ``ip`` (what
``maxminddb.open_database(path).get`` does), so the files are opened by the
caller (replay, worker) and tests can hand in any reader. Records follow the
GeoIP2 / GeoLite2 layouts:

- City (or Country): ``{"country": {"iso_code": "DE"}, "location":
  {"latitude": 52.5, "longitude": 13.4, "accuracy_radius": 20}}``; the
  registered country stands in when the country is missing;
- ASN: ``{"autonomous_system_number": 64500,
  "autonomous_system_organization": "Example Net"}``.

A malformed record or an address the reader refuses gives None, never an
exception: databases are operator-supplied and lookups run on every login.
Results are cached (bounded): a login burst from one address parses once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

EARTH_RADIUS_KM = 6371.0088


class GeoReader(Protocol):
    def get(self, ip: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class Location:
    """What the databases say about one IP; any part may be unknown."""

    country: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    accuracy_km: float = 0.0
    asn: int | None = None
    as_org: str | None = None

    @property
    def has_coordinates(self) -> bool:
        return self.latitude is not None and self.longitude is not None


class GeoLookup:
    """Country, coordinates and ASN of IPs, from a City reader and/or an ASN reader."""

    def __init__(
        self,
        city: GeoReader | None = None,
        asn: GeoReader | None = None,
        cache_size: int = 65_536,
    ) -> None:
        if city is None and asn is None:
            raise ValueError("GeoLookup needs a City (or Country) reader, an ASN reader, or both")
        self._city = city
        self._asn = asn
        self._cache: dict[str, Location | None] = {}
        self._cache_size = cache_size

    @property
    def has_city(self) -> bool:
        return self._city is not None

    @property
    def has_asn(self) -> bool:
        return self._asn is not None

    def locate(self, ip: str) -> Location | None:
        """The location of ``ip``; None when neither database knows it."""
        cache = self._cache
        if ip in cache:
            return cache[ip]
        location = self._lookup(ip)
        if len(cache) >= self._cache_size:
            cache.clear()
        cache[ip] = location
        return location

    def _lookup(self, ip: str) -> Location | None:
        city = _record(self._city, ip)
        asn = _record(self._asn, ip)
        if city is None and asn is None:
            return None
        country, latitude, longitude, accuracy = _city_fields(city or {})
        as_number, as_org = _asn_fields(asn or {})
        if country is None and latitude is None and as_number is None:
            return None
        return Location(country, latitude, longitude, accuracy, as_number, as_org)


def _record(reader: GeoReader | None, ip: str) -> dict[str, Any] | None:
    if reader is None:
        return None
    try:
        found = reader.get(ip)
    except (ValueError, TypeError):
        return None
    return found if isinstance(found, dict) else None


def _city_fields(record: dict[str, Any]) -> tuple[str | None, float | None, float | None, float]:
    country = _iso_code(record.get("country")) or _iso_code(record.get("registered_country"))
    location = record.get("location")
    if not isinstance(location, dict):
        return country, None, None, 0.0
    lat = _number(location.get("latitude"))
    lon = _number(location.get("longitude"))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        lat = lon = None
    radius = _number(location.get("accuracy_radius"))
    return country, lat, lon, radius if radius is not None and radius >= 0 else 0.0


def _asn_fields(record: dict[str, Any]) -> tuple[int | None, str | None]:
    number = record.get("autonomous_system_number")
    org = record.get("autonomous_system_organization")
    as_number = number if isinstance(number, int) and not isinstance(number, bool) else None
    return as_number, org if isinstance(org, str) else None


def _iso_code(part: Any) -> str | None:
    if isinstance(part, dict):
        code = part.get("iso_code")
        if isinstance(code, str) and len(code) == 2 and code.isascii() and code.isalpha():
            return code.upper()
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine) between two points in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))
