//! Python `str` behaviour the parsers rely on, for byte-identical results.
//!
//! Rust indexes strings by byte, Python by code point. The parsers search for
//! ASCII delimiters, so byte offsets give the same substrings; but `len(text)`
//! and `text[:n]` count code points, and Python's notion of whitespace, digits,
//! letters and case is Unicode's. Use these helpers wherever the Python code does.
//!
//! Rust's Unicode data is newer than Python 3.11's (Unicode 14.0): what depends on
//! a character's class reads the tables of `tables.rs`, written from Python's own
//! `unicodedata` by `tables.py`, and the tests compare every code point with the
//! Python they link to. Case mappings are Rust's, for the code points Python gives
//! a case.

use std::fmt;
use std::fmt::Write;

mod tables;

/// `len(text)`: the number of code points.
pub fn char_len(text: &str) -> usize {
    if text.is_ascii() {
        text.len()
    } else {
        text.chars().count()
    }
}

/// Byte offset of the code point `n` (or the end): `text[:n]` is `&text[..char_offset(text, n)]`.
pub fn char_offset(text: &str, n: usize) -> usize {
    if text.is_ascii() {
        return n.min(text.len());
    }
    text.char_indices().nth(n).map_or(text.len(), |(at, _)| at)
}

/// `text[:n]`.
pub fn first_chars(text: &str, n: usize) -> &str {
    &text[..char_offset(text, n)]
}

/// `text[n:]`.
pub fn from_char(text: &str, n: usize) -> &str {
    &text[char_offset(text, n)..]
}

/// `char.isspace()` (what `str.split()` and `str.strip()` remove).
pub fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n'
            | '\x0b'
            | '\x0c'
            | '\r'
            | '\x1c'
            | '\x1d'
            | '\x1e'
            | '\x1f'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'
            ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
    )
}

/// `text.strip()`.
pub fn strip(text: &str) -> &str {
    text.trim_matches(is_space)
}

/// `text.lstrip()`.
pub fn lstrip(text: &str) -> &str {
    text.trim_start_matches(is_space)
}

/// `text.rstrip()`.
pub fn rstrip(text: &str) -> &str {
    text.trim_end_matches(is_space)
}

/// `text.split()` (no argument: runs of whitespace, no empty parts).
pub fn split_whitespace(text: &str) -> impl Iterator<Item = &str> {
    text.split(is_space).filter(|part| !part.is_empty())
}

/// `text.partition(sep)`: (head, whether `sep` was found, tail).
pub fn partition<'a>(text: &'a str, sep: &str) -> (&'a str, bool, &'a str) {
    match text.find(sep) {
        Some(at) => (&text[..at], true, &text[at + sep.len()..]),
        None => (text, false, ""),
    }
}

/// `text.rpartition(sep)`: not found gives `("", false, text)`.
pub fn rpartition<'a>(text: &'a str, sep: &str) -> (&'a str, bool, &'a str) {
    match text.rfind(sep) {
        Some(at) => (&text[..at], true, &text[at + sep.len()..]),
        None => ("", false, text),
    }
}

/// `text or None`.
pub fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

fn in_ranges(ranges: &[(u32, u32)], c: char) -> bool {
    let code = c as u32;
    let at = ranges.partition_point(|&(_, last)| last < code);
    ranges.get(at).is_some_and(|&(first, _)| first <= code)
}

// -- digits and letters ------------------------------------------------------

/// The value of a decimal digit (`unicodedata.decimal(c)`): what `int()` and a
/// `str` pattern's `\d` take for a digit.
pub fn decimal_value(c: char) -> Option<u32> {
    if c.is_ascii() {
        return c.to_digit(10);
    }
    let code = c as u32;
    let at = tables::DECIMAL_ZEROS.partition_point(|&zero| zero <= code);
    let zero = tables::DECIMAL_ZEROS[..at].last()?;
    (code - zero < 10).then_some(code - zero)
}

/// `char.isdecimal()`.
pub fn is_decimal_char(c: char) -> bool {
    decimal_value(c).is_some()
}

/// `text.isdecimal()`: non-empty and every code point a decimal digit (what `int()` reads).
pub fn is_decimal(text: &str) -> bool {
    !text.is_empty() && text.chars().all(is_decimal_char)
}

/// `char.isdigit()`: the decimal digits, and superscripts, circled digits and the like.
pub fn is_digit_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    is_decimal_char(c) || in_ranges(tables::DIGIT_ONLY, c)
}

