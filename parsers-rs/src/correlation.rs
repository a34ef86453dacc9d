//! The small per-host state that ties log lines together (`parsers/correlation.py`).
//!
//! - Postfix queue id -> the submitting SASL account, client address and TLS
//!   version (so deliveries, bounces and queue lines name the account);
//! - Postfix smtpd session (program + pid, between `connect from` and
//!   `disconnect from`) -> client address, TLS version, account, failed AUTHs;
//! - Dovecot login session id -> account, address, TLS, protocol (for logouts)
//!   and its main process pid (for `Killed with signal 15`);
//! - recent failed authentications, to count one attempt once when several
//!   programs log it (see [`FailedAttempts`]).
//!
//! Every map is bounded twice: a maximum number of entries (least recently used
//! goes first) and an expiry measured in event time, never on the wall clock.
//!
//! Only the queue map outlives a restart of the publisher: `export_queue_json`
//! gives it as JSON, least recently used first, and `import_queue_json` takes it
//! back, checking every field. Sessions and failed attempts are not kept: the
//! lines after the checkpoint are read again, and a restored failure would make
//! its own re-read look like an echo. The snapshot may be a little ahead of the
//! checkpoint, so a restored entry replays until the latest event time the
//! snapshot had seen: a line of that time or earlier is a line read again, and
//! leaves the entry as it is (a `client=` line does not replace it, a `queue
//! active` line is no retry).

use std::collections::VecDeque;
use std::hash::Hash;
use std::rc::Rc;

use hashlink::LinkedHashMap;
use serde_json::Value as Json;

use crate::json::{write_f64, write_opt_str, write_str};
use crate::pytext;

/// How long records wait for their echo from another program. Dovecot logs the
/// passdb failure, waits auth_failure_delay (2 s by default), then answers
/// Postfix; the auth penalty is served before the lookup, so the gap stays small.
pub const ECHO_WINDOW: f64 = 10.0;

/// Python's `max(a, b)`: `a` unless `b` is greater (keeps NaN and -0.0 as Python does).
fn py_max(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}

/// A least-recently-used map with a size limit and an event-time expiry (OrderedDict order).
pub struct BoundedMap<K, V> {
    /// key -> (time of last use, value), least recently used first
    entries: LinkedHashMap<K, (f64, V)>,
    max_size: usize,
    ttl: f64,
    writes: u32,
}

impl<K: Hash + Eq + Clone, V> BoundedMap<K, V> {
    /// every this many writes, expired entries are retired from the old end
    const SWEEP_EVERY: u32 = 64;

    pub fn new(max_size: usize, ttl: f64) -> Self {
        BoundedMap {
            entries: LinkedHashMap::new(),
            max_size,
            ttl,
            writes: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&mut self, key: &K, now: f64) -> Option<&mut V> {
        let time = self.entries.get(key)?.0;
        if now - time > self.ttl {
            self.entries.remove(key);
            return None;
        }
        self.entries.get_mut(key).map(|entry| &mut entry.1)
    }

    /// Like `get`, and count this as a use (it moves to the young end).
    pub fn touch(&mut self, key: &K, now: f64) -> Option<&mut V> {
        self.get(key, now)?;
        let entry = self.entries.to_back(key)?;
        entry.0 = py_max(now, entry.0);
        Some(&mut entry.1)
    }

    pub fn put(&mut self, key: K, value: V, now: f64) {
        // insert moves an existing key to the young end, as move_to_end + assignment
        self.entries.insert(key, (now, value));
        if self.entries.len() > self.max_size {
            self.entries.pop_front();
        }
        self.writes += 1;
        if self.writes >= Self::SWEEP_EVERY {
            self.writes = 0;
            self.sweep(now);
        }
    }

    /// Retire the entries not used for longer than the expiry, oldest first.
    pub fn sweep(&mut self, now: f64) {
        let horizon = now - self.ttl;
        while let Some((_, entry)) = self.entries.front() {
            if entry.0 >= horizon {
                break;
            }
            self.entries.pop_front();
        }
    }

    pub fn pop(&mut self, key: &K) -> Option<V> {
        self.entries.remove(key).map(|entry| entry.1)
    }

    /// (key, time of last use, value), least recently used first.
    pub fn items(&self) -> Vec<(&K, f64, &V)> {
        self.entries
            .iter()
            .map(|(key, entry)| (key, entry.0, &entry.1))
            .collect()
    }

    /// Add an entry at the young end with its own time (entries come oldest first).
    pub fn restore(&mut self, key: K, value: V, time: f64) {
        self.entries.remove(&key);
        self.entries.insert(key, (time, value));
        if self.entries.len() > self.max_size {
            self.entries.pop_front();
        }
    }

    pub fn max_size(&self) -> usize {
        self.max_size
    }

    pub fn ttl(&self) -> f64 {
        self.ttl
    }
}

/// One client connection to one smtpd process.
#[derive(Debug, Clone)]
pub struct SmtpdSession {
    pub client_ip: Option<String>,
    pub tls: Option<String>,
    pub user: Option<String>,
    pub auth_reported: bool,
    pub failures: i64,
    /// the account of this connection's last SASL failure that named one
    pub failed_user: Option<String>,
    pub hold_pending: bool,
}

impl SmtpdSession {
    pub fn new(client_ip: Option<String>) -> Self {
        SmtpdSession {
            client_ip,
            tls: None,
            user: None,
            auth_reported: false,
            failures: 0,
            failed_user: None,
            hold_pending: false,
        }
    }
    /// The negotiated version, or `none`: Postfix logs every handshake when it happens.
    pub fn tls_state(&self) -> &str {
        self.tls.as_deref().unwrap_or("none")
    }
}

/// What is known about a Postfix queue id.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    pub user: Option<String>,
    pub client_ip: Option<String>,
    pub tls: Option<String>,
    pub protocol: Option<String>,
    pub sender: Option<String>,
    /// for a bounce or delay notice: the queue id of the message it reports on
    pub notice_of: Option<String>,
    pub notice_kind: Option<String>,
    pub queued_before: bool,
    /// restored from a snapshot: lines up to this event time were applied already
    pub replay_until: Option<f64>,
    /// restored while replaying: `queued_before` as it stood at the snapshot
    pub queued_at_snapshot: bool,
}

impl QueuedMessage {
    pub fn new(
        user: Option<String>,
        client_ip: Option<String>,
        tls: Option<String>,
        protocol: Option<String>,
        sender: Option<String>,
    ) -> Self {
        QueuedMessage {
            user,
            client_ip,
            tls,
            protocol,
            sender,
            notice_of: None,
            notice_kind: None,
            queued_before: false,
            replay_until: None,
            queued_at_snapshot: false,
        }
    }
    /// Lines after the snapshot are new: the entry is again as it was saved.
    pub fn end_replay(&mut self) {
        self.queued_before = self.queued_before || self.queued_at_snapshot;
        self.replay_until = None;
    }
}

