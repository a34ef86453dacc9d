"""The parsers' shortcuts give exactly what the long way gives.

- addresses already in canonical form skip ``ipaddress`` (parsers/fields.py);
- a syslog stamp in a minute read before skips the date arithmetic
  (parsers/envelope.py, ``_epoch_in_known_minute``);
- the per-line records write their own ``__init__`` (compiled, a C call) and
  stay dataclasses.
"""

from __future__ import annotations

import dataclasses
import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from models.events import Origin
from parsers.correlation import QueuedMessage, SmtpdSession
from parsers.envelope import EnvelopeError, EnvelopeReader
from parsers.fields import _parse_ip
from parsers.result import LineContext, ParseResult

ORIGIN = Origin("test.log", 1)


def parse_ip_the_long_way(text: str) -> str | None:
    """What parsers.fields._parse_ip computed before its shortcuts."""
    candidate = text[5:] if text[:5].lower() == "ipv6:" else text
    if not candidate or len(candidate) > 45:
        return None
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


OCTETS = st.one_of(
    st.integers(0, 300).map(str),
    st.integers(0, 99).map(lambda n: f"0{n}"),
    st.sampled_from(["", "a", "٣", "²", " 1", "1 ", "+1", "0000", "1234"]),
)
IPV4_LIKE = st.lists(OCTETS, min_size=3, max_size=5).map(".".join)


@st.composite
def ipv6_like(draw: st.DrawFn) -> str:
    """Canonical, exploded, partly compressed and damaged spellings of IPv6 addresses."""
    group = st.one_of(st.just(0), st.just(0xFFFF), st.integers(0, 0xF), st.integers(0, 0xFFFF))
    groups = draw(st.lists(group, min_size=8, max_size=8))
    if draw(st.booleans()):
        groups[:6] = [0, 0, 0, 0, 0, 0xFFFF]  # IPv4-mapped
    address = ipaddress.IPv6Address(int("".join(f"{g:04x}" for g in groups), 16))
    form = draw(st.sampled_from(["canonical", "exploded", "short", "upper", "damaged"]))
    if form == "canonical":
        return str(address)
    if form == "exploded":
        return address.exploded
    if form == "short":  # no leading zeros, no "::"
        return ":".join(f"{g:x}" for g in groups)
    if form == "upper":
        return str(address).upper()
    text = list(str(address))
    position = draw(st.integers(0, len(text) - 1))
    text[position] = draw(st.sampled_from(list("0:f1A.g%")))
    return "".join(text)


@given(text=st.one_of(IPV4_LIKE, ipv6_like(), st.text(alphabet="0123456789abcdef:.", max_size=20)))
def test_address_shortcuts_match_ipaddress(text: str) -> None:
    assert _parse_ip(text) == parse_ip_the_long_way(text)
    assert _parse_ip(f"IPv6:{text}") == parse_ip_the_long_way(f"IPv6:{text}")


def test_address_shortcuts_on_the_edges() -> None:
    for text in [
        "::",
        "::1",
        "1::",
        "0::1",
        "1:0::2",
        "1:0:0:2::",
        "1::4:0:0:7:8",
        "1:0:0:4::8",
        "1:2:3:4:5:6::8",
        "1:2:3:4:5:6:0:8",
        "::ffff:1.2.3.4",
        "::ffff:102:304",
        "::ffff",
        "fe80::1%eth0",
        "1::2::3",
        ":::",
        "255.255.255.255",
        "256.1.1.1",
        "01.2.3.4",
    ]:
        assert _parse_ip(text) == parse_ip_the_long_way(text), text


MONTH_DAYS = [("Dec", 31), ("Jan", 1), ("Aug", 1), ("Jun", 15), ("Feb", 29)]


@st.composite
def syslog_stamps(draw: st.DrawFn) -> list[str]:
    """A stream of stamps that revisits minutes, crosses new year and has late lines."""
    stamps = []
    for _ in range(draw(st.integers(1, 40))):
        month, day = draw(st.sampled_from(MONTH_DAYS))
        hour = draw(st.sampled_from(["00", "23"]))
        minute = draw(st.sampled_from(["00", "59"]))
        second = draw(
            st.one_of(st.integers(0, 59).map(lambda s: f"{s:02d}"), st.sampled_from(["60", "6x"]))
        )
        stamps.append(f"{month} {day:2d} {hour}:{minute}:{second}")
    return stamps


def read_all(reader: EnvelopeReader, stamps: list[str], long_way: bool) -> list[object]:
    results: list[object] = []
    for stamp in stamps:
        if long_way:
            reader._year_minutes.clear()
        try:
            context = reader.read(f"{stamp} mx prog: m", ORIGIN)
        except EnvelopeError as exc:
            results.append(str(exc))
        else:
            results.append((context.epoch, context.ts))
    return results


@given(stamps=syslog_stamps(), zone=st.sampled_from(["UTC", "Europe/Berlin", "Asia/Kathmandu"]))
def test_known_minutes_read_as_the_long_way_reads_them(stamps: list[str], zone: str) -> None:
    shortcut = read_all(EnvelopeReader(timezone=zone, year=2025), stamps, long_way=False)
    assert shortcut == read_all(EnvelopeReader(timezone=zone, year=2025), stamps, long_way=True)


def test_a_known_minute_is_remembered_for_the_streams_year_only() -> None:
    reader = EnvelopeReader(year=2025)
    first = reader.read("Dec 31 23:59:01 mx prog: a", ORIGIN)
    assert reader._year_minutes  # the shortcut is in use
    assert reader.read("Dec 31 23:59:02 mx prog: b", ORIGIN).epoch == first.epoch + 1
    new_year = reader.read("Jan  1 00:00:00 mx prog: c", ORIGIN)
    assert new_year.ts == "2026-01-01T00:00:00+00:00"
    late = reader.read("Dec 31 23:59:03 mx prog: d", ORIGIN)
    assert late.ts == "2025-12-31T23:59:03+00:00"


def test_a_known_minute_far_from_the_stream_is_a_late_line() -> None:
    reader = EnvelopeReader(year=2025)
    for line in ["Dec 31 23:59:01", "Aug  1 00:00:00", "Jun 15 00:00:00"]:
        reader.read(f"{line} mx prog: m", ORIGIN)
    # December is more than half a year after June 15th: last year's December
    late = reader.read("Dec 31 23:59:02 mx prog: m", ORIGIN)
    assert late.ts == "2024-12-31T23:59:02+00:00"


def test_records_stay_dataclasses_with_fresh_defaults() -> None:
    assert ParseResult().events is not ParseResult().events
    assert ParseResult(ignored="x") == ParseResult(events=[], ignored="x", error=None)
    assert [f.name for f in dataclasses.fields(LineContext)] == [
        "ts",
        "epoch",
        "host",
        "origin",
        "program",
        "pid",
        "message",
    ]
    session = SmtpdSession(client_ip="192.0.2.1")
    assert (session.tls_state, session.user, session.failures, session.hold_pending) == (
        "none",
        None,
        0,
        False,
    )
    queued = QueuedMessage(user="u", client_ip=None, tls=None, protocol="smtp", sender="s")
    assert (queued.notice_of, queued.notice_kind, queued.queued_before) == (None, None, False)
