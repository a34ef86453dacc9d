//! Dovecot 2.2 to 2.4 (`parsers/dovecot.py`): logins, login summaries, passdb
//! failures, logouts and kicks.
//!
//! Both layouts are read: Dovecot's own file (`imap-login: Info: Login: ...`) and
//! syslog (`host dovecot[123]: imap-login: Login: ...`, usually no level word).
//!
//! Counting one attempt once (kind `auth` vs `auth_echo`): an auth process line
//! naming a passdb result is the canonical record of one attempt; the login
//! summary `(auth failed, N attempts ...)` is then an `auth_echo`, or an `auth`
//! counting the attempts the auth process did not log. An auth line without
//! `<session>` comes from another SASL client (Postfix) and is paired by
//! `FailedAttempts` (first line wins).
//!
//! Fields are read from Dovecot's fixed layout only: in login lines `rip=` is the
//! last `, rip=` field (the user name is the only free text, and comes first); the
//! auth identifier `driver(user,ip[,master][,<session>])` is read from its right
//! end, and a line with more than one possible reading is an error, never a guess.

use crate::correlation::{HostState, LoginSession, Source};
use crate::fields::normalize_ip;
use crate::pytext::{self, non_empty, partition, rpartition, PyInt};
use crate::result::{failed, ignored, new_event, Event, Extra, LineContext, ParseResult, Value};

const SOURCE: &str = "dovecot";

/// `LOGIN_PROCESSES`: login process -> protocol.
fn login_protocol(base: &str) -> Option<&'static str> {
    match base {
        "imap-login" => Some("imap"),
        "pop3-login" => Some("pop3"),
        "submission-login" => Some("submission"),
        "managesieve-login" => Some("sieve"),
        _ => None,
    }
}

/// `MAIL_PROCESSES`: mail process -> protocol.
fn mail_protocol(base: &str) -> Option<&'static str> {
    match base {
        "imap" => Some("imap"),
        "pop3" => Some("pop3"),
        "submission" => Some("submission"),
        "managesieve" => Some("sieve"),
        "lmtp" => Some("lmtp"),
        _ => None,
    }
}

/// `AUTH_PROCESSES`.
fn is_auth_process(base: &str) -> bool {
    matches!(base, "auth" | "auth-worker" | "dovecot-auth")
}

/// `SERVICE_PROCESSES`.
fn is_service_process(base: &str) -> bool {
    matches!(
        base,
        "master"
            | "stats"
            | "anvil"
            | "log"
            | "config"
            | "dict"
            | "dict-async"
            | "indexer"
            | "indexer-worker"
            | "doveadm"
            | "doveadm-server"
            | "replicator"
            | "aggregator"
            | "quota-status"
            | "imap-hibernate"
            | "imap-urlauth"
            | "imap-urlauth-login"
            | "imap-urlauth-worker"
            | "director"
            | "ssl-params"
            | "lda"
            | "dovecot-lda"
            | "old-stats"
    )
}

const LEVELS: [&str; 6] = [
    "Info: ",
    "Warning: ",
    "Error: ",
    "Fatal: ",
    "Panic: ",
    "Debug: ",
];
const PASSDB_FAILURES: [&str; 10] = [
    "Password mismatch",
    "password mismatch",
    "unknown user",
    "User not known",
    "pam_authenticate() failed",
    "invalid credentials",
    "Invalid credentials",
    "Authentication failure due to policy server refusal",
    "Login failed",
    "Invalid password",
];
const POLICY_MESSAGES: [&str; 2] = ["Policy check action is ", "Policy server "];
const SECRET_MARKERS: [&str; 3] = [
    " (given password",
    " (SHA1 of given password",
    " (given password hash",
];

fn starts_with_any(text: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|prefix| text.starts_with(prefix))
}

/// `imap(alice)<1><s>` -> `imap`; `auth-worker(123)` -> `auth-worker`.
pub fn process_base(process: &str) -> &str {
    let end = process.find(['(', '<', '[']).unwrap_or(process.len());
    &process[..end]
}

/// `Info: Login: ...` -> `Login: ...`; text without a level word is kept.
pub fn without_level(text: &str) -> &str {
    if starts_with_any(text, &LEVELS) {
        // no level word holds ": "
        if let Some(at) = text.find(": ") {
            return &text[at + 2..];
        }
    }
    text
}

