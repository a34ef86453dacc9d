"""Split a raw log line into its envelope: time, host, program, pid and message.

Formats understood (checked in this order, by their first character):

- systemd journal JSON (``journalctl -o json``): ``{"__REALTIME_TIMESTAMP": ...}``;
  ``MESSAGE`` may be a string or an array of byte values;
- daemontools TAI64N: ``@4000000063a1b2c3xxxxxxxx prog: msg``;
- RFC 5424: ``<34>1 2026-11-27T05:43:00.123Z host app procid msgid [sd] msg``;
- ISO-8601 stamps as written by rsyslog's high-precision template,
  ``2026-11-27T05:43:00.123456+01:00 host prog[pid]: msg``, and the
  ``2026-11-27 05:43:00 prog: msg`` form of Dovecot's ``log_timestamp``;
- Roundcube's own log: ``[22-Jan-2013 22:28:21 +0200]: msg``;
- RFC 3164: ``Nov 27 05:43:00 host prog[pid]: msg``, also without a host
  (Dovecot's own log file: ``Nov 27 05:44:33 imap-login: Info: ...``), with a
  one- or two-digit day and an optional ``<PRI>`` prefix.

RFC 3164 stamps carry no year. The year comes from ``year=``, else from the
caller's clock (``now=``), else from an earlier line with a full date, for the
first such line; then it follows the stream: a stamp
more than half a year before the previous event time is in the next year (a
new-year rollover), one more than half a year after it is in the previous year
(a late line). Naive stamps are in the configured time zone.

This module is pure: it never reads the wall clock; ``now`` is the caller's.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

import orjson

from models.events import Origin, iso_utc
from parsers.result import LineContext

_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}
_HALF_YEAR: Final = 183 * 86400.0
_ONE_DAY: Final = 86400.0
# TAI64 labels count from 2**62; daemontools writes Unix time + 10 s (it ignores
# leap seconds), so that is what we take off.
_TAI64_BASE: Final = 2**62
_TAI64_OFFSET: Final = 10
_STAMP_CACHE_LIMIT: Final = 4096
_TWO_DIGITS: Final = tuple(f"{number:02d}" for number in range(60))  # seconds, "00" to "59"
# what datetime can show: 0001-01-01T00:00:00Z up to the end of 9999
_FIRST_EPOCH: Final = -62135596800.0
_LAST_EPOCH: Final = 253402300799.0  # the last whole second of 9999


class EnvelopeError(ValueError):
    """The line has no envelope this module understands."""


class EnvelopeReader:
    """Turns lines into envelopes; keeps the stream's year and a small stamp cache."""

    def __init__(
        self,
        timezone: str = "UTC",
        year: int | None = None,
        now: float | None = None,
        host: str | None = None,
    ):
        try:
            self._zone = ZoneInfo(timezone)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"unknown time zone {timezone!r}") from exc
        self._year = year
        self._now = now
        self._last_epoch: float | None = None
        self._host = host
        # stamp text -> (epoch, ISO text); most lines share their second with the previous
        # one. RFC 3164 stamps have their own map: their meaning follows the stream's year.
        self._syslog_stamps: dict[str, tuple[float, str]] = {}
        self._stamp_cache: dict[str, tuple[float, str]] = {}
        # (year, month, day, hour, minute) in the configured zone -> epoch of its first
        # second, or None when the zone's offset changes within that minute
        self._minute_epochs: dict[tuple[int, int, int, int, int], float | None] = {}
        # RFC 3164 minute text ("Nov 27 05:43") -> epoch of its first second in the
        # stream's year; emptied when that year changes
        self._year_minutes: dict[str, float] = {}
        # epoch of a UTC minute -> its ISO text up to the seconds, "2026-11-27T05:43:"
        self._utc_minutes: dict[float, str] = {}
        # "host prog[pid]" -> (host, program, pid); "host prog" -> (host, program)
        self._tag_cache: dict[str, tuple[str | None, str, str | None]] = {}
        self._tag_heads: dict[str, tuple[str | None, str]] = {}

    @property
    def last_epoch(self) -> float | None:
        return self._last_epoch

    def read(self, line: str, origin: Origin) -> LineContext:
        """Split ``line``; raise :class:`EnvelopeError` with a short reason when it cannot."""
        # The common case: a syslog line whose second was seen lately. Only valid
        # stamps are in the map, so a hit on the first 15 characters is the full
        # RFC 3164 stamp; anything else takes the long way.
        stamp = self._syslog_stamps.get(line[:15])
        if stamp is not None:
            last = self._last_epoch
            epoch = stamp[0]
            if last is None or last - _HALF_YEAR <= epoch <= last + _HALF_YEAR:
                tag_end = line.find(": ", 16)
                if tag_end > 0:
                    context = self._tagged_at(line, 16, tag_end, stamp, origin)
                else:
                    context = self._tagged(line, 16, stamp, origin)
                self._last_epoch = epoch
                return context
        return self._read_any(line, origin)

    def _read_any(self, line: str, origin: Origin) -> LineContext:
        first = line[:1]
        if "A" <= first <= "Z":
            context = self._rfc3164(line, 0, origin)
        elif first == "{":
            context = self._journal(line, origin)
        elif first == "@":
            context = self._tai64(line, origin)
        elif first == "<":
            context = self._with_priority(line, origin)
        elif first.isdigit():
            context = self._iso(line, 0, origin)
        elif first == "[":
            context = self._bracketed(line, origin)
        elif not first:
            raise EnvelopeError("empty line")
        else:
            raise EnvelopeError("no timestamp")
        self._last_epoch = context.epoch
        return context

    # -- formats -----------------------------------------------------------

    def _rfc3164(self, line: str, offset: int, origin: Origin) -> LineContext:
        # "Nov 27 05:43:00 " or "Nov  7 05:43:00 " or "Nov 7 05:43:00 "
        if line[offset + 9 : offset + 10] == ":" and line[offset + 12 : offset + 13] == ":":
            end = offset + 15
        elif line[offset + 8 : offset + 9] == ":" and line[offset + 11 : offset + 12] == ":":
            end = offset + 14  # one-digit day without padding
        else:
            raise EnvelopeError("no timestamp")
        stamp = line[offset:end]
        cached = self._syslog_stamps.get(stamp)
        last = self._last_epoch
        if cached is None or (
            last is not None and not last - _HALF_YEAR <= cached[0] <= last + _HALF_YEAR
        ):
            cached = self._rfc3164_stamp(stamp)
        return self._tagged(line, end + 1, cached, origin)

    def _rfc3164_stamp(self, stamp: str) -> tuple[float, str]:
        epoch = self._rfc3164_epoch(stamp)
        if len(self._syslog_stamps) >= _STAMP_CACHE_LIMIT:
            self._syslog_stamps.clear()
        entry = (epoch, self._utc_text(epoch))
        self._syslog_stamps[stamp] = entry
        return entry

    def _remember(self, stamp: str, epoch: float) -> tuple[float, str]:
        if len(self._stamp_cache) >= _STAMP_CACHE_LIMIT:
            self._stamp_cache.clear()
        entry = (epoch, _iso_text(epoch))
        self._stamp_cache[stamp] = entry
        return entry

    def _utc_text(self, epoch: float) -> str:
        """``iso_utc(epoch)``; for a whole second, from the cached text of its minute."""
        if epoch % 1.0 != 0.0:
            return _iso_text(epoch)
        minute_start = epoch - epoch % 60
        prefix = self._utc_minutes.get(minute_start)
        if prefix is None:
            prefix = _iso_text(minute_start)[:-8]  # drop "00+00:00"
            if len(self._utc_minutes) >= _STAMP_CACHE_LIMIT:
                self._utc_minutes.clear()
            self._utc_minutes[minute_start] = prefix
        return f"{prefix}{_TWO_DIGITS[int(epoch - minute_start)]}+00:00"

    def _rfc3164_epoch(self, stamp: str) -> float:
        known = self._epoch_in_known_minute(stamp)
        if known is not None:
            return known
        month = _MONTHS.get(stamp[:3])
        if month is None or stamp[3] != " ":
            raise EnvelopeError("no timestamp")
        try:
            day = int(stamp[4:6])
            hour, minute, second = int(stamp[-8:-6]), int(stamp[-5:-3]), int(stamp[-2:])
        except ValueError as exc:
            raise EnvelopeError("bad timestamp") from exc
        year = self._year
        if year is None:
            year = self._initial_year(month, day)
        epoch = self._local_epoch(year, month, day, hour, minute, second)
        last = self._last_epoch
        if last is not None:
            if epoch < last - _HALF_YEAR:
                # new-year rollover: December then January
                self._year = year + 1
                self._syslog_stamps.clear()
                self._year_minutes.clear()
                return self._local_epoch(year + 1, month, day, hour, minute, second)
            if epoch > last + _HALF_YEAR:
                # a late line from the previous year; the stream's year stays
                return self._local_epoch(year - 1, month, day, hour, minute, second)
        self._year = year
        # the next stamps of this minute take _epoch_in_known_minute
        start = self._minute_epochs.get((year, month, day, hour, minute))
        if start is not None:
            if len(self._year_minutes) >= _STAMP_CACHE_LIMIT:
                self._year_minutes.clear()
            self._year_minutes[stamp[:-3]] = start
        return epoch

    def _epoch_in_known_minute(self, stamp: str) -> float | None:
        """What :meth:`_rfc3164_epoch` gives for a stamp whose minute was read before.

        None when the minute is new, or when the stamp is far enough from the
        previous one to need the year decisions of the long way.
        """
        start = self._year_minutes.get(stamp[:-3])
        if start is None:
            return None
        try:
            second = int(stamp[-2:])
        except ValueError as exc:
            raise EnvelopeError("bad timestamp") from exc
        if not 0 <= second <= 59:
            return None
        epoch = start + second
        last = self._last_epoch
        if last is not None and not last - _HALF_YEAR <= epoch <= last + _HALF_YEAR:
            return None
        return epoch

    def _initial_year(self, month: int, day: int) -> int:
        reference = self._now if self._now is not None else self._last_epoch
        if reference is None:
            raise EnvelopeError("year unknown: pass year= or now= to the parser")
        today = datetime.fromtimestamp(reference, tz=self._zone)
        year = today.year
        # a stamp more than a day ahead of the caller's clock belongs to last year
        try:
            candidate = datetime(year, month, day, tzinfo=self._zone)
        except ValueError:
            return year - 1
        if candidate - today > timedelta(days=1):
            return year - 1
        return year

    def _local_epoch(
        self, year: int, month: int, day: int, hour: int, minute: int, second: int
    ) -> float:
        key = (year, month, day, hour, minute)
        start = self._minute_epochs.get(key)
        if start is None and key not in self._minute_epochs:
            start = self._minute_start(key)
        if start is not None and 0 <= second <= 59:
            return start + second
        try:
            moment = datetime(year, month, day, hour, minute, second, tzinfo=self._zone)
        except ValueError as exc:
            raise EnvelopeError("bad timestamp") from exc
        return moment.timestamp()

    def _minute_start(self, key: tuple[int, int, int, int, int]) -> float | None:
        """The epoch of the minute's first second, None if the zone's offset changes in it."""
        try:
            first = datetime(*key, 0, tzinfo=self._zone)
            last = datetime(*key, 59, tzinfo=self._zone)
        except ValueError as exc:
            raise EnvelopeError("bad timestamp") from exc
        start = first.timestamp() if first.utcoffset() == last.utcoffset() else None
        if len(self._minute_epochs) >= _STAMP_CACHE_LIMIT:
            self._minute_epochs.clear()
        self._minute_epochs[key] = start
        return start

    def _iso(self, line: str, offset: int, origin: Origin) -> LineContext:
        space = line.find(" ", offset)
        if space < offset + 10:
            raise EnvelopeError("no timestamp")
        stamp = line[offset:space]
        if len(stamp) == 10 and line[space + 3 : space + 4] == ":":
            # "2026-11-27 05:43:00 prog: msg" (Dovecot log_timestamp, exim)
            second_space = line.find(" ", space + 1)
            if second_space < 0:
                raise EnvelopeError("no message")
            stamp = line[offset:second_space]
            space = second_space
        cached = self._stamp_cache.get(stamp)
        if cached is None:
            cached = self._remember(stamp, self._iso_epoch(stamp.replace(" ", "T")))
        return self._tagged(line, space + 1, cached, origin)

    def _iso_epoch(self, stamp: str) -> float:
        text = stamp[:-1] + "+00:00" if stamp.endswith("Z") else stamp
        text = text.replace(",", ".", 1)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as exc:
            raise EnvelopeError("bad timestamp") from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self._zone)
        return moment.timestamp()

    def _bracketed(self, line: str, origin: Origin) -> LineContext:
        """Roundcube's own log: ``[22-Jan-2013 22:28:21 +0200]: message``."""
        close = line.find("]: ")
        if close < 0:
            raise EnvelopeError("no timestamp")
        stamp = line[1:close]
        cached = self._stamp_cache.get(stamp)
        if cached is None:
            try:
                moment = datetime.strptime(stamp, "%d-%b-%Y %H:%M:%S %z")
            except ValueError:
                try:
                    moment = datetime.strptime(stamp, "%d-%b-%Y %H:%M:%S").replace(
                        tzinfo=self._zone
                    )
                except ValueError as exc:
                    raise EnvelopeError("bad timestamp") from exc
            cached = self._remember(stamp, moment.timestamp())
        return LineContext(
            cached[1], cached[0], self._host, origin, "roundcube", None, line[close + 3 :]
        )

    def _with_priority(self, line: str, origin: Origin) -> LineContext:
        close = line.find(">", 1, 5)
        if close < 0 or not line[1:close].isdigit():
            raise EnvelopeError("bad priority")
        start = close + 1
        if line.startswith("1 ", start):
            return self._rfc5424(line[start + 2 :], origin)
        if line[start : start + 1].isdigit():
            return self._iso(line, start, origin)
        return self._rfc3164(line, start, origin)

    def _rfc5424(self, text: str, origin: Origin) -> LineContext:
        parts = text.split(" ", 5)
        if len(parts) < 6:
            raise EnvelopeError("short RFC 5424 header")
        stamp, host, app, procid, _msgid, rest = parts
        if stamp == "-":
            raise EnvelopeError("RFC 5424 line without a timestamp")
        epoch = self._iso_epoch(stamp)
        message = _skip_structured_data(rest)
        if message.startswith("\ufeff"):
            message = message[1:]
        return LineContext(
            _iso_text(epoch),
            epoch,
            self._host or (None if host == "-" else host),
            origin,
            "" if app == "-" else app,
            None if procid == "-" else procid,
            message,
        )

    def _tai64(self, line: str, origin: Origin) -> LineContext:
        label = line[:25]
        if len(label) != 25 or line[25:26] != " ":
            raise EnvelopeError("bad TAI64N label")
        try:
            seconds = int(label[1:17], 16) - _TAI64_BASE - _TAI64_OFFSET
            nanos = int(label[17:25], 16)
        except ValueError as exc:
            raise EnvelopeError("bad TAI64N label") from exc
        epoch = seconds + nanos / 1e9
        return self._tagged(line, 26, (epoch, _iso_text(epoch)), origin)

    def _journal(self, line: str, origin: Origin) -> LineContext:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise EnvelopeError("bad journal JSON") from exc
        if not isinstance(record, dict):
            raise EnvelopeError("journal record is not an object")
        try:
            epoch = int(record["__REALTIME_TIMESTAMP"]) / 1e6
        except (KeyError, TypeError, ValueError) as exc:
            raise EnvelopeError("journal record without __REALTIME_TIMESTAMP") from exc
        message = record.get("MESSAGE")
        if isinstance(message, list):
            try:
                message = bytes(message).decode("utf-8", "replace")
            except (TypeError, ValueError) as exc:
                raise EnvelopeError("journal MESSAGE is not a byte array") from exc
        if not isinstance(message, str):
            raise EnvelopeError("journal record without MESSAGE")
        host = record.get("_HOSTNAME")
        program = record.get("SYSLOG_IDENTIFIER") or record.get("_COMM") or ""
        pid = record.get("SYSLOG_PID") or record.get("_PID")
        return LineContext(
            _iso_text(epoch),
            epoch,
            self._host or (host if isinstance(host, str) else None),
            origin,
            program if isinstance(program, str) else "",
            str(pid) if pid is not None else None,
            message.rstrip("\r\n"),
        )

    # -- the tag: "host prog[pid]: msg", "prog[pid]: msg" or "prog: msg" ----

    def _tagged(
        self, line: str, start: int, stamp: tuple[float, str], origin: Origin
    ) -> LineContext:
        tag_end = line.find(": ", start)
        if tag_end < 0:
            if not line.endswith(":"):
                raise EnvelopeError("no program tag")
            tag_end = len(line) - 1
        return self._tagged_at(line, start, tag_end, stamp, origin)

    def _tagged_at(
        self, line: str, start: int, tag_end: int, stamp: tuple[float, str], origin: Origin
    ) -> LineContext:
        """The context of a line whose tag is ``line[start:tag_end]``, the message after it."""
        tag = line[start:tag_end]
        parts = self._tag_cache.get(tag)
        if parts is None:
            parts = self._split_new_tag(tag)
            if len(self._tag_cache) >= _STAMP_CACHE_LIMIT:
                self._tag_cache.clear()
            self._tag_cache[tag] = parts
        return LineContext(
            stamp[1],
            stamp[0],
            self._host or parts[0],
            origin,
            parts[1],
            parts[2],
            line[tag_end + 2 :],
        )

    def _split_new_tag(self, tag: str) -> tuple[str | None, str, str | None]:
        """:func:`_split_tag`, reusing the split of ``host program`` when only the pid is new."""
        if not tag.endswith("]"):
            return _split_tag(tag)
        open_bracket = tag.rfind("[")
        pid = tag[open_bracket + 1 : -1]
        if open_bracket <= 0 or not pid.isdigit():
            return _split_tag(tag)
        head = tag[:open_bracket]
        known = self._tag_heads.get(head)
        if known is None:
            host, program = _split_host(head)
            if not program or "(" in program:
                return _split_tag(tag)  # not a "program[pid]" tag
            if host is not None and " " in program:
                raise EnvelopeError("no program tag")
            known = (host, program)
            if len(self._tag_heads) >= _STAMP_CACHE_LIMIT:
                self._tag_heads.clear()
            self._tag_heads[head] = known
        return known[0], known[1], pid


