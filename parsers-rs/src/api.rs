//! The one entry point every caller of the parsers uses (`parsers/api.py`).
//!
//! `LogParser` holds the small per-host correlation state (Postfix queue ids to
//! the submitting account, smtpd sessions to their TLS version, recent auth
//! failures for de-duplication) and turns raw lines into events. It does no I/O.
//!
//! A line goes: bytes -> text (UTF-8; invalid bytes are replaced and the events
//! say so in `extra["invalid_utf8"]`) -> envelope -> the family chosen by
//! program name (postfix, dovecot, auth) -> events. `feed` never fails: bad
//! input comes back as `ParseResult.error`. Python's `feed` also takes `str`;
//! this one takes bytes only, which is what log readers have.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Once;

use hashlink::LinkedHashMap;

use crate::auth::{is_cyrus_badlogin, is_pam_message, AuthLogParser};
use crate::correlation::{HostState, QueueImport};
use crate::dovecot::{is_dovecot_process, DovecotParse, DovecotParser};
use crate::envelope::EnvelopeReader;
use crate::postfix::{self, PostfixParser};
use crate::result::{failed, ignored, LineContext, Origin, ParseResult, Value};

pub const MAX_LINE_BYTES: usize = 64 * 1024;
const ROUTE_CACHE_LIMIT: usize = 4096;

/// Counters since the parser was made. Error reasons are counted without details.
/// The maps keep first-seen order, as Python's dicts do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParserStats {
    pub lines: i64,
    pub events: i64,
    pub ignored: LinkedHashMap<String, i64>,
    pub errors: LinkedHashMap<String, i64>,
    pub invalid_utf8: i64,
}

impl ParserStats {
    /// Count a line that gave no event, by its category or reason.
    pub fn count_unproductive(&mut self, result: &ParseResult) {
        if let Some(category) = &result.ignored {
            count(&mut self.ignored, category);
        } else if let Some(error) = &result.error {
            let reason = error
                .split_once(" (")
                .map_or(error.as_str(), |(head, _)| head);
            count(&mut self.errors, reason);
        }
    }
}

/// `counts[key] = counts.get(key, 0) + 1`, a new key going last.
fn count(counts: &mut LinkedHashMap<String, i64>, key: &str) {
    match counts.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            counts.insert(key.to_string(), 1);
        }
    }
}

/// Where a program's lines go (Python's `Route`: a bound method and a service).
#[derive(Debug, Clone)]
enum Route {
    Postfix(postfix::Route),
    Dovecot,
    Saslauthd,
    Roundcube,
    Other,
}

/// Parses the log lines of one mail host, in the order they were written.
///
/// `timezone` applies to stamps without an offset; `year` to RFC 3164 stamps,
/// which have none (`now`, the caller's clock as epoch seconds, is the
/// alternative: the year is then the one that puts the first stamp no more
/// than a day in the future). `host` overrides the host field of the lines,
/// which Dovecot's own log file does not have.
pub struct LogParser {
    envelopes: EnvelopeReader,
    state: HostState,
    postfix: PostfixParser,
    dovecot: DovecotParser,
    auth: AuthLogParser,
    routes: HashMap<Rc<str>, Route>,
    pub stats: ParserStats,
}

impl LogParser {
    /// Err(message) where Python raises ValueError (an unknown time zone).
    pub fn new(
        host: Option<&str>,
        timezone: &str,
        year: Option<i64>,
        now: Option<f64>,
    ) -> Result<Self, String> {
        let envelopes = EnvelopeReader::new(timezone, year, now, host)?;
        Ok(LogParser {
            envelopes,
            state: HostState::new(),
            postfix: PostfixParser::new(),
            dovecot: DovecotParser::new(),
            auth: AuthLogParser::new(),
            routes: HashMap::new(),
            stats: ParserStats::default(),
        })
    }

    /// Parse one line (without or with its line ending). Never fails on input.
    pub fn feed(&mut self, raw: &[u8], origin: Rc<Origin>) -> ParseResult {
        self.stats.lines += 1;
        let result = self.read_line(raw, origin);
        if !result.events.is_empty() {
            self.stats.events += result.events.len() as i64;
        } else {
            self.stats.count_unproductive(&result);
        }
        result
    }

