//! Split a raw log line into its envelope: time, host, program, pid and message
//! (`parsers/envelope.py`, with `iso_utc` of `models/events.py`).
//!
//! Formats understood (checked in this order, by their first character): systemd
//! journal JSON (`MESSAGE` a string or an array of byte values); daemontools
//! TAI64N; RFC 5424; ISO-8601 stamps (rsyslog's high-precision template and the
//! `2026-11-27 05:43:00 prog: msg` form of Dovecot's `log_timestamp`); Roundcube's
//! own log `[22-Jan-2013 22:28:21 +0200]: msg`; RFC 3164, with or without a host,
//! with a one- or two-digit day and an optional `<PRI>` prefix.
//!
//! RFC 3164 stamps carry no year. The year comes from `year`, else from the
//! caller's clock (`now`), else from an earlier line with a full date; then it
//! follows the stream: a stamp more than half a year before the previous event
//! time is in the next year (a new-year rollover), one more than half a year after
//! it is in the previous year (a late line). Naive stamps are in the configured
//! zone, read as Python's `datetime(..., tzinfo=ZoneInfo(zone))` does (fold=0: the
//! offset before a transition, in a gap as in a fold). This module never reads the
//! wall clock; `now` is the caller's.
//!
//! The Python reference leans on library behaviour that Rust's standard library
//! does differently, reproduced here to the byte: `int()` (Unicode digits, `_`,
//! whitespace, signs), `str.isdigit()`, CPython 3.11's C `datetime.fromisoformat`,
//! `datetime.strptime`, orjson's JSON grammar and nesting limit, `str()`/`repr()`
//! of JSON values, and the float arithmetic of `timestamp()`/`fromtimestamp()`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::rc::Rc;

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;
use serde_json::{Map, Number, Value};

use crate::pytext::{self, char_len, is_digit, is_digit_char, is_space};
use crate::result::{LineContext, Origin};

type FastMap<K, V> = HashMap<K, V, hashlink::DefaultHashBuilder>;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const HALF_YEAR: f64 = 183.0 * 86400.0;
// TAI64 labels count from 2**62; daemontools writes Unix time + 10 s (it ignores
// leap seconds), so that is what we take off.
const TAI64_BASE: i128 = 1 << 62;
const TAI64_OFFSET: i128 = 10;
const STAMP_CACHE_LIMIT: usize = 4096;
// what datetime can show: 0001-01-01T00:00:00Z up to the end of 9999
const FIRST_EPOCH: f64 = -62135596800.0;
const LAST_EPOCH: f64 = 253402300799.0; // the last whole second of 9999
/// Where `zoneinfo.ZoneInfo` looks for TZif files (this Python build's TZPATH).
const TZPATH: [&str; 4] = [
    "/usr/share/zoneinfo",
    "/usr/lib/zoneinfo",
    "/usr/share/lib/zoneinfo",
    "/etc/zoneinfo",
];
const US_PER_SECOND: i64 = 1_000_000;
const US_PER_DAY: i64 = 86_400 * US_PER_SECOND;

/// (epoch, ISO text) of a stamp.
type Stamp = (f64, Rc<str>);
/// (host, program, pid) of a tag.
type Tag = (Option<Rc<str>>, Rc<str>, Option<Rc<str>>);
/// (year, month, day, hour, minute) in the configured zone.
type MinuteKey = (i64, i64, i64, i64, i64);

/// The line has no envelope this module understands (the message is Python's `str(exc)`).
#[derive(Debug, Clone, PartialEq)]
pub struct EnvelopeError(pub String);

fn err(reason: &str) -> EnvelopeError {
    EnvelopeError(reason.to_owned())
}

/// An exception of Python's that is not an `EnvelopeError` (it escapes `read`), given
/// as the reason `parsers/api.py` makes of it.
fn internal(kind: &str, text: &str) -> EnvelopeError {
    EnvelopeError(format!("internal parser error ({kind}: {text})"))
}

/// Turns lines into envelopes; keeps the stream's year and small stamp caches.
pub struct EnvelopeReader {
    zone: TimeZone,
    year: Option<i64>,
    now: Option<f64>,
    last_epoch: Option<f64>,
    host: Option<Rc<str>>,
    roundcube: Rc<str>,
    // stamp text -> (epoch, ISO text); most lines share their second with the previous
    // one. RFC 3164 stamps have their own map: their meaning follows the stream's year,
    // so what it holds is observable and it is kept exactly as Python keeps it.
    syslog_stamps: FastMap<String, Stamp>,
    stamp_cache: FastMap<String, Stamp>,
    // minute in the configured zone -> epoch of its first second, or None when the
    // zone's offset changes within that minute
    minute_epochs: FastMap<MinuteKey, Option<f64>>,
    // RFC 3164 minute text ("Nov 27 05:43") -> epoch of its first second in the
    // stream's year; emptied when that year changes
    year_minutes: FastMap<String, f64>,
    // "host prog[pid]" -> (host, program, pid); "host prog" -> (host, program)
    tag_cache: FastMap<String, Tag>,
    tag_heads: FastMap<String, (Option<Rc<str>>, Rc<str>)>,
}

impl EnvelopeReader {
    /// Err(message) where Python raises ValueError (unknown time zone).
    pub fn new(
        timezone: &str,
        year: Option<i64>,
        now: Option<f64>,
        host: Option<&str>,
    ) -> Result<Self, String> {
        let zone = load_zone(timezone)
            .ok_or_else(|| format!("unknown time zone {}", pytext::repr(timezone)))?;
        Ok(EnvelopeReader {
            zone,
            year,
            now,
            last_epoch: None,
            host: host.map(Rc::from),
            roundcube: Rc::from("roundcube"),
            syslog_stamps: FastMap::default(),
            stamp_cache: FastMap::default(),
            minute_epochs: FastMap::default(),
            year_minutes: FastMap::default(),
            tag_cache: FastMap::default(),
            tag_heads: FastMap::default(),
        })
    }

    pub fn last_epoch(&self) -> Option<f64> {
        self.last_epoch
    }

    /// Split `line`; Err with a short reason when it cannot.
    pub fn read(&mut self, line: &str, origin: Rc<Origin>) -> Result<LineContext, EnvelopeError> {
        // The common case: a syslog line whose second was seen lately. Only valid
        // stamps are in the map, so a hit on the first 15 characters is the full
        // RFC 3164 stamp; anything else takes the long way.
        let hit = self.syslog_stamps.get(prefix(line, 15)).cloned();
        if let Some(stamp) = hit {
            let epoch = stamp.0;
            if within_half_year(self.last_epoch, epoch) {
                let start = char_pos(line, 16);
                let context = match find_from(line, ": ", start) {
                    Some(tag_end) => self.tagged_at(line, start, tag_end, &stamp, origin)?,
                    None => self.tagged(line, start, &stamp, origin)?,
                };
                self.last_epoch = Some(epoch);
                return Ok(context);
            }
        }
        self.read_any(line, origin)
    }

    fn read_any(&mut self, line: &str, origin: Rc<Origin>) -> Result<LineContext, EnvelopeError> {
        let context = match line.chars().next() {
            Some('A'..='Z') => self.rfc3164(line, 0, origin)?,
            Some('{') => self.journal(line, origin)?,
            Some('@') => self.tai64(line, origin)?,
            Some('<') => self.with_priority(line, origin)?,
            Some(first) if is_digit_char(first) => self.iso(line, 0, origin)?,
            Some('[') => self.bracketed(line, origin)?,
            None => return Err(err("empty line")),
            Some(_) => return Err(err("no timestamp")),
        };
        self.last_epoch = Some(context.epoch);
        Ok(context)
    }

    /// `self._host or other`: the configured host unless it is empty.
    fn host_or(&self, other: Option<Rc<str>>) -> Option<Rc<str>> {
        match &self.host {
            Some(host) if !host.is_empty() => Some(host.clone()),
            _ => other,
        }
    }

    // -- formats -----------------------------------------------------------

    /// `offset` is a byte offset (after a `<PRI>` prefix); positions in the stamp
    /// count characters, as Python does.
    fn rfc3164(
        &mut self,
        line: &str,
        offset: usize,
        origin: Rc<Origin>,
    ) -> Result<LineContext, EnvelopeError> {
        // "Nov 27 05:43:00 " or "Nov  7 05:43:00 " or "Nov 7 05:43:00 "
        let rest = &line[offset..];
        let end = if char_at(rest, 9) == Some(':') && char_at(rest, 12) == Some(':') {
            15
        } else if char_at(rest, 8) == Some(':') && char_at(rest, 11) == Some(':') {
            14 // one-digit day without padding
        } else {
            return Err(err("no timestamp"));
        };
        let stamp = prefix(rest, end);
        let last = self.last_epoch;
        let hit = self
            .syslog_stamps
            .get(stamp)
            .filter(|entry| within_half_year(last, entry.0))
            .cloned();
        let cached = match hit {
            Some(entry) => entry,
            None => self.rfc3164_stamp(stamp)?,
        };
        // the tag starts one character after the stamp (Python: `end + 1`)
        let after = offset + stamp.len();
        let start = after + line[after..].chars().next().map_or(0, char::len_utf8);
        self.tagged(line, start, &cached, origin)
    }

    fn rfc3164_stamp(&mut self, stamp: &str) -> Result<Stamp, EnvelopeError> {
        let epoch = self.rfc3164_epoch(stamp)?;
        if self.syslog_stamps.len() >= STAMP_CACHE_LIMIT {
            self.syslog_stamps.clear();
        }
        let entry: Stamp = (epoch, self.utc_text(epoch)?.into());
        self.syslog_stamps.insert(stamp.to_owned(), entry.clone());
        Ok(entry)
    }

    fn remember(&mut self, stamp: &str, epoch: f64) -> Result<Stamp, EnvelopeError> {
        if self.stamp_cache.len() >= STAMP_CACHE_LIMIT {
            self.stamp_cache.clear();
        }
        let entry: Stamp = (epoch, iso_text(epoch)?.into());
        self.stamp_cache.insert(stamp.to_owned(), entry.clone());
        Ok(entry)
    }

    /// `iso_utc(epoch)`. Python builds whole seconds from a cached text of their
    /// minute; that gives the same text and the same range error, so Rust does not.
    fn utc_text(&self, epoch: f64) -> Result<String, EnvelopeError> {
        iso_text(epoch)
    }

    fn rfc3164_epoch(&mut self, stamp: &str) -> Result<f64, EnvelopeError> {
        if let Some(known) = self.epoch_in_known_minute(stamp)? {
            return Ok(known);
        }
        let month = match month_number(prefix(stamp, 3)) {
            Some(month) if char_at(stamp, 3) == Some(' ') => month,
            _ => return Err(err("no timestamp")),
        };
        let n = char_len(stamp);
        let field = |start: usize, end: usize| small_int(chars_between(stamp, start, end), 10);
        let (Some(day), Some(hour), Some(minute), Some(second)) = (
            field(4, 6),
            field(n.saturating_sub(8), n.saturating_sub(6)),
            field(n.saturating_sub(5), n.saturating_sub(3)),
            field(n.saturating_sub(2), n),
        ) else {
            return Err(err("bad timestamp"));
        };
        let year = match self.year {
            Some(year) => year,
            None => self.initial_year(month, day)?,
        };
        let epoch = self.local_epoch(year, month, day, hour, minute, second)?;
        if let Some(last) = self.last_epoch {
            if epoch < last - HALF_YEAR {
                // new-year rollover: December then January
                self.year = Some(year + 1);
                self.syslog_stamps.clear();
                self.year_minutes.clear();
                return self.local_epoch(year + 1, month, day, hour, minute, second);
            }
            if epoch > last + HALF_YEAR {
                // a late line from the previous year; the stream's year stays
                return self.local_epoch(year - 1, month, day, hour, minute, second);
            }
        }
        self.year = Some(year);
        // the next stamps of this minute take epoch_in_known_minute
        if let Some(Some(start)) = self
            .minute_epochs
            .get(&(year, month, day, hour, minute))
            .copied()
        {
            if self.year_minutes.len() >= STAMP_CACHE_LIMIT {
                self.year_minutes.clear();
            }
            self.year_minutes
                .insert(prefix(stamp, n.saturating_sub(3)).to_owned(), start);
        }
        Ok(epoch)
    }