def _iso_text(epoch: float) -> str:
    """``iso_utc(epoch)``; an instant outside the years 1 to 9999 is an envelope error."""
    if not _FIRST_EPOCH <= epoch <= _LAST_EPOCH:
        raise EnvelopeError("timestamp out of range")
    return iso_utc(epoch)


def _split_tag(tag: str) -> tuple[str | None, str, str | None]:
    """``mail postfix/smtpd[12]`` -> (``mail``, ``postfix/smtpd``, ``12``).

    Without a host field (Dovecot's own log file, multilog) the tag is the
    program alone: ``imap-login``, ``auth-worker(80180)``, ``imap(u)<1><s>``.
    """
    host, program_tag = _split_host(tag)
    if host is not None and (not program_tag or " " in program_tag):
        raise EnvelopeError("no program tag")
    program, pid = _program_pid(program_tag)
    return host, program, pid


def _split_host(tag: str) -> tuple[str | None, str]:
    """``mail postfix/smtpd[12]`` -> (``mail``, ``postfix/smtpd[12]``); no host: (None, tag)."""
    space = tag.find(" ")
    if space < 0 or "(" in tag[:space]:
        return None, tag
    return tag[:space], tag[space + 1 :]


def _program_pid(tag: str) -> tuple[str, str | None]:
    """``postfix/smtpd[123]`` -> (``postfix/smtpd``, ``123``); other tags are kept whole.

    A tag with ``(`` is a Dovecot process prefix (``auth(user,ip,...)``) whose
    brackets may belong to the user name: it is kept whole.
    """
    if tag.endswith("]") and "(" not in tag:
        open_bracket = tag.rfind("[")
        if open_bracket > 0 and tag[open_bracket + 1 : -1].isdigit():
            return tag[:open_bracket], tag[open_bracket + 1 : -1]
    return tag, None


def _skip_structured_data(text: str) -> str:
    """Drop RFC 5424 STRUCTURED-DATA (``-`` or ``[id k="v"]...``) and return the message."""
    if text.startswith("- "):
        return text[2:]
    if text == "-":
        return ""
    position = 0
    length = len(text)
    while position < length and text[position] == "[":
        position += 1
        in_quotes = False
        while position < length:
            char = text[position]
            if char == "\\" and in_quotes:
                position += 2
                continue
            if char == '"':
                in_quotes = not in_quotes
            elif char == "]" and not in_quotes:
                position += 1
                break
            position += 1
    return text[position:].removeprefix(" ")