/// `text.isdigit()`: non-empty and every code point a digit.
pub fn is_digit(text: &str) -> bool {
    if text.is_ascii() {
        return !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    }
    text.chars().all(is_digit_char)
}

/// `char.isalnum()`.
pub fn is_alnum_char(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric()
    } else {
        in_ranges(tables::ALNUM, c)
    }
}

/// `text.isalnum()`: non-empty and every code point a letter or digit.
pub fn is_alnum(text: &str) -> bool {
    if text.is_ascii() {
        return !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric());
    }
    text.chars().all(is_alnum_char)
}

// -- case ----------------------------------------------------------------------

/// Whether Python gives `c` a case at all: a case property or a mapping (which,
/// for these, is Rust's).
fn has_case(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphabetic()
    } else {
        in_ranges(tables::HAS_CASE, c)
    }
}

fn is_lowercase(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_lowercase()
    } else {
        in_ranges(tables::LOWERCASE, c)
    }
}

fn is_uppercase(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_uppercase()
    } else {
        in_ranges(tables::UPPERCASE, c)
    }
}

fn is_titlecase(c: char) -> bool {
    !c.is_ascii() && in_ranges(tables::TITLECASE, c)
}

/// Unicode's Cased (what lower()'s final sigma looks for).
fn is_cased(c: char) -> bool {
    is_lowercase(c) || is_uppercase(c) || is_titlecase(c)
}

/// `text.isupper()`: some cased code point, and no lowercase or titlecase one.
pub fn is_upper(text: &str) -> bool {
    let mut cased = false;
    for c in text.chars() {
        if is_lowercase(c) || is_titlecase(c) {
            return false;
        }
        cased |= is_uppercase(c);
    }
    cased
}

/// Push Rust's `mapping` of `c`, or `c` where Python has no mapping for it: `c`
/// has no case there, or is mapped to a code point Unicode 14 did not have.
fn push_mapped(out: &mut String, c: char, mapping: impl Iterator<Item = char> + Clone) {
    let mut single = mapping.clone();
    let unknown_target = match (single.next(), single.next()) {
        (Some(target), None) => !has_case(target),
        _ => false,
    };
    if has_case(c) && !unknown_target {
        out.extend(mapping);
    } else {
        out.push(c);
    }
}

/// Whether the capital sigma at byte `at` of `text` lowers to the final `ς`: a
/// cased letter before it, and none after it (case-ignorable code points skipped).
fn is_final_sigma(text: &str, at: usize) -> bool {
    let not_ignorable = |c: &char| !in_ranges(tables::CASE_IGNORABLE, *c);
    let before = text[..at].chars().rev().find(not_ignorable);
    let after = text[at + 'Σ'.len_utf8()..].chars().find(not_ignorable);
    before.is_some_and(is_cased) && !after.is_some_and(is_cased)
}

/// `text.lower()`.
pub fn lower(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(text.len());
    for (at, c) in text.char_indices() {
        if c == 'Σ' {
            out.push(if is_final_sigma(text, at) { 'ς' } else { 'σ' });
        } else {
            push_mapped(&mut out, c, c.to_lowercase());
        }
    }
    out
}

/// `text.upper()`.
pub fn upper(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_uppercase();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_mapped(&mut out, c, c.to_uppercase());
    }
    out
}

/// `text.casefold()`: `lower()` of each code point, but for the full case folds.
pub fn casefold(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match tables::CASEFOLD.binary_search_by_key(&c, |&(from, _)| from) {
            Ok(at) => out.push_str(tables::CASEFOLD[at].1),
            Err(_) => push_mapped(&mut out, c, c.to_lowercase()),
        }
    }
    out
}

// -- repr() ------------------------------------------------------------------

/// `repr(text)`.
pub fn repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        let code = c as u32;
        match c {
            _ if c == quote || c == '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            ' '..='~' => out.push(c),
            _ if !c.is_ascii() && !in_ranges(tables::UNPRINTABLE, c) => out.push(c),
            _ if code <= 0xff => {
                let _ = write!(out, "\\x{code:02x}");
            }
            _ if code <= 0xffff => {
                let _ = write!(out, "\\u{code:04x}");
            }
            _ => {
                let _ = write!(out, "\\U{code:08x}");
            }
        }
    }
    out.push(quote);
    out
}

// -- int() -------------------------------------------------------------------

/// An exception Python raises: its class name and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyError {
    pub kind: &'static str,
    pub message: String,
}