/// A Dovecot login (`Login: user=<...>, ..., session=<id>`).
#[derive(Debug, Clone)]
pub struct LoginSession {
    pub user: Option<String>,
    pub client_ip: Option<String>,
    pub tls: Option<String>,
    pub protocol: Option<String>,
}

/// Queue id -> message; knows the latest event time it was used at, for snapshots.
pub struct QueueMap {
    pub latest: f64,
    /// whether entries came from a snapshot (only then can a put be a replay)
    pub restored: bool,
    map: BoundedMap<String, QueuedMessage>,
}

impl QueueMap {
    pub fn new(max_size: usize, ttl: f64) -> Self {
        QueueMap {
            latest: f64::NEG_INFINITY,
            restored: false,
            map: BoundedMap::new(max_size, ttl),
        }
    }

    pub fn get(&mut self, key: &str, now: f64) -> Option<&mut QueuedMessage> {
        if now > self.latest {
            self.latest = now;
        }
        let entries = &mut self.map.entries;
        let time = entries.get(key)?.0;
        if now - time > self.map.ttl {
            entries.remove(key);
            return None;
        }
        let message = &mut entries.get_mut(key)?.1;
        if let Some(replay_until) = message.replay_until {
            if now > replay_until {
                message.end_replay();
            }
        }
        Some(message)
    }

    pub fn put(&mut self, key: String, value: QueuedMessage, now: f64) {
        if now > self.latest {
            self.latest = now;
        }
        if self.restored {
            if let Some((_, known)) = self.map.entries.get(key.as_str()) {
                if let Some(replay_until) = known.replay_until {
                    if now <= replay_until {
                        return; // a line read again after a restart: the entry already holds it
                    }
                }
            }
        }
        self.map.put(key, value, now);
    }

    pub fn pop(&mut self, key: &str) -> Option<QueuedMessage> {
        self.map.entries.remove(key).map(|entry| entry.1)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (queue id, time of last use, message), least recently used first.
    pub fn items(&self) -> Vec<(&String, f64, &QueuedMessage)> {
        self.map.items()
    }

    pub fn restore(&mut self, key: String, value: QueuedMessage, time: f64) {
        self.map.restore(key, value, time);
    }

    pub fn max_size(&self) -> usize {
        self.map.max_size()
    }

    pub fn ttl(&self) -> f64 {
        self.map.ttl()
    }
}

/// A program that logs failed authentications (`FailedAttempts.SMTPD` ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Smtpd,
    Dovecot,
    Pam,
    Cyrus,
}

impl Source {
    /// Bits in the order of the names, so that bit order is `sorted()` order.
    fn bit(self) -> u8 {
        match self {
            Source::Cyrus => 1,
            Source::Dovecot => 2,
            Source::Pam => 4,
            Source::Smtpd => 8,
        }
    }
}

/// Names of the bits of a [`SourceSet`], lowest bit first (alphabetical).
const SOURCE_NAMES: [&str; 4] = ["cyrus", "dovecot", "pam", "smtpd"];

/// A set of [`Source`]s (Python's `frozenset[str]` of their names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SourceSet(pub u8);

impl SourceSet {
    pub fn contains(&self, source: Source) -> bool {
        self.0 & source.bit() != 0
    }
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
    /// The names ("cyrus", "dovecot", "pam", "smtpd") in sorted order, as `sorted()` gives.
    pub fn names(&self) -> Vec<&'static str> {
        SOURCE_NAMES
            .iter()
            .enumerate()
            .filter(|(bit, _)| self.0 & (1 << bit) != 0)
            .map(|(_, name)| *name)
            .collect()
    }
    fn with(self, source: Source) -> SourceSet {
        SourceSet(self.0 | source.bit())
    }
    fn without(self, source: Source) -> SourceSet {
        SourceSet(self.0 & !source.bit())
    }
}

#[derive(Debug, Clone)]
struct Attempt {
    epoch: f64,
    user: Option<String>,
    sources: SourceSet,
    in_login_session: bool,
    summarized: bool,
    /// joined by a Postfix SASL line that named no account: a guess, which a
    /// named line may take back (see `FailedAttempts::record`)
    smtpd_guessed: bool,
}

/// Recent failed authentications by client address, to count each attempt once.
///
/// "First record wins": the first line that reports a failed attempt is the
/// canonical `auth` event; a later line from *another* program that reports a
/// failure for the same address and a compatible account within
/// [`ECHO_WINDOW`] seconds joins that attempt and becomes `auth_echo`. Each
/// program contributes at most one record per attempt. Dovecot lines of an
/// IMAP/POP3 login session are never joined with Postfix SASL lines.
///
/// A Postfix line without an account fits the record of any account; it joins,
/// in order of preference, a record of the account its smtpd connection failed
/// with before (`session_user`), else the oldest that fits. When a named
/// Postfix line later finds its own record taken by such a guess, the guess
/// moves to another record that fits it, so each line still pairs with one record.
pub struct FailedAttempts {
    by_ip: BoundedMap<String, VecDeque<Attempt>>,
    per_address: usize,
}

impl FailedAttempts {
    pub fn new(max_addresses: usize, per_address: usize) -> Self {
        FailedAttempts {
            by_ip: BoundedMap::new(max_addresses, ECHO_WINDOW * 6.0),
            per_address,
        }
    }

    /// (is a new attempt, programs that had already logged it)
    ///
    /// `session_user` is the account a user-less line's connection named before, if any.
    pub fn record(
        &mut self,
        ip: &str,
        user: Option<&str>,
        source: Source,
        epoch: f64,
        in_login_session: bool,
        session_user: Option<&str>,
    ) -> (bool, SourceSet) {
        let key = ip.to_string();
        if self.by_ip.touch(&key, epoch).is_none() {
            self.by_ip.put(key.clone(), VecDeque::new(), epoch);
        }
        let per_address = self.per_address;
        // a put that sweeps at a NaN time retires the new deque too: Python then
        // fills a deque that no map holds any more
        let mut detached = VecDeque::new();
        let attempts = match self.by_ip.entries.get_mut(&key) {
            Some(entry) => &mut entry.1,
            None => &mut detached,
        };
        record_in(
            attempts,
            per_address,
            user,
            source,
            epoch,
            in_login_session,
            session_user,
        )
    }

