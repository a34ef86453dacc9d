//! The Python module `mailwarden_parsers_rs` (PyO3, abi3).
//!
//! One class, `LogParser`, shaped like `parsers.api.LogParser` but with plain
//! values at the boundary: an origin is given as its fields, events come back
//! as their JSON bytes (what orjson gives for the Python event; wrap them in
//! `orjson.Fragment` to embed them), statistics as the dict
//! `dataclasses.asdict(ParserStats)` gives, the correlation snapshot as JSON
//! bytes. The parser holds `Rc`s, so it stays on the thread that made it.

use std::rc::Rc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::api;
use crate::json::write_event;
use crate::result::{Event, Origin, ParseResult};

/// `LogParser(host=None, timezone="UTC", year=None, *, now=None)`: the lines of one mail host.
#[pyclass(name = "LogParser", module = "mailwarden_parsers_rs", unsendable)]
pub struct PyLogParser {
    parser: api::LogParser,
    /// the last origin path and host, shared by the origins of a stream's lines
    path: Option<Rc<str>>,
    host: Option<Rc<str>>,
    /// the JSON of one event, reused from line to line
    buffer: Vec<u8>,
}

/// `(events as JSON bytes, ignored category, error reason)` of one line.
type FeedResult<'py> = (Vec<Bound<'py, PyBytes>>, Option<String>, Option<String>);

/// Each event as `(JSON bytes, user, client_ip)`, then ignored category and error reason.
type KeyedResult<'py> = (
    Vec<(Bound<'py, PyBytes>, Option<String>, Option<String>)>,
    Option<String>,
    Option<String>,
);

/// `text` as an `Rc`, the one of the previous call when equal.
fn shared(last: &mut Option<Rc<str>>, text: &str) -> Rc<str> {
    match last {
        Some(rc) if **rc == *text => rc.clone(),
        _ => {
            let rc: Rc<str> = Rc::from(text);
            *last = Some(rc.clone());
            rc
        }
    }
}

#[pymethods]
impl PyLogParser {
    #[new]
    #[pyo3(signature = (host=None, timezone="UTC", year=None, *, now=None))]
    fn new(
        host: Option<&str>,
        timezone: &str,
        year: Option<i64>,
        now: Option<f64>,
    ) -> PyResult<Self> {
        let parser =
            api::LogParser::new(host, timezone, year, now).map_err(PyValueError::new_err)?;
        Ok(PyLogParser {
            parser,
            path: None,
            host: None,
            buffer: Vec::with_capacity(1024),
        })
    }

    /// Parse one raw line (with or without its line ending) read at `path`:`line`.
    #[pyo3(signature = (raw, path, line, host=None, offset=None))]
    fn feed<'py>(
        &mut self,
        py: Python<'py>,
        raw: &[u8],
        path: &str,
        line: i64,
        host: Option<&str>,
        offset: Option<i64>,
    ) -> FeedResult<'py> {
        let result = self.parse(raw, path, line, host, offset);
        let events = result
            .events
            .iter()
            .map(|event| self.json(py, event))
            .collect();
        (events, result.ignored, result.error)
    }

    /// `feed`, with each event's user and client address beside its JSON: what a
    /// publisher needs to key the record (`models.events.event_key`) without decoding it.
    #[pyo3(signature = (raw, path, line, host=None, offset=None))]
    fn feed_keyed<'py>(
        &mut self,
        py: Python<'py>,
        raw: &[u8],
        path: &str,
        line: i64,
        host: Option<&str>,
        offset: Option<i64>,
    ) -> KeyedResult<'py> {
        let result = self.parse(raw, path, line, host, offset);
        let events = result
            .events
            .into_iter()
            .map(|event| (self.json(py, &event), event.user, event.client_ip))
            .collect();
        (events, result.ignored, result.error)
    }

    /// Counters since the parser was made, as `dataclasses.asdict(ParserStats)`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = &self.parser.stats;
        let ignored = PyDict::new(py);
        for (category, n) in stats.ignored.iter() {
            ignored.set_item(category, n)?;
        }
        let errors = PyDict::new(py);
        for (reason, n) in stats.errors.iter() {
            errors.set_item(reason, n)?;
        }
        let dict = PyDict::new(py);
        dict.set_item("lines", stats.lines)?;
        dict.set_item("events", stats.events)?;
        dict.set_item("ignored", ignored)?;
        dict.set_item("errors", errors)?;
        dict.set_item("invalid_utf8", stats.invalid_utf8)?;
        Ok(dict)
    }

    /// The Postfix queue id -> account map as JSON bytes (`export_correlation`, dumped).
    fn export_correlation<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.parser.export_correlation())
    }

    /// Restore an export before the first line; never raises. Gives the
    /// `QueueImport` fields as a dict: restored, dropped, skipped, unusable.
    fn import_correlation<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
    ) -> PyResult<Bound<'py, PyDict>> {
        let report = self.parser.import_correlation(data);
        let dict = PyDict::new(py);
        dict.set_item("restored", report.restored)?;
        dict.set_item("dropped", report.dropped)?;
        dict.set_item("skipped", report.skipped)?;
        dict.set_item("unusable", report.unusable)?;
        Ok(dict)
    }
}

impl PyLogParser {
    /// The line parsed, its origin built from the given fields.
    fn parse(
        &mut self,
        raw: &[u8],
        path: &str,
        line: i64,
        host: Option<&str>,
        offset: Option<i64>,
    ) -> ParseResult {
        let origin = Rc::new(Origin {
            path: shared(&mut self.path, path),
            line,
            host: host.map(|host| shared(&mut self.host, host)),
            offset,
        });
        self.parser.feed(raw, origin)
    }

    /// One event's JSON, written through the reused buffer.
    fn json<'py>(&mut self, py: Python<'py>, event: &Event) -> Bound<'py, PyBytes> {
        self.buffer.clear();
        write_event(event, &mut self.buffer);
        PyBytes::new(py, &self.buffer)
    }
}

#[pymodule]
fn mailwarden_parsers_rs(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<PyLogParser>()?;
    module.add("MAX_LINE_BYTES", api::MAX_LINE_BYTES)?;
    Ok(())
}