impl fmt::Display for PyError {
    /// As the parsers' API names an exception: `ValueError: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

fn value_error(message: String) -> PyError {
    PyError {
        kind: "ValueError",
        message,
    }
}

/// Python's `int()` refuses more digits than this (`sys.get_int_max_str_digits()`)
/// in a base that is not a power of two.
const INT_MAX_STR_DIGITS: usize = 4300;

/// An integer as `int(text, base)` reads it: its sign and its ASCII digits (no
/// prefix, no underscores, leading zeros kept). Python's int has no bound; where
/// a value does not fit an `i64`, orjson could not write it either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyInt {
    negative: bool,
    digits: String,
    base: u32,
}

impl PyInt {
    pub fn is_zero(&self) -> bool {
        self.digits.bytes().all(|digit| digit == b'0')
    }

    /// The value, when an `i128` holds it.
    pub fn to_i128(&self) -> Option<i128> {
        let magnitude = u128::from_str_radix(&self.digits, self.base).ok()?;
        if self.negative {
            0i128.checked_sub_unsigned(magnitude)
        } else {
            i128::try_from(magnitude).ok()
        }
    }

    /// The value, when an `i64` holds it.
    pub fn to_i64(&self) -> Option<i64> {
        self.to_i128().and_then(|value| i64::try_from(value).ok())
    }

    /// `float(value)` of a decimal int: the nearest float (ties to even), as Rust
    /// reads the digits.
    pub fn to_f64(&self) -> Result<f64, PyError> {
        debug_assert_eq!(self.base, 10, "only decimal digits read as a float");
        let magnitude: f64 = self.digits.parse().unwrap_or(f64::INFINITY);
        if magnitude.is_infinite() {
            return Err(PyError {
                kind: "OverflowError",
                message: "int too large to convert to float".to_string(),
            });
        }
        // an int has no -0
        Ok(if self.negative && magnitude != 0.0 {
            -magnitude
        } else {
            magnitude
        })
    }
}

/// `int(text, base)` (base 2 to 36), or the ValueError it raises.
///
/// As CPython (`PyLong_FromUnicodeObject`): non-ASCII whitespace and decimal digits
/// first become ASCII, the text ending at the first other non-ASCII code point;
/// then whitespace around, a sign, a `0x`/`0o`/`0b` prefix in base 16/8/2 and
/// single underscores between digits are allowed. Too many digits for the limit
/// is refused before whatever follows them is looked at.
pub fn int(text: &str, base: u32) -> Result<PyInt, PyError> {
    debug_assert!((2..=36).contains(&base));
    let ascii: std::borrow::Cow<'_, [u8]> = if text.is_ascii() {
        text.as_bytes().into()
    } else {
        ascii_digits_and_spaces(text).into()
    };
    let invalid = || {
        value_error(format!(
            "invalid literal for int() with base {base}: {}",
            first_chars(&repr(text), 200)
        ))
    };
    let is_space = |byte: &u8| matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let mut i = ascii.iter().take_while(|byte| is_space(byte)).count();
    let mut negative = false;
    if let Some(&sign @ (b'+' | b'-')) = ascii.get(i) {
        negative = sign == b'-';
        i += 1;
    }
    let prefix = match base {
        16 => b'x',
        8 => b'o',
        2 => b'b',
        _ => 0,
    };
    if ascii.get(i) == Some(&b'0')
        && prefix != 0
        && ascii.get(i + 1).map(u8::to_ascii_lowercase) == Some(prefix)
    {
        i += 2;
        if ascii.get(i) == Some(&b'_') {
            i += 1; // one underscore allowed after the prefix
        }
    }
    if ascii.get(i) == Some(&b'_') {
        return Err(invalid());
    }
    let mut digits = String::new();
    let mut after_underscore = false;
    while let Some(&byte) = ascii.get(i) {
        if byte == b'_' {
            if after_underscore {
                return Err(invalid());
            }
            after_underscore = true;
        } else if (byte as char).is_digit(base) {
            digits.push(byte as char);
            after_underscore = false;
        } else {
            break;
        }
        i += 1;
    }
    if after_underscore {
        return Err(invalid());
    }
    if !base.is_power_of_two() && digits.len() > INT_MAX_STR_DIGITS {
        return Err(value_error(format!(
            "Exceeds the limit ({INT_MAX_STR_DIGITS} digits) for integer string conversion: \
             value has {} digits; use sys.set_int_max_str_digits() to increase the limit",
            digits.len()
        )));
    }
    i += ascii[i..].iter().take_while(|byte| is_space(byte)).count();
    if digits.is_empty() || i != ascii.len() {
        return Err(invalid());
    }
    Ok(PyInt {
        negative,
        digits,
        base,
    })
}