    /// What `rfc3164_epoch` gives for a stamp whose minute was read before; None when
    /// the minute is new, or when the stamp is far enough from the previous one to
    /// need the year decisions of the long way.
    fn epoch_in_known_minute(&self, stamp: &str) -> Result<Option<f64>, EnvelopeError> {
        let n = char_len(stamp);
        let Some(&start) = self.year_minutes.get(prefix(stamp, n.saturating_sub(3))) else {
            return Ok(None);
        };
        let second = small_int(chars_between(stamp, n.saturating_sub(2), n), 10)
            .ok_or_else(|| err("bad timestamp"))?;
        if !(0..=59).contains(&second) {
            return Ok(None);
        }
        let epoch = start + second as f64;
        if !within_half_year(self.last_epoch, epoch) {
            return Ok(None);
        }
        Ok(Some(epoch))
    }

    fn initial_year(&self, month: i64, day: i64) -> Result<i64, EnvelopeError> {
        let reference = self
            .now
            .or(self.last_epoch)
            .ok_or_else(|| err("year unknown: pass year= or now= to the parser"))?;
        let today = from_timestamp(&self.zone, reference)?;
        let year = today.year;
        // a stamp more than a day ahead of the caller's clock belongs to last year
        // (aware datetimes of one tzinfo subtract as naive ones)
        if !valid_date(year, month, day) {
            return Ok(year - 1);
        }
        let ahead = (days_from_civil(year, month, day)
            - days_from_civil(year, today.month, today.day))
            * US_PER_DAY
            - today.day_us;
        Ok(if ahead > US_PER_DAY { year - 1 } else { year })
    }

    fn local_epoch(
        &mut self,
        year: i64,
        month: i64,
        day: i64,
        hour: i64,
        minute: i64,
        second: i64,
    ) -> Result<f64, EnvelopeError> {
        let key = (year, month, day, hour, minute);
        let start = match self.minute_epochs.get(&key) {
            Some(&start) => start,
            None => self.minute_start(key)?,
        };
        if let Some(start) = start {
            if (0..=59).contains(&second) {
                return Ok(start + second as f64);
            }
        }
        let local = local_seconds(year, month, day, hour, minute, second)
            .ok_or_else(|| err("bad timestamp"))?;
        Ok((local - self.zone_offset(year, month, day, hour, minute, second)) as f64)
    }

    /// The epoch of the minute's first second, None if the zone's offset changes in it.
    fn minute_start(&mut self, key: MinuteKey) -> Result<Option<f64>, EnvelopeError> {
        let (year, month, day, hour, minute) = key;
        let local =
            local_seconds(year, month, day, hour, minute, 0).ok_or_else(|| err("bad timestamp"))?;
        let first = self.zone_offset(year, month, day, hour, minute, 0);
        let last = self.zone_offset(year, month, day, hour, minute, 59);
        let start = (first == last).then(|| (local - first) as f64);
        if self.minute_epochs.len() >= STAMP_CACHE_LIMIT {
            self.minute_epochs.clear();
        }
        self.minute_epochs.insert(key, start);
        Ok(start)
    }

    /// UTC offset in seconds of a valid local time, as `ZoneInfo.utcoffset` with fold=0.
    fn zone_offset(
        &self,
        year: i64,
        month: i64,
        day: i64,
        hour: i64,
        minute: i64,
        second: i64,
    ) -> i64 {
        let Ok(civil) = DateTime::new(
            year as i16,
            month as i8,
            day as i8,
            hour as i8,
            minute as i8,
            second as i8,
            0,
        ) else {
            return 0; // unreachable: the caller checked the fields
        };
        let offset = match self.zone.to_ambiguous_timestamp(civil).offset() {
            AmbiguousOffset::Unambiguous { offset } => offset,
            // fold=0 takes the offset before the transition, in a gap as in a fold
            AmbiguousOffset::Gap { before, .. } | AmbiguousOffset::Fold { before, .. } => before,
        };
        i64::from(offset.seconds())
    }

    /// `offset` is a byte offset; Python's positions count characters.
    fn iso(
        &mut self,
        line: &str,
        offset: usize,
        origin: Rc<Origin>,
    ) -> Result<LineContext, EnvelopeError> {
        let Some(space) = find_from(line, " ", offset) else {
            return Err(err("no timestamp"));
        };
        let first = &line[offset..space];
        let first_len = char_len(first);
        if first_len < 10 {
            return Err(err("no timestamp"));
        }
        let mut end = space;
        if first_len == 10 && char_at(&line[space..], 3) == Some(':') {
            // "2026-11-27 05:43:00 prog: msg" (Dovecot log_timestamp, exim)
            end = find_from(line, " ", space + 1).ok_or_else(|| err("no message"))?;
        }
        let stamp = &line[offset..end];
        let cached = match self.stamp_cache.get(stamp).cloned() {
            Some(entry) => entry,
            None => {
                let epoch = self.iso_epoch(&stamp.replace(' ', "T"))?;
                self.remember(stamp, epoch)?
            }
        };
        self.tagged(line, end + 1, &cached, origin)
    }

    fn iso_epoch(&self, stamp: &str) -> Result<f64, EnvelopeError> {
        let text = match stamp.strip_suffix('Z') {
            Some(head) => format!("{head}+00:00"),
            None => stamp.to_owned(),
        };
        let text = text.replacen(',', ".", 1);
        let moment = fromisoformat(&text).ok_or_else(|| err("bad timestamp"))?;
        Ok(self.timestamp(&moment))
    }

    /// `datetime.timestamp()`; a naive moment is in the configured zone.
    fn timestamp(&self, moment: &Moment) -> f64 {
        let offset_us = match moment.offset_us {
            Some(offset_us) => offset_us,
            None => {
                let m = moment;
                self.zone_offset(m.year, m.month, m.day, m.hour, m.minute, m.second) * US_PER_SECOND
            }
        };
        seconds_of_us(moment.local_us() - offset_us)
    }

    /// Roundcube's own log: `[22-Jan-2013 22:28:21 +0200]: message`.
    fn bracketed(&mut self, line: &str, origin: Rc<Origin>) -> Result<LineContext, EnvelopeError> {
        let close = line.find("]: ").ok_or_else(|| err("no timestamp"))?;
        let stamp = &line[1..close];
        let cached = match self.stamp_cache.get(stamp).cloned() {
            Some(entry) => entry,
            None => {
                let moment = strptime_roundcube(stamp, true)
                    .or_else(|| strptime_roundcube(stamp, false))
                    .ok_or_else(|| err("bad timestamp"))?;
                let epoch = self.timestamp(&moment);
                self.remember(stamp, epoch)?
            }
        };
        Ok(LineContext {
            ts: cached.1,
            epoch: cached.0,
            host: self.host.clone(),
            origin,
            program: self.roundcube.clone(),
            pid: None,
            message: line[close + 3..].to_owned(),
        })
    }

    fn with_priority(
        &mut self,
        line: &str,
        origin: Rc<Origin>,
    ) -> Result<LineContext, EnvelopeError> {
        // line.find(">", 1, 5)
        let window_end = char_pos(line, 5);
        let close = match line[1..window_end].find('>') {
            Some(at) => 1 + at,
            None => return Err(err("bad priority")),
        };
        if !is_digit(&line[1..close]) {
            return Err(err("bad priority"));
        }
        let start = close + 1;
        if line[start..].starts_with("1 ") {
            return self.rfc5424(&line[start + 2..], origin);
        }
        if line[start..].chars().next().is_some_and(is_digit_char) {
            return self.iso(line, start, origin);
        }
        self.rfc3164(line, start, origin)
    }

    fn rfc5424(&mut self, text: &str, origin: Rc<Origin>) -> Result<LineContext, EnvelopeError> {
        let parts: Vec<&str> = text.splitn(6, ' ').collect();
        let [stamp, host, app, procid, _msgid, rest] = parts[..] else {
            return Err(err("short RFC 5424 header"));
        };
        if stamp == "-" {
            return Err(err("RFC 5424 line without a timestamp"));
        }
        let epoch = self.iso_epoch(stamp)?;
        let message = skip_structured_data(rest);
        let message = message.strip_prefix('\u{feff}').unwrap_or(message);
        Ok(LineContext {
            ts: iso_text(epoch)?.into(),
            epoch,
            host: self.host_or(if host == "-" { None } else { Some(host.into()) }),
            origin,
            program: if app == "-" { "".into() } else { app.into() },
            pid: if procid == "-" {
                None
            } else {
                Some(procid.into())
            },
            message: message.to_owned(),
        })
    }

    fn tai64(&mut self, line: &str, origin: Rc<Origin>) -> Result<LineContext, EnvelopeError> {
        let label = prefix(line, 25);
        if char_len(label) != 25 || !line[label.len()..].starts_with(' ') {
            return Err(err("bad TAI64N label"));
        }
        let hex = |start: usize, end: usize| {
            pytext::int(chars_between(label, start, end), 16)
                .ok()
                .and_then(|value| value.to_i128())
                .ok_or_else(|| err("bad TAI64N label"))
        };
        let seconds = hex(1, 17)? - TAI64_BASE - TAI64_OFFSET;
        let nanos = hex(17, 25)?;
        // int + int / float: each int becomes a (rounded) float first
        let epoch = seconds as f64 + nanos as f64 / 1e9;
        let stamp: Stamp = (epoch, iso_text(epoch)?.into());
        self.tagged(line, label.len() + 1, &stamp, origin)
    }

    fn journal(&self, line: &str, origin: Rc<Origin>) -> Result<LineContext, EnvelopeError> {
        let record = match parse_json(line) {
            Some(Value::Object(record)) => record,
            Some(_) => return Err(err("journal record is not an object")),
            None => return Err(err("bad journal JSON")),
        };
        let epoch = journal_epoch(record.get("__REALTIME_TIMESTAMP"))?;
        let message: Cow<str> = match record.get("MESSAGE") {
            Some(Value::Array(items)) => Cow::Owned(
                byte_array_text(items).ok_or_else(|| err("journal MESSAGE is not a byte array"))?,
            ),
            Some(Value::String(text)) => Cow::Borrowed(text),
            _ => return Err(err("journal record without MESSAGE")),
        };
        let host = match record.get("_HOSTNAME") {
            Some(Value::String(host)) => Some(Rc::from(host.as_str())),
            _ => None,
        };
        // `a or b or ""`, then kept only when a str
        let program = [record.get("SYSLOG_IDENTIFIER"), record.get("_COMM")]
            .into_iter()
            .flatten()
            .find(|value| py_truthy(value));
        let program = match program {
            Some(Value::String(program)) => program.as_str(),
            _ => "",
        };
        let pid = match record.get("SYSLOG_PID") {
            Some(value) if py_truthy(value) => Some(value),
            _ => record.get("_PID"),
        };
        let pid = match pid {
            None | Some(Value::Null) => None,
            Some(value) => Some(Rc::from(py_str(value))),
        };
        Ok(LineContext {
            ts: iso_text(epoch)?.into(),
            epoch,
            host: self.host_or(host),
            origin,
            program: program.into(),
            pid,
            message: message.trim_end_matches(['\r', '\n']).to_owned(),
        })
    }

    // -- the tag: "host prog[pid]: msg", "prog[pid]: msg" or "prog: msg" ----

    fn tagged(
        &mut self,
        line: &str,
        start: usize,
        stamp: &Stamp,
        origin: Rc<Origin>,
    ) -> Result<LineContext, EnvelopeError> {
        let tag_end = match find_from(line, ": ", start) {
            Some(tag_end) => tag_end,
            None if line.ends_with(':') => line.len() - 1,
            None => return Err(err("no program tag")),
        };
        self.tagged_at(line, start, tag_end, stamp, origin)
    }

    /// The context of a line whose tag is `line[start..tag_end]`, the message after it.
    fn tagged_at(
        &mut self,
        line: &str,
        start: usize,
        tag_end: usize,
        stamp: &Stamp,
        origin: Rc<Origin>,
    ) -> Result<LineContext, EnvelopeError> {
        let tag = line.get(start..tag_end).unwrap_or("");
        let parts = match self.tag_cache.get(tag) {
            Some(parts) => parts.clone(),
            None => {
                let parts = self.split_new_tag(tag)?;
                if self.tag_cache.len() >= STAMP_CACHE_LIMIT {
                    self.tag_cache.clear();
                }
                self.tag_cache.insert(tag.to_owned(), parts.clone());
                parts
            }
        };
        let (host, program, pid) = parts;
        Ok(LineContext {
            ts: stamp.1.clone(),
            epoch: stamp.0,
            host: self.host_or(host),
            origin,
            program,
            pid,
            message: line.get(tag_end + 2..).unwrap_or("").to_owned(),
        })
    }

