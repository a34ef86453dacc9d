"""Opening the operator's GeoIP databases named in the policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailwarden.geoip import GeoipError, open_geo
from models.policy import GeoipSettings
from tests.support.geoip import city_record, write_mmdb


def test_no_database_configured_means_no_lookup() -> None:
    assert open_geo(GeoipSettings()) is None


def test_a_configured_city_database_locates_addresses(tmp_path: Path) -> None:
    city = write_mmdb(tmp_path / "city.mmdb", {"192.0.2.0/24": city_record("DE", 52.52, 13.40)})
    geo = open_geo(GeoipSettings(city=str(city)))
    assert geo is not None and geo.has_city and not geo.has_asn
    located = geo.locate("192.0.2.7")
    assert located is not None and located.country == "DE"
    assert geo.locate("203.0.113.1") is None


def test_a_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GeoipError, match=r"geoip\.asn: cannot open .*missing\.mmdb"):
        open_geo(GeoipSettings(asn=str(tmp_path / "missing.mmdb")))
