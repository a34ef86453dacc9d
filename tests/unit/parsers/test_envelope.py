"""Envelope formats, year inference and time zones (parsers/envelope.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from models.events import Origin
from parsers.envelope import EnvelopeError, EnvelopeReader

ORIGIN = Origin("test.log", 1)


def epoch(year: int, month: int, day: int, hour: int, minute: int, second: int) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def read(line: str, **options: object) -> tuple[float, str | None, str, str | None, str]:
    context = EnvelopeReader(**options).read(line, ORIGIN)  # type: ignore[arg-type]
    return context.epoch, context.host, context.program, context.pid, context.message


def test_rfc3164_with_host_and_pid() -> None:
    line = "Nov 27 05:43:00 mail postfix/submission/smtpd[17022]: connect from x[1.2.3.4]"
    assert read(line, year=2026) == (
        epoch(2026, 11, 27, 5, 43, 0),
        "mail",
        "postfix/submission/smtpd",
        "17022",
        "connect from x[1.2.3.4]",
    )


@pytest.mark.parametrize("stamp", ["Feb  7 15:10:42", "Feb 7 15:10:42", "Feb 07 15:10:42"])
def test_rfc3164_day_forms(stamp: str) -> None:
    assert read(f"{stamp} h prog: m", year=2026)[0] == epoch(2026, 2, 7, 15, 10, 42)


def test_dovecot_file_form_has_no_host() -> None:
    line = "Nov 27 05:44:32 imap(alice@x.test)<17745><sKHn/AAAp>: Info: Disconnected: Logged out"
    assert read(line, year=2026)[1:] == (
        None,
        "imap(alice@x.test)<17745><sKHn/AAAp>",
        None,
        "Info: Disconnected: Logged out",
    )


def test_configured_host_overrides_the_line() -> None:
    assert read("Nov 27 05:44:32 imap-login: Info: x", year=2026, host="mx9")[1] == "mx9"


def test_iso_high_precision_with_offset() -> None:
    line = "2024-12-31T06:56:17.784598+01:00 mail dovecot: auth: x"
    assert read(line) == (
        epoch(2024, 12, 31, 5, 56, 17) + 0.784598,
        "mail",
        "dovecot",
        None,
        "auth: x",
    )


def test_iso_date_space_time_uses_the_configured_zone() -> None:
    line = "2013-08-11 03:56:40 auth-worker(default): Info: pam(u,1.2.3.4): unknown user"
    got = read(line, timezone="Europe/Paris")
    assert got[0] == epoch(2013, 8, 11, 1, 56, 40)  # CEST is UTC+2
    assert got[2] == "auth-worker(default)"


def test_naive_syslog_stamp_uses_the_configured_zone() -> None:
    got = read("Jan 10 12:00:00 h prog: m", year=2026, timezone="America/New_York")
    assert got[0] == epoch(2026, 1, 10, 17, 0, 0)


def test_rfc5424() -> None:
    line = '<34>1 2026-11-27T05:43:00.003Z mail postfix/smtpd 4242 - [meta x="a]b"] connect from'
    assert read(line) == (
        epoch(2026, 11, 27, 5, 43, 0) + 0.003,
        "mail",
        "postfix/smtpd",
        "4242",
        "connect from",
    )


def test_priority_prefix_on_rfc3164() -> None:
    assert read("<22>Nov 27 05:43:00 mail prog[1]: m", year=2026)[2:] == ("prog", "1", "m")


def test_tai64n() -> None:
    line = "@400000004c91b044077a9e94 imap-login: Info: Aborted login"
    got = read(line)
    assert int(got[0]) == 0x4C91B044 - 10
    assert got[2:] == ("imap-login", None, "Info: Aborted login")


@pytest.mark.parametrize("message", ["connect from x[1.2.3.4]", list(b"connect from x[1.2.3.4]")])
def test_journal_json(message: object) -> None:
    record = {
        "__REALTIME_TIMESTAMP": "1795758180000000",
        "_HOSTNAME": "mail",
        "SYSLOG_IDENTIFIER": "postfix/smtpd",
        "_PID": "99",
        "MESSAGE": message,
    }
    assert read(orjson.dumps(record).decode()) == (
        1795758180.0,
        "mail",
        "postfix/smtpd",
        "99",
        "connect from x[1.2.3.4]",
    )


def test_roundcube_own_log() -> None:
    got = read("[22-Jan-2013 22:28:21 +0200]: FAILED login for user1 from 192.0.43.10")
    assert got == (
        epoch(2013, 1, 22, 20, 28, 21),
        None,
        "roundcube",
        None,
        "FAILED login for user1 from 192.0.43.10",
    )


def test_year_rolls_over_at_new_year() -> None:
    reader = EnvelopeReader(year=2025)
    first = reader.read("Dec 31 23:59:59 h prog: a", ORIGIN)
    second = reader.read("Jan  1 00:00:01 h prog: b", ORIGIN)
    third = reader.read("Jan  1 00:00:01 h prog: c", ORIGIN)  # from the stamp cache
    assert first.epoch == epoch(2025, 12, 31, 23, 59, 59)
    assert second.epoch == epoch(2026, 1, 1, 0, 0, 1)
    assert third.epoch == second.epoch


def test_a_late_line_from_last_year_keeps_the_stream_year() -> None:
    reader = EnvelopeReader(year=2026)
    reader.read("Jan  1 00:00:05 h prog: a", ORIGIN)
    late = reader.read("Dec 31 23:59:58 h prog: b", ORIGIN)
    after = reader.read("Jan  1 00:00:06 h prog: c", ORIGIN)
    assert late.epoch == epoch(2025, 12, 31, 23, 59, 58)
    assert after.epoch == epoch(2026, 1, 1, 0, 0, 6)


def test_year_from_the_callers_clock() -> None:
    now = epoch(2026, 1, 2, 0, 0, 0)
    # a stamp in late December, read on Jan 2nd, is last year's
    assert read("Dec 30 10:00:00 h p: m", now=now)[0] == epoch(2025, 12, 30, 10, 0, 0)
    assert read("Jan  1 10:00:00 h p: m", now=now)[0] == epoch(2026, 1, 1, 10, 0, 0)


def test_year_from_an_earlier_full_date() -> None:
    reader = EnvelopeReader()
    reader.read("2026-03-01T10:00:00Z mail prog: m", ORIGIN)
    assert reader.read("Mar  1 10:00:01 h p: m", ORIGIN).epoch == epoch(2026, 3, 1, 10, 0, 1)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "empty line"),
        ("garbage", "no timestamp"),
        ("Nov 27 05:43:00 mail", "no program tag"),
        ("Feb 30 05:43:00 h p: m", "bad timestamp"),
        ("Nov 27 05:43:00 h p: m", "year unknown: pass year= or now= to the parser"),
        ("{not json", "bad journal JSON"),
    ],
)
def test_errors(line: str, reason: str) -> None:
    options = {} if "year unknown" in reason else {"year": 2026}
    with pytest.raises(EnvelopeError, match=reason.replace("=", ".")):
        EnvelopeReader(**options).read(line, ORIGIN)  # type: ignore[arg-type]


def test_unknown_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        EnvelopeReader(timezone="Mars/Olympus")


@pytest.mark.parametrize(
    "line",
    [
        "@400001004c91b044077a9e94 dovecot: auth: x",  # ~ year 36852
        "@440000004c91b044077a9e94 dovecot: auth: x",  # 2**58 s
        '{"__REALTIME_TIMESTAMP": "99999999999999999999", "MESSAGE": "m"}',
        "<34>1 9999-12-31T23:59:59-01:00 mail app - - - m",  # UTC year 10000
    ],
)
def test_instants_datetime_cannot_show_are_envelope_errors(line: str) -> None:
    with pytest.raises(EnvelopeError, match="timestamp out of range"):
        EnvelopeReader().read(line, ORIGIN)


def test_the_first_and_last_second_datetime_can_show_are_read() -> None:
    first = EnvelopeReader().read("<34>1 0001-01-01T00:00:00Z mail app - - - m", ORIGIN)
    last = EnvelopeReader().read("<34>1 9999-12-31T23:59:59Z mail app - - - m", ORIGIN)
    assert (first.ts, last.ts) == ("0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00")