pub fn is_dovecot_process(program: &str) -> bool {
    let base = process_base(program);
    login_protocol(base).is_some()
        || mail_protocol(base).is_some()
        || is_auth_process(base)
        || is_service_process(base)
}

/// The `user=<..>, method=.., rip=.., lip=.., mpid=.., TLS, session=<..>` part.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoginFields {
    pub user: Option<String>,
    pub method: Option<String>,
    pub client_ip: Option<String>,
    pub rip_present: bool,
    pub mpid: Option<String>,
    pub session: Option<String>,
    pub tls: Option<String>,
    pub encrypted: bool,
    /// rip == lip or login_trusted_networks: Dovecot trusts the channel, but it is not TLS
    pub secured: bool,
}

impl LoginFields {
    /// What the events of the line add beyond `tls`.
    pub fn extra(&self) -> Extra {
        let mut extra = Extra::new();
        if self.tls.is_none() && self.encrypted {
            extra.push(("encrypted".to_string(), Value::Bool(true)));
        }
        if self.secured {
            extra.push(("secured".to_string(), Value::Bool(true)));
        }
        extra
    }
}

/// Read the field list of a login process line (see the module comment).
pub fn parse_login_fields(tail: &str) -> LoginFields {
    let mut fields = LoginFields::default();
    let (mut front, back) = if tail.starts_with("rip=") {
        ("", tail)
    } else {
        match tail.rfind(", rip=") {
            None => (tail, ""),
            Some(rip_at) => (&tail[..rip_at], &tail[rip_at + 2..]),
        }
    };
    if let Some(method_at) = front.rfind(", method=") {
        fields.method = non_empty(&front[method_at + 9..]);
        front = &front[..method_at];
    } else if let Some(method) = front.strip_prefix("method=") {
        fields.method = non_empty(method);
        front = "";
    }
    if front.starts_with("user=<") && front.ends_with('>') {
        fields.user = non_empty(&front[6..front.len() - 1]);
    }
    let mut handshaking = false;
    let mut version: Option<&str> = None;
    for item in back.split(", ") {
        // Python tests item[:4] first, for speed; the same as these prefixes
        if let Some(rip) = item.strip_prefix("rip=") {
            fields.rip_present = true;
            fields.client_ip = normalize_ip(rip);
        } else if let Some(mpid) = item.strip_prefix("mpid=") {
            fields.mpid = Some(mpid.to_string());
        } else if item.starts_with("session=<") && item.ends_with('>') {
            fields.session = Some(item[9..item.len() - 1].to_string());
        } else if item == "secured" {
            fields.secured = true;
        } else if item.starts_with("TLS") || item.starts_with("SSL") {
            if item == "TLS" || item.starts_with("TLS: ") {
                fields.encrypted = true;
            } else if item.starts_with("TLS handshaking") {
                handshaking = true;
            } else if item.starts_with("TLSv") || item.starts_with("SSLv") {
                version = Some(partition(item, " ").0);
            }
        }
    }
    if let Some(version) = version {
        fields.tls = Some(version.to_string());
    } else if !fields.encrypted && !handshaking {
        fields.tls = Some("none".to_string());
    }
    fields
}

/// `driver(user,ip[,master][,<session>])` or 2.4's `auth(user,ip,sasl:mech)<session>`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthIdentity {
    pub user: Option<String>,
    pub client_ip: Option<String>,
    pub session: Option<String>,
    pub mech: Option<String>,
    pub message: String,
}

/// More than one reading of an auth identifier is possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmbiguousIdentifier;

impl std::fmt::Display for AmbiguousIdentifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ambiguous auth identifier")
    }
}

/// Read an identifier from `text`, which starts just after `driver(`.
///
/// Every `)` that could close the identifier (followed by `: ` or by
/// `<session>: `) is tried; the identifier must end with a valid address field.
/// Ok(None) when no reading fits; Err when more than one does.
pub fn parse_auth_identifier(text: &str) -> Result<Option<AuthIdentity>, AmbiguousIdentifier> {
    let mut found: Option<AuthIdentity> = None;
    for (close, _) in text.match_indices(')') {
        if let Some(candidate) = identity_at(text, close) {
            if found.is_some() {
                return Err(AmbiguousIdentifier);
            }
            found = Some(candidate);
        }
    }
    Ok(found)
}

