//! Postfix (`parsers/postfix.py`): smtpd sessions, SASL failures, queue life cycle,
//! deliveries, postscreen.
//!
//! The client address is read only where Postfix puts it: `host[ip]` right after
//! `connect from`, `warning:`, `client=` or `<STAGE> from`. Text after it (SASL
//! user names, HELO, envelope addresses, remote replies) is attacker-controlled
//! and is read last, from the first delimiter that follows the fixed fields, so
//! it cannot move them.
//!
//! Correlation (see `correlation.rs`): an smtpd session is keyed by program and
//! pid between `connect from` and `disconnect from`; it carries the TLS version
//! and the SASL account once a `client=..., sasl_username=` line names it. The
//! queue id then carries account, address and TLS to the cleanup, qmgr,
//! delivery and bounce lines of that message; bounce/delay notices inherit the
//! account of the message they report on.
//!
//! One successful SMTP AUTH gives one `auth` success per session: at the first
//! `sasl_username=`, or at `disconnect ... auth=1` when the session sent no
//! mail. `lost connection after AUTH` and `too many errors after AUTH`
//! following a logged SASL failure are `auth_echo` records of it.
//!
//! Offsets are bytes; every offset below is either a `find` result or one
//! moved past known ASCII text, except where a comment says it counts code points.

use std::collections::HashMap;
use std::rc::Rc;

use crate::correlation::{HostState, QueuedMessage, SmtpdSession, Source};
use crate::fields::{host_and_ip, normalize_ip};
use crate::pytext::{
    char_len, from_char, int, is_alnum, is_decimal, is_decimal_char, is_upper, lower, non_empty,
    partition, rpartition, split_whitespace, upper,
};
use crate::result::{failed, ignored, new_event, Event, Extra, LineContext, ParseResult, Value};

const SOURCE: &str = "postfix";
const SMTP: &str = "smtp";

const DELIVERY_SERVICES: [&str; 9] = [
    "smtp", "lmtp", "local", "virtual", "pipe", "error", "discard", "retry", "relay",
];
const HOUSEKEEPING_SERVICES: [&str; 22] = [
    "master",
    "postfix-script",
    "anvil",
    "scache",
    "tlsmgr",
    "verify",
    "trivial-rewrite",
    "proxymap",
    "postlogd",
    "showq",
    "flush",
    "postdrop",
    "sendmail",
    "postqueue",
    "postmap",
    "postalias",
    "postconf",
    "dnsblog",
    "tlsproxy",
    "spawn",
    "policy-spf",
    "oqmgr",
];
const TLS_ESTABLISHED: [&str; 4] = [
    "Anonymous TLS connection established from ",
    "Trusted TLS connection established from ",
    "Verified TLS connection established from ",
    "Untrusted TLS connection established from ",
];
const POLICY_ACTIONS: [&str; 7] = [
    "discard", "filter", "redirect", "warn", "prepend", "bcc", "replace",
];
// the disconnect counters cache: entries, and the longest text kept (a crafted
// line must not make it hold much memory)
const COUNTERS_CACHE_LIMIT: usize = 1024;
const COUNTERS_TEXT_LIMIT: usize = 200;

/// `_DELIVERY_STATUSES`.
fn delivery_status(text: &str) -> Option<&'static str> {
    match text {
        "sent" => Some("sent"),
        "deferred" => Some("deferred"),
        "bounced" => Some("bounced"),
        "expired" => Some("expired"),
        _ => None,
    }
}

/// `_NOTICES`.
fn notice_kind_of(what: &str) -> Option<&'static str> {
    match what {
        "sender non-delivery notification" => Some("non-delivery"),
        "sender delay notification" => Some("delay"),
        "sender delivery status notification" => Some("success"),
        "postmaster non-delivery notification" => Some("postmaster non-delivery"),
        _ => None,
    }
}

/// Short (hex) and long (base-52) Postfix queue ids are alphanumeric.
pub fn is_queue_id(text: &str) -> bool {
    let length = char_len(text);
    (5..=20).contains(&length) && is_alnum(text) && text != "NOQUEUE"
}

/// Which handler a Postfix program goes to (Python's handler callables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    Smtpd,
    Postscreen,
    Cleanup,
    Qmgr,
    Bounce,
    Pickup,
    Postsuper,
    Delivery,
    Housekeeping,
    OtherProgram,
}

/// `PostfixParser.route(program)`: the handler and the master.cf service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub handler: Handler,
    pub service: Option<String>,
}

/// The disconnect counters of one text, and its AUTH ratio.
struct Counters {
    counters: Vec<(String, String)>,
    /// Python's `auth_ok` is an int used only for its truth value
    auth_ok: bool,
    auth_total: Option<i64>,
}

/// The fields of an event about a queued message (`_message_event`'s keyword arguments).
#[derive(Default)]
struct MessageFields {
    sender: Option<String>,
    recipient: Option<String>,
    size: Option<i64>,
    nrcpt: Option<i64>,
    status: Option<&'static str>,
    reason: Option<String>,
    detail: Option<String>,
    client_ip: Option<String>,
    extra: Extra,
}

type SessionKey = (Rc<str>, Option<Rc<str>>);
type Sessions = crate::correlation::BoundedMap<SessionKey, SmtpdSession>;

/// Parses the lines of every Postfix program of one host.
pub struct PostfixParser {
    // disconnect counters text -> its counters; most sessions end with one of a few dozen texts
    counters: HashMap<String, Rc<Counters>>,
}

impl PostfixParser {
    pub fn new() -> Self {
        PostfixParser {
            counters: HashMap::new(),
        }
    }

    /// `postfix/submission/smtpd` -> (the smtpd handler, `submission`).
    pub fn route(&self, program: &str) -> Route {
        let parts: Vec<&str> = program.split('/').collect();
        let process = parts[parts.len() - 1];
        let service = if parts.len() > 2 {
            parts[parts.len() - 2]
        } else {
            process
        };
        let handler = match process {
            "smtpd" => Handler::Smtpd,
            "postscreen" => Handler::Postscreen,
            "cleanup" => Handler::Cleanup,
            "qmgr" => Handler::Qmgr,
            "bounce" => Handler::Bounce,
            "pickup" => Handler::Pickup,
            "postsuper" => Handler::Postsuper,
            _ if DELIVERY_SERVICES.contains(&process) => Handler::Delivery,
            _ if HOUSEKEEPING_SERVICES.contains(&process) => Handler::Housekeeping,
            _ => Handler::OtherProgram,
        };
        Route {
            handler,
            service: Some(service.to_string()),
        }
    }

    /// Python: `route[0](ctx.message, ctx, route[1])`.
    pub fn parse(
        &mut self,
        state: &mut HostState,
        route: &Route,
        ctx: &LineContext,
    ) -> ParseResult {
        let message = ctx.message.as_str();
        let service = route.service.as_deref();
        match route.handler {
            Handler::Smtpd => self.smtpd(state, message, ctx, service),
            Handler::Postscreen => postscreen(state, message, ctx, service),
            Handler::Cleanup => cleanup(state, message, ctx, service),
            Handler::Qmgr => qmgr(state, message, ctx, service),
            Handler::Bounce => bounce(state, message, ctx, service),
            Handler::Pickup => pickup(state, message, ctx, service),
            Handler::Postsuper => postsuper(state, message, ctx, service),
            Handler::Delivery => delivery(state, message, ctx, service),
            Handler::Housekeeping => housekeeping(),
            Handler::OtherProgram => other_program(),
        }
    }

    // -- smtpd -------------------------------------------------------------

    fn smtpd(
        &mut self,
        state: &mut HostState,
        message: &str,
        ctx: &LineContext,
        service: Option<&str>,
    ) -> ParseResult {
        if message.starts_with("connect from ") {
            return connect(state, message, ctx, service);
        }
        if message.starts_with("disconnect from ") {
            return self.disconnect(state, message, ctx, service);
        }
        if message.starts_with("warning: ") {
            return smtpd_warning(state, message, ctx, service);
        }
        // queue ids are at most 20 characters (code points)
        if let Some(colon) = message.find(": ") {
            let head = &message[..colon];
            if colon > 0 && char_len(head) <= 20 && (head == "NOQUEUE" || is_queue_id(head)) {
                let rest = &message[colon + 2..];
                if rest.starts_with("client=") {
                    return client(state, head, rest, ctx, service);
                }
                if head == "NOQUEUE" && rest.starts_with("lost connection after ") {
                    return lost(state, rest, ctx, service);
                }
                return action(state, head, rest, ctx, service);
            }
        }
        if message.starts_with("lost connection after ") || message.starts_with("timeout after ") {
            return lost(state, message, ctx, service);
        }
        if message.starts_with("too many errors after ")
            || message.starts_with("improper command pipelining after ")
        {
            return lost(state, message, ctx, service);
        }
        if TLS_ESTABLISHED
            .iter()
            .any(|prefix| message.starts_with(prefix))
        {
            return tls(state, message, ctx, service);
        }
        if message.starts_with("SSL_accept error from ") {
            return tls_failure(message, ctx, service);
        }
        if message.starts_with("setting up TLS connection")
            || message.starts_with("discarding EHLO keywords")
        {
            return ignored("smtpd_housekeeping");
        }
        failed("unrecognised postfix smtpd message")
    }

    fn disconnect(
        &mut self,
        state: &mut HostState,
        message: &str,
        ctx: &LineContext,
        service: Option<&str>,
    ) -> ParseResult {
        let Ok((_host, ip, end)) = host_and_ip(message, 16) else {
            return failed("disconnect line without host[address]");
        };
        let session = session_for(&mut state.smtpd, ctx, &ip);
        let found = session.is_some();
        let (tls, user, auth_reported) = match session {
            Some(session) => (
                Some(session.tls_state().to_string()),
                session.user.clone(),
                session.auth_reported,
            ),
            None => (None, None, false),
        };
        let known = self.session_counters(&message[end..]);
        let mut events = Vec::with_capacity(2);
        if known.auth_ok && !auth_reported {
            let mut e = smtp_event(ctx, "auth", service);
            e.outcome = Some("success".to_string());
            e.user = user.clone();
            e.client_ip = ip.clone();
            e.tls = tls.clone();
            e.detail = Some("AUTH succeeded; the account is not logged".to_string());
            events.push(e);
        }
        let mut e = smtp_event(ctx, "disconnect", service);
        e.user = user;
        e.client_ip = ip;
        e.tls = tls;
        e.attempts = known.auth_total;
        e.extra = known
            .counters
            .iter()
            .map(|(name, value)| (name.clone(), Value::Str(value.clone())))
            .collect();
        events.push(e);
        if found {
            state.smtpd.pop(&session_key(ctx));
        }
        ParseResult::of(events)
    }

    /// The `name=value` counters of a disconnect line and its AUTH ratio.
    fn session_counters(&mut self, text: &str) -> Rc<Counters> {
        if let Some(known) = self.counters.get(text) {
            return known.clone();
        }
        let counters = counters_of(text);
        let auth = counters
            .iter()
            .find(|(name, _)| name == "auth")
            .map(|(_, value)| value.as_str());
        let (auth_ok, auth_total) = ratio(auth);
        let known = Rc::new(Counters {
            counters,
            auth_ok,
            auth_total,
        });
        if char_len(text) <= COUNTERS_TEXT_LIMIT {
            if self.counters.len() >= COUNTERS_CACHE_LIMIT {
                self.counters.clear();
            }
            self.counters.insert(text.to_string(), known.clone());
        }
        known
    }
}

impl Default for PostfixParser {
    fn default() -> Self {
        Self::new()
    }
}

/// An smtpd session is keyed by program and pid (the envelope's shared texts: no text to build).
fn session_key(ctx: &LineContext) -> SessionKey {
    (ctx.program.clone(), ctx.pid.clone())
}

/// The session of this smtpd process, if it is the one of `client_ip`.
fn session_for<'a>(
    sessions: &'a mut Sessions,
    ctx: &LineContext,
    client_ip: &Option<String>,
) -> Option<&'a mut SmtpdSession> {
    let session = sessions.get(&session_key(ctx), ctx.epoch)?;
    if session.client_ip != *client_ip {
        return None;
    }
    Some(session)
}

/// `new_event(ctx, SOURCE, kind, service=service)`.
fn postfix_event(ctx: &LineContext, kind: &str, service: Option<&str>) -> Event {
    let mut e = new_event(ctx, SOURCE, kind);
    e.service = service.map(str::to_string);
    e
}

/// `new_event(ctx, SOURCE, kind, service=service, protocol=SMTP)`.
fn smtp_event(ctx: &LineContext, kind: &str, service: Option<&str>) -> Event {
    let mut e = postfix_event(ctx, kind, service);
    e.protocol = Some(SMTP.to_string());
    e
}

fn connect(
    state: &mut HostState,
    message: &str,
    ctx: &LineContext,
    service: Option<&str>,
) -> ParseResult {
    let Ok((_host, ip, _end)) = host_and_ip(message, 13) else {
        return failed("connect line without host[address]");
    };
    state
        .smtpd
        .put(session_key(ctx), SmtpdSession::new(ip.clone()), ctx.epoch);
    let mut e = smtp_event(ctx, "connect", service);
    e.client_ip = ip;
    ParseResult::one(e)
}