    /// `split_tag`, reusing the split of `host program` when only the pid is new.
    fn split_new_tag(&mut self, tag: &str) -> Result<Tag, EnvelopeError> {
        let Some(inner) = tag.strip_suffix(']') else {
            return split_tag(tag);
        };
        let open_bracket = tag.rfind('[');
        let pid = match open_bracket {
            Some(open) => &inner[open + 1..],
            None => inner,
        };
        let open = match open_bracket {
            Some(open) if open > 0 && is_digit(pid) => open,
            _ => return split_tag(tag),
        };
        let head = &tag[..open];
        let known = match self.tag_heads.get(head) {
            Some(known) => known.clone(),
            None => {
                let (host, program) = split_host(head);
                if program.is_empty() || program.contains('(') {
                    return split_tag(tag); // not a "program[pid]" tag
                }
                if host.is_some() && program.contains(' ') {
                    return Err(err("no program tag"));
                }
                let known = (host.map(Rc::from), Rc::from(program));
                if self.tag_heads.len() >= STAMP_CACHE_LIMIT {
                    self.tag_heads.clear();
                }
                self.tag_heads.insert(head.to_owned(), known.clone());
                known
            }
        };
        Ok((known.0, known.1, Some(Rc::from(pid))))
    }
}

fn within_half_year(last: Option<f64>, epoch: f64) -> bool {
    match last {
        None => true,
        Some(last) => last - HALF_YEAR <= epoch && epoch <= last + HALF_YEAR,
    }
}

fn month_number(name: &str) -> Option<i64> {
    MONTHS
        .iter()
        .position(|month| *month == name)
        .map(|index| index as i64 + 1)
}

/// `iso_utc(epoch)`; an instant outside the years 1 to 9999 is an envelope error.
fn iso_text(epoch: f64) -> Result<String, EnvelopeError> {
    if !(FIRST_EPOCH..=LAST_EPOCH).contains(&epoch) {
        return Err(err("timestamp out of range"));
    }
    Ok(iso_utc(epoch))
}

/// `mail postfix/smtpd[12]` -> (`mail`, `postfix/smtpd`, `12`). Without a host field
/// (Dovecot's own log file, multilog) the tag is the program alone: `imap-login`,
/// `auth-worker(80180)`, `imap(u)<1><s>`.
fn split_tag(tag: &str) -> Result<Tag, EnvelopeError> {
    let (host, program_tag) = split_host(tag);
    if host.is_some() && (program_tag.is_empty() || program_tag.contains(' ')) {
        return Err(err("no program tag"));
    }
    let (program, pid) = program_pid(program_tag);
    Ok((host.map(Rc::from), Rc::from(program), pid.map(Rc::from)))
}

/// `mail postfix/smtpd[12]` -> (`mail`, `postfix/smtpd[12]`); no host: (None, tag).
fn split_host(tag: &str) -> (Option<&str>, &str) {
    match tag.find(' ') {
        Some(space) if !tag[..space].contains('(') => (Some(&tag[..space]), &tag[space + 1..]),
        _ => (None, tag),
    }
}

/// `postfix/smtpd[123]` -> (`postfix/smtpd`, `123`); other tags are kept whole. A tag
/// with `(` is a Dovecot process prefix (`auth(user,ip,...)`) whose brackets may
/// belong to the user name: it is kept whole.
fn program_pid(tag: &str) -> (&str, Option<&str>) {
    if let Some(inner) = tag.strip_suffix(']') {
        if !tag.contains('(') {
            if let Some(open) = tag.rfind('[') {
                if open > 0 && is_digit(&inner[open + 1..]) {
                    return (&tag[..open], Some(&inner[open + 1..]));
                }
            }
        }
    }
    (tag, None)
}

/// Drop RFC 5424 STRUCTURED-DATA (`-` or `[id k="v"]...`) and return the message.
fn skip_structured_data(text: &str) -> &str {
    if let Some(message) = text.strip_prefix("- ") {
        return message;
    }
    if text == "-" {
        return "";
    }
    let bytes = text.as_bytes();
    let length = bytes.len();
    // a byte offset, moved a whole character at a time (Python counts characters)
    let next =
        |position: usize| position + text[position..].chars().next().map_or(1, char::len_utf8);
    let mut position = 0;
    while position < length && bytes[position] == b'[' {
        position += 1;
        let mut in_quotes = false;
        while position < length {
            let byte = bytes[position];
            if byte == b'\\' && in_quotes {
                position += 1;
                if position < length {
                    position = next(position);
                }
                continue;
            }
            if byte == b'"' {
                in_quotes = !in_quotes;
            } else if byte == b']' && !in_quotes {
                position += 1;
                break;
            }
            position = next(position);
        }
    }
    let message = text.get(position..).unwrap_or("");
    message.strip_prefix(' ').unwrap_or(message)
}

// -- character positions (Python indexes code points, Rust bytes) -------------

/// Byte offset of code point `n` (or the end): `text[:n]` is `&text[..char_pos(text, n)]`.
/// Looks at the first `n` characters only, the whole line need not be ASCII.
fn char_pos(text: &str, n: usize) -> usize {
    let head = n.min(text.len());
    if text.as_bytes()[..head].is_ascii() {
        return head;
    }
    text.char_indices().nth(n).map_or(text.len(), |(at, _)| at)
}

/// `text[:n]`.
fn prefix(text: &str, n: usize) -> &str {
    &text[..char_pos(text, n)]
}

/// `text[start:end]` (character positions).
fn chars_between(text: &str, start: usize, end: usize) -> &str {
    let (from, to) = (char_pos(text, start), char_pos(text, end));
    text.get(from..to).unwrap_or("")
}

/// `text[n]`, None past the end.
fn char_at(text: &str, n: usize) -> Option<char> {
    text[char_pos(text, n)..].chars().next()
}

/// `text.find(needle, start)` for a byte offset `start`.
fn find_from(text: &str, needle: &str, start: usize) -> Option<usize> {
    text.get(start..)?.find(needle).map(|at| start + at)
}

// -- time zones and calendar arithmetic ----------------------------------------

/// `zoneinfo.ZoneInfo(key)`: the key checked as `_validate_tzfile_path` does, then
/// the first TZif file of that name on TZPATH (None where Python raises).
fn load_zone(key: &str) -> Option<TimeZone> {
    if key.starts_with('/') || char_len(&normpath(key)) != char_len(key) {
        return None;
    }
    if !normpath(&format!("_/{key}")).starts_with("_/") {
        return None;
    }
    for dir in TZPATH {
        let path = std::path::Path::new(dir).join(key);
        if path.is_file() {
            let data = std::fs::read(&path).ok()?;
            return TimeZone::tzif(key, &data).ok();
        }
    }
    None
}

