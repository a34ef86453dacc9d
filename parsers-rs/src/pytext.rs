//! Python `str` behaviour the parsers rely on, for byte-identical results.
//!
//! Rust indexes strings by byte, Python by code point. The parsers search for
//! ASCII delimiters, so byte offsets give the same substrings; but `len(text)`
//! and `text[:n]` count code points, and Python's notion of whitespace, digits
//! and letters is Unicode's. Use these helpers wherever the Python code does.
//!
//! Non-ASCII digits and letters follow Rust's Unicode tables (`char::is_numeric`,
//! `char::is_alphanumeric`), which are close to, not the same as, Python's: the
//! differential tests decide whether a difference is reachable.

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

fn is_digit_char(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

/// `text.isdigit()`: non-empty and every code point a digit.
pub fn is_digit(text: &str) -> bool {
    if text.is_empty() {
        return false;
    }
    if text.is_ascii() {
        return text.bytes().all(|b| b.is_ascii_digit());
    }
    text.chars().all(is_digit_char)
}

/// `char.isalnum()`.
pub fn is_alnum_char(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric()
    } else {
        c.is_alphanumeric()
    }
}

/// `text.isalnum()`: non-empty and every code point a letter or digit.
pub fn is_alnum(text: &str) -> bool {
    if text.is_empty() {
        return false;
    }
    if text.is_ascii() {
        return text.bytes().all(|b| b.is_ascii_alphanumeric());
    }
    text.chars().all(is_alnum_char)
}

/// The titlecase letters (category Lt), which `str.isupper()` refuses like lowercase ones.
fn is_titlecase(c: char) -> bool {
    matches!(
        c,
        '\u{1c5}' | '\u{1c8}' | '\u{1cb}' | '\u{1f2}' | '\u{1f88}'..='\u{1f8f}'
            | '\u{1f98}'..='\u{1f9f}' | '\u{1fa8}'..='\u{1faf}' | '\u{1fbc}' | '\u{1fcc}'
            | '\u{1ffc}'
    )
}

/// `text.isupper()`: some cased code point, and no lowercase or titlecase one.
pub fn is_upper(text: &str) -> bool {
    let mut cased = false;
    for c in text.chars() {
        if c.is_lowercase() || is_titlecase(c) {
            return false;
        }
        if c.is_uppercase() {
            cased = true;
        }
    }
    cased
}

/// `text.lower()`.
pub fn lower(text: &str) -> String {
    if text.is_ascii() {
        text.to_ascii_lowercase()
    } else {
        text.to_lowercase()
    }
}

/// `text.upper()`.
pub fn upper(text: &str) -> String {
    if text.is_ascii() {
        text.to_ascii_uppercase()
    } else {
        text.to_uppercase()
    }
}

/// `text.casefold()` (lowercase, and the few folds `lower()` does not make).
pub fn casefold(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            'ß' | 'ẞ' => out.push_str("ss"),
            'ς' => out.push('σ'),
            _ => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// `int(text)` for text that passed `isdigit()`; None where Python's `int()`
/// would raise, or where the value does not fit in 64 bits (orjson refuses
/// those too).
pub fn int_of_digits(text: &str) -> Option<i64> {
    if text.is_empty() || !text.is_ascii() {
        return None;
    }
    text.parse::<i64>().ok()
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
        assert!(!is_digit(""));
        assert!(!is_digit("12a"));
        assert!(is_alnum("A1b"));
        assert!(!is_alnum("a-b"));
        assert!(is_upper("AB-1"));
        assert!(!is_upper("1-2"));
        assert!(!is_upper("R\u{1c5}CPT"));
        assert_eq!(casefold("Straße"), "strasse");
        assert_eq!(int_of_digits("0042"), Some(42));
    }
}