fn tls(
    state: &mut HostState,
    message: &str,
    ctx: &LineContext,
    service: Option<&str>,
) -> ParseResult {
    let start = message.find(" from ").map_or(5, |at| at + 6);
    let Ok((_host, ip, end)) = host_and_ip(message, start) else {
        return failed("TLS line without host[address]");
    };
    // message[end + 2:]: two code points past the address
    let version = partition(from_char(&message[end..], 2), " ").0;
    if !(version.starts_with("TLSv") || version.starts_with("SSLv")) {
        return failed("TLS line without a protocol version");
    }
    let key = session_key(ctx);
    let fresh = match state.smtpd.get(&key, ctx.epoch) {
        Some(session) => session.client_ip != ip,
        None => true,
    };
    if fresh {
        state
            .smtpd
            .put(key.clone(), SmtpdSession::new(ip.clone()), ctx.epoch);
    }
    // Python mutates the object it holds, which the map stores: get it back
    if let Some(session) = state.smtpd.get(&key, ctx.epoch) {
        session.tls = Some(version.to_string());
    }
    let mut e = smtp_event(ctx, "tls", service);
    e.outcome = Some("success".to_string());
    e.client_ip = ip;
    e.tls = Some(version.to_string());
    ParseResult::one(e)
}

fn tls_failure(message: &str, ctx: &LineContext, service: Option<&str>) -> ParseResult {
    let Ok((_host, ip, end)) = host_and_ip(message, 22) else {
        return failed("TLS failure without host[address]");
    };
    let mut e = smtp_event(ctx, "tls", service);
    e.outcome = Some("failure".to_string());
    e.client_ip = ip;
    e.detail = Some("TLS handshake failed".to_string());
    e.reason = non_empty(from_char(&message[end..], 2));
    ParseResult::one(e)
}

/// `lost connection`/`timeout`/`too many errors`/`improper pipelining` after X.
fn lost(
    state: &mut HostState,
    message: &str,
    ctx: &LineContext,
    service: Option<&str>,
) -> ParseResult {
    let Some(after) = message.find(" after ") else {
        return failed("unrecognised postfix smtpd message");
    };
    let Some(from_at) = message[after..].find(" from ").map(|at| after + at) else {
        return failed("unrecognised postfix smtpd message");
    };
    let stage = slice(message, after + 7, from_at);
    let Ok((_host, ip, _end)) = host_and_ip(message, from_at + 6) else {
        return failed("smtpd line without host[address]");
    };
    let what = &message[..after];
    let session = session_for(&mut state.smtpd, ctx, &ip);
    let tls = session
        .as_ref()
        .map(|session| session.tls_state().to_string());
    if stage == "AUTH"
        && (what == "lost connection" || what == "too many errors")
        && session
            .as_ref()
            .is_some_and(|session| session.failures != 0)
    {
        let mut e = smtp_event(ctx, "auth_echo", service);
        e.outcome = Some("failure".to_string());
        e.client_ip = ip;
        e.tls = tls;
        e.detail = Some(format!("{what} after AUTH"));
        return ParseResult::one(e);
    }
    let kind = if what == "lost connection" || what == "timeout" {
        "disconnect"
    } else {
        "protocol_error"
    };
    let mut e = smtp_event(ctx, kind, service);
    e.user = session.and_then(|session| session.user.clone());
    e.client_ip = ip;
    e.tls = tls;
    e.detail = Some(format!("{what} after {stage}"));
    ParseResult::one(e)
}

fn smtpd_warning(
    state: &mut HostState,
    message: &str,
    ctx: &LineContext,
    service: Option<&str>,
) -> ParseResult {
    let body = &message[9..];
    if body.starts_with("non-SMTP command from ") {
        return client_warning(body, 22, "protocol_error", "non-SMTP command", ctx, service);
    }
    const UNRESOLVED: &str = " does not resolve to address ";
    if body.starts_with("hostname ") {
        if let Some(at) = body.find(UNRESOLVED) {
            let address = partition(&body[at + UNRESOLVED.len()..], ":").0;
            let Some(ip) = normalize_ip(address) else {
                return failed("reverse DNS warning without a valid address");
            };
            let mut e = smtp_event(ctx, "warning", service);
            e.client_ip = Some(ip);
            e.detail = Some("hostname does not resolve to address".to_string());
            return ParseResult::one(e);
        }
    }
    if body.contains(" rate limit exceeded: ") || body.starts_with("Connection concurrency limit") {
        if let Some(from_at) = body.find(" from ").filter(|&at| at > 0) {
            // body[: body.find(":")], where -1 drops the last code point
            let detail = match body.find(':') {
                Some(colon) => &body[..colon],
                None => drop_last_char(body),
            };
            return client_warning(body, from_at + 6, "policy", detail, ctx, service);
        }
    }
    if body.contains(" authentication failed") && body.contains(": SASL ") {
        return sasl_failure(state, body, ctx, service);
    }
    if body.starts_with("TLS library problem") {
        return tls_library_problem(state, body, ctx, service);
    }
    if body.starts_with("connect to ") || body.starts_with("problem talking to server") {
        return ignored("smtpd_service_warning");
    }
    ignored("smtpd_warning")
}

/// OpenSSL's complaint names no client; the session of this smtpd process does.
fn tls_library_problem(
    state: &mut HostState,
    body: &str,
    ctx: &LineContext,
    service: Option<&str>,
) -> ParseResult {
    let Some(session) = state.smtpd.get(&session_key(ctx), ctx.epoch) else {
        return ignored("smtpd_tls_warning");
    };
    let mut e = smtp_event(ctx, "tls", service);
    e.outcome = Some("failure".to_string());
    e.client_ip = session.client_ip.clone();
    e.detail = Some("TLS library problem".to_string());
    e.reason = non_empty(from_char(body, 21));
    ParseResult::one(e)
}

fn client_warning(
    body: &str,
    start: usize,
    kind: &str,
    detail: &str,
    ctx: &LineContext,
    service: Option<&str>,
) -> ParseResult {
    let Ok((_host, ip, _end)) = host_and_ip(body, start) else {
        return failed("smtpd warning without host[address]");
    };
    let mut e = smtp_event(ctx, kind, service);
    e.client_ip = ip;
    e.detail = Some(detail.to_string());
    ParseResult::one(e)
}

/// `unknown[1.2.3.4]: SASL LOGIN authentication failed: reason, sasl_username=user`.
fn sasl_failure(
    state: &mut HostState,
    body: &str,
    ctx: &LineContext,
    service: Option<&str>,
) -> ParseResult {
    let Ok((_host, ip, end)) = host_and_ip(body, 0) else {
        return failed("SASL failure without host[address]");
    };
    if !body[end..].starts_with(": SASL ") {
        return failed("unrecognised SASL failure");
    }
    let Some(mech_end) = body[end + 7..]
        .find(" authentication failed")
        .map(|at| end + 7 + at)
    else {
        return failed("unrecognised SASL failure");
    };
    let mech = upper(&body[end + 7..mech_end]);
    let after = &body[mech_end + 22..];
    let after = after.strip_prefix(':').unwrap_or(after);
    let rest = after.strip_prefix(' ').unwrap_or(after);
    let (reason, sep, user_text) = partition(rest, ", sasl_username=");
    let user: Option<&str> = if sep && user_text != "(unavailable)" && !user_text.is_empty() {
        Some(user_text)
    } else {
        None
    };
    if reason == "Invalid authentication mechanism" {
        // the client asked for a mechanism not offered: no credential was checked
        let mut e = smtp_event(ctx, "protocol_error", service);
        e.user = user.map(str::to_string);
        e.client_ip = ip;
        e.mech = Some(mech);
        e.detail = Some("SASL mechanism not offered".to_string());
        return ParseResult::one(e);
    }
    let mut tls = None;
    let mut session_user = None;
    if let Some(session) = session_for(&mut state.smtpd, ctx, &ip) {
        session.failures += 1;
        tls = Some(session.tls_state().to_string());
        if let Some(user) = user {
            session.failed_user = Some(user.to_string());
        }
        session_user = session.failed_user.clone();
    }
    let mut canonical = true;
    if let Some(address) = ip.as_deref() {
        canonical = state
            .failures
            .record(
                address,
                user,
                Source::Smtpd,
                ctx.epoch,
                false,
                session_user.as_deref(),
            )
            .0;
    }
    let mut e = smtp_event(ctx, if canonical { "auth" } else { "auth_echo" }, service);
    e.outcome = Some("failure".to_string());
    e.user = user.map(str::to_string);
    e.client_ip = ip;
    e.tls = tls;
    e.mech = Some(mech);
    e.reason = non_empty(reason);
    ParseResult::one(e)
}

fn client(
    state: &mut HostState,
    queue_id: &str,
    rest: &str,
    ctx: &LineContext,
    service: Option<&str>,
) -> ParseResult {
    let Ok((_host, ip, end)) = host_and_ip(rest, 7) else {
        return failed("client= line without host[address]");
    };
    let tail = &rest[end..];
    let mech = field(tail, ", sasl_method=", ", ");
    let mut user: Option<&str> = None;
    if let Some(user_at) = tail.find(", sasl_username=") {
        let user_text = &tail[user_at + 16..];
        let name = match user_text.find(", sasl_sender=") {
            Some(sender_at) => &user_text[..sender_at],
            None => user_text,
        };
        user = if name.is_empty() { None } else { Some(name) };
    }
    let session = session_for(&mut state.smtpd, ctx, &ip);
    let tls = session
        .as_ref()
        .map(|session| session.tls_state().to_string());
    let mut events = Vec::with_capacity(2);
    if let Some(original) =
        field(tail, ", orig_queue_id=", ", ").filter(|original| !original.is_empty())
    {
        // a message re-injected after a content filter: the same message again
        let entry = match state.queue.get(original, ctx.epoch) {
            Some(known) => QueuedMessage::new(
                known.user.clone(),
                known.client_ip.clone(),
                known.tls.clone(),
                known.protocol.clone(),
                known.sender.clone(),
            ),
            None => QueuedMessage::new(None, None, None, None, None),
        };
        let mut e = postfix_event(ctx, "reinjected", service);
        e.protocol = entry.protocol.clone();
        e.user = entry.user.clone();
        e.client_ip = entry.client_ip.clone();
        e.queue_id = Some(queue_id.to_string());
        e.detail = Some(format!("re-injected copy of {original}"));
        state.queue.put(queue_id.to_string(), entry, ctx.epoch);
        return ParseResult::one(e);
    }
    let mut detail = None;
    if let Some(session) = session {
        if session.hold_pending {
            detail = Some("held by policy".to_string());
            session.hold_pending = false;
        }
        if let Some(user) = user {
            session.user = Some(user.to_string());
            if !session.auth_reported {
                session.auth_reported = true;
                let mut e = smtp_event(ctx, "auth", service);
                e.outcome = Some("success".to_string());
                e.user = Some(user.to_string());
                e.client_ip = ip.clone();
                e.tls = tls.clone();
                e.mech = mech.map(str::to_string);
                events.push(e);
            }
        }
    }
    state.queue.put(
        queue_id.to_string(),
        QueuedMessage::new(
            user.map(str::to_string),
            ip.clone(),
            tls.clone(),
            Some(SMTP.to_string()),
            None,
        ),
        ctx.epoch,
    );
    let mut e = smtp_event(ctx, "submission", service);
    e.user = user.map(str::to_string);
    e.client_ip = ip;
    e.tls = tls;
    e.queue_id = Some(queue_id.to_string());
    e.mech = mech.map(str::to_string);
    e.detail = detail;
    events.push(e);
    ParseResult::of(events)
}

/// `NOQUEUE: reject: RCPT from host[ip]: 550 ...; from=<> to=<> proto= helo=<>`.
fn action(
    state: &mut HostState,
    queue_id: &str,
    rest: &str,
    ctx: &LineContext,
    service: Option<&str>,
) -> ParseResult {
    let (action, sep, detail) = partition(rest, ": ");
    if !sep {
        return failed("unrecognised postfix smtpd message");
    }
    // Python tests `detail[:from_at].replace("-", "").isupper()`: "-" is uncased, so
    // removing it does not change the answer
    let from_at = match detail.find(" from ") {
        Some(at) if at > 0 && is_upper(&detail[..at]) => at,
        _ => return failed("unrecognised postfix smtpd message"),
    };
    let stage = &detail[..from_at];
    let Ok((_host, ip, end)) = host_and_ip(detail, from_at + 6) else {
        return failed("policy action without host[address]");
    };
    let kind = match action {
        "reject" | "milter-reject" => "reject",
        "hold" => "hold",
        _ if POLICY_ACTIONS.contains(&action) => "policy",
        _ => return failed("unrecognised postfix smtpd message"),
    };
    let after = &detail[end..];
    let reply = after.strip_prefix(": ").unwrap_or(after);
    let (sender, recipient, helo, reply) = envelope_fields(reply);
    let session = session_for(&mut state.smtpd, ctx, &ip);
    let tls = session
        .as_ref()
        .map(|session| session.tls_state().to_string());
    let mut user = None;
    if let Some(session) = session {
        if kind == "hold" {
            session.hold_pending = true;
        }
        user = session.user.clone();
    }
    let mut e = smtp_event(ctx, kind, service);
    e.user = user;
    e.client_ip = ip;
    e.tls = tls;
    e.queue_id = if queue_id != "NOQUEUE" {
        Some(queue_id.to_string())
    } else {
        None
    };
    e.sender = sender.map(str::to_string);
    e.recipient = recipient.map(str::to_string);
    e.reason = non_empty(reply);
    e.detail = Some(format!("{action} at {stage}"));
    if let Some(helo) = helo {
        e.extra
            .push(("helo".to_string(), Value::Str(helo.to_string())));
    }
    ParseResult::one(e)
}