fn identity_at(text: &str, close: usize) -> Option<AuthIdentity> {
    let mut session: Option<&str> = None;
    let after = &text.as_bytes()[close + 1..];
    let message_at = if after.starts_with(b": ") {
        close + 3
    } else if after.first() == Some(&b'<') {
        let end = close + 2 + text[close + 2..].find('>')?;
        if !text.as_bytes()[end + 1..].starts_with(b": ") {
            return None;
        }
        session = Some(&text[close + 2..end]);
        end + 3
    } else {
        return None;
    };
    let inner = &text[..close];
    let mut mech = None;
    let (mut head, mut sep, mut last) = rpartition(inner, ",");
    while sep && last.is_empty() {
        (head, sep, last) = rpartition(head, ",");
    }
    if sep && last.starts_with('<') && last.ends_with('>') {
        session = Some(&last[1..last.len() - 1]);
        (head, sep, last) = rpartition(head, ",");
    }
    if sep && last.starts_with("sasl:") {
        mech = non_empty(&pytext::upper(&last[5..]));
        (head, sep, last) = rpartition(head, ",");
    }
    if sep && last == "master" {
        (head, sep, last) = rpartition(head, ",");
    }
    if !sep {
        return None;
    }
    let ip = normalize_ip(last)?;
    let user = if !head.is_empty() && head != "?" {
        Some(head.to_string())
    } else {
        None
    };
    Some(AuthIdentity {
        user,
        client_ip: Some(ip),
        session: session.and_then(non_empty),
        mech,
        message: text[message_at..].to_string(),
    })
}

/// Drop `(given password: ...)` and its hashes: a log must not spread passwords.
fn without_secrets(reason: &str) -> &str {
    let mut reason = reason;
    for marker in SECRET_MARKERS {
        if let Some(at) = reason.find(marker) {
            reason = &reason[..at];
        }
    }
    reason
}

/// `DovecotParser.parse` gives a result, or (Python: a `str`) the message to hand to the PAM parser.
pub enum DovecotParse {
    Done(ParseResult),
    Pam(String),
}

impl From<ParseResult> for DovecotParse {
    fn from(result: ParseResult) -> Self {
        DovecotParse::Done(result)
    }
}

/// Parses Dovecot lines of one host. (Python caches `process_base` per process
/// name; finding three characters costs less than that look-up in Rust.)
pub struct DovecotParser {}

impl DovecotParser {
    pub fn new() -> Self {
        DovecotParser {}
    }

    /// Parse one line; a PAM message logged by the auth process comes back as text.
    pub fn parse(&mut self, state: &mut HostState, ctx: &LineContext) -> DovecotParse {
        let program: &str = &ctx.program;
        let message: &str = &ctx.message;
        let (process, mut rest) = if program == "dovecot" {
            let (mut process, mut sep, mut rest) = partition(message, ": ");
            if process == "dovecot" && sep {
                (process, sep, rest) = partition(rest, ": ");
            }
            if !sep {
                return ignored("dovecot_other").into();
            }
            (process, rest)
        } else {
            (program, message)
        };
        if starts_with_any(rest, &LEVELS) {
            rest = without_level(rest);
        }
        let base = process_base(process);
        if let Some(protocol) = login_protocol(base) {
            return self.login_process(state, protocol, rest, ctx).into();
        }
        if is_auth_process(base) {
            return self.auth_process(state, process, rest, ctx);
        }
        if let Some(protocol) = mail_protocol(base) {
            return self
                .mail_process(state, base, protocol, process, rest, ctx)
                .into();
        }
        if is_service_process(base) {
            return ignored("dovecot_service").into();
        }
        ignored("dovecot_other").into()
    }

    // -- login processes -------------------------------------------------