    /// Mark up to `most` sessionless Dovecot passdb failures of `ip` as summarized.
    ///
    /// Used for a login summary whose session the auth process did not name.
    /// Failures already paired with a Postfix SASL line belong to SMTP and are
    /// never claimed.
    pub fn claim_for_summary(
        &mut self,
        ip: &str,
        user: Option<&str>,
        since: f64,
        until: f64,
        most: i64,
    ) -> i64 {
        let Some(attempts) = self.by_ip.get(&ip.to_string(), until) else {
            return 0;
        };
        let mut claimed = 0;
        for attempt in attempts.iter_mut() {
            if claimed >= most {
                break;
            }
            if !attempt.summarized
                && !attempt.in_login_session
                && attempt.sources.contains(Source::Dovecot)
                && !attempt.sources.contains(Source::Smtpd)
                && since - ECHO_WINDOW <= attempt.epoch
                && attempt.epoch <= until
                && same_account(user, attempt.user.as_deref())
            {
                attempt.summarized = true;
                claimed += 1;
            }
        }
        claimed
    }
}

/// The body of `FailedAttempts.record` once the address's deque is found.
fn record_in(
    attempts: &mut VecDeque<Attempt>,
    per_address: usize,
    user: Option<&str>,
    source: Source,
    epoch: f64,
    in_login_session: bool,
    session_user: Option<&str>,
) -> (bool, SourceSet) {
    let hint = if user.is_none() { session_user } else { None };
    let mut fallback: Option<usize> = None;
    for (index, attempt) in attempts.iter_mut().enumerate() {
        if pairs(attempt, user, source, epoch, in_login_session) {
            let preferred = match hint {
                None => true,
                Some(hint) => {
                    attempt.user.is_some() && same_account(Some(hint), attempt.user.as_deref())
                }
            };
            if preferred {
                return (false, join(attempt, user, source));
            }
            if fallback.is_none() {
                fallback = Some(index);
            }
        }
    }
    if let Some(index) = fallback {
        return (false, join(&mut attempts[index], user, source));
    }
    if let (Source::Smtpd, Some(user)) = (source, user) {
        if let Some(taken_back) = take_back(attempts, user, epoch) {
            return (false, taken_back);
        }
    }
    // deque(maxlen=per_address): appending to a full deque drops the oldest
    if per_address > 0 {
        if attempts.len() >= per_address {
            attempts.pop_front();
        }
        attempts.push_back(Attempt {
            epoch,
            user: user.map(str::to_string),
            sources: SourceSet::default().with(source),
            in_login_session,
            summarized: false,
            smtpd_guessed: source == Source::Smtpd && user.is_none(),
        });
    }
    (true, SourceSet::default())
}

/// Can a failure of `source` be another record of `attempt`?
fn pairs(
    attempt: &Attempt,
    user: Option<&str>,
    source: Source,
    epoch: f64,
    in_login_session: bool,
) -> bool {
    !attempt.sources.contains(source)
        && (epoch - attempt.epoch).abs() <= ECHO_WINDOW
        && same_account(user, attempt.user.as_deref())
        && !(source == Source::Smtpd && attempt.in_login_session)
        && !(in_login_session && attempt.sources.contains(Source::Smtpd))
}

fn join(attempt: &mut Attempt, user: Option<&str>, source: Source) -> SourceSet {
    let earlier = attempt.sources;
    attempt.sources = attempt.sources.with(source);
    if attempt.user.is_none() {
        attempt.user = user.map(str::to_string);
    }
    if source == Source::Smtpd && user.is_none() {
        attempt.smtpd_guessed = true;
    }
    earlier
}

/// Pair a named Postfix line with its record that a user-less line took by guess.
///
/// The guess moves to another record that fits a line without an account;
/// returns the programs that had logged the attempt, or None when no record can move.
fn take_back(attempts: &mut VecDeque<Attempt>, user: &str, epoch: f64) -> Option<SourceSet> {
    let mut taken: Option<usize> = None;
    let mut free: Option<usize> = None;
    for (index, attempt) in attempts.iter().enumerate() {
        if (epoch - attempt.epoch).abs() > ECHO_WINDOW {
            continue;
        }
        if taken.is_none()
            && attempt.smtpd_guessed
            && attempt.user.is_some()
            && same_account(Some(user), attempt.user.as_deref())
        {
            taken = Some(index);
        } else if free.is_none() && pairs(attempt, None, Source::Smtpd, epoch, false) {
            free = Some(index);
        }
    }
    let (taken, free) = (taken?, free?);
    join(&mut attempts[free], None, Source::Smtpd);
    let taken = &mut attempts[taken];
    taken.smtpd_guessed = false;
    Some(taken.sources.without(Source::Smtpd))
}

/// Whether two logged names can be the same account (case, realm added or not).
pub fn same_account(first: Option<&str>, second: Option<&str>) -> bool {
    let (Some(first), Some(second)) = (first, second) else {
        return true;
    };
    let (a, b) = (pytext::casefold(first), pytext::casefold(second));
    if a == b {
        return true;
    }
    if a.contains('@') == b.contains('@') {
        return false;
    }
    local_part(&a) == local_part(&b)
}

/// `text.partition("@")[0]`.
fn local_part(text: &str) -> &str {
    text.split_once('@').map_or(text, |(local, _)| local)
}

/// All correlation state of one mail host.
pub struct HostState {
    /// keyed by (program, pid) of the smtpd process
    pub smtpd: BoundedMap<(Rc<str>, Option<Rc<str>>), SmtpdSession>,
    pub queue: QueueMap,
    pub logins: BoundedMap<String, LoginSession>,
    pub login_pids: BoundedMap<String, String>,
    pub session_failures: BoundedMap<String, i64>,
    pub failures: FailedAttempts,
}

/// What `HostState::import_queue` did with a snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueImport {
    pub restored: i64,
    /// past the expiry or beyond the size bound
    pub dropped: i64,
    /// malformed: wrong types, missing fields, not a queue id
    pub skipped: i64,
    /// the snapshot itself is not one (the other counts are then zero)
    pub unusable: Option<String>,
}

/// Number of fields of an exported queue entry (`_QUEUE_FIELDS`: queue_id, time,
/// user, client_ip, tls, protocol, sender, notice_of, notice_kind, queued_before).
const QUEUE_FIELDS: usize = 10;
/// no logged field is longer than a log line
const MAX_TEXT: usize = 64 * 1024;

impl HostState {
    pub fn new() -> Self {
        HostState {
            smtpd: BoundedMap::new(20_000, 3600.0),
            queue: QueueMap::new(200_000, 6.0 * 86400.0),
            logins: BoundedMap::new(100_000, 2.0 * 86400.0),
            login_pids: BoundedMap::new(100_000, 2.0 * 86400.0),
            session_failures: BoundedMap::new(100_000, 3600.0),
            failures: FailedAttempts::new(100_000, 32),
        }
    }