/// `text` with non-ASCII whitespace as `' '` and decimal digits as ASCII ones, cut
/// after the first other non-ASCII code point, which becomes `'?'`.
fn ascii_digits_and_spaces(text: &str) -> Vec<u8> {
    let mut ascii = Vec::with_capacity(text.len());
    for c in text.chars() {
        // CPython's test is `< 127`: DEL counts as non-ASCII here, to the same end
        if (c as u32) < 127 {
            ascii.push(c as u8);
        } else if is_space(c) {
            ascii.push(b' ');
        } else if let Some(value) = decimal_value(c) {
            ascii.push(b'0' + value as u8);
        } else {
            ascii.push(b'?');
            break;
        }
    }
    ascii
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_slices_by_code_point() {
        assert_eq!(char_len("aé€"), 3);
        assert_eq!(first_chars("aé€b", 2), "aé");
        assert_eq!(from_char("aé€b", 2), "€b");
        assert_eq!(first_chars("ab", 5), "ab");
    }

    #[test]
    fn partitions() {
        assert_eq!(partition("a: b: c", ": "), ("a", true, "b: c"));
        assert_eq!(partition("abc", ": "), ("abc", false, ""));
        assert_eq!(rpartition("a: b: c", ": "), ("a: b", true, "c"));
        assert_eq!(rpartition("abc", ": "), ("", false, "abc"));
        assert_eq!(non_empty(""), None);
    }

    #[test]
    fn whitespace_is_pythons() {
        assert_eq!(strip("\x1c a \u{a0}"), "a");
        assert_eq!(
            split_whitespace(" a\x1fb  c ").collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn digits_and_letters() {
        assert!(is_digit("0123"));
        assert!(is_digit("1²٣"));
        assert!(!is_digit(""));
        assert!(!is_digit("12a"));
        assert!(!is_digit("½"));
        assert_eq!(decimal_value('٣'), Some(3));
        assert_eq!(decimal_value('²'), None);
        assert!(is_alnum("A1b½"));
        assert!(!is_alnum("a-b"));
        assert!(!is_alnum("\u{93e}")); // a vowel sign: Alphabetic, not a letter
    }

    #[test]
    fn case() {
        assert!(is_upper("AB-1"));
        assert!(!is_upper("1-2"));
        assert!(!is_upper("R\u{1c5}CPT"));
        assert_eq!(casefold("Straße"), "strasse");
        assert_eq!(casefold("ᏸ"), "Ᏸ");
        assert_eq!(lower("ΟΔΟΣ ΣΑ"), "οδος σα");
        assert_eq!(upper("ɤ"), "ɤ"); // its capital is newer than Python 3.11
    }

    #[test]
    fn repr_is_pythons() {
        assert_eq!(repr("it's"), "\"it's\"");
        assert_eq!(
            repr("a\tb\x00\u{85}é\u{10ffff}"),
            "'a\\tb\\x00\\x85é\\U0010ffff'"
        );
    }

    #[test]
    fn python_ints() {
        let value = |text: &str, base: u32| int(text, base).map(|value| value.to_i64());
        assert_eq!(value("0042", 10), Ok(Some(42)));
        assert_eq!(value(" -1_0\u{a0}", 10), Ok(Some(-10)));
        assert_eq!(value("٠١٢", 10), Ok(Some(12)));
        assert_eq!(value("0x_fF", 16), Ok(Some(255)));
        assert_eq!(value("99999999999999999999", 10), Ok(None));
        assert!(int("-0", 10).unwrap().is_zero());
        assert_eq!(
            int("1²", 10).unwrap_err().to_string(),
            "ValueError: invalid literal for int() with base 10: '1²'"
        );
        let too_long = int(&format!("{}²", "1".repeat(4301)), 10).unwrap_err();
        assert!(too_long.message.contains("value has 4301 digits"));
    }
}

/// Every code point, and `int()` of many texts, as the Python this crate links to
/// gives them (Python 3.11: see tables.py).
#[cfg(test)]
mod against_python {
    use super::*;
    use pyo3::ffi::c_str;
    use pyo3::prelude::*;
    use pyo3::types::PyDict;

    const PYTHON: &std::ffi::CStr = c_str!(
        r#"
import unicodedata

def classes(chars):
    return [
        (
            (c.isspace(), c.isdigit(), unicodedata.decimal(c, None), c.isalnum(),
             c.isupper(), ("A" + c).isupper()),
            (c.lower(), c.upper(), c.casefold(), repr(c)),
            (("A" + c + "Σ").lower(), ("1" + c + "Σ").lower(), ("AΣ" + c).lower(),
             ("AΣ" + c + "B").lower()),
        )
        for c in chars
    ]

def ints(cases):
    out = []
    for text, base in cases:
        try:
            out.append(format(int(text, base), "x" if base == 16 else "d"))
        except ValueError as exc:
            out.append(f"ValueError: {exc}")
    return out
"#
    );

    type Flags = (bool, bool, Option<u32>, bool, bool, bool);
    type Maps = (String, String, String, String);
    type Sigmas = (String, String, String, String);

    fn ours(c: char) -> (Flags, Maps, Sigmas) {
        let text = c.to_string();
        let flags = (
            is_space(c),
            is_digit_char(c),
            decimal_value(c),
            is_alnum_char(c),
            is_upper(&text),
            is_upper(&format!("A{c}")),
        );
        let maps = (lower(&text), upper(&text), casefold(&text), repr(&text));
        let sigmas = (
            lower(&format!("A{c}Σ")),
            lower(&format!("1{c}Σ")),
            lower(&format!("AΣ{c}")),
            lower(&format!("AΣ{c}B")),
        );
        (flags, maps, sigmas)
    }

    fn with_python<T>(run: impl FnOnce(&Bound<'_, PyDict>) -> T) -> T {
        pyo3::prepare_freethreaded_python();
        Python::with_gil(|py| {
            let names = PyDict::new(py);
            py.run(PYTHON, Some(&names), None).unwrap();
            run(&names)
        })
    }

    #[test]
    fn every_code_point_has_pythons_class_case_and_repr() {
        let chars: Vec<char> = (0..=0x10_ffff).filter_map(char::from_u32).collect();
        let mut differences = Vec::new();
        with_python(|names| {
            let classes = names.get_item("classes").unwrap().unwrap();
            for batch in chars.chunks(8192) {
                let theirs: Vec<(Flags, Maps, Sigmas)> =
                    classes.call1((batch.to_vec(),)).unwrap().extract().unwrap();
                for (&c, theirs) in batch.iter().zip(theirs) {
                    let ours = ours(c);
                    if ours != theirs {
                        differences.push(format!(
                            "U+{:04X}: ours {ours:?}, Python {theirs:?}",
                            c as u32
                        ));
                    }
                }
            }
        });
        assert!(
            differences.is_empty(),
            "{} code points differ (tables.rs out of date?), first: {:#?}",
            differences.len(),
            &differences[..differences.len().min(10)]
        );
    }

    /// Texts of digits, signs, underscores, spaces, prefixes and other code points.
    fn int_texts() -> Vec<(String, u32)> {
        let alphabet: Vec<char> = "0159_ +-xXaFg٣\u{a0}\u{3000}²é\0\x7f'".chars().collect();
        let mut texts: Vec<(String, u32)> = vec![
            (String::new(), 10),
            ("1".repeat(4300), 10),
            ("1".repeat(4301), 10),
            (format!(" {}²", "1".repeat(4301)), 10),
            (format!("{}__1", "1".repeat(4301)), 10),
            (format!("{}_", "1".repeat(4301)), 10),
            ("f".repeat(5000), 16),
            ("x".repeat(300), 10),
        ];
        // a fixed linear congruential sequence: the same texts on every run
        let mut state: u64 = 7;
        let mut next = |bound: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize % bound
        };
        for _ in 0..20_000 {
            let length = next(7);
            let text: String = (0..length)
                .map(|_| alphabet[next(alphabet.len())])
                .collect();
            texts.push((text, [10, 16][next(2)]));
        }
        texts
    }

    /// What Python prints for `int(text, base)`: the value in that base, or the error.
    fn our_int(text: &str, base: u32) -> String {
        match int(text, base) {
            Ok(value) if value.is_zero() => "0".to_string(),
            Ok(value) => format!(
                "{}{}",
                if value.negative { "-" } else { "" },
                value.digits.trim_start_matches('0').to_ascii_lowercase()
            ),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn int_is_pythons() {
        let texts = int_texts();
        let theirs: Vec<String> = with_python(|names| {
            let ints = names.get_item("ints").unwrap().unwrap();
            ints.call1((texts.clone(),)).unwrap().extract().unwrap()
        });
        for ((text, base), theirs) in texts.iter().zip(theirs) {
            assert_eq!(our_int(text, *base), theirs, "int({text:?}, {base})");
        }
    }
}