    fn login_process(
        &mut self,
        state: &mut HostState,
        protocol: &str,
        rest: &str,
        ctx: &LineContext,
    ) -> ParseResult {
        if let Some(tail) = rest.strip_prefix("Login: ") {
            return self.login(state, protocol, parse_login_fields(tail), ctx);
        }
        let fields_at = rest
            .find(": user=<")
            .or_else(|| rest.find(": method="))
            .or_else(|| rest.find(": rip="));
        let Some(fields_at) = fields_at else {
            if starts_with_any(rest, &["Disconnected", "Aborted login", "Login aborted"]) {
                return failed("unrecognised dovecot login summary");
            }
            return ignored("dovecot_login_other");
        };
        let head = &rest[..fields_at];
        let fields = parse_login_fields(&rest[fields_at + 2..]);
        if fields.rip_present && fields.client_ip.is_none() {
            return failed("dovecot login line with an invalid rip");
        }
        if let Some(failed_at) = head.find("(auth failed, ") {
            return self.summary(state, protocol, head, failed_at, &fields, ctx);
        }
        if head.contains("(proxy dest auth failed)") {
            return self.proxy_failure(state, protocol, head, &fields, ctx);
        }
        let kind = if head.contains("(tried to use dis") {
            "protocol_error"
        } else if head.contains("SSL_accept() failed")
            || head.contains("(disconnected during TLS handshake)")
        {
            "tls"
        } else {
            "disconnect"
        };
        let mut event = new_event(ctx, SOURCE, kind);
        event.outcome = if kind == "tls" {
            Some("failure".to_string())
        } else {
            None
        };
        event.protocol = Some(protocol.to_string());
        event.user = fields.user.clone();
        event.client_ip = fields.client_ip.clone();
        event.tls = fields.tls.clone();
        event.session = fields.session.clone();
        event.detail = Some(head.to_string());
        event.extra = fields.extra();
        ParseResult::one(event)
    }

    fn login(
        &mut self,
        state: &mut HostState,
        protocol: &str,
        fields: LoginFields,
        ctx: &LineContext,
    ) -> ParseResult {
        if fields.client_ip.is_none() && fields.rip_present {
            return failed("dovecot login with an invalid rip");
        }
        if let Some(session) = &fields.session {
            let login = LoginSession {
                user: fields.user.clone(),
                client_ip: fields.client_ip.clone(),
                tls: fields.tls.clone(),
                protocol: Some(protocol.to_string()),
            };
            state.logins.put(session.clone(), login, ctx.epoch);
            if let Some(mpid) = &fields.mpid {
                state
                    .login_pids
                    .put(mpid.clone(), session.clone(), ctx.epoch);
            }
        }
        ParseResult::one(login_event(
            ctx, "auth", "success", protocol, &fields, None, None,
        ))
    }

    fn summary(
        &mut self,
        state: &mut HostState,
        protocol: &str,
        head: &str,
        failed_at: usize,
        fields: &LoginFields,
        ctx: &LineContext,
    ) -> ParseResult {
        let numbers = &head[failed_at + 14..];
        let (count_text, _, after) = partition(numbers, " attempts");
        if !pytext::is_decimal(count_text) {
            return failed("unrecognised dovecot login summary");
        }
        let attempts = match pytext::int(count_text, 10).map(|count| count.to_i64()) {
            Ok(Some(attempts)) => attempts,
            // crafted: no event can carry the count
            Ok(None) => return failed("unrecognised dovecot login summary"),
            Err(error) => return internal_error(&error.to_string()),
        };
        let mut seconds_int = None;
        if let Some(after_in) = after.strip_prefix(" in ") {
            let seconds_text = partition(after_in, " secs").0;
            if pytext::is_decimal(seconds_text) {
                match pytext::int(seconds_text, 10) {
                    Ok(seconds) => seconds_int = Some(seconds),
                    Err(error) => return internal_error(&error.to_string()),
                }
            }
        }
        let mut seen = 0;
        if let Some(session) = &fields.session {
            seen = state.session_failures.pop(session).unwrap_or(0);
        }
        if seen == 0 {
            if let Some(client_ip) = &fields.client_ip {
                // versions whose passdb lines carry no <session>
                let seconds = match seconds_int.as_ref().map(PyInt::to_f64) {
                    None => 0.0,
                    Some(Ok(seconds)) => seconds,
                    Some(Err(error)) => return internal_error(&error.to_string()),
                };
                seen = state.failures.claim_for_summary(
                    client_ip,
                    fields.user.as_deref(),
                    ctx.epoch - seconds,
                    ctx.epoch,
                    attempts,
                );
            }
        }
        let echo = seen >= attempts;
        let kind = if echo { "auth_echo" } else { "auth" };
        let counted = if echo { attempts } else { attempts - seen };
        ParseResult::one(login_event(
            ctx,
            kind,
            "failure",
            protocol,
            fields,
            Some(counted),
            Some(head),
        ))
    }