    /// The queue map as JSON (`{"as_of": ..., "entries": [...]}`), as orjson writes Python's export.
    ///
    /// Entries are lists in the order of the queue fields, least recently used
    /// first, so that an import keeps the eviction order.
    pub fn export_queue_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 128 * self.queue.len());
        out.extend_from_slice(b"{\"as_of\":");
        let latest = self.queue.latest;
        if latest.is_finite() {
            write_f64(latest, &mut out);
        } else {
            out.extend_from_slice(b"null");
        }
        out.extend_from_slice(b",\"entries\":[");
        for (index, (queue_id, time, message)) in self.queue.items().into_iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            out.push(b'[');
            write_str(queue_id, &mut out);
            out.push(b',');
            write_f64(time, &mut out);
            for text in [
                &message.user,
                &message.client_ip,
                &message.tls,
                &message.protocol,
                &message.sender,
                &message.notice_of,
                &message.notice_kind,
            ] {
                out.push(b',');
                write_opt_str(text.as_deref(), &mut out);
            }
            out.push(b',');
            let queued = message.queued_before || message.queued_at_snapshot;
            out.extend_from_slice(if queued { b"true" } else { b"false" });
            out.push(b']');
        }
        out.extend_from_slice(b"]}");
        out
    }

    /// Restore from JSON bytes of an export; never fails (bad input is reported).
    ///
    /// Malformed entries are skipped, entries past the expiry (measured from the
    /// snapshot's latest event time) or beyond the size bound dropped. Restored
    /// entries replay up to that event time (see the module notes). Bytes that
    /// are not JSON at all are reported as `not JSON` (Python's caller, which
    /// decodes them with orjson, fails before `import_queue`).
    pub fn import_queue_json(&mut self, data: &[u8]) -> QueueImport {
        match serde_json::from_slice::<Json>(&integer_minus_zero_as_zero(data)) {
            Ok(value) => self.import_queue(&value),
            Err(_) => QueueImport {
                unusable: Some("not JSON".to_string()),
                ..QueueImport::default()
            },
        }
    }

    /// `HostState.import_queue` on the decoded JSON value.
    fn import_queue(&mut self, data: &Json) -> QueueImport {
        let mut report = QueueImport::default();
        let Json::Object(data) = data else {
            report.unusable = Some("not a JSON object".to_string());
            return report;
        };
        let Some(Json::Array(rows)) = data.get("entries") else {
            report.unusable = Some("no list of entries".to_string());
            return report;
        };
        let mut as_of = data.get("as_of").and_then(event_time);
        let queue = &mut self.queue;
        // Only the youngest entries fit; the older ones are not even checked.
        // (`rows[-0:]` is every row: a bound of 0 keeps them all, as in Python.)
        let max_size = queue.max_size();
        let fitting = if rows.len() > max_size && max_size > 0 {
            &rows[rows.len() - max_size..]
        } else {
            &rows[..]
        };
        report.dropped = (rows.len() - fitting.len()) as i64;
        let mut restored: Vec<(String, f64, QueuedMessage)> = Vec::new();
        for row in fitting {
            match restored_message(row) {
                None => report.skipped += 1,
                Some(entry) => restored.push(entry),
            }
        }
        if let Some(first) = restored.first() {
            let latest = restored
                .iter()
                .skip(1)
                .fold(first.1, |most, entry| py_max(most, entry.1));
            as_of = Some(match as_of {
                None => latest,
                Some(as_of) => py_max(as_of, latest),
            });
        }
        let Some(as_of) = as_of else {
            return report;
        };
        let horizon = as_of - queue.ttl();
        for (queue_id, time, mut message) in restored {
            if time < horizon {
                report.dropped += 1;
                continue;
            }
            message.replay_until = Some(as_of);
            queue.restore(queue_id, message, time);
            queue.restored = true;
            report.restored += 1;
        }
        if as_of > queue.latest {
            queue.latest = as_of;
        }
        report
    }
}

impl Default for HostState {
    fn default() -> Self {
        Self::new()
    }
}

/// orjson reads the integer `-0` as the int 0 (a time of `0.0`), serde_json as
/// the float -0.0 (written back `-0.0`): give serde_json `0` for it, outside
/// strings. The byte count stays, and valid JSON stays valid (and invalid invalid).
fn integer_minus_zero_as_zero(data: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !data.windows(2).any(|pair| pair == b"-0") {
        return std::borrow::Cow::Borrowed(data);
    }
    let mut out = data.to_vec();
    let (mut in_string, mut escaped) = (false, false);
    for index in 0..out.len() {
        let byte = out[index];
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
        } else if byte == b'"' {
            in_string = true;
        } else if byte == b'-'
            && out.get(index + 1) == Some(&b'0')
            && !matches!(out.get(index + 2), Some(b'0'..=b'9' | b'.' | b'e' | b'E'))
        {
            out[index] = b' ';
        }
    }
    std::borrow::Cow::Owned(out)
}

// -- import checks ------------------------------------------------------------------

/// `_text_or_none`: Err where Python raises ValueError("not a text").
fn text_or_none(value: &Json) -> Result<Option<String>, ()> {
    match value {
        Json::Null => Ok(None),
        Json::String(text) if pytext::char_len(text) <= MAX_TEXT => Ok(Some(text.clone())),
        _ => Err(()),
    }
}

fn is_queue_id(value: &Json) -> bool {
    match value {
        Json::String(text) => {
            (5..=20).contains(&text.len())
                && text.is_ascii()
                && text.bytes().all(|b| b.is_ascii_alphanumeric())
                && text != "NOQUEUE"
        }
        _ => false,
    }
}

/// `_event_time`: an int or float (not a bool), finite, as a float.
fn event_time(value: &Json) -> Option<f64> {
    let Json::Number(number) = value else {
        return None;
    };
    // u64 and i64 convert with rounding to nearest, as Python's float(int)
    let number = number.as_f64()?;
    number.is_finite().then_some(number)
}