/// `posixpath.normpath` of a relative path.
fn normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        if part.is_empty() || part == "." {
            continue;
        }
        if part != ".." || parts.is_empty() || parts.last() == Some(&"..") {
            parts.push(part);
        } else {
            parts.pop();
        }
    }
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// What `datetime.date(year, month, day)` accepts.
fn valid_date(year: i64, month: i64, day: i64) -> bool {
    (1..=9999).contains(&year)
        && (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146097 + day_of_era - 719468
}

/// (year, month, day) of a count of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719468;
    let era = days.div_euclid(146097);
    let day_of_era = days.rem_euclid(146097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400;
    (if month <= 2 { year + 1 } else { year }, month, day)
}

/// Seconds since the epoch of a local time read as UTC; None where `datetime()` refuses it.
fn local_seconds(
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
) -> Option<i64> {
    let valid = valid_date(year, month, day)
        && (0..=23).contains(&hour)
        && (0..=59).contains(&minute)
        && (0..=59).contains(&second);
    valid.then(|| days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// `(self - epoch).total_seconds()`: microseconds over 10**6 as Python's int / int, correctly
/// rounded (half to even) even past 2**53 microseconds, where a float division is not.
fn seconds_of_us(total: i64) -> f64 {
    if total % US_PER_SECOND == 0 {
        return (total / US_PER_SECOND) as f64;
    }
    if total.unsigned_abs() <= 1 << 53 {
        return total as f64 / 1e6;
    }
    const SHIFT: u32 = 24; // 2**53 << 24 / 10**6 has 57 bits: room to round
    let scaled = u128::from(total.unsigned_abs()) << SHIFT;
    let quotient = scaled / 1_000_000;
    let sticky = !scaled.is_multiple_of(1_000_000);
    let dropped_bits = 128 - quotient.leading_zeros() - 53;
    let mut mantissa = quotient >> dropped_bits;
    let dropped = quotient & ((1u128 << dropped_bits) - 1);
    let half = 1u128 << (dropped_bits - 1);
    if dropped > half || (dropped == half && (sticky || mantissa & 1 == 1)) {
        mantissa += 1;
    }
    let value = mantissa as f64 * 2f64.powi(dropped_bits as i32 - SHIFT as i32);
    if total < 0 {
        -value
    } else {
        value
    }
}

/// Whole seconds and microseconds of a float timestamp, as `datetime.fromtimestamp`
/// splits it (`_PyTime_DoubleToDenominator`, microseconds rounded half to even);
/// None when the seconds leave `time_t`.
fn split_seconds(timestamp: f64) -> Option<(i64, i64)> {
    let mut whole = timestamp.trunc();
    let mut micros = ((timestamp - whole) * 1e6).round_ties_even();
    if micros >= 1e6 {
        micros -= 1e6;
        whole += 1.0;
    } else if micros < 0.0 {
        micros += 1e6;
        whole -= 1.0;
    }
    if !(-9_223_372_036_854_775_808.0..=9_223_372_036_854_775_808.0).contains(&whole) {
        return None;
    }
    Some((whole as i64, micros as i64))
}

/// `iso_utc` of models/events.py: ISO-8601 with an explicit UTC offset, second
/// resolution unless fractional. `epoch` must be within FIRST_EPOCH..=LAST_EPOCH.
fn iso_utc(epoch: f64) -> String {
    let (seconds, micros) = split_seconds(epoch).unwrap_or((0, 0));
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let second_of_day = seconds.rem_euclid(86_400);
    let mut text = String::with_capacity(32);
    let _ = write!(
        text,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        second_of_day / 3_600,
        second_of_day / 60 % 60,
        second_of_day % 60
    );
    if micros != 0 {
        let _ = write!(text, ".{micros:06}");
    }
    text.push_str("+00:00");
    text
}

/// A local date of `datetime.fromtimestamp(timestamp, tz=zone)`, and the microseconds
/// into that day.
struct LocalDay {
    year: i64,
    month: i64,
    day: i64,
    day_us: i64,
}

/// `datetime.fromtimestamp(timestamp, tz=zone)`, with the errors it raises (they
/// escape the envelope reader in Python).
fn from_timestamp(zone: &TimeZone, timestamp: f64) -> Result<LocalDay, EnvelopeError> {
    if timestamp.is_nan() {
        return Err(internal("ValueError", "Invalid value NaN (not a number)"));
    }
    let (seconds, micros) = split_seconds(timestamp).ok_or_else(|| {
        internal(
            "OverflowError",
            "timestamp out of range for platform time_t",
        )
    })?;
    let (year, _, _) = civil_from_days(seconds.div_euclid(86_400));
    if i32::try_from(year - 1900).is_err() {
        return Err(internal(
            "OSError",
            "[Errno 75] Value too large for defined data type",
        ));
    }
    if !(1..=9999).contains(&year) {
        return Err(internal(
            "ValueError",
            &format!("year {year} is out of range"),
        ));
    }
    // jiff stops a day short of the end of 9999; no zone changes its offset there
    let instant = seconds.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    let offset =
        Timestamp::from_second(instant).map_or(0, |at| i64::from(zone.to_offset(at).seconds()));
    let local = seconds + offset;
    let (year, month, day) = civil_from_days(local.div_euclid(86_400));
    if !(1..=9999).contains(&year) {
        return Err(internal("OverflowError", "date value out of range"));
    }
    Ok(LocalDay {
        year,
        month,
        day,
        day_us: local.rem_euclid(86_400) * US_PER_SECOND + micros,
    })
}

/// A datetime as parsed, with its fixed UTC offset in microseconds (None: naive).
struct Moment {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    micro: i64,
    offset_us: Option<i64>,
}

impl Moment {
    /// The checks of the datetime constructor.
    fn checked(self) -> Option<Moment> {
        let valid = local_seconds(
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
        )
        .is_some()
            && (0..US_PER_SECOND).contains(&self.micro);
        valid.then_some(self)
    }

    fn local_us(&self) -> i64 {
        let days = days_from_civil(self.year, self.month, self.day);
        (days * 86_400 + self.hour * 3_600 + self.minute * 60 + self.second) * US_PER_SECOND
            + self.micro
    }
}

/// `timezone(timedelta(microseconds=offset_us))`: None for a day or more.
fn fixed_offset(offset_us: i64) -> Option<i64> {
    (offset_us.abs() < US_PER_DAY).then_some(offset_us)
}

// -- datetime.fromisoformat (CPython 3.11, Modules/_datetimemodule.c) ----------------
//
// The C parser works on the UTF-8 bytes, with a NUL after the last one: `at` gives
// 0 past the end, as C reads the terminator (an embedded NUL reads the same).

fn at(s: &[u8], index: usize) -> u8 {
    s.get(index).copied().unwrap_or(0)
}

/// `parse_digits`: `count` ASCII digits at `start`.
fn iso_digits(s: &[u8], start: usize, count: usize) -> Option<i64> {
    let mut value = 0;
    for index in start..start + count {
        let byte = at(s, index);
        if !byte.is_ascii_digit() {
            return None;
        }
        value = value * 10 + i64::from(byte - b'0');
    }
    Some(value)
}

/// `datetime.fromisoformat(text)`; None where it raises ValueError.
fn fromisoformat(text: &str) -> Option<Moment> {
    if char_len(text) < 7 {
        return None;
    }
    let s = text.as_bytes();
    let len = s.len();
    let separator = isoformat_separator(s);
    let (year, month, day) = isoformat_date(s, separator)?;
    let mut time = IsoTime::default();
    if separator >= 0 && len as i64 > separator {
        let mut p = separator as usize;
        // skip the separator: one character, by its UTF-8 lead byte
        let lead = at(s, p);
        p += if lead & 0x80 == 0 {
            1
        } else {
            match lead & 0xf0 {
                0xe0 => 3,
                0xf0 => 4,
                _ => 2,
            }
        };
        time = isoformat_time(s, p, len.max(p))?;
    }
    let offset_us = match time.offset {
        None => None,
        Some((0, _)) => Some(0), // a zero offset in seconds is UTC, whatever its microseconds
        Some((seconds, micros)) => Some(fixed_offset(seconds * US_PER_SECOND + micros)?),
    };
    Moment {
        year,
        month,
        day,
        hour: time.hour,
        minute: time.minute,
        second: time.second,
        micro: time.micro,
        offset_us,
    }
    .checked()
}

/// `_find_isoformat_datetime_separator` (-1: invalid).
fn isoformat_separator(s: &[u8]) -> i64 {
    let len = s.len();
    if len == 7 {
        return 7;
    }
    if at(s, 4) == b'-' {
        if at(s, 5) != b'W' {
            return 10; // YYYY-MM-DD
        }
        if len < 8 {
            return -1;
        }
        if len > 8 && at(s, 8) == b'-' {
            // YYYY-Www-D (10) or YYYY-Www-HH (8)
            if len == 9 {
                return -1;
            }
            if len > 10 && at(s, 10).is_ascii_digit() {
                return 8;
            }
            return 10;
        }
        return 8; // YYYY-Www
    }
    if at(s, 4) == b'W' {
        // YYYYWww (7) or YYYYWwwd (8)
        let mut index = 7;
        while index < len && at(s, index).is_ascii_digit() {
            index += 1;
        }
        if index < 9 {
            return index as i64;
        }
        return if index % 2 == 0 { 7 } else { 8 };
    }
    8 // YYYYMMDD
}

/// `parse_isoformat_date` over `s[..len]` (a negative len reads as a huge size_t).
fn isoformat_date(s: &[u8], len: i64) -> Option<(i64, i64, i64)> {
    let year = iso_digits(s, 0, 4)?;
    let mut p = 4;
    let uses_separator = at(s, p) == b'-';
    if uses_separator {
        p += 1;
    }
    if at(s, p) == b'W' {
        // an ISO calendar date
        p += 1;
        let week = iso_digits(s, p, 2)?;
        p += 2;
        let mut weekday = 1;
        if len < 0 || (p as i64) < len {
            if uses_separator {
                if at(s, p) != b'-' {
                    return None;
                }
                p += 1;
            }
            weekday = iso_digits(s, p, 1)?;
        }
        return iso_to_ymd(year, week, weekday);
    }
    let month = iso_digits(s, p, 2)?;
    p += 2;
    if uses_separator {
        if at(s, p) != b'-' {
            return None;
        }
        p += 1;
    }
    let day = iso_digits(s, p, 2)?;
    Some((year, month, day))
}

/// `iso_to_ymd`; the year 0 gives no valid date in C either.
fn iso_to_ymd(year: i64, week: i64, weekday: i64) -> Option<(i64, i64, i64)> {
    if year < 1 {
        return None;
    }
    let first_day = days_from_civil(year, 1, 1);
    // Monday is 0; 1970-01-01 was a Thursday
    let first_weekday = (first_day + 3).rem_euclid(7);
    if !(1..53).contains(&week) {
        let long_year = week == 53 && (first_weekday == 3 || (first_weekday == 2 && is_leap(year)));
        if !long_year {
            return None;
        }
    }
    if !(1..8).contains(&weekday) {
        return None;
    }
    let mut week1_monday = first_day - first_weekday;
    if first_weekday > 3 {
        week1_monday += 7;
    }
    Some(civil_from_days(week1_monday + (week - 1) * 7 + weekday - 1))
}

#[derive(Default)]
struct IsoTime {
    hour: i64,
    minute: i64,
    second: i64,
    micro: i64,
    /// (seconds, microseconds), both carrying the sign
    offset: Option<(i64, i64)>,
}

/// `parse_hh_mm_ss_ff` over `s[start..end]`: (more, [h, m, s], microseconds), where
/// `more` (C's return value 1) says the text goes on past what was read.
fn hh_mm_ss_ff(s: &[u8], start: usize, end: usize) -> Option<(bool, [i64; 3], i64)> {
    const CORRECTION: [i64; 5] = [100_000, 10_000, 1_000, 100, 10];
    let mut values = [0; 3];
    let mut p = start;
    let mut has_separator = true;
    for index in 0..3 {
        values[index] = iso_digits(s, p, 2)?;
        p += 2;
        let c = at(s, p);
        p += 1;
        if index == 0 {
            has_separator = c == b':';
        }
        if p >= end {
            return Some((c != 0, values, 0));
        }
        if has_separator && c == b':' {
            continue;
        } else if c == b'.' || c == b',' {
            break;
        } else if !has_separator {
            p -= 1;
        } else {
            return None; // malformed time separator
        }
    }
    // the fraction: up to six digits, more are read and dropped
    let to_parse = (end - p).min(6);
    let mut micro = iso_digits(s, p, to_parse)?;
    p += to_parse;
    if to_parse < 6 {
        micro *= CORRECTION[to_parse - 1];
    }
    while at(s, p).is_ascii_digit() {
        p += 1;
    }
    Some((at(s, p) != 0, values, micro))
}

/// `parse_isoformat_time` over `s[start..end]`; None where C returns a negative code.
fn isoformat_time(s: &[u8], start: usize, end: usize) -> Option<IsoTime> {
    // the time zone starts at the first of "Z+-"
    let mut zone = start;
    loop {
        if matches!(at(s, zone), b'Z' | b'+' | b'-') {
            break;
        }
        zone += 1;
        if zone >= end {
            break;
        }
    }
    let (more, [hour, minute, second], micro) = hh_mm_ss_ff(s, start, zone)?;
    let mut time = IsoTime {
        hour,
        minute,
        second,
        micro,
        offset: None,
    };
    if zone == end {
        // no time zone: anything left over is an error
        return (!more).then_some(time);
    }
    if at(s, zone) == b'Z' {
        // UTC / Zulu time, and the end of the string
        time.offset = Some((0, 0));
        return (at(s, zone + 1) == 0).then_some(time);
    }
    let sign = if at(s, zone) == b'-' { -1 } else { 1 };
    let (more, [hours, minutes, seconds], micros) = hh_mm_ss_ff(s, zone + 1, end)?;
    if more {
        return None;
    }
    time.offset = Some((
        sign * (hours * 3_600 + minutes * 60 + seconds),
        sign * micros,
    ));
    Some(time)
}

// -- datetime.strptime(stamp, "%d-%b-%Y %H:%M:%S %z") --------------------------------
//
// `_strptime` matches the regex below (IGNORECASE, `\d` any Unicode decimal, `\s`
// Python whitespace) with `re.match`, then requires the match to cover the stamp:
//   (?P<d>3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])-(?P<b>jan|feb|...|dec)-(?P<Y>\d\d\d\d)
//   \s+(?P<H>2[0-3]|[0-1]\d|\d):(?P<M>[0-5]\d|\d):(?P<S>6[0-1]|[0-5]\d|\d)
//   \s+(?P<z>[+-]\d\d:?[0-5]\d(:?[0-5]\d(\.\d{1,6})?)?|(?-i:Z))
// Every group is followed by a literal its alternatives cannot start with, so the
// regex takes the first alternative that the next character lets through; the last
// group takes its first matching alternative (greedy for `z`), whatever follows.

#[derive(Clone, Copy)]
enum Class {
    Is(char),
    In(char, char),
    Decimal,
}

use Class::{Decimal, In, Is};

const DAY: [&[Class]; 5] = [
    &[Is('3'), In('0', '1')],
    &[In('1', '2'), Decimal],
    &[Is('0'), In('1', '9')],
    &[In('1', '9')],
    &[Is(' '), In('1', '9')],
];
const HOUR: [&[Class]; 3] = [
    &[Is('2'), In('0', '3')],
    &[In('0', '1'), Decimal],
    &[Decimal],
];
const MINUTE: [&[Class]; 2] = [&[In('0', '5'), Decimal], &[Decimal]];
const SECOND: [&[Class]; 3] = [
    &[Is('6'), In('0', '1')],
    &[In('0', '5'), Decimal],
    &[Decimal],
];

fn class_at(class: Class, s: &[char], index: usize) -> bool {
    match (class, s.get(index)) {
        (_, None) => false,
        (Is(want), Some(&c)) => c == want,
        (In(low, high), Some(&c)) => (low..=high).contains(&c),
        (Decimal, Some(&c)) => pytext::is_decimal_char(c),
    }
}

/// The length of the first alternative matching at `start` whose next character `next` accepts.
fn group(
    alternatives: &[&[Class]],
    s: &[char],
    start: usize,
    next: impl Fn(Option<char>) -> bool,
) -> Option<usize> {
    alternatives
        .iter()
        .find(|alternative| {
            alternative
                .iter()
                .enumerate()
                .all(|(k, class)| class_at(*class, s, start + k))
                && next(s.get(start + alternative.len()).copied())
        })
        .map(|alternative| alternative.len())
}

/// `int()` of matched characters.
fn chars_int(chars: &[char]) -> Option<i64> {
    small_int(&chars.iter().collect::<String>(), 10)
}

/// `datetime.strptime(stamp, "%d-%b-%Y %H:%M:%S %z")`, or without ` %z`; None where
/// it raises ValueError.
fn strptime_roundcube(stamp: &str, with_zone: bool) -> Option<Moment> {
    let s: Vec<char> = stamp.chars().collect();
    let is = |want: char| move |c: Option<char>| c == Some(want);
    let space = |c: Option<char>| c.is_some_and(is_space);
    let mut i = 0;
    let length = group(&DAY, &s, i, is('-'))?;
    let day = chars_int(&s[i..i + length])?;
    i += length + 1;
    // the month name, then `.lower()` looked up (a non-ASCII case variant fails there)
    let name: String = s.get(i..i + 3)?.iter().collect();
    let month = MONTHS
        .iter()
        .position(|month| month.eq_ignore_ascii_case(&name) && name.is_ascii())?
        as i64
        + 1;
    i += 3;
    if s.get(i) != Some(&'-') || !(0..4).all(|k| class_at(Decimal, &s, i + 1 + k)) {
        return None;
    }
    let year = chars_int(&s[i + 1..i + 5])?;
    i += 5;
    let spaces = s[i..].iter().take_while(|c| is_space(**c)).count();
    if spaces == 0 {
        return None;
    }
    i += spaces;
    let length = group(&HOUR, &s, i, is(':'))?;
    let hour = chars_int(&s[i..i + length])?;
    i += length + 1;
    let length = group(&MINUTE, &s, i, is(':'))?;
    let minute = chars_int(&s[i..i + length])?;
    i += length + 1;
    let length = if with_zone {
        group(&SECOND, &s, i, space)?
    } else {
        group(&SECOND, &s, i, |_| true)?
    };
    let second = chars_int(&s[i..i + length])?;
    i += length;
    let mut offset_us = None;
    if with_zone {
        i += s[i..].iter().take_while(|c| is_space(**c)).count();
        let end = zone_end(&s, i)?;
        if end != s.len() {
            return None; // unconverted data remains
        }
        offset_us = Some(zone_offset_us(&s[i..end])?);
    } else if i != s.len() {
        return None;
    }
    Moment {
        year,
        month,
        day,
        hour,
        minute,
        second,
        micro: 0,
        offset_us,
    }
    .checked()
}

/// Where `(?P<z>[+-]\d\d:?[0-5]\d(:?[0-5]\d(\.\d{1,6})?)?|(?-i:Z))` matching at `start` ends.
fn zone_end(s: &[char], start: usize) -> Option<usize> {
    // `:?[0-5]\d`, the colon taken when what follows it allows
    let pair = |j: usize| {
        if s.get(j) == Some(&':') && class_at(In('0', '5'), s, j + 1) && class_at(Decimal, s, j + 2)
        {
            Some(j + 3)
        } else if class_at(In('0', '5'), s, j) && class_at(Decimal, s, j + 1) {
            Some(j + 2)
        } else {
            None
        }
    };
    match s.get(start) {
        Some('+' | '-') => {
            if !(class_at(Decimal, s, start + 1) && class_at(Decimal, s, start + 2)) {
                return None;
            }
            let mut end = pair(start + 3)?;
            if let Some(seconds_end) = pair(end) {
                end = seconds_end;
                if s.get(end) == Some(&'.') && class_at(Decimal, s, end + 1) {
                    end += 1;
                    let mut digits = 0;
                    while digits < 6 && class_at(Decimal, s, end) {
                        end += 1;
                        digits += 1;
                    }
                }
            }
            Some(end)
        }
        Some('Z') => Some(start + 1),
        _ => None,
    }
}

/// `_strptime`'s reading of a `%z` match, then `timezone(timedelta(...))`, in microseconds.
fn zone_offset_us(zone: &[char]) -> Option<i64> {
    if zone == ['Z'] {
        return Some(0);
    }
    let mut z = zone.to_vec();
    if z.get(3) == Some(&':') {
        z.remove(3);
        if z.len() > 5 {
            if z[5] != ':' {
                return None; // inconsistent use of ':'
            }
            z.remove(5);
        }
    }
    let hours = chars_int(z.get(1..3)?)?;
    let minutes = chars_int(z.get(3..5)?)?;
    let seconds = if z.len() > 5 {
        chars_int(&z[5..z.len().min(7)])?
    } else {
        0
    };
    let mut fraction: Vec<char> = z.get(8..).unwrap_or(&[]).to_vec();
    while fraction.len() < 6 {
        fraction.push('0');
    }
    let mut offset = hours * 3_600 + minutes * 60 + seconds;
    let mut micros = chars_int(&fraction)?;
    if z[0] == '-' {
        offset = -offset;
        micros = -micros;
    }
    fixed_offset(offset * US_PER_SECOND + micros)
}

// -- Python's int() of a stamp field, repr() of a float ---------------------------

/// `int(text, base)` when an i64 holds it; None where Python raises ValueError.
fn small_int(text: &str, base: u32) -> Option<i64> {
    pytext::int(text, base).ok()?.to_i64()
}

/// `repr(x)` of a float: the shortest digits that read back (the nearest of them, as
/// ryu picks, where Rust's `{:e}` may pick another), positional from 1e-4 up to 1e16,
/// else with an exponent of at least two digits.
fn py_float_repr(x: f64) -> String {
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    if !x.is_finite() {
        return if x.is_nan() {
            "nan"
        } else if x > 0.0 {
            "inf"
        } else {
            "-inf"
        }
        .to_owned();
    }
    let mut buffer = ryu::Buffer::new();
    let shortest = buffer.format_finite(x.abs());
    let (mantissa, exponent) = shortest.split_once('e').unwrap_or((shortest, "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let dot = mantissa.find('.').unwrap_or(mantissa.len()) as i64;
    let all_digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = all_digits.trim_start_matches('0');
    // digits[..point] is the integer part
    let point = dot + exponent - (all_digits.len() - significant.len()) as i64;
    let digits = significant.trim_end_matches('0');
    let mut out = String::new();
    if x < 0.0 {
        out.push('-');
    }
    if point <= -4 || point > 16 {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let exponent = point - 1;
        let _ = write!(
            out,
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.abs()
        );
    } else if point <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat((-point) as usize));
        out.push_str(digits);
    } else if point as usize >= digits.len() {
        out.push_str(digits);
        out.push_str(&"0".repeat(point as usize - digits.len()));
        out.push_str(".0");
    } else {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    }
    out
}

// -- the journal record: orjson.loads, then Python's view of its values -------------

/// `orjson.loads(text)`; None where it raises JSONDecodeError. RFC 8259 strictly,
/// containers nested at most 1024 deep, integers past 64 bits read as floats, no
/// infinite floats, no lone surrogates; a repeated key keeps its first place and its
/// last value (serde_json's Map keeps insertion order here).
fn parse_json(text: &str) -> Option<Value> {
    let mut parser = JsonParser {
        s: text.as_bytes(),
        i: 0,
    };
    parser.whitespace();
    let value = parser.value(0)?;
    parser.whitespace();
    (parser.i == parser.s.len()).then_some(value)
}

const JSON_MAX_DEPTH: usize = 1024;

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.i += 1;
        }
        found
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// A value; `depth` counts the containers around it.
    fn value(&mut self, depth: usize) -> Option<Value> {
        match self.peek()? {
            b'{' | b'[' if depth >= JSON_MAX_DEPTH => None,
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(Value::String),
            b't' => self.literal(b"true", Value::Bool(true)),
            b'f' => self.literal(b"false", Value::Bool(false)),
            b'n' => self.literal(b"null", Value::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8], value: Value) -> Option<Value> {
        if !self.s[self.i..].starts_with(word) {
            return None;
        }
        self.i += word.len();
        Some(value)
    }

    fn object(&mut self, depth: usize) -> Option<Value> {
        self.i += 1; // '{'
        let mut map = Map::new();
        self.whitespace();
        if self.eat(b'}') {
            return Some(Value::Object(map));
        }
        loop {
            self.whitespace();
            if self.peek() != Some(b'"') {
                return None;
            }
            let key = self.string()?;
            self.whitespace();
            if !self.eat(b':') {
                return None;
            }
            self.whitespace();
            let value = self.value(depth)?;
            map.insert(key, value);
            self.whitespace();
            if self.eat(b'}') {
                return Some(Value::Object(map));
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<Value> {
        self.i += 1; // '['
        let mut items = Vec::new();
        self.whitespace();
        if self.eat(b']') {
            return Some(Value::Array(items));
        }
        loop {
            self.whitespace();
            items.push(self.value(depth)?);
            self.whitespace();
            if self.eat(b']') {
                return Some(Value::Array(items));
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = std::str::from_utf8(self.s.get(self.i..self.i + 4)?).ok()?;
        if !digits.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return None;
        }
        self.i += 4;
        u32::from_str_radix(digits, 16).ok()
    }

    fn string(&mut self) -> Option<String> {
        self.i += 1; // '"'
        let mut out: Vec<u8> = Vec::new();
        loop {
            let byte = self.peek()?;
            self.i += 1;
            match byte {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let escaped = self.peek()?;
                    self.i += 1;
                    let c = match escaped {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return None,
                    };
                    let mut buffer = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
                }
                0x00..=0x1f => return None,
                _ => out.push(byte),
            }
        }
    }

    /// After `\u`: a code point, a surrogate pair joined.
    fn unicode_escape(&mut self) -> Option<char> {
        let unit = self.hex4()?;
        match unit {
            0xd800..=0xdbff => {
                if !(self.eat(b'\\') && self.eat(b'u')) {
                    return None;
                }
                let low = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&low) {
                    return None;
                }
                char::from_u32(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00))
            }
            0xdc00..=0xdfff => None,
            _ => char::from_u32(unit),
        }
    }

    fn number(&mut self) -> Option<Value> {
        let start = self.i;
        self.eat(b'-');
        let digits = |parser: &mut Self| {
            let from = parser.i;
            while parser.peek().is_some_and(|byte| byte.is_ascii_digit()) {
                parser.i += 1;
            }
            parser.i > from
        };
        if self.eat(b'0') {
            if self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
                return None; // a leading zero
            }
        } else if !digits(self) {
            return None;
        }
        let mut integer = true;
        if self.eat(b'.') {
            integer = false;
            if !digits(self) {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            integer = false;
            self.i += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if !digits(self) {
                return None;
            }
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).ok()?;
        if integer {
            if let Ok(value) = text.parse::<i64>() {
                return Some(Value::Number(value.into()));
            }
            if let Ok(value) = text.parse::<u64>() {
                return Some(Value::Number(value.into()));
            }
        }
        let value: f64 = text.parse().ok()?;
        Number::from_f64(value).map(Value::Number) // None for an infinity
    }
}

/// Python's `int(value)` of `__REALTIME_TIMESTAMP`, over 1e6.
fn journal_epoch(value: Option<&Value>) -> Result<f64, EnvelopeError> {
    let missing = || err("journal record without __REALTIME_TIMESTAMP");
    match value {
        Some(Value::Bool(flag)) => Ok(f64::from(u8::from(*flag)) / 1e6),
        Some(Value::Number(number)) => {
            if let Some(value) = number.as_i64() {
                Ok(value as f64 / 1e6)
            } else if let Some(value) = number.as_u64() {
                Ok(value as f64 / 1e6)
            } else {
                // int() of a float truncates; the int reads back exactly (and never as -0.0)
                let whole = number.as_f64().unwrap_or(0.0).trunc();
                Ok(if whole == 0.0 { 0.0 } else { whole } / 1e6)
            }
        }
        Some(Value::String(text)) => {
            let value = pytext::int(text, 10).map_err(|_| missing())?;
            let float = value
                .to_f64()
                .map_err(|error| internal(error.kind, &error.message))?;
            Ok(float / 1e6)
        }
        _ => Err(missing()),
    }
}

/// `bytes(items).decode("utf-8", "replace")`; None where `bytes()` raises.
fn byte_array_text(items: &[Value]) -> Option<String> {
    let mut bytes = Vec::with_capacity(items.len());
    for item in items {
        let byte = match item {
            Value::Bool(flag) => u8::from(*flag),
            Value::Number(number) => u8::try_from(number.as_u64()?).ok()?,
            _ => return None,
        };
        bytes.push(byte);
    }
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Python's truth value of a JSON value.
fn py_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) if number.is_f64() => number.as_f64() != Some(0.0),
        Value::Number(number) => number.as_i64() != Some(0),
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

/// `str(value)`.
fn py_str(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        _ => {
            let mut out = String::new();
            py_repr(value, &mut out);
            out
        }
    }
}

/// `repr(value)` (Python's nesting limit for deep containers is not reproduced).
fn py_repr(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(number) if number.is_f64() => {
            out.push_str(&py_float_repr(number.as_f64().unwrap_or(0.0)))
        }
        Value::Number(number) => out.push_str(&number.to_string()),
        Value::String(text) => out.push_str(&pytext::repr(text)),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                py_repr(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (index, (key, item)) in map.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                out.push_str(&pytext::repr(key));
                out.push_str(": ");
                py_repr(item, out);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    //! Expected values are what the Python reader gives for the same lines, in the
    //! same order on one reader (`parsers/envelope.py`, Python 3.11, orjson 3.13).
    use super::*;

    type Expected<'a> = Result<
        (
            &'a str,
            f64,
            Option<&'a str>,
            &'a str,
            Option<&'a str>,
            &'a str,
        ),
        &'a str,
    >;

    fn expect(reader: &mut EnvelopeReader, line: &str, expected: Expected) {
        let origin = Rc::new(Origin {
            path: Rc::from("t"),
            line: 1,
            host: None,
            offset: None,
        });
        let got = reader
            .read(line, origin)
            .map(|c| {
                let text = |value: Option<Rc<str>>| value.map(|value| value.to_string());
                (
                    c.ts.to_string(),
                    c.epoch.to_bits(),
                    text(c.host),
                    c.program.to_string(),
                    text(c.pid),
                    c.message,
                )
            })
            .map_err(|error| error.0);
        let want = expected
            .map(|(ts, epoch, host, program, pid, message)| {
                let text = |value: Option<&str>| value.map(str::to_owned);
                (
                    ts.to_owned(),
                    epoch.to_bits(),
                    text(host),
                    program.to_owned(),
                    text(pid),
                    message.to_owned(),
                )
            })
            .map_err(str::to_owned);
        assert_eq!(got, want, "{line:?}");
    }

    #[test]
    #[rustfmt::skip]
    fn rfc3164_day_forms() {
        // test_rfc3164_day_forms of tests/unit/parsers/test_envelope.py
        let mut r = EnvelopeReader::new("UTC", Some(2026), None, None).unwrap();
        expect(&mut r, "Feb  7 15:10:42 h prog: m", Ok(("2026-02-07T15:10:42+00:00", 1770477042.0, Some("h"), "prog", None, "m")));
        expect(&mut r, "Feb 7 15:10:42 h prog: m", Ok(("2026-02-07T15:10:42+00:00", 1770477042.0, Some("h"), "prog", None, "m")));
        expect(&mut r, "Feb 07 15:10:42 h prog: m", Ok(("2026-02-07T15:10:42+00:00", 1770477042.0, Some("h"), "prog", None, "m")));
    }

    #[test]
    #[rustfmt::skip]
    fn rfc3164_with_host_and_pid() {
        // tests/unit/parsers/test_envelope.py, then tags of every kind
        let mut r = EnvelopeReader::new("UTC", Some(2026), None, None).unwrap();
        expect(&mut r, "Nov 27 05:43:00 mail postfix/submission/smtpd[17022]: connect from x[1.2.3.4]", Ok(("2026-11-27T05:43:00+00:00", 1795758180.0, Some("mail"), "postfix/submission/smtpd", Some("17022"), "connect from x[1.2.3.4]")));
        expect(&mut r, "Nov 27 05:44:32 imap(alice@x.test)<17745><sKHn/AAAp>: Info: Disconnected: Logged out", Ok(("2026-11-27T05:44:32+00:00", 1795758272.0, None, "imap(alice@x.test)<17745><sKHn/AAAp>", None, "Info: Disconnected: Logged out")));
        expect(&mut r, "<22>Nov 27 05:43:00 mail prog[1]: m", Ok(("2026-11-27T05:43:00+00:00", 1795758180.0, Some("mail"), "prog", Some("1"), "m")));
        expect(&mut r, "Nov 27 05:43:00 mail postfix/smtpd[17023]: again, from the cache", Ok(("2026-11-27T05:43:00+00:00", 1795758180.0, Some("mail"), "postfix/smtpd", Some("17023"), "again, from the cache")));
        expect(&mut r, "Nov 27 05:43:00 h a b[1]: tag with a space", Err("no program tag"));
        expect(&mut r, "Nov 27 05:43:00 x:", Ok(("2026-11-27T05:43:00+00:00", 1795758180.0, None, "x", None, "")));
        expect(&mut r, "Nov 27 05:43:00Xmail p: no space after the stamp", Ok(("2026-11-27T05:43:00+00:00", 1795758180.0, Some("mail"), "p", None, "no space after the stamp")));
        expect(&mut r, "Nov 27 05:43:00 mail prog[\u{663}]: Arabic-Indic pid", Ok(("2026-11-27T05:43:00+00:00", 1795758180.0, Some("mail"), "prog", Some("\u{663}"), "Arabic-Indic pid")));
        expect(&mut r, "Nov 27 05:43:00 auth(u,[1.2.3.4])[3]: kept whole", Ok(("2026-11-27T05:43:00+00:00", 1795758180.0, None, "auth(u,[1.2.3.4])[3]", None, "kept whole")));
    }

    #[test]
    #[rustfmt::skip]
    fn envelope_errors() {
        // test_errors of test_envelope.py, and more
        let mut r = EnvelopeReader::new("UTC", Some(2026), None, None).unwrap();
        expect(&mut r, "", Err("empty line"));
        expect(&mut r, "garbage", Err("no timestamp"));
        expect(&mut r, "Nov 27 05:43:00 mail", Err("no program tag"));
        expect(&mut r, "Feb 30 05:43:00 h p: m", Err("bad timestamp"));
        expect(&mut r, "{not json", Err("bad journal JSON"));
        expect(&mut r, "Xyz 27 05:43:00 h p: m", Err("no timestamp"));
        expect(&mut r, "Nov 27 05:43:0x h p: m", Err("bad timestamp"));
        expect(&mut r, "<999>Nov 27 05:43:00 h p: m", Ok(("2026-11-27T05:43:00+00:00", 1795758180.0, Some("h"), "p", None, "m")));
        expect(&mut r, "<\u{bd}>Nov 27 05:43:00 h p: m", Err("bad priority"));
        expect(&mut r, "\u{bd}", Err("no timestamp"));
        expect(&mut r, "\u{b2} x", Err("no timestamp"));
        expect(&mut r, "2026-11-27", Err("no timestamp"));
        expect(&mut r, "2026-11-2 05:43:00 p: m", Err("no timestamp"));
        expect(&mut r, "2026-11-27 05:43:00", Err("no message"));
        expect(&mut r, "[no stamp", Err("no timestamp"));
        expect(&mut r, "[x]: y", Err("bad timestamp"));
        expect(&mut r, "@4000 p: m", Err("bad TAI64N label"));
        expect(&mut r, "<1>1 - h a - - - m", Err("RFC 5424 line without a timestamp"));
        expect(&mut r, "<1>1 2026-11-27T05:43:00Z h a", Err("short RFC 5424 header"));
        expect(&mut r, "Nov 27 05:43:00 h (x p: m", Err("no program tag"));
    }

    #[test]
    #[rustfmt::skip]
    fn year_unknown() {
        // no year, no clock, no earlier date
        let mut r = EnvelopeReader::new("UTC", None, None, None).unwrap();
        expect(&mut r, "Nov 27 05:43:00 h p: m", Err("year unknown: pass year= or now= to the parser"));
    }

    #[test]
    #[rustfmt::skip]
    fn configured_host_overrides_the_line() {
        // an empty host overrides nothing, but Roundcube lines take it as is
        let mut r = EnvelopeReader::new("UTC", Some(2026), None, Some("")).unwrap();
        expect(&mut r, "Nov 27 05:44:32 mail imap-login: Info: x", Ok(("2026-11-27T05:44:32+00:00", 1795758272.0, Some("mail"), "imap-login", None, "Info: x")));
        expect(&mut r, "[22-Jan-2013 22:28:21 +0200]: FAILED login", Ok(("2013-01-22T20:28:21+00:00", 1358886501.0, Some(""), "roundcube", None, "FAILED login")));
        expect(&mut r, "<34>1 2026-11-27T05:43:00Z - app - - - m", Ok(("2026-11-27T05:43:00+00:00", 1795758180.0, None, "app", None, "m")));
    }

    #[test]
    #[rustfmt::skip]
    fn host_override() {
        // the configured host wins
        let mut r = EnvelopeReader::new("UTC", Some(2026), None, Some("mx9")).unwrap();
        expect(&mut r, "Nov 27 05:44:32 imap-login: Info: x", Ok(("2026-11-27T05:44:32+00:00", 1795758272.0, Some("mx9"), "imap-login", None, "Info: x")));
        expect(&mut r, "Nov 27 05:44:32 mail imap-login: Info: x", Ok(("2026-11-27T05:44:32+00:00", 1795758272.0, Some("mx9"), "imap-login", None, "Info: x")));
    }

    #[test]
    #[rustfmt::skip]
    fn iso_stamps() {
        // rsyslog's high-precision stamps, Dovecot's log_timestamp, fromisoformat's quirks
        let mut r = EnvelopeReader::new("Europe/Paris", None, None, None).unwrap();
        expect(&mut r, "2024-12-31T06:56:17.784598+01:00 mail dovecot: auth: x", Ok(("2024-12-31T05:56:17.784598+00:00", 1735624577.784598, Some("mail"), "dovecot", None, "auth: x")));
        expect(&mut r, "2013-08-11 03:56:40 auth-worker(default): Info: pam(u,1.2.3.4): unknown user", Ok(("2013-08-11T01:56:40+00:00", 1376186200.0, None, "auth-worker(default)", None, "Info: pam(u,1.2.3.4): unknown user")));
        expect(&mut r, "2026-11-27T05:43:00,5Z mail p: comma", Ok(("2026-11-27T05:43:00.500000+00:00", 1795758180.5, Some("mail"), "p", None, "comma")));
        expect(&mut r, "20261127T054300123456 mail p: basic format", Ok(("2026-11-27T04:43:00.123456+00:00", 1795754580.123456, Some("mail"), "p", None, "basic format")));
        expect(&mut r, "2026-W48-5T05 mail p: week date", Ok(("2026-11-27T04:00:00+00:00", 1795752000.0, Some("mail"), "p", None, "week date")));
        expect(&mut r, "2026-11-27T05:+01:00 mail p: a dangling colon", Ok(("2026-11-27T04:00:00+00:00", 1795752000.0, Some("mail"), "p", None, "a dangling colon")));
        expect(&mut r, "2026-11-27T05:43:00x+01:00 mail p: one stray byte", Ok(("2026-11-27T04:43:00+00:00", 1795754580.0, Some("mail"), "p", None, "one stray byte")));
        expect(&mut r, "2026-11-27T05:43:00.1234567x+01:00 mail p: 7 digits", Ok(("2026-11-27T04:43:00.123456+00:00", 1795754580.123456, Some("mail"), "p", None, "7 digits")));
        expect(&mut r, "2026-11-27T05:43:00:123456 mail p: colon fraction", Ok(("2026-11-27T04:43:00.123456+00:00", 1795754580.123456, Some("mail"), "p", None, "colon fraction")));
        expect(&mut r, "2026-11-27T05:43:00. mail p: empty fraction", Err("bad timestamp"));
        expect(&mut r, "2026-11-27\u{e9}05:43 mail p: any separator", Ok(("2026-11-27T04:43:00+00:00", 1795754580.0, Some("mail"), "p", None, "any separator")));
        expect(&mut r, "2026-11-27T05:43:00+00:99 mail p: 99 minutes", Ok(("2026-11-27T04:04:00+00:00", 1795752240.0, Some("mail"), "p", None, "99 minutes")));
        expect(&mut r, "2026-11-27T05:43:00+24:00 mail p: a day", Err("bad timestamp"));
        expect(&mut r, "2026-01-01T00:00:00+00:00:00.5 mail p: zero seconds is UTC", Ok(("2026-01-01T00:00:00+00:00", 1767225600.0, Some("mail"), "p", None, "zero seconds is UTC")));
        expect(&mut r, "2026-01-01T00:00:00+00:00:01.5 mail p: 1.5 s", Ok(("2025-12-31T23:59:58.500000+00:00", 1767225598.5, Some("mail"), "p", None, "1.5 s")));
        expect(&mut r, "2026-11-27T24:00:00 mail p: hour 24", Err("bad timestamp"));
        expect(&mut r, "0000-11-27T05:43:00 mail p: year 0", Err("bad timestamp"));
        expect(&mut r, "9999-12-31T23:59:59.999999Z mail p: the last microsecond", Err("timestamp out of range"));
        expect(&mut r, "2300-06-01T12:00:00.000001Z mail p: past 2**53 us", Ok(("2300-06-01T12:00:00.000002+00:00", 10426881600.000002, Some("mail"), "p", None, "past 2**53 us")));
    }

    #[test]
    #[rustfmt::skip]
    fn rfc5424() {
        // RFC 5424 with structured data
        let mut r = EnvelopeReader::new("UTC", None, None, None).unwrap();
        expect(&mut r, "<34>1 2026-11-27T05:43:00.003Z mail postfix/smtpd 4242 - [meta x=\"a]b\"] connect from", Ok(("2026-11-27T05:43:00.003000+00:00", 1795758180.003, Some("mail"), "postfix/smtpd", Some("4242"), "connect from")));
        expect(&mut r, "<34>1 2026-11-27T05:43:00Z mail app - - - \u{feff}BOM message", Ok(("2026-11-27T05:43:00+00:00", 1795758180.0, Some("mail"), "app", None, "BOM message")));
        expect(&mut r, "<34>1 2026-11-27T05:43:00Z mail app  - [a][b c=\"\\\"]\"] two elements", Ok(("2026-11-27T05:43:00+00:00", 1795758180.0, Some("mail"), "app", Some(""), "two elements")));
        expect(&mut r, "<34>1 2026-11-27T05:43:00Z mail app 1 - [x y=\"\\\u{e9}\"] escaped non-ASCII", Ok(("2026-11-27T05:43:00+00:00", 1795758180.0, Some("mail"), "app", Some("1"), "escaped non-ASCII")));
        expect(&mut r, "<34>1 2026-11-27T05:43:00Z mail app 1 - -", Ok(("2026-11-27T05:43:00+00:00", 1795758180.0, Some("mail"), "app", Some("1"), "")));
        expect(&mut r, "<34>1 9999-12-31T23:59:59-01:00 mail app - - - m", Err("timestamp out of range"));
        expect(&mut r, "<34>1 0001-01-01T00:00:00Z mail app - - - m", Ok(("0001-01-01T00:00:00+00:00", -62135596800.0, Some("mail"), "app", None, "m")));
        expect(&mut r, "<34>1 9999-12-31T23:59:59Z mail app - - - m", Ok(("9999-12-31T23:59:59+00:00", 253402300799.0, Some("mail"), "app", None, "m")));
    }

    #[test]
    #[rustfmt::skip]
    fn tai64n() {
        // daemontools labels: nanoseconds rounded to microseconds half to even
        let mut r = EnvelopeReader::new("UTC", None, None, None).unwrap();
        expect(&mut r, "@400000004c91b044077a9e94 imap-login: Info: Aborted login", Ok(("2010-09-16T05:50:50.125477+00:00", 1284616250.1254766, None, "imap-login", None, "Info: Aborted login")));
        expect(&mut r, "@4000000069000000000001f4 p: 500 ns", Ok(("2025-10-27T23:27:50+00:00", 1761607670.0000005, None, "p", None, "500 ns")));
        expect(&mut r, "@4000000069000000000005dc p: 1500 ns", Ok(("2025-10-27T23:27:50.000001+00:00", 1761607670.0000014, None, "p", None, "1500 ns")));
        expect(&mut r, "@40000000690000003b9ac9ff p: 999999999 ns", Ok(("2025-10-27T23:27:51+00:00", 1761607671.0, None, "p", None, "999999999 ns")));
        expect(&mut r, "@0x000000690000000000000 p: a 0x prefix", Err("bad TAI64N label"));
        expect(&mut r, "@4000_0000690000000000000 p: an underscore", Err("timestamp out of range"));
        expect(&mut r, "@400000004c91b044077a9e9g p: m", Err("bad TAI64N label"));
        expect(&mut r, "@400000004c91b044077a9e94x p: m", Err("bad TAI64N label"));
        expect(&mut r, "@400001004c91b044077a9e94 dovecot: auth: x", Err("timestamp out of range"));
        expect(&mut r, "@440000004c91b044077a9e94 dovecot: auth: x", Err("timestamp out of range"));
    }

    #[test]
    #[rustfmt::skip]
    fn journal_json() {
        // systemd journal records, and what orjson and the code make of odd ones
        let mut r = EnvelopeReader::new("UTC", None, None, None).unwrap();
        expect(&mut r, "{\"__REALTIME_TIMESTAMP\":\"1795758180000000\",\"_HOSTNAME\":\"mail\",\"SYSLOG_IDENTIFIER\":\"postfix/smtpd\",\"_PID\":\"99\",\"MESSAGE\":\"connect from x[1.2.3.4]\"}", Ok(("2026-11-27T05:43:00+00:00", 1795758180.0, Some("mail"), "postfix/smtpd", Some("99"), "connect from x[1.2.3.4]")));
        expect(&mut r, "{\"__REALTIME_TIMESTAMP\":\"1795758180000000\",\"_HOSTNAME\":\"mail\",\"SYSLOG_IDENTIFIER\":\"postfix/smtpd\",\"_PID\":\"99\",\"MESSAGE\":[99,111,110,110,101,99,116,32,102,114,111,109,32,120,91,49,46,50,46,51,46,52,93]}", Ok(("2026-11-27T05:43:00+00:00", 1795758180.0, Some("mail"), "postfix/smtpd", Some("99"), "connect from x[1.2.3.4]")));
        expect(&mut r, "{\"__REALTIME_TIMESTAMP\":1795758180123457,\"MESSAGE\":[98,97,100,32,255,224,128,32,117,116,102,45,56,13,10],\"SYSLOG_IDENTIFIER\":\"\",\"_COMM\":\"sshd\",\"SYSLOG_PID\":0,\"_PID\":false}", Ok(("2026-11-27T05:43:00.123457+00:00", 1795758180.123457, None, "sshd", Some("False"), "bad \u{fffd}\u{fffd}\u{fffd} utf-8")));
        expect(&mut r, "{\"__REALTIME_TIMESTAMP\":\" 1_795_758_180_000_00\u{665} \",\"MESSAGE\":\"m\",\"SYSLOG_IDENTIFIER\":5,\"SYSLOG_PID\":[1,2.5,null,\"it's\",{\"k\":\"\u{2028}\"}]}", Ok(("2026-11-27T05:43:00.000005+00:00", 1795758180.000005, None, "", Some("[1, 2.5, None, \"it's\", {'k': '\\u2028'}]"), "m")));
        expect(&mut r, "{\"__REALTIME_TIMESTAMP\":1795758180900000.0,\"MESSAGE\":\"m\",\"_PID\":1e+16,\"_HOSTNAME\":7}", Ok(("2026-11-27T05:43:00.900000+00:00", 1795758180.9, None, "", Some("1e+16"), "m")));
        expect(&mut r, "{\"__REALTIME_TIMESTAMP\":true,\"MESSAGE\":[true,65]}", Ok(("1970-01-01T00:00:00.000001+00:00", 1e-06, None, "", None, "\u{1}A")));
        expect(&mut r, "{\"__REALTIME_TIMESTAMP\":\"99999999999999999999\",\"MESSAGE\":\"m\"}", Err("timestamp out of range"));
        expect(&mut r, "{\"__REALTIME_TIMESTAMP\":\"9999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999\",\"MESSAGE\":\"m\"}", Err("internal parser error (OverflowError: int too large to convert to float)"));
        expect(&mut r, "{\"__REALTIME_TIMESTAMP\":\"0x10\",\"MESSAGE\":\"m\"}", Err("journal record without __REALTIME_TIMESTAMP"));
        expect(&mut r, "{\"__REALTIME_TIMESTAMP\":1,\"MESSAGE\":[256]}", Err("journal MESSAGE is not a byte array"));
        expect(&mut r, "{\"__REALTIME_TIMESTAMP\":1,\"MESSAGE\":null}", Err("journal record without MESSAGE"));
        expect(&mut r, "{\"MESSAGE\":\"m\"}", Err("journal record without __REALTIME_TIMESTAMP"));
        expect(&mut r, "{\"__REALTIME_TIMESTAMP\":1,\"MESSAGE\":\"first\",\"MESSAGE\":\"last\"}", Ok(("1970-01-01T00:00:00.000001+00:00", 1e-06, None, "", None, "last")));
        expect(&mut r, "{\"__REALTIME_TIMESTAMP\":1,\"MESSAGE\":\"\\ud800\"}", Err("bad journal JSON"));
        expect(&mut r, "{\"__REALTIME_TIMESTAMP\":1,\"MESSAGE\":\"m\",\"_PID\":123456789012345678901234567890}", Ok(("1970-01-01T00:00:00.000001+00:00", 1e-06, None, "", Some("1.2345678901234568e+29"), "m")));
        expect(&mut r, "{\"__REALTIME_TIMESTAMP\":1e400,\"MESSAGE\":\"m\"}", Err("bad journal JSON"));
        expect(&mut r, "{\"__REALTIME_TIMESTAMP\":1,\"MESSAGE\":\"m\",}", Err("bad journal JSON"));
    }

    #[test]
    #[rustfmt::skip]
    fn roundcube_own_log() {
        // Roundcube's bracketed stamp, with and without an offset
        let mut r = EnvelopeReader::new("America/New_York", None, None, None).unwrap();
        expect(&mut r, "[22-Jan-2013 22:28:21 +0200]: FAILED login for user1 from 192.0.43.10", Ok(("2013-01-22T20:28:21+00:00", 1358886501.0, None, "roundcube", None, "FAILED login for user1 from 192.0.43.10")));
        expect(&mut r, "[22-Jan-2013 22:28:21]: naive, in the zone", Ok(("2013-01-23T03:28:21+00:00", 1358911701.0, None, "roundcube", None, "naive, in the zone")));
        expect(&mut r, "[ 5-JAN-2013 7:5:3 -05:30]: loose fields", Ok(("2013-01-05T12:35:03+00:00", 1357389303.0, None, "roundcube", None, "loose fields")));
        expect(&mut r, "[22-Jan-2013 22:28:21 Z]: Zulu", Ok(("2013-01-22T22:28:21+00:00", 1358893701.0, None, "roundcube", None, "Zulu")));
        expect(&mut r, "[22-Jan-2013 22:28:21 z]: lowercase z", Err("bad timestamp"));
        expect(&mut r, "[22-Jan-2013 22:28:21 +02:00:30.5]: seconds and a fraction", Ok(("2013-01-22T20:27:50.500000+00:00", 1358886470.5, None, "roundcube", None, "seconds and a fraction")));
        expect(&mut r, "[22-Jan-2013 22:28:21 +02:0030]: inconsistent colons", Err("bad timestamp"));
        expect(&mut r, "[22-Jan-2013 23:59:60 +0200]: second 60", Err("bad timestamp"));
        expect(&mut r, "[1\u{663}-Jan-20\u{661}\u{663} 22:28:21 +0200]: Unicode digits", Ok(("2013-01-13T20:28:21+00:00", 1358108901.0, None, "roundcube", None, "Unicode digits")));
        expect(&mut r, "[22-\u{17f}ep-2013 22:28:21]: long s", Err("bad timestamp"));
        expect(&mut r, "[22-Jan-2013\u{a0}22:28:21\u{1c}+0200]: Python whitespace", Ok(("2013-01-22T20:28:21+00:00", 1358886501.0, None, "roundcube", None, "Python whitespace")));
        expect(&mut r, "[22-Jan-2013 22:28:21 +2400]: a day off", Err("bad timestamp"));
    }

    #[test]
    #[rustfmt::skip]
    fn year_rolls_over_at_new_year() {
        // December then January, and the stamp cache after it
        let mut r = EnvelopeReader::new("UTC", Some(2025), None, None).unwrap();
        expect(&mut r, "Dec 31 23:59:59 h prog: a", Ok(("2025-12-31T23:59:59+00:00", 1767225599.0, Some("h"), "prog", None, "a")));
        expect(&mut r, "Jan  1 00:00:01 h prog: b", Ok(("2026-01-01T00:00:01+00:00", 1767225601.0, Some("h"), "prog", None, "b")));
        expect(&mut r, "Jan  1 00:00:01 h prog: c", Ok(("2026-01-01T00:00:01+00:00", 1767225601.0, Some("h"), "prog", None, "c")));
        expect(&mut r, "Jan  1 00:00:02 h prog: d", Ok(("2026-01-01T00:00:02+00:00", 1767225602.0, Some("h"), "prog", None, "d")));
    }

    #[test]
    #[rustfmt::skip]
    fn late_line_keeps_the_stream_year() {
        // a line from last year between this year's
        let mut r = EnvelopeReader::new("UTC", Some(2026), None, None).unwrap();
        expect(&mut r, "Jan  1 00:00:05 h prog: a", Ok(("2026-01-01T00:00:05+00:00", 1767225605.0, Some("h"), "prog", None, "a")));
        expect(&mut r, "Dec 31 23:59:58 h prog: b", Ok(("2025-12-31T23:59:58+00:00", 1767225598.0, Some("h"), "prog", None, "b")));
        expect(&mut r, "Jan  1 00:00:06 h prog: c", Ok(("2026-01-01T00:00:06+00:00", 1767225606.0, Some("h"), "prog", None, "c")));
        expect(&mut r, "Dec 31 23:59:58 h prog: b again", Ok(("2025-12-31T23:59:58+00:00", 1767225598.0, Some("h"), "prog", None, "b again")));
    }

    #[test]
    #[rustfmt::skip]
    fn year_from_the_callers_clock() {
        // read on 2026-01-02: late December is last year's, a day ahead is this year's
        let mut r = EnvelopeReader::new("UTC", None, Some(1767312000.0), None).unwrap();
        expect(&mut r, "Dec 30 10:00:00 h p: m", Ok(("2025-12-30T10:00:00+00:00", 1767088800.0, Some("h"), "p", None, "m")));
    }

    #[test]
    #[rustfmt::skip]
    fn year_from_the_clock_a_day_ahead() {
        // more than a day ahead of the clock is last year
        let mut r = EnvelopeReader::new("UTC", None, Some(1767312000.0), None).unwrap();
        expect(&mut r, "Jan  3 00:00:01 h p: m", Ok(("2026-01-03T00:00:01+00:00", 1767398401.0, Some("h"), "p", None, "m")));
    }

    #[test]
    #[rustfmt::skip]
    fn year_from_an_earlier_full_date() {
        // the first RFC 3164 line takes the year of the line before
        let mut r = EnvelopeReader::new("UTC", None, None, None).unwrap();
        expect(&mut r, "2026-03-01T10:00:00Z mail prog: m", Ok(("2026-03-01T10:00:00+00:00", 1772359200.0, Some("mail"), "prog", None, "m")));
        expect(&mut r, "Mar  1 10:00:01 h p: m", Ok(("2026-03-01T10:00:01+00:00", 1772359201.0, Some("h"), "p", None, "m")));
    }

    #[test]
    #[rustfmt::skip]
    fn berlin_gap_and_fold() {
        // local times in the spring gap and the autumn fold read with fold=0
        let mut r = EnvelopeReader::new("Europe/Berlin", Some(2026), None, None).unwrap();
        expect(&mut r, "Mar 29 01:59:59 mx postfix/smtpd[7]: a", Ok(("2026-03-29T00:59:59+00:00", 1774745999.0, Some("mx"), "postfix/smtpd", Some("7"), "a")));
        expect(&mut r, "Mar 29 02:00:00 mx p: gap", Ok(("2026-03-29T01:00:00+00:00", 1774746000.0, Some("mx"), "p", None, "gap")));
        expect(&mut r, "Mar 29 02:30:00 mx p: gap", Ok(("2026-03-29T01:30:00+00:00", 1774747800.0, Some("mx"), "p", None, "gap")));
        expect(&mut r, "Mar 29 02:59:59 mx p: gap", Ok(("2026-03-29T01:59:59+00:00", 1774749599.0, Some("mx"), "p", None, "gap")));
        expect(&mut r, "Mar 29 03:00:00 mx postfix/smtpd[8]: b", Ok(("2026-03-29T01:00:00+00:00", 1774746000.0, Some("mx"), "postfix/smtpd", Some("8"), "b")));
        expect(&mut r, "Mar 29 01:59:59 mx postfix/smtpd[7]: c", Ok(("2026-03-29T00:59:59+00:00", 1774745999.0, Some("mx"), "postfix/smtpd", Some("7"), "c")));
        expect(&mut r, "Oct 25 01:59:59 mx p: x", Ok(("2025-10-24T23:59:59+00:00", 1761350399.0, Some("mx"), "p", None, "x")));
        expect(&mut r, "Oct 25 02:00:00 mx p: fold", Ok(("2025-10-25T00:00:00+00:00", 1761350400.0, Some("mx"), "p", None, "fold")));
        expect(&mut r, "Oct 25 02:30:00 mx p: fold", Ok(("2025-10-25T00:30:00+00:00", 1761352200.0, Some("mx"), "p", None, "fold")));
        expect(&mut r, "Oct 25 02:59:59 mx p: fold", Ok(("2025-10-25T00:59:59+00:00", 1761353999.0, Some("mx"), "p", None, "fold")));
        expect(&mut r, "Oct 25 03:00:00 mx p: after", Ok(("2025-10-25T01:00:00+00:00", 1761354000.0, Some("mx"), "p", None, "after")));
        expect(&mut r, "2026-03-29 02:30:00 p: iso gap", Ok(("2026-03-29T01:30:00+00:00", 1774747800.0, None, "p", None, "iso gap")));
        expect(&mut r, "2026-10-25T02:30:00.5 mx p: iso fold", Ok(("2026-10-25T00:30:00.500000+00:00", 1792888200.5, Some("mx"), "p", None, "iso fold")));
        expect(&mut r, "[29-Mar-2026 02:30:00]: roundcube gap", Ok(("2026-03-29T01:30:00+00:00", 1774747800.0, None, "roundcube", None, "roundcube gap")));
    }

    #[test]
    #[rustfmt::skip]
    fn lord_howe_half_hour_shift() {
        // a zone whose offset moves by 30 minutes
        let mut r = EnvelopeReader::new("Australia/Lord_Howe", Some(2026), None, None).unwrap();
        expect(&mut r, "Apr  5 01:29:59 h p: m", Ok(("2026-04-04T14:29:59+00:00", 1775312999.0, Some("h"), "p", None, "m")));
        expect(&mut r, "Apr  5 01:30:00 h p: m", Ok(("2026-04-04T14:30:00+00:00", 1775313000.0, Some("h"), "p", None, "m")));
        expect(&mut r, "Apr  5 01:45:00 h p: m", Ok(("2026-04-04T14:45:00+00:00", 1775313900.0, Some("h"), "p", None, "m")));
        expect(&mut r, "Apr  5 02:00:00 h p: m", Ok(("2026-04-04T15:30:00+00:00", 1775316600.0, Some("h"), "p", None, "m")));
        expect(&mut r, "Oct  4 01:59:59 h p: m", Ok(("2026-10-03T15:29:59+00:00", 1791041399.0, Some("h"), "p", None, "m")));
        expect(&mut r, "Oct  4 02:15:00 h p: m", Ok(("2026-10-03T15:45:00+00:00", 1791042300.0, Some("h"), "p", None, "m")));
        expect(&mut r, "Oct  4 02:30:00 h p: m", Ok(("2026-10-03T15:30:00+00:00", 1791041400.0, Some("h"), "p", None, "m")));
    }

    #[test]
    #[rustfmt::skip]
    fn malformed_syslog_fields() {
        // int() of stamp fields: whitespace, signs, Unicode digits
        let mut r = EnvelopeReader::new("UTC", Some(2026), None, None).unwrap();
        expect(&mut r, "Nov \u{662}\u{667} 05:43:00 h p: m", Ok(("2026-11-27T05:43:00+00:00", 1795758180.0, Some("h"), "p", None, "m")));
        expect(&mut r, "Nov 27 +5:43:00 h p: m", Ok(("2026-11-27T05:43:00+00:00", 1795758180.0, Some("h"), "p", None, "m")));
        expect(&mut r, "Nov 27 05:43:-1 h p: m", Err("bad timestamp"));
        expect(&mut r, "Nov 27 05:43:_1 h p: m", Err("bad timestamp"));
        expect(&mut r, "Nov 27 05:43:60 h p: m", Err("bad timestamp"));
        expect(&mut r, "Nov 27 05:\u{a0}3:00 h p: m", Ok(("2026-11-27T05:03:00+00:00", 1795755780.0, Some("h"), "p", None, "m")));
        expect(&mut r, "Nov 27 05:\u{1c}3:00 h p: m", Err("bad timestamp"));
        expect(&mut r, "Nov 27 05:43:\u{b2} h p: m", Err("bad timestamp"));
        expect(&mut r, "nov 27 05:43:00 h p: m", Err("no timestamp"));
        expect(&mut r, "Nov 31 05:43:00 h p: m", Err("bad timestamp"));
        expect(&mut r, "Nov -1 05:43:00 h p: m", Err("bad timestamp"));
        expect(&mut r, "Nov 27 24:00:00 h p: m", Err("bad timestamp"));
    }

    #[test]
    #[rustfmt::skip]
    fn clock_errors_escape() {
        // datetime.fromtimestamp refusing the caller's clock
        let mut r = EnvelopeReader::new("Europe/Berlin", None, Some(253402300799.0), None).unwrap();
        expect(&mut r, "Nov 27 05:43:00 h p: m", Err("internal parser error (OverflowError: date value out of range)"));
    }

    #[test]
    fn journal_nesting_limit_is_orjsons() {
        // orjson reads 1024 nested containers, not 1025 (serde_json stops at 128)
        let mut r = EnvelopeReader::new("UTC", None, None, None).unwrap();
        let nested = |depth: usize| {
            format!(
                r#"{{"__REALTIME_TIMESTAMP":1,"MESSAGE":"m","x":{}{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
        };
        expect(
            &mut r,
            &nested(1023),
            Ok((
                "1970-01-01T00:00:00.000001+00:00",
                1e-06,
                None,
                "",
                None,
                "m",
            )),
        );
        expect(&mut r, &nested(1024), Err("bad journal JSON"));
    }

    #[test]
    fn unknown_zones_are_refused_as_zoneinfo_does() {
        let refused = |zone: &str| EnvelopeReader::new(zone, None, None, None).err();
        assert_eq!(
            refused("Mars/Olympus").as_deref(),
            Some("unknown time zone 'Mars/Olympus'")
        );
        assert_eq!(
            refused("europe/berlin").as_deref(),
            Some("unknown time zone 'europe/berlin'")
        );
        assert_eq!(
            refused("Europe/../Europe/Berlin").as_deref(),
            Some("unknown time zone 'Europe/../Europe/Berlin'")
        );
        assert_eq!(
            refused("zone.tab").as_deref(),
            Some("unknown time zone 'zone.tab'")
        );
        assert_eq!(refused("").as_deref(), Some("unknown time zone ''"));
        assert_eq!(
            refused("a'b\u{2028}").as_deref(),
            Some("unknown time zone \"a'b\\u2028\"")
        );
        assert_eq!(refused("Europe/Berlin"), None);
        assert_eq!(refused("posixrules"), None);
    }

    #[test]
    fn microseconds_over_a_million_round_as_python_int_division() {
        // 2300-06-01T12:00:00.000001Z: past 2**53 us a float division would round twice
        assert_eq!(seconds_of_us(10_426_219_200_000_001), 10426219200.000002);
        assert_eq!(seconds_of_us(173_069_044_958_999_029), 173069044958.99902); // float division: ...905
        assert_eq!(seconds_of_us(-1), -1e-06);
        assert_eq!(seconds_of_us(253_402_300_799_999_999), 253402300800.0);
        assert_eq!(iso_utc(1e-06), "1970-01-01T00:00:00.000001+00:00");
        assert_eq!(iso_utc(-0.5), "1969-12-31T23:59:59.500000+00:00");
        assert_eq!(iso_utc(0.0000005), "1970-01-01T00:00:00+00:00"); // half to even
        assert_eq!(iso_utc(0.0000015), "1970-01-01T00:00:00.000002+00:00");
    }

    #[test]
    fn float_repr_is_pythons() {
        let cases = [
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (1.5e300, "1.5e+300"),
            (5e-324, "5e-324"),
            (-0.0, "-0.0"),
            (100.0, "100.0"),
            (917210070454693.2, "917210070454693.2"), // `{:e}` gives ...693.3
            (0.00012, "0.00012"),
            (123456.789, "123456.789"),
        ];
        for (value, text) in cases {
            assert_eq!(py_float_repr(value), text);
        }
    }
}
