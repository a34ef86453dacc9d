"""The parsers' speed-ups give exactly what the plain computation gives.

The envelope caches stamps per second, minute starts per local minute and
program tags per "host program" (parsers/envelope.py); events are built by
position (parsers/result.py); Origin fills its dict directly (models/events.py).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.events import Event, Origin, iso_utc
from parsers.envelope import EnvelopeError, EnvelopeReader, _split_tag
from parsers.result import LineContext, new_event

ORIGIN = Origin("test.log", 1)
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

# (zone, year, month, day, first hour, hours): days with an offset change, one of
# them by 30 minutes, one zone 5:45 off UTC, one with an offset in seconds (LMT).
TRANSITIONS = [
    ("Europe/Berlin", 2026, 3, 29, 0, 4),
    ("Europe/Berlin", 2026, 10, 25, 0, 4),
    ("America/New_York", 2026, 11, 1, 0, 4),
    ("Australia/Lord_Howe", 2026, 4, 5, 0, 4),
    ("Australia/Lord_Howe", 2026, 10, 4, 1, 3),
    ("Asia/Kathmandu", 2026, 6, 1, 0, 2),
    ("Europe/Amsterdam", 1937, 7, 1, 0, 2),
]


@pytest.mark.parametrize(("zone", "year", "month", "day", "hour", "hours"), TRANSITIONS)
def test_syslog_stamps_match_datetime_across_offset_changes(
    zone: str, year: int, month: int, day: int, hour: int, hours: int
) -> None:
    reader = EnvelopeReader(timezone=zone, year=year)
    tzinfo = ZoneInfo(zone)
    moment = datetime(year, month, day, hour)
    end = moment + timedelta(hours=hours)
    while moment < end:
        stamp = f"{MONTHS[moment.month - 1]} {moment.day:2d} {moment:%H:%M:%S}"
        context = reader.read(f"{stamp} mx postfix/smtpd[7]: connect from x[192.0.2.1]", ORIGIN)
        expected = moment.replace(tzinfo=tzinfo).timestamp()
        assert (context.epoch, context.ts) == (expected, iso_utc(expected)), stamp
        moment += timedelta(seconds=17)  # every second of a minute, over four minutes


def test_repeated_stamps_read_the_same() -> None:
    reader = EnvelopeReader(timezone="Europe/Berlin", year=2026)
    lines = [
        "Mar 29 01:59:59 mx postfix/smtpd[7]: a",
        "Mar 29 03:00:00 mx postfix/smtpd[8]: b",
        "Mar 29 01:59:59 mx postfix/smtpd[7]: c",
        "Mar 29 03:00:00 mx postfix/smtpd[9]: d",
    ]
    first, second, third, fourth = (reader.read(line, ORIGIN) for line in lines)
    assert first.epoch == third.epoch and first.ts == third.ts
    assert second.epoch == fourth.epoch == first.epoch + 1
    assert fourth.pid == "9" and fourth.message == "d"


def split_or_error(split: object, tag: str) -> object:
    try:
        return split(tag)  # type: ignore[operator]
    except EnvelopeError as exc:
        return ("error", str(exc))


TAG_TEXT = st.text(alphabet=" ()[]<>a1/:-", max_size=14)


@given(head=TAG_TEXT, pid=st.sampled_from(["1", "23", "x", "", "٣"]))
def test_tag_split_by_head_matches_the_plain_split(head: str, pid: str) -> None:
    reader = EnvelopeReader(year=2026)
    tag = f"{head}[{pid}]"
    expected = split_or_error(_split_tag, tag)
    assert split_or_error(reader._split_new_tag, tag) == expected
    # the second time from the cache of heads
    assert split_or_error(reader._split_new_tag, tag) == expected
    assert split_or_error(reader._split_new_tag, f"{head}[9{pid}]") == split_or_error(
        _split_tag, f"{head}[9{pid}]"
    )


def test_new_event_fills_every_field_by_name() -> None:
    context = LineContext("2026-01-01T00:00:00+00:00", 1.5, "mx", ORIGIN, "p", "1", "m")
    values = {
        "outcome": "failure",
        "protocol": "imap",
        "user": "u",
        "client_ip": "192.0.2.1",
        "tls": "TLSv1.3",
        "queue_id": "ABCDEF",
        "sender": "s@x",
        "recipient": "r@x",
        "nrcpt": 2,
        "size": 3,
        "status": "sent",
        "service": "submission",
        "session": "sess",
        "detail": "d",
        "reason": "r",
        "mech": "PLAIN",
        "attempts": 4,
        "extra": {"k": "v"},
    }
    built = new_event(context, "dovecot", "auth", **values)  # type: ignore[arg-type]
    expected = Event(
        ts=context.ts,
        epoch=context.epoch,
        host=context.host,
        source="dovecot",
        kind="auth",
        origin=ORIGIN,
        **values,  # type: ignore[arg-type]
    )
    assert built == expected
    assert orjson.dumps(built) == orjson.dumps(expected)
    assert new_event(context, "postfix", "connect").extra == {}
    assert (
        new_event(context, "postfix", "connect").extra
        is not new_event(context, "postfix", "connect").extra
    )


def test_origin_stays_a_frozen_hashable_dataclass() -> None:
    origin = Origin("a.log", 3, offset=9)
    assert origin == Origin(path="a.log", line=3, host=None, offset=9)
    assert hash(origin) == hash(Origin("a.log", 3, None, 9))
    assert orjson.dumps(origin) == b'{"path":"a.log","line":3,"host":null,"offset":9}'
    assert dataclasses.replace(origin, line=4).line == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        origin.line = 5  # type: ignore[misc]