/// One exported entry, checked field by field; None when anything is off.
fn restored_message(row: &Json) -> Option<(String, f64, QueuedMessage)> {
    let Json::Array(row) = row else {
        return None;
    };
    if row.len() != QUEUE_FIELDS {
        return None;
    }
    let time = event_time(&row[1]);
    let Json::String(queue_id) = &row[0] else {
        return None;
    };
    if !is_queue_id(&row[0]) {
        return None;
    }
    let (Some(time), Json::Bool(queued_at_snapshot)) = (time, &row[9]) else {
        return None;
    };
    let texts = || -> Result<QueuedMessage, ()> {
        let mut message = QueuedMessage::new(
            text_or_none(&row[2])?,
            text_or_none(&row[3])?,
            text_or_none(&row[4])?,
            text_or_none(&row[5])?,
            text_or_none(&row[6])?,
        );
        message.notice_of = text_or_none(&row[7])?;
        message.notice_kind = text_or_none(&row[8])?;
        Ok(message)
    };
    let mut message = texts().ok()?;
    message.queued_at_snapshot = *queued_at_snapshot;
    Some((queue_id.clone(), time, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    // -- BoundedMap (tests/unit/parsers/test_correlation.py) --------------------------

    #[test]
    fn bounded_map_drops_the_least_recently_used() {
        let mut entries: BoundedMap<String, i64> = BoundedMap::new(3, 100.0);
        for (n, key) in ["a", "b", "c"].into_iter().enumerate() {
            entries.put(key.to_string(), n as i64, 0.0);
        }
        entries.touch(&"a".to_string(), 1.0);
        entries.put("d".to_string(), 3, 2.0);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries.get(&"b".to_string(), 2.0), None);
        assert_eq!(entries.get(&"a".to_string(), 2.0).copied(), Some(0));
    }

    #[test]
    fn bounded_map_expires_by_event_time() {
        let mut entries: BoundedMap<String, i64> = BoundedMap::new(10, 60.0);
        entries.put("old".to_string(), 1, 0.0);
        assert_eq!(entries.get(&"old".to_string(), 60.0).copied(), Some(1));
        assert_eq!(entries.get(&"old".to_string(), 61.0), None);
        assert!(entries.is_empty());
    }

    #[test]
    fn many_keys_stay_bounded() {
        let mut entries: BoundedMap<i64, i64> = BoundedMap::new(1000, 1e9);
        for n in 0..200_000 {
            entries.put(n, n, n as f64);
        }
        assert_eq!(entries.len(), 1000);
    }

    #[test]
    fn sweep_retires_expired_entries_without_reads() {
        let mut entries: BoundedMap<i64, i64> = BoundedMap::new(10_000, 5.0);
        for n in 0..500 {
            entries.put(n, n, n as f64);
        }
        // Python: 58 entries, the oldest (442, 442.0, 442)
        assert_eq!(entries.len(), 58);
        assert_eq!(entries.items()[0], (&442, 442.0, &442));
    }

    #[test]
    fn touch_keeps_the_later_time_and_restore_evicts() {
        let key = |k: &str| k.to_string();
        let mut entries: BoundedMap<String, i64> = BoundedMap::new(3, 100.0);
        entries.put(key("a"), 1, 10.0);
        entries.put(key("b"), 2, 0.0);
        entries.touch(&key("a"), 5.0);
        assert_eq!(
            entries.items(),
            vec![(&key("b"), 0.0, &2), (&key("a"), 10.0, &1)]
        );
        *entries.touch(&key("b"), 20.0).unwrap() += 0;
        assert_eq!(
            entries.items(),
            vec![(&key("a"), 10.0, &1), (&key("b"), 20.0, &2)]
        );
        assert_eq!(entries.get(&key("a"), 111.0), None);
        assert_eq!(entries.items(), vec![(&key("b"), 20.0, &2)]);
        entries.restore(key("c"), 3, 1.0);
        entries.restore(key("d"), 4, 2.0);
        entries.restore(key("e"), 5, 3.0);
        assert_eq!(
            entries.items(),
            vec![
                (&key("c"), 1.0, &3),
                (&key("d"), 2.0, &4),
                (&key("e"), 3.0, &5)
            ]
        );
        // the value is mutated in place, as Python mutates the object it got
        *entries.get(&key("d"), 3.0).unwrap() = 40;
        assert_eq!(entries.pop(&key("d")), Some(40));
        assert_eq!(entries.pop(&key("d")), None);
    }

    // -- accounts and attempts ------------------------------------------------------

    #[test]
    fn same_account_rules() {
        assert!(same_account(
            Some("Alice@Example.com"),
            Some("alice@example.com")
        ));
        assert!(same_account(Some("alice"), Some("alice@example.com")));
        assert!(same_account(None, Some("bob")));
        assert!(!same_account(
            Some("alice@example.com"),
            Some("alice@example.org")
        ));
        assert!(!same_account(Some("alice"), Some("bob@example.com")));
        assert!(same_account(Some("STRASSE"), Some("stra\u{df}e")));
    }

    const NONE: SourceSet = SourceSet(0);

    fn set(sources: &[Source]) -> SourceSet {
        sources.iter().fold(NONE, |set, source| set.with(*source))
    }

    #[test]
    fn failed_attempts_direct() {
        let mut attempts = FailedAttempts::new(100_000, 32);
        let ip = "192.0.2.1";
        assert_eq!(
            attempts.record(ip, Some("a"), Source::Pam, 0.0, false, None),
            (true, NONE)
        );
        assert_eq!(
            attempts.record(ip, Some("a"), Source::Dovecot, 1.0, true, None),
            (false, set(&[Source::Pam]))
        );
        assert!(
            attempts
                .record(ip, Some("a"), Source::Pam, 1.0, false, None)
                .0
        );
    }

    #[test]
    fn userless_line_prefers_the_account_its_connection_named() {
        let mut attempts = FailedAttempts::new(100_000, 32);
        let ip = "192.0.2.9";
        assert!(
            attempts
                .record(ip, Some("b@x"), Source::Dovecot, 0.0, false, None)
                .0
        );
        assert!(
            attempts
                .record(ip, Some("a@x"), Source::Dovecot, 0.0, false, None)
                .0
        );
        let got = attempts.record(ip, None, Source::Smtpd, 1.0, false, Some("a@x"));
        assert_eq!(got, (false, set(&[Source::Dovecot])));
        assert_eq!(attempts.claim_for_summary(ip, Some("b@x"), 0.0, 1.0, 5), 1);
        assert_eq!(attempts.claim_for_summary(ip, Some("a@x"), 0.0, 1.0, 5), 0);
    }

    #[test]
    fn userless_line_without_a_hint_takes_the_oldest_record() {
        let mut attempts = FailedAttempts::new(100_000, 32);
        let ip = "192.0.2.9";
        attempts.record(ip, Some("b@x"), Source::Dovecot, 0.0, false, None);
        attempts.record(ip, Some("a@x"), Source::Dovecot, 0.0, false, None);
        assert!(!attempts.record(ip, None, Source::Smtpd, 1.0, false, None).0);
        assert_eq!(attempts.claim_for_summary(ip, Some("b@x"), 0.0, 1.0, 5), 0);
        assert_eq!(attempts.claim_for_summary(ip, Some("a@x"), 0.0, 1.0, 5), 1);
    }

    #[test]
    fn named_line_takes_back_its_record_from_a_guess() {
        // F6 of test_correlation.py, at the level of FailedAttempts
        let mut attempts = FailedAttempts::new(100_000, 32);
        let ip = "176.116.169.81";
        assert!(
            attempts
                .record(
                    ip,
                    Some("test@example.org"),
                    Source::Dovecot,
                    6.0,
                    false,
                    None
                )
                .0
        );
        assert!(
            attempts
                .record(
                    ip,
                    Some("office@mail.example.com"),
                    Source::Dovecot,
                    6.0,
                    false,
                    None
                )
                .0
        );
        // the user-less line guesses the oldest record (test@...)
        assert_eq!(
            attempts.record(ip, None, Source::Smtpd, 8.0, false, None),
            (false, set(&[Source::Dovecot]))
        );
        // the named line finds it taken and moves the guess to office@...
        let named = attempts.record(
            ip,
            Some("test@example.org"),
            Source::Smtpd,
            8.0,
            false,
            None,
        );
        assert_eq!(named, (false, set(&[Source::Dovecot])));
        // a third Postfix line is a new attempt
        assert_eq!(
            attempts.record(ip, None, Source::Smtpd, 9.0, false, None),
            (true, NONE)
        );
    }

    #[test]
    fn per_address_deque_drops_the_oldest() {
        // values printed by Python: FailedAttempts(per_address=2)
        let mut attempts = FailedAttempts::new(100_000, 2);
        let ip = "1.1.1.1";
        for user in ["a", "b", "c"] {
            assert_eq!(
                attempts.record(ip, Some(user), Source::Pam, 0.0, false, None),
                (true, NONE)
            );
        }
        assert_eq!(
            attempts.record(ip, Some("a"), Source::Dovecot, 0.0, false, None),
            (true, NONE)
        );
        assert_eq!(
            attempts.record(ip, Some("c"), Source::Dovecot, 0.0, false, None),
            (false, set(&[Source::Pam]))
        );
    }

    #[test]
    fn sources_accumulate_and_expire() {
        let mut attempts = FailedAttempts::new(100_000, 32);
        let ip = "1.1.1.1";
        assert_eq!(
            attempts.record(ip, Some("a"), Source::Pam, 0.0, false, None),
            (true, NONE)
        );
        let cyrus = attempts.record(ip, Some("a"), Source::Cyrus, 0.0, false, None);
        assert_eq!(cyrus, (false, set(&[Source::Pam])));
        let dovecot = attempts.record(ip, Some("A"), Source::Dovecot, 0.0, false, None);
        assert_eq!(dovecot.1.names(), vec!["cyrus", "pam"]);
        let smtpd = attempts.record(ip, Some("a@x"), Source::Smtpd, 0.0, false, None);
        assert_eq!(smtpd.1.names(), vec!["cyrus", "dovecot", "pam"]);
        assert_eq!(
            attempts.record(ip, Some("a"), Source::Pam, 61.0, false, None),
            (true, NONE)
        );
        assert_eq!(
            attempts.record(ip, Some("a"), Source::Dovecot, 120.0, false, None),
            (true, NONE)
        );
        assert_eq!(
            attempts.record(ip, Some("a"), Source::Pam, 130.5, false, None),
            (true, NONE)
        );
    }

    #[test]
    fn source_set_names_are_sorted() {
        let all = set(&[Source::Smtpd, Source::Pam, Source::Dovecot, Source::Cyrus]);
        assert_eq!(all.names(), vec!["cyrus", "dovecot", "pam", "smtpd"]);
        assert!(all.contains(Source::Smtpd) && !NONE.contains(Source::Smtpd) && NONE.is_empty());
        assert_eq!(
            all.without(Source::Smtpd).names(),
            vec!["cyrus", "dovecot", "pam"]
        );
    }

    // -- snapshots (tests/unit/parsers/test_correlation_snapshot.py) -------------------

    /// (JSON given to `import_queue(orjson.loads(...))`, report, `orjson.dumps(export_queue())`),
    /// as Python gives them.
    type Report = (i64, i64, i64, Option<&'static str>);

    const IMPORTS: &[(&str, Report, &str)] = &[
        (
            r#"{"as_of":100.0,"entries":[["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null],["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
            (1, 0, 1, None),
            r#"{"as_of":100.0,"entries":[["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
        ),
        (
            r#"{"as_of":100.0,"entries":[["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false,"extra"],["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
            (1, 0, 1, None),
            r#"{"as_of":100.0,"entries":[["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
        ),
        (
            r#"{"as_of":100.0,"entries":[{"queue_id":"ABCDE12345"},["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
            (1, 0, 1, None),
            r#"{"as_of":100.0,"entries":[["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
        ),
        (
            r#"{"as_of":100.0,"entries":["ABCDE12345",["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
            (1, 0, 1, None),
            r#"{"as_of":100.0,"entries":[["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
        ),
        (
            r#"{"as_of":100.0,"entries":[null,["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
            (1, 0, 1, None),
            r#"{"as_of":100.0,"entries":[["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
        ),
        (
            r#"{"as_of":100.0,"entries":[["../../etc",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false],["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
            (1, 0, 1, None),
            r#"{"as_of":100.0,"entries":[["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
        ),
        (
            r#"{"as_of":100.0,"entries":[["ABCDE12345","100","a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false],["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
            (1, 0, 1, None),
            r#"{"as_of":100.0,"entries":[["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
        ),
        (
            r#"{"as_of":100.0,"entries":[["ABCDE12345",true,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false],["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
            (1, 0, 1, None),
            r#"{"as_of":100.0,"entries":[["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
        ),
        (
            r#"{"as_of":100.0,"entries":[["ABCDE12345",100.0,42,"192.0.2.1","TLSv1.3","smtp","a@x",null,null,false],["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
            (1, 0, 1, None),
            r#"{"as_of":100.0,"entries":[["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
        ),
        (
            r#"{"as_of":100.0,"entries":[["ABCDE12345",100.0,["a@x"],"192.0.2.1","TLSv1.3","smtp","a@x",null,null,false],["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
            (1, 0, 1, None),
            r#"{"as_of":100.0,"entries":[["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
        ),
        (
            r#"{"as_of":100.0,"entries":[["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,"yes"],["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
            (1, 0, 1, None),
            r#"{"as_of":100.0,"entries":[["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
        ),
        (
            r#"{"as_of":100.0,"entries":[["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,1],["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
            (1, 0, 1, None),
            r#"{"as_of":100.0,"entries":[["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
        ),
        (
            r#"{"as_of":100.0,"entries":[["NOQUEUE",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false],["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
            (1, 0, 1, None),
            r#"{"as_of":100.0,"entries":[["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
        ),
        (
            r#"{"as_of":100.0,"entries":[["ABCD",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false],["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
            (1, 0, 1, None),
            r#"{"as_of":100.0,"entries":[["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
        ),
        (
            r#"{"as_of":100.0,"entries":[["AAAAAAAAAAAAAAAAAAAAA",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false],["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
            (1, 0, 1, None),
            r#"{"as_of":100.0,"entries":[["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
        ),
        (
            "{\"as_of\":100.0,\"entries\":[[\"ABCD\u{c9}12345\",100.0,\"a@x\",\"192.0.2.1\",\"TLSv1.3\",\"smtp\",\"a@x\",null,null,false],[\"ABCDE12345\",100.0,\"a@x\",\"192.0.2.1\",\"TLSv1.3\",\"smtp\",\"a@x\",null,null,false]]}",
            (1, 0, 1, None),
            r#"{"as_of":100.0,"entries":[["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]]}"#,
        ),
        (
            r#"null"#,
            (0, 0, 0, Some("not a JSON object")),
            r#"{"as_of":null,"entries":[]}"#,
        ),
        (
            r#"[]"#,
            (0, 0, 0, Some("not a JSON object")),
            r#"{"as_of":null,"entries":[]}"#,
        ),
        (
            r#""text""#,
            (0, 0, 0, Some("not a JSON object")),
            r#"{"as_of":null,"entries":[]}"#,
        ),
        (
            r#"42"#,
            (0, 0, 0, Some("not a JSON object")),
            r#"{"as_of":null,"entries":[]}"#,
        ),
        (
            r#"{"entries":"no"}"#,
            (0, 0, 0, Some("no list of entries")),
            r#"{"as_of":null,"entries":[]}"#,
        ),
        (
            r#"{"as_of":1.0}"#,
            (0, 0, 0, Some("no list of entries")),
            r#"{"as_of":null,"entries":[]}"#,
        ),
        (
            r#"{"entries":null}"#,
            (0, 0, 0, Some("no list of entries")),
            r#"{"as_of":null,"entries":[]}"#,
        ),
        (
            r#"{"as_of":864000.0,"entries":[["ABCDE12345",0.0,"old@x",null,null,"smtp",null,null,null,true],["BCDEF23456",777600.0,"new@x",null,null,"smtp",null,null,null,false]]}"#,
            (1, 1, 0, None),
            r#"{"as_of":864000.0,"entries":[["BCDEF23456",777600.0,"new@x",null,null,"smtp",null,null,null,false]]}"#,
        ),
        (
            "{\"as_of\":1.0,\"entries\":[[\"ABCDE12345\",1.0,\"x\\\", \\\"as_of\\\": 0, \\\"entries\\\": [] } {\\\"a\\\\\\n\u{2028}\\u0000\\u001b\u{7f}\",\"192.0.2.1\",\"TLSv1.3\",\"smtp\",\"a@x\",null,null,false]]}",
            (1, 0, 0, None),
            "{\"as_of\":1.0,\"entries\":[[\"ABCDE12345\",1.0,\"x\\\", \\\"as_of\\\": 0, \\\"entries\\\": [] } {\\\"a\\\\\\n\u{2028}\\u0000\\u001b\u{7f}\",\"192.0.2.1\",\"TLSv1.3\",\"smtp\",\"a@x\",null,null,false]]}",
        ),
        (
            r#"{"as_of": -0, "entries": [["ABCDE12345", -0, null, null, null, null, null, null, null, true]]}"#,
            (1, 0, 0, None),
            r#"{"as_of":0.0,"entries":[["ABCDE12345",0.0,null,null,null,null,null,null,null,true]]}"#,
        ),
        (
            r#"{"as_of": 5, "entries": [["ABCDE12345", 3, null, null, null, null, null, null, null, true], ["BCDEF12345", 18446744073709551615, null, null, null, null, null, null, null, false]]}"#,
            (1, 1, 0, None),
            r#"{"as_of":1.8446744073709552e+19,"entries":[["BCDEF12345",1.8446744073709552e+19,null,null,null,null,null,null,null,false]]}"#,
        ),
        (
            r#"{"as_of": 1700000000.123, "entries": [["ABCDE12345", 1e16, null, null, null, null, null, null, null, true], ["BCDEF12345", 1.5e-7, null, null, null, null, null, null, null, false]]}"#,
            (1, 1, 0, None),
            r#"{"as_of":1e+16,"entries":[["ABCDE12345",1e+16,null,null,null,null,null,null,null,true]]}"#,
        ),
        (
            r#"{"entries": [], "as_of": 7}"#,
            (0, 0, 0, None),
            r#"{"as_of":7.0,"entries":[]}"#,
        ),
        (
            r#"{"entries": []}"#,
            (0, 0, 0, None),
            r#"{"as_of":null,"entries":[]}"#,
        ),
        (
            r#"{"entries": [1, 2]}"#,
            (0, 0, 2, None),
            r#"{"as_of":null,"entries":[]}"#,
        ),
        (
            r#"{"entries": [["ABCDE12345", 3.5, null, null, null, null, null, null, null, false]], "as_of": null}"#,
            (1, 0, 0, None),
            r#"{"as_of":3.5,"entries":[["ABCDE12345",3.5,null,null,null,null,null,null,null,false]]}"#,
        ),
        (
            r#"{"entries": [["ABCDE12345", 3.5, null, null, null, null, null, null, null, false], ["ABCDE12345", 2.5, "b", null, null, null, null, null, null, true]], "as_of": "x", "as_of": 1.0}"#,
            (2, 0, 0, None),
            r#"{"as_of":3.5,"entries":[["ABCDE12345",2.5,"b",null,null,null,null,null,null,true]]}"#,
        ),
        (
            r#"{"as_of": true, "entries": [["ABCDE12345", 3.5, null, null, null, null, null, null, null, false]]}"#,
            (1, 0, 0, None),
            r#"{"as_of":3.5,"entries":[["ABCDE12345",3.5,null,null,null,null,null,null,null,false]]}"#,
        ),
        (
            r#"{"as_of": -1e-400, "entries": [["ABCDE12345", -0.0, "-0", null, null, null, null, null, null, true]]}"#,
            (1, 0, 0, None),
            r#"{"as_of":-0.0,"entries":[["ABCDE12345",-0.0,"-0",null,null,null,null,null,null,true]]}"#,
        ),
        (
            r#"{"as_of": -0e0, "entries": [["ABCDE12345",-0, "a\"-0", null, null, null, null, null, null, true], ["BCDEF12345",-0 , null, null, null, null, null, null, null, false]]}"#,
            (2, 0, 0, None),
            r#"{"as_of":-0.0,"entries":[["ABCDE12345",0.0,"a\"-0",null,null,null,null,null,null,true],["BCDEF12345",0.0,null,null,null,null,null,null,null,false]]}"#,
        ),
        (
            r#"{"as_of": 123456789012345678901234567890, "entries": []}"#,
            (0, 0, 0, None),
            r#"{"as_of":1.2345678901234568e+29,"entries":[]}"#,
        ),
        (
            r#"{"as_of": 1e3, "entries": [["Q0000000001", -1e3, null, null, null, null, null, null, null, false]]}"#,
            (1, 0, 0, None),
            r#"{"as_of":1000.0,"entries":[["Q0000000001",-1000.0,null,null,null,null,null,null,null,false]]}"#,
        ),
    ];

    #[test]
    fn import_and_export_match_python() {
        for (data, (restored, dropped, skipped, unusable), export) in IMPORTS {
            let mut state = HostState::new();
            let report = state.import_queue_json(data.as_bytes());
            let want = QueueImport {
                restored: *restored,
                dropped: *dropped,
                skipped: *skipped,
                unusable: unusable.map(str::to_string),
            };
            assert_eq!(report, want, "import of {data}");
            assert_eq!(
                String::from_utf8(state.export_queue_json()).unwrap(),
                *export,
                "export after {data}"
            );
        }
    }

    #[test]
    fn overlong_texts_are_skipped() {
        let good =
            r#"["ABCDE12345",100.0,"a@x","192.0.2.1","TLSv1.3","smtp","a@x",null,null,false]"#;
        for (size, skipped) in [(70_000, 1), (65_536, 0)] {
            let long = format!(
                r#"["ABCDE12345",100.0,"{}",null,null,"smtp","a@x",null,null,false]"#,
                "\u{e9}".repeat(size)
            );
            let data = format!(r#"{{"as_of":100.0,"entries":[{long},{good}]}}"#);
            let mut state = HostState::new();
            let report = state.import_queue_json(data.as_bytes());
            assert_eq!((report.restored, report.skipped), (2 - skipped, skipped));
            assert_eq!(
                state
                    .queue
                    .get("ABCDE12345", 100.0)
                    .unwrap()
                    .user
                    .as_deref(),
                Some("a@x")
            );
        }
    }

    #[test]
    fn bytes_that_are_not_json_are_unusable() {
        for data in [
            &b""[..],
            b"{",
            b"NaN",
            b"\xef\xbb\xbf{}",
            b"{\"entries\":[]} x",
            b"[1e400]",
            b"\"\\ud800\"",
            b"\xff",
        ] {
            let mut state = HostState::new();
            let report = state.import_queue_json(data);
            assert_eq!(
                report,
                QueueImport {
                    unusable: Some("not JSON".to_string()),
                    ..QueueImport::default()
                }
            );
        }
    }

    #[test]
    fn a_huge_list_keeps_only_the_youngest_entries_within_the_bound() {
        let mut state = HostState::new();
        let bound = state.queue.max_size();
        let rows: Vec<String> = (0..bound + 500)
            .map(|n| format!(r#"["Q{n:010}",{n}.0,null,null,null,null,null,null,null,false]"#))
            .collect();
        let data = format!(
            r#"{{"as_of":{}.0,"entries":[{}]}}"#,
            bound + 500,
            rows.join(",")
        );
        let report = state.import_queue_json(data.as_bytes());
        assert_eq!((report.restored, report.dropped), (bound as i64, 500));
        assert_eq!(state.queue.len(), bound);
        let now = (bound + 500) as f64;
        assert!(state
            .queue
            .get(&format!("Q{:010}", bound + 499), now)
            .is_some());
        assert!(state.queue.get("Q0000000000", now).is_none());
    }

    #[test]
    fn restored_entries_replay_until_the_snapshot_time() {
        // the same steps in Python give these values
        let mut state = HostState::new();
        let data = r#"{"as_of":100.0,"entries":[["ABCDE12345",90.0,"a@x",null,null,"smtp",null,null,null,true],["BCDEF12345",80.0,null,null,null,null,null,null,null,false]]}"#;
        let report = state.import_queue_json(data.as_bytes());
        assert_eq!((report.restored, report.dropped, report.skipped), (2, 0, 0));
        let other = || QueuedMessage::new(Some("other".to_string()), None, None, None, None);
        state.queue.put("ABCDE12345".to_string(), other(), 95.0);
        let message = state.queue.get("ABCDE12345", 99.0).unwrap();
        assert_eq!(message.user.as_deref(), Some("a@x"));
        assert_eq!(
            (
                message.queued_before,
                message.replay_until,
                message.queued_at_snapshot
            ),
            (false, Some(100.0), true)
        );
        assert_eq!(state.export_queue_json(), data.as_bytes());
        let message = state.queue.get("ABCDE12345", 101.0).unwrap();
        assert_eq!((message.queued_before, message.replay_until), (true, None));
        let new = QueuedMessage::new(Some("new".to_string()), None, None, None, None);
        state.queue.put("BCDEF12345".to_string(), new, 102.0);
        let want = r#"{"as_of":102.0,"entries":[["ABCDE12345",90.0,"a@x",null,null,"smtp",null,null,null,true],["BCDEF12345",102.0,"new",null,null,null,null,null,null,false]]}"#;
        assert_eq!(String::from_utf8(state.export_queue_json()).unwrap(), want);
        assert!(state.queue.pop("ABCDE12345").is_some());
        assert_eq!(state.queue.len(), 1);
    }

    #[test]
    fn floats_are_written_as_orjson_writes_them() {
        // orjson.dumps(x) for each x
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (1700000000.0, "1700000000.0"),
            (1700000000.123456, "1700000000.123456"),
            (1e15, "1000000000000000.0"),
            (9007199254740992.0, "9007199254740992.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (1e22, "1e+22"),
            (1e100, "1e+100"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (0.001, "0.001"),
            (0.0001, "0.0001"),
            (1e-5, "0.00001"),
            (1.5e-7, "1.5e-7"),
            (2.5e-10, "2.5e-10"),
            (5e-324, "5e-324"),
            (0.1, "0.1"),
            (12345678.9, "12345678.9"),
            (f64::NAN, "null"),
            (f64::INFINITY, "null"),
        ];
        for (value, want) in cases {
            let mut out = Vec::new();
            write_f64(*value, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), *want, "{value:?}");
        }
    }
}
