"""GeoIP: the lookup wrapper over a MaxMind database the test builds, and the two geo rules."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import maxminddb
import orjson
import pytest

from models.alerts import Alert
from models.commands import Command
from models.detector import Detector
from models.events import Event
from models.geo import GeoLookup, Location, distance_km
from models.policy import ImpossibleTravelSettings, NewLocationSettings, Policy
from tests.support.geoip import asn_record, city_record, write_mmdb
from tests.unit.rules.kit import SIGNING_KEY, make_event, run

BERLIN = "192.0.2.10"  # 192.0.2.0/25
PARIS = "192.0.2.200"  # 192.0.2.128/25
SYDNEY = "2001:db8::7"  # 2001:db8::/32
POTSDAM = "198.51.100.9"  # 30 km from Berlin
NOWHERE = "203.0.113.1"
USER = "alice@example.org"
HOUR = 3600.0
DAY = 86400.0


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("geoip")
    city = write_mmdb(
        folder / "city.mmdb",
        {
            "192.0.2.0/24": city_record("DE", 52.52, 13.40),
            "192.0.2.128/25": city_record("FR", 48.86, 2.35),
            "198.51.100.0/24": city_record("DE", 52.39, 13.06),
            "2001:db8::/32": city_record("AU", -33.87, 151.21, accuracy_km=50),
            "10.9.0.0/16": {"location": {"latitude": "north"}, "country": {"iso_code": 7}},
        },
    )
    asn = write_mmdb(
        folder / "asn.mmdb",
        {
            "192.0.2.0/24": asn_record(64500, "Example Carrier"),
            "198.51.100.0/24": asn_record(64501, "Other Carrier"),
        },
        database_type="GeoLite2-ASN",
    )
    return city, asn


@pytest.fixture
def geo(databases: tuple[Path, Path]) -> GeoLookup:
    city, asn = databases
    return GeoLookup(maxminddb.open_database(str(city)), maxminddb.open_database(str(asn)))


def login(at: float, ip: str, user: str = USER, outcome: str = "success") -> Event:
    return make_event(at, "auth", outcome=outcome, user=user, client_ip=ip, protocol="imap")


def geo_decisions(detector: Detector, events: list[Event], rule: str) -> list[Alert | Command]:
    return [d for d in run(detector, events) if d.rule == rule]


# -- the lookup ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", [maxminddb.MODE_AUTO, maxminddb.MODE_FILE])
def test_lookup_reads_country_coordinates_and_network(
    databases: tuple[Path, Path], mode: int
) -> None:
    city, asn = databases
    lookup = GeoLookup(
        maxminddb.open_database(str(city), mode), maxminddb.open_database(str(asn), mode)
    )
    assert lookup.locate(PARIS) == Location("FR", 48.86, 2.35, 20.0, 64500, "Example Carrier")
    assert lookup.locate(SYDNEY) == Location("AU", -33.87, 151.21, 50.0, None, None)
    assert lookup.locate(NOWHERE) is None
    assert lookup.locate("not an address") is None
    # A malformed record gives what it can, never an exception.
    assert lookup.locate("10.9.1.1") is None


def test_lookup_needs_a_reader_and_caches() -> None:
    with pytest.raises(ValueError, match="needs a City"):
        GeoLookup()

    class Counting:
        calls = 0

        def get(self, ip: str) -> Any:
            Counting.calls += 1
            return {"country": {"iso_code": "de"}}

    lookup = GeoLookup(asn=Counting(), cache_size=2)
    for ip in ("192.0.2.1", "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.1"):
        lookup.locate(ip)
    assert Counting.calls == 4
    assert lookup.has_asn and not lookup.has_city


def test_distance() -> None:
    assert round(distance_km(52.52, 13.40, 48.86, 2.35)) == 877
    assert distance_km(1.0, 2.0, 1.0, 2.0) == 0.0


# -- the detector without and with databases -------------------------------------------


def test_without_a_database_the_geo_rules_are_off_and_say_so() -> None:
    detector = Detector(Policy(), SIGNING_KEY)
    assert not {"new_location", "impossible_travel"} & {rule.name for rule in detector.rules}
    assert detector.notices == [
        "new_location and impossible_travel disabled: no GeoIP database was given"
        " (name a GeoIP2/GeoLite2 City and/or ASN .mmdb file in [geoip] city / asn)"
    ]


def test_an_asn_database_alone_serves_new_networks_only(databases: tuple[Path, Path]) -> None:
    lookup = GeoLookup(asn=maxminddb.open_database(str(databases[1])))
    detector = Detector(Policy(), SIGNING_KEY, geo=lookup)
    assert not {"new_location", "impossible_travel"} & {rule.name for rule in detector.rules}
    assert len(detector.notices) == 2
    settings = replace(NewLocationSettings(), new_asn=True)
    policy = replace(Policy(), rules=replace(Policy().rules, new_location=settings))
    assert "new_location" in {rule.name for rule in Detector(policy, SIGNING_KEY, geo=lookup).rules}


def test_new_country_after_the_learning_day(geo: GeoLookup) -> None:
    detector = Detector(Policy(), SIGNING_KEY, geo=geo)
    # Day one: Berlin, then Paris, both learnt in silence.
    assert geo_decisions(detector, [login(0, BERLIN), login(5 * HOUR, PARIS)], "new_location") == []
    # Two days later: Berlin and Paris are known, Sydney is not.
    events = [login(2 * DAY, BERLIN), login(2 * DAY + 1800, PARIS), login(3 * DAY, SYDNEY)]
    (alert,) = geo_decisions(detector, events, "new_location")
    assert isinstance(alert, Alert)
    evidence = alert.to_dict()["mailwarden"]
    assert (evidence["country"], evidence["known_countries"]) == ("AU", ["DE", "FR"])
    assert alert.to_dict()["source"] == {"ip": SYDNEY}
    # Known now; and an unknown address or a failed login tells nothing.
    later = [
        login(4 * DAY, SYDNEY),
        login(4 * DAY, NOWHERE),
        login(4 * DAY, "192.0.2.129", outcome="failure"),
    ]
    assert geo_decisions(detector, later, "new_location") == []


def test_countries_are_forgotten_after_the_memory(geo: GeoLookup) -> None:
    detector = Detector(Policy(), SIGNING_KEY, geo=geo)
    run(detector, [login(0, BERLIN), *(login(day * DAY, PARIS) for day in (2, 12, 22, 32))])
    # 40 days on, Berlin is older than the 30-day memory: new again.
    decisions = geo_decisions(
        detector, [login(40 * DAY, PARIS), login(40 * DAY + 60, BERLIN)], "new_location"
    )
    assert [d.to_dict()["mailwarden"]["country"] for d in decisions] == ["DE"]


def test_new_network_only_when_asked(geo: GeoLookup) -> None:
    events = [login(0, BERLIN), login(2 * DAY, POTSDAM)]  # same country, another carrier
    assert geo_decisions(Detector(Policy(), SIGNING_KEY, geo=geo), events, "new_location") == []
    settings = replace(NewLocationSettings(), new_asn=True, action="suspend_login")
    policy = replace(Policy(), rules=replace(Policy().rules, new_location=settings))
    command, alert = geo_decisions(Detector(policy, SIGNING_KEY, geo=geo), events, "new_location")
    assert isinstance(command, Command) and command.action == "suspend_login"
    assert alert.to_dict()["mailwarden"]["asn"] == 64501


def test_berlin_then_sydney_an_hour_later_is_impossible(geo: GeoLookup) -> None:
    detector = Detector(Policy(), SIGNING_KEY, geo=geo)
    (alert,) = geo_decisions(detector, [login(0, BERLIN), login(HOUR, SYDNEY)], "impossible_travel")
    assert isinstance(alert, Alert)
    evidence = alert.to_dict()["mailwarden"]
    # 16,095 km great circle minus the two accuracy radii (20 + 50 km).
    assert evidence["great_circle_km"] == 16095
    assert evidence["distance_km"] == 16025
    assert evidence["speed_kmh"] == 16025
    assert (evidence["from"]["ip"], evidence["to"]["ip"]) == (BERLIN, SYDNEY)
    assert alert.related_ips == [BERLIN]


def test_plausible_journeys_are_not_travel(geo: GeoLookup) -> None:
    detector = Detector(Policy(), SIGNING_KEY, geo=geo)
    # Berlin to Potsdam in a minute: under min_km. Berlin to Paris in two hours: 440 km/h.
    events = [
        login(0, BERLIN),
        login(60, POTSDAM),
        login(2 * HOUR, PARIS),
        login(30 * HOUR, SYDNEY),
    ]
    assert geo_decisions(detector, events, "impossible_travel") == []


def test_travel_knobs_and_suspension(geo: GeoLookup) -> None:
    settings = replace(ImpossibleTravelSettings(), speed_kmh=300, action="suspend_login")
    policy = replace(Policy(), rules=replace(Policy().rules, impossible_travel=settings))
    decisions = geo_decisions(
        Detector(policy, SIGNING_KEY, geo=geo),
        [login(0, BERLIN), login(2 * HOUR, PARIS)],
        "impossible_travel",
    )
    assert [type(d) for d in decisions] == [Command, Alert]


def test_geo_state_survives_export_and_import(geo: GeoLookup) -> None:
    first = Detector(Policy(), SIGNING_KEY, geo=geo)
    run(first, [login(0, BERLIN)])
    state = first.export_state("account", USER)
    assert state is not None and "geo_history" in state
    second = Detector(Policy(), SIGNING_KEY, geo=geo)
    second.import_state("account", USER, orjson.loads(orjson.dumps(state)))
    assert second.export_state("account", USER) == state
    # The restored history knows Berlin: Sydney an hour later is travel.
    assert geo_decisions(second, [login(HOUR, SYDNEY)], "impossible_travel")
