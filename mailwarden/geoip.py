"""Opening the operator's GeoIP2 / ASN databases for the location rules.

The rules (``models/rules/new_location.py``, ``impossible_travel.py``) only see a
:class:`models.geo.GeoLookup`; this module does the file I/O. The databases are
optional: without them the detector leaves those rules out and says why.
"""

from __future__ import annotations

from pathlib import Path

from models.geo import GeoLookup, GeoReader
from models.policy import GeoipSettings


class GeoipError(RuntimeError):
    """A configured database cannot be opened."""


def open_geo(settings: GeoipSettings) -> GeoLookup | None:
    """A lookup over the configured City and ASN databases; None when none is configured."""
    paths = {name: getattr(settings, name) for name in ("city", "asn") if getattr(settings, name)}
    if not paths:
        return None
    try:
        import maxminddb
    except ImportError as exc:
        raise GeoipError(
            "the policy names GeoIP databases but maxminddb is not installed: "
            "pip install 'mailwarden[geoip]'"
        ) from exc
    readers: dict[str, GeoReader] = {}
    for name, path in paths.items():
        try:
            readers[name] = maxminddb.open_database(str(Path(path)))
        except (OSError, ValueError) as exc:
            raise GeoipError(f"geoip.{name}: cannot open {path}: {exc}") from exc
    return GeoLookup(city=readers.get("city"), asn=readers.get("asn"))