// -- postscreen --------------------------------------------------------

fn postscreen(
    state: &mut HostState,
    message: &str,
    ctx: &LineContext,
    service: Option<&str>,
) -> ParseResult {
    let word = partition(message, " ").0;
    match word {
        "CONNECT" => screen(
            message,
            find(message, "["),
            "connect",
            "connect",
            ctx,
            service,
        ),
        "PASS" => {
            // message[: message.find(" [")], where -1 drops the last code point
            let head = match message.find(" [") {
                Some(at) => &message[..at],
                None => drop_last_char(message),
            };
            screen(
                message,
                find(message, "["),
                "connect",
                &lower(head),
                ctx,
                service,
            )
        }
        "WHITELISTED" | "ALLOWLISTED" => screen(
            message,
            find(message, "["),
            "connect",
            "allowlisted",
            ctx,
            service,
        ),
        "BLACKLISTED" | "DENYLISTED" => screen(
            message,
            find(message, "["),
            "reject",
            "denylisted",
            ctx,
            service,
        ),
        "DNSBL" => {
            let at = find(message, " for [");
            let detail = if at > 0 {
                &message[..at as usize]
            } else {
                "DNSBL"
            };
            screen(message, at + 5, "reject", detail, ctx, service)
        }
        "PREGREET" => screen(
            message,
            find(message, " from [") + 6,
            "reject",
            "pregreet",
            ctx,
            service,
        ),
        "HANGUP" | "DISCONNECT" => {
            let start = find(message, "[");
            screen(message, start, "disconnect", &lower(word), ctx, service)
        }
        "COMMAND" | "NON-SMTP" | "BARE" => {
            let at = find(message, " from [");
            let detail = if at > 0 {
                &message[..at as usize]
            } else {
                word
            };
            screen(message, at + 6, "protocol_error", detail, ctx, service)
        }
        "NOQUEUE:" => {
            // message[colon + 2:], where a missing ": " (-1) starts at 1
            let start = message.find(": ").map_or(1, |colon| colon + 2);
            action(state, "NOQUEUE", &message[start..], ctx, service)
        }
        "cache" | "warning:" | "WHITELIST" | "ALLOWLIST" => ignored("postscreen_housekeeping"),
        _ => failed("unrecognised postscreen message"),
    }
}

/// `start` is a Python index that may be negative; every non-negative one here
/// is a byte offset at a character boundary (a `find` result, or inside the
/// ASCII first word), so comparing one byte with `[` is `message[start:start+1] == "["`.
fn screen(
    message: &str,
    start: isize,
    kind: &str,
    detail: &str,
    ctx: &LineContext,
    service: Option<&str>,
) -> ParseResult {
    if start < 0 || message.as_bytes().get(start as usize) != Some(&b'[') {
        return failed("postscreen line without [address]");
    }
    let Ok((_host, ip, _end)) = host_and_ip(message, start as usize) else {
        return failed("postscreen line without [address]");
    };
    let mut e = smtp_event(ctx, kind, service);
    e.client_ip = ip;
    e.detail = Some(detail.to_string());
    ParseResult::one(e)
}

// -- queue life cycle ---------------------------------------------------

/// An event about a queued message; `client_ip` applies to an unknown message only.
fn message_event(
    ctx: &LineContext,
    kind: &str,
    service: Option<&str>,
    queue_id: &str,
    entry: Option<&QueuedMessage>,
    fields: MessageFields,
) -> Event {
    let MessageFields {
        mut sender,
        recipient,
        size,
        nrcpt,
        status,
        reason,
        mut detail,
        mut client_ip,
        extra,
    } = fields;
    let mut user = None;
    let mut protocol = None;
    if let Some(entry) = entry {
        user = entry.user.clone();
        client_ip = entry.client_ip.clone();
        protocol = entry.protocol.clone();
        if detail.is_none() {
            if let Some(notice_of) = &entry.notice_of {
                let notice_kind = entry.notice_kind.as_deref().unwrap_or("None");
                detail = Some(format!("{notice_kind} notice for {notice_of}"));
            }
        }
        if sender.is_none() {
            sender = entry.sender.clone();
        }
    }
    let mut e = postfix_event(ctx, kind, service);
    e.queue_id = Some(queue_id.to_string());
    e.user = user;
    e.client_ip = client_ip;
    e.protocol = protocol;
    e.sender = sender;
    e.recipient = recipient;
    e.size = size;
    e.nrcpt = nrcpt;
    e.status = status.map(str::to_string);
    e.reason = reason;
    e.detail = detail;
    e.extra = extra;
    e
}

fn cleanup(
    state: &mut HostState,
    message: &str,
    ctx: &LineContext,
    service: Option<&str>,
) -> ParseResult {
    let (queue_id, sep, rest) = partition(message, ": ");
    if !sep || !is_queue_id(queue_id) {
        return ignored("cleanup_housekeeping");
    }
    let entry = state.queue.get(queue_id, ctx.epoch);
    if let Some(message_id) = rest.strip_prefix("message-id=") {
        let fields = MessageFields {
            extra: vec![("message_id".to_string(), Value::Str(message_id.to_string()))],
            ..MessageFields::default()
        };
        return ParseResult::one(message_event(
            ctx,
            "message_id",
            service,
            queue_id,
            entry.as_deref(),
            fields,
        ));
    }
    let action = partition(rest, ": ").0;
    if matches!(action, "reject" | "milter-reject" | "hold") || POLICY_ACTIONS.contains(&action) {
        return cleanup_action(queue_id, action, rest, ctx, service, entry.as_deref());
    }
    ignored("cleanup_housekeeping")
}

fn cleanup_action(
    queue_id: &str,
    action: &str,
    rest: &str,
    ctx: &LineContext,
    service: Option<&str>,
    entry: Option<&QueuedMessage>,
) -> ParseResult {
    let kind = match action {
        "reject" | "milter-reject" => "reject",
        "hold" => "hold",
        _ => "policy",
    };
    let known_ip = || entry.and_then(|entry| entry.client_ip.clone());
    let mut ip = known_ip();
    if let Some(from_at) = rest.find(" from ").filter(|&at| at > 0) {
        ip = match host_and_ip(rest, from_at + 6) {
            Ok((_host, ip, _end)) => ip,
            Err(()) => known_ip(),
        };
    }
    let fields = MessageFields {
        detail: Some(format!("{action} in cleanup")),
        client_ip: ip,
        ..MessageFields::default()
    };
    ParseResult::one(message_event(ctx, kind, service, queue_id, entry, fields))
}

fn qmgr(
    state: &mut HostState,
    message: &str,
    ctx: &LineContext,
    service: Option<&str>,
) -> ParseResult {
    let (queue_id, sep, rest) = partition(message, ": ");
    if !sep || !is_queue_id(queue_id) {
        return ignored("qmgr_housekeeping");
    }
    if rest == "removed" {
        state.queue.pop(queue_id);
        return ignored("qmgr_removed");
    }
    if !rest.starts_with("from=<") {
        return ignored("qmgr_housekeeping");
    }
    const ACTIVE: &str = " (queue active)";
    if rest.ends_with(ACTIVE) {
        let Some(size_at) = rest.rfind(">, size=") else {
            return failed("unrecognised qmgr message");
        };
        let sender = slice(rest, 6, size_at);
        let (size_text, _, nrcpt_text) = partition(
            slice(rest, size_at + 8, rest.len() - ACTIVE.len()),
            ", nrcpt=",
        );
        if !(is_decimal(size_text) && is_decimal(nrcpt_text)) {
            return failed("unrecognised qmgr message");
        }
        // Python puts a new entry, then sets its fields: the same as setting them first
        let mut retry = false;
        let entry = match state.queue.get(queue_id, ctx.epoch) {
            Some(entry) => {
                retry = entry.queued_before;
                entry.queued_before = true;
                entry.sender = Some(sender.to_string());
                entry.clone()
            }
            None => {
                let mut entry = QueuedMessage::new(None, None, None, None, None);
                entry.queued_before = true;
                entry.sender = Some(sender.to_string());
                state
                    .queue
                    .put(queue_id.to_string(), entry.clone(), ctx.epoch);
                entry
            }
        };
        // int() runs after the entry changed: a failure leaves it changed
        let (size, nrcpt) = match (int(size_text, 10), int(nrcpt_text, 10)) {
            (Ok(size), Ok(nrcpt)) => (size.to_i64(), nrcpt.to_i64()),
            (Err(error), _) | (_, Err(error)) => {
                return failed(&format!("internal parser error ({error})"))
            }
        };
        let fields = MessageFields {
            sender: Some(sender.to_string()),
            size,
            nrcpt,
            detail: if retry {
                Some("queue active again (retry)".to_string())
            } else {
                None
            },
            ..MessageFields::default()
        };
        return ParseResult::one(message_event(
            ctx,
            "queued",
            service,
            queue_id,
            Some(&entry),
            fields,
        ));
    }
    const EXPIRED: &str = ">, status=expired";
    if let Some(status_at) = rest.rfind(EXPIRED).filter(|&at| at > 0) {
        let entry = state.queue.get(queue_id, ctx.epoch);
        // rest[status_at + 18:]: one code point past the status
        let fields = MessageFields {
            sender: Some(slice(rest, 6, status_at).to_string()),
            status: Some("expired"),
            reason: non_empty(from_char(&rest[status_at + EXPIRED.len()..], 1)),
            ..MessageFields::default()
        };
        return ParseResult::one(message_event(
            ctx,
            "delivery",
            service,
            queue_id,
            entry.as_deref(),
            fields,
        ));
    }
    ignored("qmgr_housekeeping")
}

fn delivery(
    state: &mut HostState,
    message: &str,
    ctx: &LineContext,
    service: Option<&str>,
) -> ParseResult {
    let (queue_id, sep, rest) = partition(message, ": ");
    if !sep || !is_queue_id(queue_id) || !rest.starts_with("to=<") {
        return ignored("postfix_delivery_agent");
    }
    let Some(tail) = delivery_tail(rest, 4) else {
        return failed("unrecognised delivery status");
    };
    let Some(status) = delivery_status(tail.status) else {
        return ignored("address_verification");
    };
    let entry = state.queue.get(queue_id, ctx.epoch);
    let fields = MessageFields {
        sender: entry.as_ref().and_then(|entry| entry.sender.clone()),
        recipient: Some(rest[4..tail.start].to_string()),
        status: Some(status),
        reason: tail.text.map(str::to_string),
        extra: vec![
            ("relay".to_string(), Value::Str(tail.relay.to_string())),
            ("dsn".to_string(), Value::Str(tail.dsn.to_string())),
        ],
        ..MessageFields::default()
    };
    ParseResult::one(message_event(
        ctx,
        "delivery",
        service,
        queue_id,
        entry.as_deref(),
        fields,
    ))
}

fn bounce(
    state: &mut HostState,
    message: &str,
    ctx: &LineContext,
    service: Option<&str>,
) -> ParseResult {
    let (queue_id, sep, rest) = partition(message, ": ");
    if !sep || !is_queue_id(queue_id) {
        return ignored("bounce_housekeeping");
    }
    let (what, _, notice_id) = rpartition(rest, ": ");
    let Some(notice_kind) = notice_kind_of(what) else {
        return ignored("bounce_housekeeping");
    };
    if !is_queue_id(notice_id) {
        return ignored("bounce_housekeeping");
    }
    // a copy: when notice_id == queue_id Python holds one object twice, and the
    // changes below touch none of the fields the event reads
    let entry = state
        .queue
        .get(queue_id, ctx.epoch)
        .map(|entry| entry.clone());
    let set_notice = |notice: &mut QueuedMessage| {
        if let Some(entry) = &entry {
            notice.user = entry.user.clone();
            notice.client_ip = entry.client_ip.clone();
            notice.protocol = entry.protocol.clone();
        }
        notice.notice_of = Some(queue_id.to_string());
        notice.notice_kind = Some(notice_kind.to_string());
    };
    match state.queue.get(notice_id, ctx.epoch) {
        Some(notice) => set_notice(notice),
        None => {
            // Python puts the new notice, then sets its fields: the same as setting them first
            let mut notice = QueuedMessage::new(None, None, None, None, Some(String::new()));
            set_notice(&mut notice);
            state.queue.put(notice_id.to_string(), notice, ctx.epoch);
        }
    }
    let fields = MessageFields {
        detail: Some(what.to_string()),
        extra: vec![(
            "notice_queue_id".to_string(),
            Value::Str(notice_id.to_string()),
        )],
        ..MessageFields::default()
    };
    ParseResult::one(message_event(
        ctx,
        "dsn",
        service,
        queue_id,
        entry.as_ref(),
        fields,
    ))
}

fn pickup(
    state: &mut HostState,
    message: &str,
    ctx: &LineContext,
    service: Option<&str>,
) -> ParseResult {
    let (queue_id, sep, rest) = partition(message, ": ");
    if !sep || !is_queue_id(queue_id) || !rest.starts_with("uid=") {
        return ignored("pickup_housekeeping");
    }
    let (uid, _, sender_part) = partition(&rest[4..], " from=<");
    // sender_part[: sender_part.rfind(">")], where -1 drops the last code point
    let sender = if sender_part.is_empty() {
        None
    } else {
        Some(match sender_part.rfind('>') {
            Some(at) => &sender_part[..at],
            None => drop_last_char(sender_part),
        })
    };
    state.queue.put(
        queue_id.to_string(),
        QueuedMessage::new(None, None, None, None, sender.map(str::to_string)),
        ctx.epoch,
    );
    let mut e = postfix_event(ctx, "submission", service);
    e.queue_id = Some(queue_id.to_string());
    e.sender = sender.map(str::to_string);
    e.detail = Some("local submission (pickup)".to_string());
    e.extra = vec![("uid".to_string(), Value::Str(uid.to_string()))];
    ParseResult::one(e)
}