    /// The Postfix queue id -> account map as JSON, to outlive a restart.
    ///
    /// Sessions and recent failures are left out on purpose (see `correlation`).
    pub fn export_correlation(&self) -> Vec<u8> {
        self.state.export_queue_json()
    }

    /// Restore what `export_correlation` gave, before the first line; never fails.
    ///
    /// Bad entries are skipped and counted in the returned report.
    pub fn import_correlation(&mut self, data: &[u8]) -> QueueImport {
        self.state.import_queue_json(data)
    }

    /// `feed` without the counting of results; the `try` of Python's `feed`.
    fn read_line(&mut self, raw: &[u8], origin: Rc<Origin>) -> ParseResult {
        if raw.len() > MAX_LINE_BYTES {
            return failed(&format!("line too long ({} bytes)", raw.len()));
        }
        let mut invalid_utf8 = false;
        let mut text = match std::str::from_utf8(raw) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => {
                // like bytes.decode("utf-8", "replace"): one U+FFFD per maximal invalid subpart
                invalid_utf8 = true;
                self.stats.invalid_utf8 += 1;
                String::from_utf8_lossy(raw)
            }
        };
        if text.contains(['\n', '\r']) {
            match one_line(&text) {
                Ok(line) => text = Cow::Owned(line),
                Err(reason) => return failed(reason),
            }
        }
        let mut result = match catch_panic(|| self.parse_text(&text, origin)) {
            Ok(result) => result,
            Err(panic) => return failed(&format!("internal parser error (panic: {panic})")),
        };
        if invalid_utf8 {
            for event in &mut result.events {
                // a key already there keeps its place, as in a dict
                match event
                    .extra
                    .iter_mut()
                    .find(|(key, _)| key == "invalid_utf8")
                {
                    Some((_, value)) => *value = Value::Bool(true),
                    None => event
                        .extra
                        .push(("invalid_utf8".to_string(), Value::Bool(true))),
                }
            }
        }
        result
    }

    /// Envelope, route, family parser.
    fn parse_text(&mut self, text: &str, origin: Rc<Origin>) -> ParseResult {
        let mut context = match self.envelopes.read(text, origin) {
            Ok(context) => context,
            Err(error) => return failed(&error.0),
        };
        let route = match self.routes.get(&*context.program) {
            Some(route) => route.clone(),
            None => self.route_for(&context.program),
        };
        match route {
            Route::Postfix(route) => self.postfix.parse(&mut self.state, &route, &context),
            Route::Dovecot => self.to_dovecot(&mut context),
            Route::Saslauthd => self.auth.saslauthd(&mut self.state, &context),
            Route::Roundcube => self.auth.roundcube(&mut self.state, &context),
            Route::Other => self.to_other(&context),
        }
    }

    fn route_for(&mut self, program: &Rc<str>) -> Route {
        let route = if program.starts_with("postfix") {
            Route::Postfix(self.postfix.route(program))
        } else if &**program == "dovecot" || is_dovecot_process(program) {
            Route::Dovecot
        } else if &**program == "saslauthd" {
            Route::Saslauthd
        } else if program.starts_with("roundcube") {
            Route::Roundcube
        } else {
            Route::Other
        };
        if self.routes.len() < ROUTE_CACHE_LIMIT {
            self.routes.insert(program.clone(), route.clone());
        }
        route
    }

    #[allow(clippy::wrong_self_convention)] // Python's _to_dovecot
    fn to_dovecot(&mut self, context: &mut LineContext) -> ParseResult {
        match self.dovecot.parse(&mut self.state, context) {
            DovecotParse::Pam(message) => {
                context.message = message;
                self.auth.pam(&mut self.state, context)
            }
            DovecotParse::Done(result) => {
                if result.ignored.is_some() && is_cyrus_badlogin(&context.message) {
                    // Cyrus imapd also calls itself "imap"
                    self.auth.cyrus(&mut self.state, context)
                } else {
                    result
                }
            }
        }
    }

    #[allow(clippy::wrong_self_convention)] // Python's _to_other
    fn to_other(&mut self, context: &LineContext) -> ParseResult {
        if is_pam_message(&context.message) {
            return self.auth.pam(&mut self.state, context);
        }
        if is_cyrus_badlogin(&context.message) {
            return self.auth.cyrus(&mut self.state, context);
        }
        ignored("other_program")
    }
}

