//! mailwarden's parsers in Rust, exposed to Python as `mailwarden_parsers_rs`.
//!
//! `parsers/` (Python) is the reference: every module here mirrors the Python
//! module of the same name, and the two must give byte-identical JSON for every
//! line (tests/unit/test_rust_parsers.py).

pub mod api;
pub mod auth;
pub mod correlation;
pub mod dovecot;
pub mod envelope;
pub mod fields;
pub mod json;
pub mod postfix;
pub mod pytext;
pub mod result;

mod python;