fn postsuper(
    state: &mut HostState,
    message: &str,
    ctx: &LineContext,
    service: Option<&str>,
) -> ParseResult {
    let (queue_id, sep, rest) = partition(message, ": ");
    if sep && is_queue_id(queue_id) {
        let entry = state
            .queue
            .get(queue_id, ctx.epoch)
            .map(|entry| entry.clone());
        if rest == "removed" {
            state.queue.pop(queue_id);
        }
        let fields = MessageFields {
            detail: Some(rest.to_string()),
            ..MessageFields::default()
        };
        return ParseResult::one(message_event(
            ctx,
            "queue_admin",
            service,
            queue_id,
            entry.as_ref(),
            fields,
        ));
    }
    ignored("postsuper_summary")
}

fn housekeeping() -> ParseResult {
    ignored("postfix_housekeeping")
}

fn other_program() -> ParseResult {
    ignored("postfix_other_program")
}

/// `" ehlo=1 auth=0/1 quit=1"` -> `[("ehlo", "1"), ("auth", "0/1"), ("quit", "1")]`,
/// a dict: a repeated name keeps its first place and takes the last value.
fn counters_of(text: &str) -> Vec<(String, String)> {
    let mut counters: Vec<(String, String)> = Vec::new();
    for token in split_whitespace(text) {
        let (name, sep, value) = partition(token, "=");
        if sep {
            match counters.iter_mut().find(|(known, _)| known == name) {
                Some(counter) => counter.1 = value.to_string(),
                None => counters.push((name.to_string(), value.to_string())),
            }
        }
    }
    counters
}

/// `auth=0/3` -> (0, 3); `auth=1` -> (1, 1); absent -> (0, None). The first value
/// is the truth of Python's int; a total that fits no i64 becomes None.
fn ratio(text: Option<&str>) -> (bool, Option<i64>) {
    let Some(text) = text.filter(|text| !text.is_empty()) else {
        return (false, None);
    };
    let (done, _, total) = partition(text, "/");
    let Ok(ok) = int(done, 10) else {
        return (false, None);
    };
    if total.is_empty() {
        return (!ok.is_zero(), ok.to_i64());
    }
    match int(total, 10) {
        Ok(total) => (!ok.is_zero(), total.to_i64()),
        Err(_) => (false, None),
    }
}

fn field<'a>(text: &'a str, prefix: &str, terminator: &str) -> Option<&'a str> {
    let start = text.find(prefix)? + prefix.len();
    Some(match text[start..].find(terminator) {
        Some(end) => &text[start..start + end],
        None => &text[start..],
    })
}

/// Split `550 ...; from=<s> to=<r> proto=ESMTP helo=<h>` into its parts.
///
/// The envelope addresses and HELO are the client's words; they are returned
/// as data and never used to find the client or the account.
fn envelope_fields(reply: &str) -> (Option<&str>, Option<&str>, Option<&str>, &str) {
    let Some(at) = reply.find("; from=<") else {
        let reply = match reply.find("; proto=") {
            Some(proto_at) => &reply[..proto_at],
            None => reply,
        };
        return (None, None, None, reply);
    };
    let fields = &reply[at + 2..];
    let sender = between(fields, "from=<", ">");
    let recipient = between(fields, "to=<", ">");
    let helo = between(fields, "helo=<", ">");
    (sender, recipient, helo, &reply[..at])
}

fn between<'a>(text: &'a str, opening: &str, closing: &str) -> Option<&'a str> {
    field(text, opening, closing)
}

// -- _DELIVERY_TAIL ------------------------------------------------------
//
// r">, (?:orig_to=<[^>]*>, )?relay=([^,]*), (?:conn_use=\d+, )?delay=[\d.]+, "
// r"delays=[\d./]+, dsn=(\d\.\d{1,3}\.\d{1,3}), status=([a-z]+)(?: \((.*)\))?$"
//
// searched from index 4. From a given start the pattern matches in at most one
// way (every repetition is followed by a character it cannot take, and each
// optional group begins with text that the path without it cannot take), so the
// search is: the first `>, ` at or after 4 from which the pattern matches.

/// A `_DELIVERY_TAIL` match: its start and its groups.
struct DeliveryTail<'a> {
    start: usize,
    relay: &'a str,
    dsn: &'a str,
    status: &'a str,
    text: Option<&'a str>,
}

fn delivery_tail(rest: &str, from: usize) -> Option<DeliveryTail<'_>> {
    let mut at = from;
    while let Some(found) = rest.get(at..).and_then(|tail| tail.find(">, ")) {
        let start = at + found;
        if let Some(tail) = delivery_tail_at(rest, start) {
            return Some(tail);
        }
        at = start + 1;
    }
    None
}

fn delivery_tail_at(rest: &str, start: usize) -> Option<DeliveryTail<'_>> {
    let mut s = &rest[start + 3..];
    if let Some(after) = s.strip_prefix("orig_to=<") {
        let close = after.find('>')?;
        s = after[close + 1..].strip_prefix(", ")?;
    }
    s = s.strip_prefix("relay=")?;
    let comma = s.find(',')?;
    let relay = &s[..comma];
    s = s[comma..].strip_prefix(", ")?;
    if let Some(after) = s.strip_prefix("conn_use=") {
        let digits = take_while(after, is_decimal_char);
        if digits == 0 {
            return None;
        }
        s = after[digits..].strip_prefix(", ")?;
    }
    s = s.strip_prefix("delay=")?;
    s = one_or_more(s, |c| c == '.' || is_decimal_char(c))?.strip_prefix(", ")?;
    s = s.strip_prefix("delays=")?;
    s = one_or_more(s, |c| c == '.' || c == '/' || is_decimal_char(c))?.strip_prefix(", ")?;
    s = s.strip_prefix("dsn=")?;
    let dsn_text = s;
    s = one_decimal(s)?.strip_prefix('.')?;
    s = one_to_three_decimals(s)?.strip_prefix('.')?;
    s = one_to_three_decimals(s)?;
    let dsn = &dsn_text[..dsn_text.len() - s.len()];
    s = s.strip_prefix(", status=")?;
    let letters = take_while(s, |c| c.is_ascii_lowercase());
    if letters == 0 {
        return None;
    }
    let status = &s[..letters];
    s = &s[letters..];
    // `$`: the end, or before a final newline; `.` takes no newline
    let s = s.strip_suffix('\n').unwrap_or(s);
    let text = if s.is_empty() {
        None
    } else {
        let inner = s.strip_prefix(" (")?.strip_suffix(')')?;
        if inner.contains('\n') {
            return None;
        }
        Some(inner)
    };
    Some(DeliveryTail {
        start,
        relay,
        dsn,
        status,
        text,
    })
}

/// The byte length of the longest prefix of `s` whose characters satisfy `test`.
fn take_while(s: &str, test: impl Fn(char) -> bool) -> usize {
    s.char_indices()
        .find(|&(_, c)| !test(c))
        .map_or(s.len(), |(at, _)| at)
}

/// `X+` (greedy): what follows the run, None when the run is empty.
fn one_or_more(s: &str, test: impl Fn(char) -> bool) -> Option<&str> {
    let length = take_while(s, test);
    if length == 0 {
        None
    } else {
        Some(&s[length..])
    }
}

/// `\d`: what follows one decimal digit.
fn one_decimal(s: &str) -> Option<&str> {
    let c = s.chars().next()?;
    if is_decimal_char(c) {
        Some(&s[c.len_utf8()..])
    } else {
        None
    }
}

/// `\d{1,3}` followed by a non-digit: the pattern always follows it with `.` or `,`,
/// so a fourth digit fails the match whatever the repetition gives back.
fn one_to_three_decimals(s: &str) -> Option<&str> {
    let mut rest = one_decimal(s)?;
    for _ in 0..2 {
        match one_decimal(rest) {
            Some(next) => rest = next,
            None => break,
        }
    }
    Some(rest)
}

// -- Python str operations ---------------------------------------------------

/// `text.find(sub)` with Python's -1.
fn find(text: &str, sub: &str) -> isize {
    text.find(sub).map_or(-1, |at| at as isize)
}

/// `text[start:stop]` for byte offsets at character boundaries: empty when start >= stop.
fn slice(text: &str, start: usize, stop: usize) -> &str {
    if start >= stop {
        return "";
    }
    text.get(start..stop.min(text.len())).unwrap_or("")
}

/// `text[:-1]`.
fn drop_last_char(text: &str) -> &str {
    let mut chars = text.chars();
    chars.next_back();
    chars.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let parser = PostfixParser::new();
        let route = parser.route("postfix/submission/smtpd");
        assert_eq!(
            route,
            Route {
                handler: Handler::Smtpd,
                service: Some("submission".into())
            }
        );
        assert_eq!(parser.route("postfix/smtp").handler, Handler::Delivery);
        assert_eq!(
            parser.route("postfix/smtp").service.as_deref(),
            Some("smtp")
        );
        assert_eq!(parser.route("postfix/anvil").handler, Handler::Housekeeping);
        assert_eq!(parser.route("postfix").handler, Handler::OtherProgram);
        assert_eq!(parser.route("postfix").service.as_deref(), Some("postfix"));
        assert_eq!(
            parser.route("postfix-x/a/b/qmgr").service.as_deref(),
            Some("b")
        );
    }

    #[test]
    fn queue_ids() {
        assert!(is_queue_id("4F2A31C0123"));
        assert!(!is_queue_id("NOQUEUE"));
        assert!(!is_queue_id("abcd"));
        assert!(!is_queue_id("4F2A-1C0123"));
    }

    #[test]
    fn delivery_tail_groups() {
        let rest = "to=<erin@example.net>, relay=mx.example.net[198.51.100.20]:25, delay=1.1, \
                    delays=0.1/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 9A8B7C)";
        let tail = delivery_tail(rest, 4).unwrap();
        assert_eq!(&rest[4..tail.start], "erin@example.net");
        assert_eq!(tail.relay, "mx.example.net[198.51.100.20]:25");
        assert_eq!(tail.dsn, "2.0.0");
        assert_eq!(tail.status, "sent");
        assert_eq!(tail.text, Some("250 2.0.0 Ok: queued as 9A8B7C"));
        // a recipient holding the delimiter: the first start that matches wins
        let rest =
            "to=<a>, b>, orig_to=<c>, relay=r, conn_use=2, delay=1, delays=1, dsn=5.1.10, status=bounced";
        let tail = delivery_tail(rest, 4).unwrap();
        assert_eq!(&rest[4..tail.start], "a>, b");
        assert_eq!(
            (tail.relay, tail.dsn, tail.status, tail.text),
            ("r", "5.1.10", "bounced", None)
        );
        let rest = "to=<a>, relay=r, delay=1, delays=1, dsn=5.1.1000, status=bounced";
        assert!(delivery_tail(rest, 4).is_none());
        let rest = "to=<a>, relay=r, delay=1, delays=1, dsn=5.1.1, status=sent ()";
        assert_eq!(delivery_tail(rest, 4).unwrap().text, Some(""));
        let rest = "to=<a>, relay=r, delay=1, delays=1, dsn=5.1.1, status=sent (x) y";
        assert!(delivery_tail(rest, 4).is_none());
        let rest = "to=<a>, relay=r, delay=١, delays=1, dsn=5.1.1, status=sent\n";
        assert!(delivery_tail(rest, 4).unwrap().text.is_none());
        let rest = "to=<a>, relay=r, delay=², delays=1, dsn=5.1.1, status=sent";
        assert!(delivery_tail(rest, 4).is_none());
        let rest = "to=<a>, relay=r, delay=1, delays=1, dsn=5.1.1, status=Sent";
        assert!(delivery_tail(rest, 4).is_none());
    }

    #[test]
    fn counters_and_ratio() {
        let counters = counters_of(" ehlo=1 auth=0/1 quit=1 ehlo=2 x");
        assert_eq!(
            counters,
            vec![
                ("ehlo".into(), "2".into()),
                ("auth".into(), "0/1".into()),
                ("quit".into(), "1".into())
            ]
        );
        assert_eq!(ratio(Some("0/3")), (false, Some(3)));
        assert_eq!(ratio(Some("1")), (true, Some(1)));
        assert_eq!(ratio(None), (false, None));
        assert_eq!(ratio(Some("")), (false, None));
        assert_eq!(ratio(Some("1/x")), (false, None));
        assert_eq!(ratio(Some("+1_0/-2")), (true, Some(-2)));
        assert_eq!(ratio(Some("0/")), (false, Some(0)));
        assert_eq!(ratio(Some("99999999999999999999/1")), (true, Some(1)));
        assert_eq!(ratio(Some("١/٣")), (true, Some(3)));
        assert_eq!(ratio(Some("1_")), (false, None));
    }

    #[test]
    fn python_slices() {
        assert_eq!(drop_last_char("abé"), "ab");
        assert_eq!(slice("abc", 2, 1), "");
    }
}

/// Lines of tests/fixtures/parsers/postfix/*.log and lines written for each branch, with
/// what `parsers/postfix.py` gives for them (every set field, `extra` as JSON; an
/// int beyond i64, which orjson cannot write either, is left out: Rust has None).
#[cfg(test)]
mod python_lines {
    use super::*;
    use crate::result::Origin;