    fn proxy_failure(
        &mut self,
        state: &mut HostState,
        protocol: &str,
        head: &str,
        fields: &LoginFields,
        ctx: &LineContext,
    ) -> ParseResult {
        let mut seen = 0;
        if let Some(session) = &fields.session {
            seen = state.session_failures.pop(session).unwrap_or(0);
        }
        let kind = if seen != 0 { "auth_echo" } else { "auth" };
        ParseResult::one(login_event(
            ctx,
            kind,
            "failure",
            protocol,
            fields,
            Some(1),
            Some(head),
        ))
    }

    // -- auth processes --------------------------------------------------

    fn auth_process(
        &mut self,
        state: &mut HostState,
        process: &str,
        rest: &str,
        ctx: &LineContext,
    ) -> DovecotParse {
        if process.starts_with("auth(") && (process.contains(',') || !process.ends_with(')')) {
            // 2.4 and late 2.3 event prefix: auth(user,ip,sasl:mech)<session>: sql: ...
            // (a user name holding ": " split it early; the identifier is read again whole)
            let text = format!("{}: {}", &process[5..], rest);
            return self.passdb(state, &text, ctx, true).into();
        }
        let mut rest = rest;
        if rest.starts_with("conn unix:") {
            let Some(worker_at) = rest.find(": auth-worker<") else {
                return ignored("dovecot_auth_other").into();
            };
            let Some(end) = rest[worker_at..].find(">: ") else {
                return ignored("dovecot_auth_other").into();
            };
            rest = &rest[worker_at + end + 3..];
        } else if rest.starts_with("auth-worker<") {
            let Some(end) = rest.find(">: ") else {
                return ignored("dovecot_auth_other").into();
            };
            rest = &rest[end + 3..];
        }
        if starts_with_any(rest, &["pam_unix", "(pam_unix)", "pam_"]) {
            return DovecotParse::Pam(rest.to_string());
        }
        let open_paren = rest.find('(').unwrap_or(0);
        if open_paren == 0 || !is_alnum_without(&rest[..open_paren], &['-', '_']) {
            if rest.starts_with("auth client ") && rest.contains(" disconnected with ") {
                return ignored("auth_client_disconnected").into();
            }
            return ignored("dovecot_auth_other").into();
        }
        self.passdb(state, &rest[open_paren + 1..], ctx, false)
            .into()
    }

    fn passdb(
        &mut self,
        state: &mut HostState,
        text: &str,
        ctx: &LineContext,
        strip_driver: bool,
    ) -> ParseResult {
        let identity = match parse_auth_identifier(text) {
            Err(exc) => return failed(&exc.to_string()),
            Ok(None) => return ignored("dovecot_auth_other"),
            Ok(Some(identity)) => identity,
        };
        let mut message: &str = &identity.message;
        if strip_driver {
            message = without_level(message);
            let (driver, sep, after) = partition(message, ": ");
            if sep && is_alnum_without(driver, &['-']) {
                message = after;
            }
        }
        if starts_with_any(message, &POLICY_MESSAGES) {
            let mut event = new_event(ctx, SOURCE, "policy");
            event.user = identity.user.clone();
            event.client_ip = identity.client_ip.clone();
            event.session = identity.session.clone();
            event.detail = Some(message.to_string());
            return ParseResult::one(event);
        }
        if !starts_with_any(message, &PASSDB_FAILURES) {
            return ignored("dovecot_auth_other");
        }
        let reason = without_secrets(message).to_string();
        ParseResult::one(self.passdb_failure(state, &identity, reason, ctx))
    }

