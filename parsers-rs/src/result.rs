//! What one parsed line gives back, the per-line context the families share, and events.
//! Mirrors `parsers/result.py` and `models/events.py` (field order = JSON order).

use std::rc::Rc;

/// Where an event came from (`models.events.Origin`).
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    pub path: Rc<str>,
    pub line: i64,
    pub host: Option<Rc<str>>,
    pub offset: Option<i64>,
}

/// A value in `Event.extra`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
}

/// `Event.extra`: keys in insertion order, which is the JSON order.
pub type Extra = Vec<(String, Value)>;

/// The normalized event (`models.events.Event`); see that module for the meaning of fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub ts: Rc<str>,
    pub epoch: f64,
    pub host: Option<Rc<str>>,
    pub source: String,
    pub kind: String,
    pub outcome: Option<String>,
    pub protocol: Option<String>,
    pub user: Option<String>,
    pub client_ip: Option<String>,
    pub tls: Option<String>,
    pub queue_id: Option<String>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub nrcpt: Option<i64>,
    pub size: Option<i64>,
    pub status: Option<String>,
    pub service: Option<String>,
    pub session: Option<String>,
    pub detail: Option<String>,
    pub reason: Option<String>,
    pub mech: Option<String>,
    pub attempts: Option<i64>,
    pub origin: Rc<Origin>,
    pub extra: Extra,
}

/// One line split into its envelope: what every event of the line carries.
#[derive(Debug, Clone)]
pub struct LineContext {
    pub ts: Rc<str>,
    pub epoch: f64,
    pub host: Option<Rc<str>>,
    pub origin: Rc<Origin>,
    pub program: Rc<str>,
    pub pid: Option<Rc<str>>,
    pub message: String,
}

/// What one line produced: events, or an ignored category, or an error reason.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParseResult {
    pub events: Vec<Event>,
    pub ignored: Option<String>,
    pub error: Option<String>,
}

impl ParseResult {
    pub fn of(events: Vec<Event>) -> Self {
        ParseResult {
            events,
            ignored: None,
            error: None,
        }
    }
    pub fn one(event: Event) -> Self {
        ParseResult::of(vec![event])
    }
}

pub fn ignored(category: &str) -> ParseResult {
    ParseResult {
        events: Vec::new(),
        ignored: Some(category.to_string()),
        error: None,
    }
}

pub fn failed(reason: &str) -> ParseResult {
    ParseResult {
        events: Vec::new(),
        ignored: None,
        error: Some(reason.to_string()),
    }
}

/// An event of the line `ctx` with every optional field unset; callers set the
/// fields they know (`new_event` in Python takes them as keyword arguments).
pub fn new_event(ctx: &LineContext, source: &str, kind: &str) -> Event {
    Event {
        ts: ctx.ts.clone(),
        epoch: ctx.epoch,
        host: ctx.host.clone(),
        source: source.to_string(),
        kind: kind.to_string(),
        outcome: None,
        protocol: None,
        user: None,
        client_ip: None,
        tls: None,
        queue_id: None,
        sender: None,
        recipient: None,
        nrcpt: None,
        size: None,
        status: None,
        service: None,
        session: None,
        detail: None,
        reason: None,
        mech: None,
        attempts: None,
        origin: ctx.origin.clone(),
        extra: Vec::new(),
    }
}