    fn summary(result: &ParseResult) -> String {
        if let Some(error) = &result.error {
            return format!("error: {error}");
        }
        if let Some(category) = &result.ignored {
            return format!("ignored: {category}");
        }
        let events: Vec<String> = result.events.iter().map(event_summary).collect();
        events.join(" | ")
    }

    fn event_summary(e: &Event) -> String {
        let mut fields = vec![e.kind.clone()];
        let texts = [
            ("outcome", &e.outcome),
            ("protocol", &e.protocol),
            ("user", &e.user),
            ("client_ip", &e.client_ip),
            ("tls", &e.tls),
            ("queue_id", &e.queue_id),
            ("sender", &e.sender),
            ("recipient", &e.recipient),
        ];
        fields.extend(
            texts
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}"))),
        );
        fields.extend(
            [("nrcpt", e.nrcpt), ("size", e.size)]
                .iter()
                .filter_map(|(k, v)| v.map(|v| format!("{k}={v}"))),
        );
        let texts = [
            ("status", &e.status),
            ("service", &e.service),
            ("session", &e.session),
            ("detail", &e.detail),
            ("reason", &e.reason),
            ("mech", &e.mech),
        ];
        fields.extend(
            texts
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}"))),
        );
        fields.extend(e.attempts.map(|v| format!("attempts={v}")));
        if !e.extra.is_empty() {
            let extra: serde_json::Map<String, serde_json::Value> = e
                .extra
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::Str(s) => serde_json::Value::from(s.as_str()),
                        Value::Int(i) => serde_json::Value::from(*i),
                        Value::Bool(b) => serde_json::Value::from(*b),
                    };
                    (k.clone(), v)
                })
                .collect();
            fields.push(format!("extra={}", serde_json::Value::Object(extra)));
        }
        fields.join(" ")
    }

    /// (program, pid, epoch, message, what Python gives); an empty program starts a new host state.
    #[rustfmt::skip]
    const LINES: &[(&str, Option<&str>, f64, &str, &str)] = &[
    // sasl.log
    ("", None, 0.0, "", ""),
    ("postfix/smtps/smtpd", Some("4400"), 1772535600.0, "connect from unknown[192.0.2.77]", "connect protocol=smtp client_ip=192.0.2.77 service=smtps"),
    ("postfix/smtps/smtpd", Some("4400"), 1772535600.0, "Anonymous TLS connection established from unknown[192.0.2.77]: TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256", "tls outcome=success protocol=smtp client_ip=192.0.2.77 tls=TLSv1.3 service=smtps"),
    ("postfix/smtps/smtpd", Some("4400"), 1772535602.0, "warning: unknown[192.0.2.77]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=frank@example.com", "auth outcome=failure protocol=smtp user=frank@example.com client_ip=192.0.2.77 tls=TLSv1.3 service=smtps reason=(reason unavailable) mech=PLAIN"),
    ("postfix/smtps/smtpd", Some("4400"), 1772535604.0, "warning: unknown[192.0.2.77]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", "auth outcome=failure protocol=smtp client_ip=192.0.2.77 tls=TLSv1.3 service=smtps reason=UGFzc3dvcmQ6 mech=LOGIN"),
    ("postfix/smtps/smtpd", Some("4400"), 1772535604.0, "lost connection after AUTH from unknown[192.0.2.77]", "auth_echo outcome=failure protocol=smtp client_ip=192.0.2.77 tls=TLSv1.3 service=smtps detail=lost connection after AUTH"),
    ("postfix/smtps/smtpd", Some("4400"), 1772535604.0, "disconnect from unknown[192.0.2.77] ehlo=1 auth=0/2 commands=1/3", "disconnect protocol=smtp client_ip=192.0.2.77 tls=TLSv1.3 service=smtps attempts=2 extra={\"ehlo\":\"1\",\"auth\":\"0/2\",\"commands\":\"1/3\"}"),
    ("postfix/submission/smtpd", Some("4401"), 1772535660.0, "connect from unknown[2001:db8::17]", "connect protocol=smtp client_ip=2001:db8::17 service=submission"),
    ("postfix/submission/smtpd", Some("4401"), 1772535670.0, "warning: unknown[2001:db8::17]: SASL PLAIN authentication failed: Connection lost to authentication server, sasl_username=(unavailable)", "auth outcome=failure protocol=smtp client_ip=2001:db8::17 tls=none service=submission reason=Connection lost to authentication server mech=PLAIN"),
    ("postfix/submission/smtpd", Some("4401"), 1772535670.0, "too many errors after AUTH from unknown[2001:db8::17]", "auth_echo outcome=failure protocol=smtp client_ip=2001:db8::17 tls=none service=submission detail=too many errors after AUTH"),
    ("postfix/submission/smtpd", Some("4401"), 1772535670.0, "disconnect from unknown[2001:db8::17] ehlo=1 auth=0/1 commands=1/2", "disconnect protocol=smtp client_ip=2001:db8::17 tls=none service=submission attempts=1 extra={\"ehlo\":\"1\",\"auth\":\"0/1\",\"commands\":\"1/2\"}"),
    ("postfix/submission/smtpd", Some("4401"), 1772535720.0, "connect from unknown[192.0.2.88]", "connect protocol=smtp client_ip=192.0.2.88 service=submission"),
    ("postfix/submission/smtpd", Some("4401"), 1772535721.0, "NOQUEUE: reject: RCPT from unknown[192.0.2.88]: 554 5.7.1 <victim@example.org>: Relay access denied; from=<spam@example.biz> to=<victim@example.org> proto=ESMTP helo=<[6.6.6.6]>", "reject protocol=smtp client_ip=192.0.2.88 tls=none sender=spam@example.biz recipient=victim@example.org service=submission detail=reject at RCPT reason=554 5.7.1 <victim@example.org>: Relay access denied extra={\"helo\":\"[6.6.6.6]\"}"),
    ("postfix/submission/smtpd", Some("4401"), 1772535721.0, "disconnect from unknown[192.0.2.88] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4", "disconnect protocol=smtp client_ip=192.0.2.88 tls=none service=submission extra={\"ehlo\":\"1\",\"mail\":\"1\",\"rcpt\":\"0/1\",\"quit\":\"1\",\"commands\":\"3/4\"}"),
    ("postfix/submission/smtpd", Some("4401"), 1772535780.0, "connect from unknown[192.0.2.99]", "connect protocol=smtp client_ip=192.0.2.99 service=submission"),
    ("postfix/submission/smtpd", Some("4401"), 1772535781.0, "disconnect from unknown[192.0.2.99] ehlo=1 auth=1 quit=1 commands=3", "auth outcome=success protocol=smtp client_ip=192.0.2.99 tls=none service=submission detail=AUTH succeeded; the account is not logged | disconnect protocol=smtp client_ip=192.0.2.99 tls=none service=submission attempts=1 extra={\"ehlo\":\"1\",\"auth\":\"1\",\"quit\":\"1\",\"commands\":\"3\"}"),
    // submission.log
    ("", None, 0.0, "", ""),
    ("postfix/postscreen", Some("2101"), 1772532901.0, "CONNECT from [198.51.100.7]:51514 to [192.0.2.25]:25", "connect protocol=smtp client_ip=198.51.100.7 service=postscreen detail=connect"),
    ("postfix/postscreen", Some("2101"), 1772532901.0, "PREGREET 11 after 0.12 from [198.51.100.7]:51514: EHLO x\\r\\n", "reject protocol=smtp client_ip=198.51.100.7 service=postscreen detail=pregreet"),
    ("postfix/postscreen", Some("2101"), 1772532902.0, "DNSBL rank 3 for [198.51.100.7]:51514", "reject protocol=smtp client_ip=198.51.100.7 service=postscreen detail=DNSBL rank 3"),
    ("postfix/postscreen", Some("2101"), 1772532902.0, "PASS NEW [203.0.113.9]:40112", "connect protocol=smtp client_ip=203.0.113.9 service=postscreen detail=pass new"),
    ("postfix/submission/smtpd", Some("3300"), 1772532960.0, "connect from client.example.org[203.0.113.50]", "connect protocol=smtp client_ip=203.0.113.50 service=submission"),
    ("postfix/submission/smtpd", Some("3300"), 1772532960.0, "Anonymous TLS connection established from client.example.org[203.0.113.50]: TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits)", "tls outcome=success protocol=smtp client_ip=203.0.113.50 tls=TLSv1.2 service=submission"),
    ("postfix/submission/smtpd", Some("3300"), 1772532961.0, "4F2A31C0123: client=client.example.org[203.0.113.50], sasl_method=LOGIN, sasl_username=dave@example.com", "auth outcome=success protocol=smtp user=dave@example.com client_ip=203.0.113.50 tls=TLSv1.2 service=submission mech=LOGIN | submission protocol=smtp user=dave@example.com client_ip=203.0.113.50 tls=TLSv1.2 queue_id=4F2A31C0123 service=submission mech=LOGIN"),
    ("postfix/cleanup", Some("3310"), 1772532961.0, "4F2A31C0123: message-id=<abc.123@client.example.org>", "message_id protocol=smtp user=dave@example.com client_ip=203.0.113.50 queue_id=4F2A31C0123 service=cleanup extra={\"message_id\":\"<abc.123@client.example.org>\"}"),
    ("postfix/qmgr", Some("1200"), 1772532961.0, "4F2A31C0123: from=<dave@example.com>, size=2048, nrcpt=2 (queue active)", "queued protocol=smtp user=dave@example.com client_ip=203.0.113.50 queue_id=4F2A31C0123 sender=dave@example.com nrcpt=2 size=2048 service=qmgr"),
    ("postfix/submission/smtpd", Some("3300"), 1772532961.0, "disconnect from client.example.org[203.0.113.50] ehlo=2 starttls=1 auth=1 mail=1 rcpt=2 data=1 quit=1 commands=9", "disconnect protocol=smtp user=dave@example.com client_ip=203.0.113.50 tls=TLSv1.2 service=submission attempts=1 extra={\"ehlo\":\"2\",\"starttls\":\"1\",\"auth\":\"1\",\"mail\":\"1\",\"rcpt\":\"2\",\"data\":\"1\",\"quit\":\"1\",\"commands\":\"9\"}"),
    ("postfix/smtp", Some("3320"), 1772532962.0, "4F2A31C0123: to=<erin@example.net>, relay=mx.example.net[198.51.100.20]:25, delay=1.1, delays=0.1/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 9A8B7C)", "delivery protocol=smtp user=dave@example.com client_ip=203.0.113.50 queue_id=4F2A31C0123 sender=dave@example.com recipient=erin@example.net status=sent service=smtp reason=250 2.0.0 Ok: queued as 9A8B7C extra={\"relay\":\"mx.example.net[198.51.100.20]:25\",\"dsn\":\"2.0.0\"}"),
    ("postfix/cleanup", Some("3310"), 1772532963.0, "7C0DE1C0456: message-id=<20260303101603.7C0DE1C0456@mx1.example.com>", "message_id queue_id=7C0DE1C0456 service=cleanup extra={\"message_id\":\"<20260303101603.7C0DE1C0456@mx1.example.com>\"}"),
    ("postfix/qmgr", Some("1200"), 1772532963.0, "7C0DE1C0456: from=<>, size=4100, nrcpt=1 (queue active)", "queued queue_id=7C0DE1C0456 sender= nrcpt=1 size=4100 service=qmgr"),
    ("postfix/bounce", Some("3330"), 1772532963.0, "4F2A31C0123: sender non-delivery notification: 7C0DE1C0456", "dsn protocol=smtp user=dave@example.com client_ip=203.0.113.50 queue_id=4F2A31C0123 sender=dave@example.com service=bounce detail=sender non-delivery notification extra={\"notice_queue_id\":\"7C0DE1C0456\"}"),
    ("postfix/qmgr", Some("1200"), 1772532963.0, "4F2A31C0123: removed", "ignored: qmgr_removed"),
    ("postfix/lmtp", Some("3340"), 1772532963.0, "7C0DE1C0456: to=<dave@example.com>, relay=mail.example.com[private/dovecot-lmtp], delay=0.05, delays=0/0/0.01/0.04, dsn=2.0.0, status=sent (250 2.0.0 <dave@example.com> Saved)", "delivery protocol=smtp user=dave@example.com client_ip=203.0.113.50 queue_id=7C0DE1C0456 sender= recipient=dave@example.com status=sent service=lmtp detail=non-delivery notice for 4F2A31C0123 reason=250 2.0.0 <dave@example.com> Saved extra={\"relay\":\"mail.example.com[private/dovecot-lmtp]\",\"dsn\":\"2.0.0\"}"),
    ("postfix/qmgr", Some("1200"), 1772532963.0, "7C0DE1C0456: removed", "ignored: qmgr_removed"),
    ("postfix/pickup", Some("1201"), 1772533200.0, "1B2C3D4E5F6: uid=1000 from=<backup@example.com>", "submission queue_id=1B2C3D4E5F6 sender=backup@example.com service=pickup detail=local submission (pickup) extra={\"uid\":\"1000\"}"),
    ("postfix/qmgr", Some("1200"), 1772533200.0, "1B2C3D4E5F6: from=<backup@example.com>, size=900, nrcpt=1 (queue active)", "queued queue_id=1B2C3D4E5F6 sender=backup@example.com nrcpt=1 size=900 service=qmgr"),
    ("postfix/qmgr", Some("1200"), 1772533500.0, "1B2C3D4E5F6: from=<backup@example.com>, status=expired, returned to sender", "delivery queue_id=1B2C3D4E5F6 sender=backup@example.com status=expired service=qmgr reason= returned to sender"),
    ("postfix/postsuper", Some("1500"), 1772533560.0, "1B2C3D4E5F6: placed on hold", "queue_admin queue_id=1B2C3D4E5F6 sender=backup@example.com service=postsuper detail=placed on hold"),
    ("postfix/postsuper", Some("1500"), 1772533560.0, "Placed on hold: 1 message", "ignored: postsuper_summary"),
    // branches of every handler
    ("", None, 0.0, "", ""),
    ("postfix/smtpd", Some("100"), 1772532000.0, "connect from unknown[192.0.2.1]", "connect protocol=smtp client_ip=192.0.2.1 service=smtpd"),
    ("postfix/smtpd", Some("100"), 1772532000.0, "connect from unknown", "error: connect line without host[address]"),
    ("postfix/smtpd", Some("100"), 1772532001.0, "setting up TLS connection from unknown[192.0.2.1]", "ignored: smtpd_housekeeping"),
    ("postfix/smtpd", Some("100"), 1772532001.0, "discarding EHLO keywords: CHUNKING", "ignored: smtpd_housekeeping"),
    ("postfix/smtpd", Some("100"), 1772532001.0, "Trusted TLS connection established from unknown[192.0.2.1]: TLSv1.3 with cipher X", "tls outcome=success protocol=smtp client_ip=192.0.2.1 tls=TLSv1.3 service=smtpd"),
    ("postfix/smtpd", Some("100"), 1772532001.0, "Verified TLS connection established from unknown[192.0.2.9]: SSLv3 with cipher X", "tls outcome=success protocol=smtp client_ip=192.0.2.9 tls=SSLv3 service=smtpd"),
    ("postfix/smtpd", Some("100"), 1772532001.0, "Untrusted TLS connection established from unknown[192.0.2.9]: foo with cipher X", "error: TLS line without a protocol version"),
    ("postfix/smtpd", Some("100"), 1772532001.0, "Untrusted TLS connection established from unknown: TLSv1.2", "error: TLS line without host[address]"),
    ("postfix/smtpd", Some("100"), 1772532001.0, "Untrusted TLS connection established from unknown[192.0.2.9]é: TLSv1.2 x", "error: TLS line without a protocol version"),
    ("postfix/smtpd", Some("100"), 1772532002.0, "SSL_accept error from unknown[192.0.2.1]: -1", "tls outcome=failure protocol=smtp client_ip=192.0.2.1 service=smtpd detail=TLS handshake failed reason=-1"),
    ("postfix/smtpd", Some("100"), 1772532002.0, "SSL_accept error from unknown[192.0.2.1]", "tls outcome=failure protocol=smtp client_ip=192.0.2.1 service=smtpd detail=TLS handshake failed"),
    ("postfix/smtpd", Some("100"), 1772532002.0, "SSL_accept error from unknown[192.0.2.1]éé", "tls outcome=failure protocol=smtp client_ip=192.0.2.1 service=smtpd detail=TLS handshake failed"),
    ("postfix/smtpd", Some("100"), 1772532002.0, "SSL_accept error from nowhere", "error: TLS failure without host[address]"),
    ("postfix/smtpd", Some("100"), 1772532002.0, "warning: TLS library problem: error:0A000126:SSL routines::unexpected eof while reading:../ssl/record/rec_layer_s3.c:308:", "tls outcome=failure protocol=smtp client_ip=192.0.2.9 service=smtpd detail=TLS library problem reason=error:0A000126:SSL routines::unexpected eof while reading:../ssl/record/rec_layer_s3.c:308:"),
    ("postfix/smtpd", Some("100"), 1772532002.0, "warning: TLS library problem", "tls outcome=failure protocol=smtp client_ip=192.0.2.9 service=smtpd detail=TLS library problem"),
    ("postfix/smtpd", Some("199"), 1772532002.0, "warning: TLS library problem: x", "ignored: smtpd_tls_warning"),
    ("postfix/smtpd", Some("100"), 1772532003.0, "warning: unknown[192.0.2.1]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", "auth outcome=failure protocol=smtp client_ip=192.0.2.1 service=smtpd reason=UGFzc3dvcmQ6 mech=LOGIN"),
    ("postfix/smtpd", Some("100"), 1772532003.0, "warning: unknown[192.0.2.1]: SASL plain authentication failed: , sasl_username=bob", "auth outcome=failure protocol=smtp user=bob client_ip=192.0.2.1 service=smtpd mech=PLAIN"),
    ("postfix/smtpd", Some("100"), 1772532003.0, "warning: unknown[192.0.2.1]: SASL CRAM-MD5 authentication failed: Invalid authentication mechanism", "protocol_error protocol=smtp client_ip=192.0.2.1 service=smtpd detail=SASL mechanism not offered mech=CRAM-MD5"),
    ("postfix/smtpd", Some("100"), 1772532003.0, "warning: unknown[192.0.2.1]: SASL LOGIN authentication failed:x, sasl_username=", "auth outcome=failure protocol=smtp client_ip=192.0.2.1 service=smtpd reason=x mech=LOGIN"),
    ("postfix/smtpd", Some("100"), 1772532003.0, "warning: unknown[192.0.2.1]: SASL LOGIN authentication failed", "auth outcome=failure protocol=smtp client_ip=192.0.2.1 service=smtpd mech=LOGIN"),
    ("postfix/smtpd", Some("100"), 1772532003.0, "warning: unknown[192.0.2.1] : SASL LOGIN authentication failed", "error: unrecognised SASL failure"),
    ("postfix/smtpd", Some("100"), 1772532003.0, "warning: nohost: SASL LOGIN authentication failed", "error: SASL failure without host[address]"),
    ("postfix/smtpd", Some("100"), 1772532003.0, "warning: unknown[192.0.2.1]: SASL LOGIN authenticatio failed: SASL x authentication failed", "auth outcome=failure protocol=smtp client_ip=192.0.2.1 service=smtpd mech=LOGIN AUTHENTICATIO FAILED: SASL X"),
    ("postfix/smtpd", Some("100"), 1772532003.0, "warning: unknown[bad]: SASL LOGIN authentication failed: x", "auth outcome=failure protocol=smtp service=smtpd reason=x mech=LOGIN"),
    ("postfix/smtpd", Some("100"), 1772532004.0, "lost connection after AUTH from unknown[192.0.2.1]", "disconnect protocol=smtp client_ip=192.0.2.1 service=smtpd detail=lost connection after AUTH"),
    ("postfix/smtpd", Some("100"), 1772532004.0, "too many errors after AUTH from unknown[192.0.2.1]", "protocol_error protocol=smtp client_ip=192.0.2.1 service=smtpd detail=too many errors after AUTH"),
    ("postfix/smtpd", Some("100"), 1772532004.0, "timeout after AUTH from unknown[192.0.2.1]", "disconnect protocol=smtp client_ip=192.0.2.1 service=smtpd detail=timeout after AUTH"),
    ("postfix/smtpd", Some("100"), 1772532004.0, "improper command pipelining after CONNECT from unknown[192.0.2.1]: QUIT", "protocol_error protocol=smtp client_ip=192.0.2.1 service=smtpd detail=improper command pipelining after CONNECT"),
    ("postfix/smtpd", Some("100"), 1772532004.0, "lost connection after from [192.0.2.1]", "disconnect protocol=smtp client_ip=192.0.2.1 service=smtpd detail=lost connection after "),
    ("postfix/smtpd", Some("100"), 1772532004.0, "lost connection after DATA (0 bytes) from unknown[192.0.2.1]", "disconnect protocol=smtp client_ip=192.0.2.1 service=smtpd detail=lost connection after DATA (0 bytes)"),
    ("postfix/smtpd", Some("100"), 1772532004.0, "lost connection after DATA", "error: unrecognised postfix smtpd message"),
    ("postfix/smtpd", Some("100"), 1772532004.0, "lost connection after DATA from nowhere", "error: smtpd line without host[address]"),
    ("postfix/smtpd", Some("100"), 1772532004.0, "NOQUEUE: lost connection after RCPT from unknown[192.0.2.1]", "disconnect protocol=smtp client_ip=192.0.2.1 service=smtpd detail=lost connection after RCPT"),
    ("postfix/smtpd", Some("100"), 1772532005.0, "warning: non-SMTP command from unknown[192.0.2.1]: GET / HTTP/1.1", "protocol_error protocol=smtp client_ip=192.0.2.1 service=smtpd detail=non-SMTP command"),
    ("postfix/smtpd", Some("100"), 1772532005.0, "warning: non-SMTP command from nowhere", "error: smtpd warning without host[address]"),
    ("postfix/smtpd", Some("100"), 1772532005.0, "warning: hostname foo.example does not resolve to address 192.0.2.1: Name or service not known", "warning protocol=smtp client_ip=192.0.2.1 service=smtpd detail=hostname does not resolve to address"),
    ("postfix/smtpd", Some("100"), 1772532005.0, "warning: hostname foo.example does not resolve to address ::ffff:192.0.2.1", "error: reverse DNS warning without a valid address"),
    ("postfix/smtpd", Some("100"), 1772532005.0, "warning: hostname foo.example does not resolve to address nope: x", "error: reverse DNS warning without a valid address"),
    ("postfix/smtpd", Some("100"), 1772532005.0, "warning: Connection rate limit exceeded: 31 from unknown[192.0.2.1] for service smtp", "policy protocol=smtp client_ip=192.0.2.1 service=smtpd detail=Connection rate limit exceeded"),
    ("postfix/smtpd", Some("100"), 1772532005.0, "warning: Connection concurrency limit exceeded 51 from unknown[192.0.2.1] for service smtp", "policy protocol=smtp client_ip=192.0.2.1 service=smtpd detail=Connection concurrency limit exceeded 51 from unknown[192.0.2.1] for service smt"),
    ("postfix/smtpd", Some("100"), 1772532005.0, "warning: Connection concurrency limit exceeded 51 from unknown[192.0.2.1]é", "policy protocol=smtp client_ip=192.0.2.1 service=smtpd detail=Connection concurrency limit exceeded 51 from unknown[192.0.2.1]"),
    ("postfix/smtpd", Some("100"), 1772532005.0, "warning: Connection concurrency limit exceeded from nowhere", "error: smtpd warning without host[address]"),
    ("postfix/smtpd", Some("100"), 1772532005.0, "warning: Connection concurrency limit exceeded", "ignored: smtpd_warning"),
    ("postfix/smtpd", Some("100"), 1772532005.0, "warning: connect to Milter service inet:localhost:8891: Connection refused", "ignored: smtpd_service_warning"),
    ("postfix/smtpd", Some("100"), 1772532005.0, "warning: problem talking to server private/policy", "ignored: smtpd_service_warning"),
    ("postfix/smtpd", Some("100"), 1772532005.0, "warning: something else", "ignored: smtpd_warning"),
    ("postfix/smtpd", Some("100"), 1772532006.0, "NOQUEUE: hold: RCPT from unknown[192.0.2.1]: <a@b>: Recipient address triggers HOLD action; from=<s@x> to=<a@b> proto=ESMTP helo=<h>", "hold protocol=smtp client_ip=192.0.2.1 sender=s@x recipient=a@b service=smtpd detail=hold at RCPT reason=<a@b>: Recipient address triggers HOLD action extra={\"helo\":\"h\"}"),
    ("postfix/smtpd", Some("100"), 1772532006.0, "3F4A5B6C7D: client=unknown[192.0.2.1], sasl_method=PLAIN, sasl_username=bob@example.com, sasl_sender=x", "submission protocol=smtp user=bob@example.com client_ip=192.0.2.1 queue_id=3F4A5B6C7D service=smtpd mech=PLAIN"),
    ("postfix/smtpd", Some("100"), 1772532006.0, "3F4A5B6C7E: client=unknown[192.0.2.1], sasl_method=PLAIN, sasl_username=bob@example.com", "submission protocol=smtp user=bob@example.com client_ip=192.0.2.1 queue_id=3F4A5B6C7E service=smtpd mech=PLAIN"),
    ("postfix/smtpd", Some("100"), 1772532006.0, "3F4A5B6C7F: client=localhost[127.0.0.1], orig_queue_id=3F4A5B6C7D, orig_client=unknown[192.0.2.1]", "reinjected protocol=smtp user=bob@example.com client_ip=192.0.2.1 queue_id=3F4A5B6C7F service=smtpd detail=re-injected copy of 3F4A5B6C7D"),
    ("postfix/smtpd", Some("100"), 1772532006.0, "3F4A5B6C80: client=localhost[127.0.0.1], orig_queue_id=NOPE123", "reinjected queue_id=3F4A5B6C80 service=smtpd detail=re-injected copy of NOPE123"),
    ("postfix/smtpd", Some("100"), 1772532006.0, "3F4A5B6C81: client=localhost[127.0.0.1], orig_queue_id=", "submission protocol=smtp client_ip=127.0.0.1 queue_id=3F4A5B6C81 service=smtpd"),
    ("postfix/smtpd", Some("100"), 1772532006.0, "3F4A5B6C82: client=nowhere", "error: client= line without host[address]"),
    ("postfix/smtpd", Some("100"), 1772532006.0, "3F4A5B6C83: client=unknown[192.0.2.1], sasl_username=", "submission protocol=smtp client_ip=192.0.2.1 queue_id=3F4A5B6C83 service=smtpd"),
    ("postfix/smtpd", Some("100"), 1772532006.0, "3F4A5B6C83: reject: RCPT from unknown[192.0.2.1]: 550 nope; proto=SMTP", "reject protocol=smtp client_ip=192.0.2.1 queue_id=3F4A5B6C83 service=smtpd detail=reject at RCPT reason=550 nope"),
    ("postfix/smtpd", Some("100"), 1772532006.0, "3F4A5B6C83: milter-reject: END-OF-MESSAGE from unknown[192.0.2.1]: 5.7.1 spam; from=<a> to=<b>", "reject protocol=smtp client_ip=192.0.2.1 queue_id=3F4A5B6C83 sender=a recipient=b service=smtpd detail=milter-reject at END-OF-MESSAGE reason=5.7.1 spam"),
    ("postfix/smtpd", Some("100"), 1772532006.0, "3F4A5B6C83: redirect: RCPT from unknown[192.0.2.1]: x; from=<a to=<b helo=<c", "policy protocol=smtp client_ip=192.0.2.1 queue_id=3F4A5B6C83 sender=a to=<b helo=<c recipient=b helo=<c service=smtpd detail=redirect at RCPT reason=x extra={\"helo\":\"c\"}"),
    ("postfix/smtpd", Some("100"), 1772532006.0, "3F4A5B6C83: frobnicate: RCPT from unknown[192.0.2.1]: x", "error: unrecognised postfix smtpd message"),
    ("postfix/smtpd", Some("100"), 1772532006.0, "3F4A5B6C83: reject: rcpt from unknown[192.0.2.1]: x", "error: unrecognised postfix smtpd message"),
    ("postfix/smtpd", Some("100"), 1772532006.0, "3F4A5B6C83: reject: RCPT from nowhere: x", "error: policy action without host[address]"),
    ("postfix/smtpd", Some("100"), 1772532006.0, "3F4A5B6C83: reject: END-OF-MESSAGE from unknown[192.0.2.1]", "reject protocol=smtp client_ip=192.0.2.1 queue_id=3F4A5B6C83 service=smtpd detail=reject at END-OF-MESSAGE"),
    ("postfix/smtpd", Some("100"), 1772532006.0, "3F4A5B6C83: reject", "error: unrecognised postfix smtpd message"),
    ("postfix/smtpd", Some("100"), 1772532006.0, "3F4A5B6C83: reject:  from unknown[192.0.2.1]: x", "error: unrecognised postfix smtpd message"),
    ("postfix/smtpd", Some("100"), 1772532006.0, "NOQUEUE: filter: RCPT from unknown[192.0.2.1]:12345: <x>: Sender address triggers FILTER; from=<> to=<> proto=ESMTP helo=<>", "policy protocol=smtp client_ip=192.0.2.1 sender= recipient= service=smtpd detail=filter at RCPT reason=<x>: Sender address triggers FILTER extra={\"helo\":\"\"}"),
    ("postfix/smtpd", Some("100"), 1772532006.0, "ééééééééééééééééééééé: reject: RCPT from unknown[192.0.2.1]: x", "error: unrecognised postfix smtpd message"),
    ("postfix/smtpd", Some("100"), 1772532006.0, "éééééé: reject: RCPT from unknown[192.0.2.1]: x", "reject protocol=smtp client_ip=192.0.2.1 queue_id=éééééé service=smtpd detail=reject at RCPT reason=x"),
    ("postfix/smtpd", Some("100"), 1772532006.0, "something unknown", "error: unrecognised postfix smtpd message"),
    ("postfix/smtpd", Some("100"), 1772532007.0, "disconnect from unknown[192.0.2.1] ehlo=1 auth=1 mail=1 quit=1 commands=4", "auth outcome=success protocol=smtp client_ip=192.0.2.1 service=smtpd detail=AUTH succeeded; the account is not logged | disconnect protocol=smtp client_ip=192.0.2.1 service=smtpd attempts=1 extra={\"ehlo\":\"1\",\"auth\":\"1\",\"mail\":\"1\",\"quit\":\"1\",\"commands\":\"4\"}"),
    ("postfix/smtpd", Some("100"), 1772532007.0, "disconnect from unknown[192.0.2.1] ehlo=1 auth=1/2 auth=0/3 =4 x= commands=4", "disconnect protocol=smtp client_ip=192.0.2.1 service=smtpd attempts=3 extra={\"ehlo\":\"1\",\"auth\":\"0/3\",\"\":\"4\",\"x\":\"\",\"commands\":\"4\"}"),
    ("postfix/smtpd", Some("100"), 1772532007.0, "disconnect from unknown[192.0.2.1]", "disconnect protocol=smtp client_ip=192.0.2.1 service=smtpd"),
    ("postfix/smtpd", Some("100"), 1772532007.0, "disconnect from unknown", "error: disconnect line without host[address]"),
    ("postfix/smtpd", Some("100"), 1772532007.0, "disconnect from unknown[192.0.2.1] auth=99999999999999999999999", "auth outcome=success protocol=smtp client_ip=192.0.2.1 service=smtpd detail=AUTH succeeded; the account is not logged | disconnect protocol=smtp client_ip=192.0.2.1 service=smtpd extra={\"auth\":\"99999999999999999999999\"}"),
    ("postfix/smtpd", Some("100"), 1772532007.0, "disconnect from unknown[192.0.2.1] auth=1_0/2_0", "auth outcome=success protocol=smtp client_ip=192.0.2.1 service=smtpd detail=AUTH succeeded; the account is not logged | disconnect protocol=smtp client_ip=192.0.2.1 service=smtpd attempts=20 extra={\"auth\":\"1_0/2_0\"}"),
    ("postfix/smtpd", Some("101"), 1772532008.0, "connect from unknown[192.0.2.2]", "connect protocol=smtp client_ip=192.0.2.2 service=smtpd"),
    ("postfix/smtpd", Some("101"), 1772532008.0, "Anonymous TLS connection established from unknown[192.0.2.3]: TLSv1.2 with cipher X", "tls outcome=success protocol=smtp client_ip=192.0.2.3 tls=TLSv1.2 service=smtpd"),
    ("postfix/smtpd", Some("101"), 1772532008.0, "disconnect from unknown[192.0.2.3] ehlo=1 auth=1 quit=1 commands=3", "auth outcome=success protocol=smtp client_ip=192.0.2.3 tls=TLSv1.2 service=smtpd detail=AUTH succeeded; the account is not logged | disconnect protocol=smtp client_ip=192.0.2.3 tls=TLSv1.2 service=smtpd attempts=1 extra={\"ehlo\":\"1\",\"auth\":\"1\",\"quit\":\"1\",\"commands\":\"3\"}"),
    ("postfix/smtpd", Some("101"), 1772532008.0, "disconnect from unknown[192.0.2.2] ehlo=1 auth=1 quit=1 commands=3", "auth outcome=success protocol=smtp client_ip=192.0.2.2 service=smtpd detail=AUTH succeeded; the account is not logged | disconnect protocol=smtp client_ip=192.0.2.2 service=smtpd attempts=1 extra={\"ehlo\":\"1\",\"auth\":\"1\",\"quit\":\"1\",\"commands\":\"3\"}"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "CONNECT from [198.51.100.7]:51514 to [192.0.2.25]:25", "connect protocol=smtp client_ip=198.51.100.7 service=postscreen detail=connect"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "PASS OLD [198.51.100.7]:51514", "connect protocol=smtp client_ip=198.51.100.7 service=postscreen detail=pass old"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "PASS NEW", "error: postscreen line without [address]"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "PASS ÉNEW[198.51.100.7]:1", "connect protocol=smtp client_ip=198.51.100.7 service=postscreen detail=pass énew[198.51.100.7]:"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "WHITELISTED [198.51.100.7]:51514", "connect protocol=smtp client_ip=198.51.100.7 service=postscreen detail=allowlisted"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "ALLOWLISTED [198.51.100.7]:51514", "connect protocol=smtp client_ip=198.51.100.7 service=postscreen detail=allowlisted"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "BLACKLISTED [198.51.100.7]:51514", "reject protocol=smtp client_ip=198.51.100.7 service=postscreen detail=denylisted"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "DENYLISTED [198.51.100.7]:51514", "reject protocol=smtp client_ip=198.51.100.7 service=postscreen detail=denylisted"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "DNSBL rank 3 for [198.51.100.7]:51514", "reject protocol=smtp client_ip=198.51.100.7 service=postscreen detail=DNSBL rank 3"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "DNSBL rank 3", "error: postscreen line without [address]"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "DNSBL", "error: postscreen line without [address]"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "PREGREET 11 after 0.12 from [198.51.100.7]:51514: EHLO x\\r\\n", "reject protocol=smtp client_ip=198.51.100.7 service=postscreen detail=pregreet"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "PREGREET 11", "error: postscreen line without [address]"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "HANGUP after 0.5 from [198.51.100.7]:51514 in tests before SMTP handshake", "disconnect protocol=smtp client_ip=198.51.100.7 service=postscreen detail=hangup"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "DISCONNECT [198.51.100.7]:51514", "disconnect protocol=smtp client_ip=198.51.100.7 service=postscreen detail=disconnect"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "COMMAND PIPELINING from [198.51.100.7]:51514 after RSET", "protocol_error protocol=smtp client_ip=198.51.100.7 service=postscreen detail=COMMAND PIPELINING"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "NON-SMTP COMMAND from [198.51.100.7]:51514 after CONNECT: GET / HTTP/1.1", "protocol_error protocol=smtp client_ip=198.51.100.7 service=postscreen detail=NON-SMTP COMMAND"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "BARE NEWLINE from [198.51.100.7]:51514 after DATA", "protocol_error protocol=smtp client_ip=198.51.100.7 service=postscreen detail=BARE NEWLINE"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "BARE [198.51.100.7]:1", "protocol_error protocol=smtp client_ip=198.51.100.7 service=postscreen detail=BARE"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "BARE", "error: postscreen line without [address]"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "COMMAND", "error: postscreen line without [address]"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "NOQUEUE: reject: RCPT from [198.51.100.7]:51514: 550 5.7.1 Service unavailable; client [198.51.100.7] blocked using zen; from=<a@b>, to=<c@d>, proto=ESMTP, helo=<x>", "reject protocol=smtp client_ip=198.51.100.7 sender=a@b recipient=c@d service=postscreen detail=reject at RCPT reason=550 5.7.1 Service unavailable; client [198.51.100.7] blocked using zen extra={\"helo\":\"x\"}"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "NOQUEUE:", "error: unrecognised postfix smtpd message"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "cache btree:/var/lib/postfix/psc_cache full cleanup: retained=1 dropped=0 entries", "ignored: postscreen_housekeeping"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "warning: x", "ignored: postscreen_housekeeping"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "WHITELIST VETO [1.2.3.4]:1", "ignored: postscreen_housekeeping"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "ALLOWLIST VETO [1.2.3.4]:1", "ignored: postscreen_housekeeping"),
    ("postfix/postscreen", Some("200"), 1772532009.0, "FOO", "error: unrecognised postscreen message"),
    ("postfix/pickup", Some("300"), 1772532010.0, "9A8B7C6D5E: uid=1000 from=<backup@example.com>", "submission queue_id=9A8B7C6D5E sender=backup@example.com service=pickup detail=local submission (pickup) extra={\"uid\":\"1000\"}"),
    ("postfix/pickup", Some("300"), 1772532010.0, "9A8B7C6D5F: uid=0 from=<x", "submission queue_id=9A8B7C6D5F sender= service=pickup detail=local submission (pickup) extra={\"uid\":\"0\"}"),
    ("postfix/pickup", Some("300"), 1772532010.0, "9A8B7C6D60: uid=0 from=<", "submission queue_id=9A8B7C6D60 service=pickup detail=local submission (pickup) extra={\"uid\":\"0\"}"),
    ("postfix/pickup", Some("300"), 1772532010.0, "9A8B7C6D61: uid=0", "submission queue_id=9A8B7C6D61 service=pickup detail=local submission (pickup) extra={\"uid\":\"0\"}"),
    ("postfix/pickup", Some("300"), 1772532010.0, "9A8B7C6D61: foo", "ignored: pickup_housekeeping"),
    ("postfix/pickup", Some("300"), 1772532010.0, "warning: x", "ignored: pickup_housekeeping"),
    ("postfix/cleanup", Some("400"), 1772532011.0, "3F4A5B6C7D: message-id=<x@y>", "message_id protocol=smtp user=bob@example.com client_ip=192.0.2.1 queue_id=3F4A5B6C7D service=cleanup extra={\"message_id\":\"<x@y>\"}"),
    ("postfix/cleanup", Some("400"), 1772532011.0, "3F4A5B6C7D: reject: header Subject: spam from unknown[192.0.2.1]; from=<a> to=<b>: 550 no", "reject protocol=smtp user=bob@example.com client_ip=192.0.2.1 queue_id=3F4A5B6C7D service=cleanup detail=reject in cleanup"),
    ("postfix/cleanup", Some("400"), 1772532011.0, "77777AAAAA: milter-reject: END-OF-MESSAGE from unknown[192.0.2.5]: 5.7.1 spam", "reject client_ip=192.0.2.5 queue_id=77777AAAAA service=cleanup detail=milter-reject in cleanup"),
    ("postfix/cleanup", Some("400"), 1772532011.0, "77777AAAAA: hold: header X from nowhere: x", "hold queue_id=77777AAAAA service=cleanup detail=hold in cleanup"),
    ("postfix/cleanup", Some("400"), 1772532011.0, "77777AAAAA: warn: header X", "policy queue_id=77777AAAAA service=cleanup detail=warn in cleanup"),
    ("postfix/cleanup", Some("400"), 1772532011.0, "77777AAAAA: discard: body from unknown[bad]: x", "policy queue_id=77777AAAAA service=cleanup detail=discard in cleanup"),
    ("postfix/cleanup", Some("400"), 1772532011.0, "77777AAAAA: resent-message-id=<x>", "ignored: cleanup_housekeeping"),
    ("postfix/cleanup", Some("400"), 1772532011.0, "warning: x", "ignored: cleanup_housekeeping"),
    ("postfix/qmgr", Some("500"), 1772532012.0, "3F4A5B6C7D: from=<bob@example.com>, size=1234, nrcpt=2 (queue active)", "queued protocol=smtp user=bob@example.com client_ip=192.0.2.1 queue_id=3F4A5B6C7D sender=bob@example.com nrcpt=2 size=1234 service=qmgr"),
    ("postfix/qmgr", Some("500"), 1772532012.0, "3F4A5B6C7D: from=<bob@example.com>, size=1234, nrcpt=2 (queue active)", "queued protocol=smtp user=bob@example.com client_ip=192.0.2.1 queue_id=3F4A5B6C7D sender=bob@example.com nrcpt=2 size=1234 service=qmgr detail=queue active again (retry)"),
    ("postfix/qmgr", Some("500"), 1772532012.0, "3F4A5B6C7D: from=<bob@example.com>, size=12x, nrcpt=2 (queue active)", "error: unrecognised qmgr message"),
    ("postfix/qmgr", Some("500"), 1772532012.0, "3F4A5B6C7D: from=<bob@example.com> (queue active)", "error: unrecognised qmgr message"),
    ("postfix/qmgr", Some("500"), 1772532012.0, "3F4A5B6C7D: from=<bob@example.com>, size=99999999999999999999999, nrcpt=2 (queue active)", "queued protocol=smtp user=bob@example.com client_ip=192.0.2.1 queue_id=3F4A5B6C7D sender=bob@example.com nrcpt=2 service=qmgr detail=queue active again (retry)"),
    ("postfix/qmgr", Some("500"), 1772532012.0, "3F4A5B6C7D: from=<bob@example.com>, size=1², nrcpt=2 (queue active)", "error: unrecognised qmgr message"),
    ("postfix/qmgr", Some("500"), 1772532012.0, "3F4A5B6C7D: from=<bob@example.com>, size=١٢, nrcpt=2 (queue active)", "queued protocol=smtp user=bob@example.com client_ip=192.0.2.1 queue_id=3F4A5B6C7D sender=bob@example.com nrcpt=2 size=12 service=qmgr detail=queue active again (retry)"),
    ("postfix/qmgr", Some("500"), 1772532012.0, "3F4A5B6C7D: from=<bob@example.com>, size=½, nrcpt=2 (queue active)", "error: unrecognised qmgr message"),
    ("postfix/qmgr", Some("500"), 1772532012.0, "3F4A5B6C7D: from=<bob@example.com>, status=expired, returned to sender", "delivery protocol=smtp user=bob@example.com client_ip=192.0.2.1 queue_id=3F4A5B6C7D sender=bob@example.com status=expired service=qmgr reason= returned to sender"),
    ("postfix/qmgr", Some("500"), 1772532012.0, "3F4A5B6C7D: from=<bob@example.com>, status=expired", "delivery protocol=smtp user=bob@example.com client_ip=192.0.2.1 queue_id=3F4A5B6C7D sender=bob@example.com status=expired service=qmgr"),
    ("postfix/qmgr", Some("500"), 1772532012.0, "3F4A5B6C7D: from=<bob@example.com>, status=expiredéé", "delivery protocol=smtp user=bob@example.com client_ip=192.0.2.1 queue_id=3F4A5B6C7D sender=bob@example.com status=expired service=qmgr reason=é"),
    ("postfix/qmgr", Some("500"), 1772532012.0, "3F4A5B6C7D: from=<bob@example.com>, status=deferred", "ignored: qmgr_housekeeping"),
    ("postfix/qmgr", Some("500"), 1772532012.0, "3F4A5B6C7D: to=<bob@example.com>", "ignored: qmgr_housekeeping"),
    ("postfix/qmgr", Some("500"), 1772532012.0, "NEWNEWNEW1: from=<>, size=1, nrcpt=1 (queue active)", "queued queue_id=NEWNEWNEW1 sender= nrcpt=1 size=1 service=qmgr"),
    ("postfix/qmgr", Some("500"), 1772532012.0, "warning: x", "ignored: qmgr_housekeeping"),
    ("postfix/smtp", Some("600"), 1772532013.0, "3F4A5B6C7D: to=<x@example.net>, relay=mx.example.net[198.51.100.20]:25, delay=1.1, delays=0.1/0/0.5/0.5, dsn=2.0.0, status=sent (250 ok)", "delivery protocol=smtp user=bob@example.com client_ip=192.0.2.1 queue_id=3F4A5B6C7D sender=bob@example.com recipient=x@example.net status=sent service=smtp reason=250 ok extra={\"relay\":\"mx.example.net[198.51.100.20]:25\",\"dsn\":\"2.0.0\"}"),
    ("postfix/smtp", Some("600"), 1772532013.0, "3F4A5B6C7D: to=<x@example.net>, orig_to=<y>, relay=none, conn_use=2, delay=1, delays=1, dsn=4.4.1, status=deferred (x)", "delivery protocol=smtp user=bob@example.com client_ip=192.0.2.1 queue_id=3F4A5B6C7D sender=bob@example.com recipient=x@example.net status=deferred service=smtp reason=x extra={\"relay\":\"none\",\"dsn\":\"4.4.1\"}"),
    ("postfix/smtp", Some("600"), 1772532013.0, "3F4A5B6C7D: to=<x@example.net>, relay=none, delay=1, delays=1, dsn=2.1.5, status=deliverable (x)", "ignored: address_verification"),
    ("postfix/smtp", Some("600"), 1772532013.0, "3F4A5B6C7D: to=<x@example.net>, relay=none, delay=1, status=sent", "error: unrecognised delivery status"),
    ("postfix/smtp", Some("600"), 1772532013.0, "3F4A5B6C7D: host x said: y", "ignored: postfix_delivery_agent"),
    ("postfix/smtp", Some("600"), 1772532013.0, "connect to x: refused", "ignored: postfix_delivery_agent"),
    ("postfix/local", Some("601"), 1772532013.0, "UNKNOWNQ1: to=<x@example.net>, relay=local, delay=1, delays=1, dsn=5.0.0, status=bounced (unknown user)", "delivery queue_id=UNKNOWNQ1 recipient=x@example.net status=bounced service=local reason=unknown user extra={\"relay\":\"local\",\"dsn\":\"5.0.0\"}"),
    ("postfix/bounce", Some("700"), 1772532014.0, "3F4A5B6C7D: sender non-delivery notification: 8E8E8E8E8E", "dsn protocol=smtp user=bob@example.com client_ip=192.0.2.1 queue_id=3F4A5B6C7D sender=bob@example.com service=bounce detail=sender non-delivery notification extra={\"notice_queue_id\":\"8E8E8E8E8E\"}"),
    ("postfix/bounce", Some("700"), 1772532014.0, "3F4A5B6C7D: sender delay notification: 3F4A5B6C7D", "dsn protocol=smtp user=bob@example.com client_ip=192.0.2.1 queue_id=3F4A5B6C7D sender=bob@example.com service=bounce detail=sender delay notification extra={\"notice_queue_id\":\"3F4A5B6C7D\"}"),
    ("postfix/bounce", Some("700"), 1772532014.0, "ZZZZZZZZZ1: sender delivery status notification: ZZZZZZZZZ1", "dsn queue_id=ZZZZZZZZZ1 service=bounce detail=sender delivery status notification extra={\"notice_queue_id\":\"ZZZZZZZZZ1\"}"),
    ("postfix/bounce", Some("700"), 1772532014.0, "ZZZZZZZZZ2: postmaster non-delivery notification: 3F4A5B6C7D", "dsn queue_id=ZZZZZZZZZ2 service=bounce detail=postmaster non-delivery notification extra={\"notice_queue_id\":\"3F4A5B6C7D\"}"),
    ("postfix/bounce", Some("700"), 1772532014.0, "ZZZZZZZZZ2: weird notification: 3F4A5B6C7D", "ignored: bounce_housekeeping"),
    ("postfix/bounce", Some("700"), 1772532014.0, "ZZZZZZZZZ2: sender non-delivery notification: bad", "ignored: bounce_housekeeping"),
    ("postfix/bounce", Some("700"), 1772532014.0, "warning: x", "ignored: bounce_housekeeping"),
    ("postfix/qmgr", Some("500"), 1772532015.0, "8E8E8E8E8E: from=<>, size=10, nrcpt=1 (queue active)", "queued protocol=smtp user=bob@example.com client_ip=192.0.2.1 queue_id=8E8E8E8E8E sender= nrcpt=1 size=10 service=qmgr detail=non-delivery notice for 3F4A5B6C7D"),
    ("postfix/cleanup", Some("400"), 1772532015.0, "8E8E8E8E8E: message-id=<x@y>", "message_id protocol=smtp user=bob@example.com client_ip=192.0.2.1 queue_id=8E8E8E8E8E sender= service=cleanup detail=non-delivery notice for 3F4A5B6C7D extra={\"message_id\":\"<x@y>\"}"),
    ("postfix/smtp", Some("600"), 1772532015.0, "8E8E8E8E8E: to=<bob@example.com>, relay=r, delay=1, delays=1, dsn=2.0.0, status=sent (ok)", "delivery protocol=smtp user=bob@example.com client_ip=192.0.2.1 queue_id=8E8E8E8E8E sender= recipient=bob@example.com status=sent service=smtp detail=non-delivery notice for 3F4A5B6C7D reason=ok extra={\"relay\":\"r\",\"dsn\":\"2.0.0\"}"),
    ("postfix/postsuper", Some("800"), 1772532015.0, "8E8E8E8E8E: placed on hold", "queue_admin protocol=smtp user=bob@example.com client_ip=192.0.2.1 queue_id=8E8E8E8E8E sender= service=postsuper detail=placed on hold"),
    ("postfix/postsuper", Some("800"), 1772532015.0, "8E8E8E8E8E: removed", "queue_admin protocol=smtp user=bob@example.com client_ip=192.0.2.1 queue_id=8E8E8E8E8E sender= service=postsuper detail=removed"),
    ("postfix/postsuper", Some("800"), 1772532015.0, "8E8E8E8E8E: removed", "queue_admin queue_id=8E8E8E8E8E service=postsuper detail=removed"),
    ("postfix/postsuper", Some("800"), 1772532015.0, "Deleted: 1 message", "queue_admin queue_id=Deleted service=postsuper detail=1 message"),
    ("postfix/qmgr", Some("500"), 1772532016.0, "3F4A5B6C7D: removed", "ignored: qmgr_removed"),
    ("postfix/master", Some("1"), 1772532016.0, "daemon started", "ignored: postfix_housekeeping"),
    ("postfix/anvil", Some("2"), 1772532016.0, "statistics", "ignored: postfix_housekeeping"),
    ("postfix/somethingelse", Some("2"), 1772532016.0, "statistics", "ignored: postfix_other_program"),
    ("postfix", Some("2"), 1772532016.0, "statistics", "ignored: postfix_other_program"),
    ("postfix/submission/smtpd", Some("900"), 1772532016.0, "connect from unknown[2001:db8::1]", "connect protocol=smtp client_ip=2001:db8::1 service=submission"),
    ("postfix/submission/smtpd", Some("900"), 1772532016.0, "connect from unknown[IPv6:2001:DB8::1]", "connect protocol=smtp client_ip=2001:db8::1 service=submission"),
    ("postfix-out/x/y/smtpd", Some("900"), 1772532016.0, "connect from unknown[1.2.3.4]", "connect protocol=smtp client_ip=1.2.3.4 service=y"),
    ("postfix/smtpd", None, 1772532016.0, "connect from unknown[1.2.3.4]", "connect protocol=smtp client_ip=1.2.3.4 service=smtpd"),
    ("postfix/smtpd", None, 1772532016.0, "disconnect from unknown[1.2.3.4] auth=1", "auth outcome=success protocol=smtp client_ip=1.2.3.4 tls=none service=smtpd detail=AUTH succeeded; the account is not logged | disconnect protocol=smtp client_ip=1.2.3.4 tls=none service=smtpd attempts=1 extra={\"auth\":\"1\"}"),
    ];

    #[test]
    fn lines_give_what_python_gives() {
        let origin = Rc::new(Origin {
            path: "t".into(),
            line: 1,
            host: None,
            offset: None,
        });
        let mut state = HostState::new();
        let mut parser = PostfixParser::new();
        let mut differences = Vec::new();
        for &(program, pid, epoch, message, want) in LINES {
            if program.is_empty() {
                state = HostState::new();
                parser = PostfixParser::new();
                continue;
            }
            let ctx = LineContext {
                ts: "2026-03-03T10:00:00+00:00".into(),
                epoch,
                host: Some("mx".into()),
                origin: origin.clone(),
                program: program.into(),
                pid: pid.map(Into::into),
                message: message.to_string(),
            };
            let route = parser.route(program);
            let got = summary(&parser.parse(&mut state, &route, &ctx));
            if got != want {
                differences.push(format!("{message}\n  got  {got}\n  want {want}"));
            }
        }
        assert!(differences.is_empty(), "{}", differences.join("\n"));
    }
}