    fn passdb_failure(
        &mut self,
        state: &mut HostState,
        identity: &AuthIdentity,
        reason: String,
        ctx: &LineContext,
    ) -> Event {
        let session = &identity.session;
        let mut protocol = None;
        let mut tls = None;
        if let Some(session) = session {
            let count = state
                .session_failures
                .get(session, ctx.epoch)
                .map_or(0, |count| *count);
            state
                .session_failures
                .put(session.clone(), count + 1, ctx.epoch);
            if let Some(login) = state.logins.get(session, ctx.epoch) {
                protocol = login.protocol.clone();
                tls = login.tls.clone();
            }
        }
        let mut canonical = true;
        if let Some(client_ip) = &identity.client_ip {
            let (is_new, earlier) = state.failures.record(
                client_ip,
                identity.user.as_deref(),
                Source::Dovecot,
                ctx.epoch,
                session.is_some(),
                None,
            );
            canonical = is_new;
            if earlier.contains(Source::Smtpd) {
                protocol = Some("smtp".to_string());
            }
        }
        let mut event = new_event(ctx, SOURCE, if canonical { "auth" } else { "auth_echo" });
        event.outcome = Some("failure".to_string());
        event.protocol = protocol;
        event.user = identity.user.clone();
        event.client_ip = identity.client_ip.clone();
        event.tls = tls;
        event.mech = identity.mech.clone();
        event.session = session.clone();
        event.reason = Some(reason);
        event
    }

    // -- mail processes ----------------------------------------------------

    fn mail_process(
        &mut self,
        state: &mut HostState,
        base: &str,
        protocol: &str,
        process: &str,
        rest: &str,
        ctx: &LineContext,
    ) -> ParseResult {
        let (inner, groups) = split_process(base, process);
        let Some(inner) = inner else {
            return ignored("dovecot_mail_process");
        };
        if rest.starts_with("Killed with signal ") && pytext::is_digit(inner) {
            return self.kick(state, inner, protocol, rest, ctx);
        }
        if base == "lmtp" {
            return ignored("dovecot_lmtp");
        }
        if starts_with_any(rest, &["Disconnected", "Connection closed", "Logged out"]) {
            let session = if groups.len() >= 2 {
                Some(groups[1])
            } else {
                None
            };
            let login = session.and_then(|session| state.logins.pop(&session.to_string()));
            if let Some(pid) = groups.first() {
                state.login_pids.pop(&pid.to_string());
            }
            let mut event = new_event(ctx, SOURCE, "logout");
            event.protocol = Some(protocol.to_string());
            event.user = non_empty(inner);
            if let Some(login) = login {
                event.client_ip = login.client_ip;
                event.tls = login.tls;
            }
            event.session = session.map(str::to_string);
            event.detail = Some(partition(partition(rest, " in=").0, " top=").0.to_string());
            return ParseResult::one(event);
        }
        ignored("dovecot_mail_process")
    }

    fn kick(
        &mut self,
        state: &mut HostState,
        pid: &str,
        protocol: &str,
        rest: &str,
        ctx: &LineContext,
    ) -> ParseResult {
        let session = state.login_pids.get(&pid.to_string(), ctx.epoch).cloned();
        let login = match &session {
            Some(session) => state.logins.get(session, ctx.epoch).cloned(),
            None => None,
        };
        let mut event = new_event(ctx, SOURCE, "kick");
        event.protocol = Some(protocol.to_string());
        if let Some(login) = login {
            event.user = login.user;
            event.client_ip = login.client_ip;
            event.tls = login.tls;
        }
        event.session = session;
        event.detail = Some(rest.to_string());
        event.extra = vec![("pid".to_string(), Value::Str(pid.to_string()))];
        ParseResult::one(event)
    }
}

impl Default for DovecotParser {
    fn default() -> Self {
        Self::new()
    }
}

/// `imap(alice)<17745><sKHn>` -> (`alice`, [`17745`, `sKHn`]).
fn split_process<'a>(base: &str, process: &'a str) -> (Option<&'a str>, Vec<&'a str>) {
    let mut groups: Vec<&str> = Vec::new();
    let mut text = process;
    while text.ends_with('>') {
        let Some(opening) = text.rfind('<') else {
            break;
        };
        groups.insert(0, &text[opening + 1..text.len() - 1]);
        text = &text[..opening];
    }
    // base is a prefix of process cut at its first "(<[", and text is cut at a "<"
    // at or after it: base.len() is a char boundary of text
    if !(text.as_bytes().get(base.len()) == Some(&b'(') && text.ends_with(')')) {
        return (None, groups);
    }
    (Some(&text[base.len() + 1..text.len() - 1]), groups)
}