/// Drop the line ending; a carriage return inside the line becomes `?`.
fn one_line(text: &str) -> Result<String, &'static str> {
    let text = text.trim_end_matches(['\r', '\n']);
    if text.contains('\n') {
        return Err("line break inside a line");
    }
    Ok(text.replace('\r', "?"))
}

thread_local! {
    /// Set while a line is parsed: its panics become errors, not messages on stderr.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// Where the last caught panic happened, for the error text.
    static PANIC_AT: RefCell<String> = const { RefCell::new(String::new()) };
}

static QUIET_HOOK: Once = Once::new();

/// Run `parse`, turning a panic (a parser bug) into its message and place, so
/// that a bug costs one line, not the stream. Python's text names the exception
/// type and message instead (`IndexError: ...`); the counted reason is the same.
fn catch_panic<T>(parse: impl FnOnce() -> T) -> Result<T, String> {
    QUIET_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CATCHING.with(Cell::get) {
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()));
                PANIC_AT.with(|place| *place.borrow_mut() = at.unwrap_or_default());
            } else {
                previous(info);
            }
        }));
    });
    let was_catching = CATCHING.with(|flag| flag.replace(true));
    let outcome = panic::catch_unwind(AssertUnwindSafe(parse));
    CATCHING.with(|flag| flag.set(was_catching));
    outcome.map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|text| text.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        let at = PANIC_AT.with(|place| std::mem::take(&mut *place.borrow_mut()));
        if at.is_empty() {
            message
        } else {
            format!("{message} at {at}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_drops_endings_and_refuses_breaks() {
        assert_eq!(one_line("a b\r\n"), Ok("a b".to_string()));
        assert_eq!(one_line("a\rb\n\r\n"), Ok("a?b".to_string()));
        assert_eq!(one_line("a\nb"), Err("line break inside a line"));
        assert_eq!(one_line("\r\n\n"), Ok(String::new()));
    }

    #[test]
    fn lossy_decoding_is_pythons() {
        // bytes.decode("utf-8", "replace") of each input
        let cases: &[(&[u8], &str)] = &[
            (b"b\xff\xfeob", "b\u{fffd}\u{fffd}ob"),
            (b"\xed\xa0\x80x", "\u{fffd}\u{fffd}\u{fffd}x"),
            (b"a\xe2\x82", "a\u{fffd}"),
            (b"a\xe2\x82b", "a\u{fffd}b"),
            (b"\xf0\x9f\x98", "\u{fffd}"),
            (b"\xf0\x9f\x98\xc3", "\u{fffd}\u{fffd}"),
            (b"\xc0\xaf", "\u{fffd}\u{fffd}"),
            (b"\xf4\x90\x80\x80", "\u{fffd}\u{fffd}\u{fffd}\u{fffd}"),
            (b"\xc3", "\u{fffd}"),
            (b"\x80\xbf", "\u{fffd}\u{fffd}"),
            (b"\xef\xbf\xbd", "\u{fffd}"),
        ];
        for (raw, expected) in cases {
            assert_eq!(String::from_utf8_lossy(raw), *expected, "{raw:?}");
        }
    }

    #[test]
    fn stats_count_reasons_without_details_in_first_seen_order() {
        let mut stats = ParserStats::default();
        stats.count_unproductive(&failed("line too long (70000 bytes)"));
        stats.count_unproductive(&ignored("other_program"));
        stats.count_unproductive(&failed("line break inside a line"));
        stats.count_unproductive(&failed("line too long (80000 bytes)"));
        stats.count_unproductive(&ParseResult::default());
        let errors: Vec<_> = stats.errors.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            errors,
            [("line too long", 2), ("line break inside a line", 1)]
        );
        assert_eq!(stats.ignored.get("other_program"), Some(&1));
    }

    #[test]
    fn panics_become_their_message_and_place() {
        let caught = catch_panic(|| -> i32 { panic!("boom {}", 1) }).unwrap_err();
        assert!(caught.starts_with("boom 1 at src/api.rs:"), "{caught}");
        assert_eq!(catch_panic(|| 5), Ok(5));
    }
}