/// The event of a login process line: what it says of the login, from `fields`.
fn login_event(
    ctx: &LineContext,
    kind: &str,
    outcome: &str,
    protocol: &str,
    fields: &LoginFields,
    attempts: Option<i64>,
    detail: Option<&str>,
) -> Event {
    let mut event = new_event(ctx, SOURCE, kind);
    event.outcome = Some(outcome.to_string());
    event.protocol = Some(protocol.to_string());
    event.user = fields.user.clone();
    event.client_ip = fields.client_ip.clone();
    event.tls = fields.tls.clone();
    event.mech = fields.method.clone();
    event.session = fields.session.clone();
    event.attempts = attempts;
    event.detail = detail.map(str::to_string);
    event.extra = fields.extra();
    event
}

/// `text.replace(c, "")...isalnum()` for the removed characters `removed`.
fn is_alnum_without(text: &str, removed: &[char]) -> bool {
    let mut any = false;
    for c in text.chars() {
        if removed.contains(&c) {
            continue;
        }
        if !pytext::is_alnum_char(c) {
            return false;
        }
        any = true;
    }
    any
}

/// What the API makes of a Python exception raised while parsing the line.
fn internal_error(exception: &str) -> ParseResult {
    failed(&format!("internal parser error ({exception})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_names() {
        assert_eq!(process_base("imap(alice)<1><s>"), "imap");
        assert_eq!(process_base("auth-worker(123)"), "auth-worker");
        assert_eq!(process_base("x[1](2"), "x");
        assert!(is_dovecot_process("imap-login"));
        assert!(is_dovecot_process("auth-worker(12)"));
        assert!(!is_dovecot_process("postfix/smtpd"));
        assert_eq!(without_level("Info: Login: x"), "Login: x");
        assert_eq!(without_level("Login: x"), "Login: x");
    }

    #[test]
    fn split_process_groups() {
        assert_eq!(
            split_process("imap", "imap(alice)<17745><sKHn>"),
            (Some("alice"), vec!["17745", "sKHn"])
        );
        assert_eq!(split_process("imap", "imap<1>"), (None, vec!["1"]));
        assert_eq!(split_process("imap", "imap()"), (Some(""), vec![]));
    }

    #[test]
    fn alnum_without() {
        assert!(is_alnum_without("passwd-file", &['-', '_']));
        assert!(!is_alnum_without("--", &['-', '_']));
        assert!(!is_alnum_without("a b", &['-']));
    }

    fn context(program: &str, message: &str, epoch: f64) -> LineContext {
        let origin = crate::result::Origin {
            path: "x".into(),
            line: 1,
            host: None,
            offset: None,
        };
        LineContext {
            ts: "ts".into(),
            epoch,
            host: None,
            origin: std::rc::Rc::new(origin),
            program: program.into(),
            pid: None,
            message: message.to_string(),
        }
    }

    fn done(parse: DovecotParse) -> ParseResult {
        match parse {
            DovecotParse::Done(result) => result,
            DovecotParse::Pam(text) => panic!("PAM text {text}"),
        }
    }

    fn s(text: &str) -> Option<String> {
        Some(text.to_string())
    }

    // Expected values are what parsers/dovecot.py gives for the same sequence.
    #[test]
    fn login_logout_and_kick() {
        let mut state = HostState::new();
        let mut parser = DovecotParser::new();
        let login =
            "imap-login: Login: user=<grace@example.com>, method=PLAIN, rip=198.51.100.31, \
                     lip=192.0.2.10, mpid=5100, TLS, TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 \
                     (256/256 bits), session=<Ab12Cd34Ef56Gh78>";
        let result = done(parser.parse(&mut state, &context("dovecot", login, 1000.0)));
        let event = &result.events[0];
        assert_eq!(
            (event.kind.as_str(), event.outcome.clone()),
            ("auth", s("success"))
        );
        assert_eq!(
            (event.user.clone(), event.client_ip.clone()),
            (s("grace@example.com"), s("198.51.100.31"))
        );
        assert_eq!(
            (event.tls.clone(), event.mech.clone()),
            (s("TLSv1.3"), s("PLAIN"))
        );
        assert_eq!(event.session, s("Ab12Cd34Ef56Gh78"));
        let kick = "imap(5100): Killed with signal 9 (by pid=1 uid=0 code=kill)";
        let result = done(parser.parse(&mut state, &context("dovecot", kick, 1001.0)));
        let event = &result.events[0];
        assert_eq!(
            (event.kind.as_str(), event.user.clone(), event.tls.clone()),
            ("kick", s("grace@example.com"), s("TLSv1.3"))
        );
        assert_eq!(
            event.extra,
            vec![("pid".to_string(), Value::Str("5100".to_string()))]
        );
        let logout = "imap(grace@example.com)<5100><Ab12Cd34Ef56Gh78>: Disconnected: Logged out in=120 out=3400";
        let result = done(parser.parse(&mut state, &context("dovecot", logout, 1002.0)));
        let event = &result.events[0];
        assert_eq!(
            (event.kind.as_str(), event.protocol.clone()),
            ("logout", s("imap"))
        );
        assert_eq!(
            (event.client_ip.clone(), event.detail.clone()),
            (s("198.51.100.31"), s("Disconnected: Logged out"))
        );
        let result = done(parser.parse(&mut state, &context("dovecot", kick, 1003.0)));
        assert_eq!(
            (
                result.events[0].user.clone(),
                result.events[0].session.clone()
            ),
            (None, None)
        );
    }

    #[test]
    fn passdb_failure_then_summary() {
        let mut state = HostState::new();
        let mut parser = DovecotParser::new();
        let passdb = "auth: passwd-file(heidi@example.com,203.0.113.66,<Zx9Yw8Vu7Ts6Rq5P>): \
                      Password mismatch (given password: hunter2)";
        let result = done(parser.parse(&mut state, &context("dovecot", passdb, 1000.0)));
        let event = &result.events[0];
        assert_eq!(
            (event.kind.as_str(), event.reason.clone()),
            ("auth", s("Password mismatch"))
        );
        assert_eq!(
            (event.user.clone(), event.session.clone()),
            (s("heidi@example.com"), s("Zx9Yw8Vu7Ts6Rq5P"))
        );
        let summary =
            "pop3-login: Disconnected: Connection closed (auth failed, 2 attempts in 12 secs): \
                       user=<heidi@example.com>, method=PLAIN, rip=203.0.113.66, lip=192.0.2.10, \
                       session=<Zx9Yw8Vu7Ts6Rq5P>";
        let result = done(parser.parse(&mut state, &context("dovecot", summary, 1003.0)));
        let event = &result.events[0];
        assert_eq!(
            (event.kind.as_str(), event.attempts, event.tls.clone()),
            ("auth", Some(1), s("none"))
        );
        assert_eq!(
            event.detail,
            s("Disconnected: Connection closed (auth failed, 2 attempts in 12 secs)")
        );
    }

    #[test]
    fn auth_lines() {
        let mut state = HostState::new();
        let mut parser = DovecotParser::new();
        let prefixed = "auth(bob,192.0.2.9,sasl:plain)<S24>: sql: Password mismatch";
        let result = done(parser.parse(&mut state, &context("dovecot", prefixed, 1000.0)));
        let event = &result.events[0];
        assert_eq!(
            (
                event.user.clone(),
                event.mech.clone(),
                event.session.clone()
            ),
            (s("bob"), s("PLAIN"), s("S24"))
        );
        let pam = "pam_unix(dovecot:auth): authentication failure; logname= uid=0";
        match parser.parse(&mut state, &context("auth-worker(77)", pam, 1001.0)) {
            DovecotParse::Pam(text) => assert_eq!(text, pam),
            DovecotParse::Done(result) => panic!("{result:?}"),
        }
        let ambiguous = "auth: passwd-file(a,1.2.3.4): x,10.0.0.1): Password mismatch";
        let result = done(parser.parse(&mut state, &context("dovecot", ambiguous, 1002.0)));
        assert_eq!(result.error, s("ambiguous auth identifier"));
        let result = done(parser.parse(&mut state, &context("dovecot", "stats: Info: x", 1003.0)));
        assert_eq!(result.ignored, s("dovecot_service"));
    }
}
