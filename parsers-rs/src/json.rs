//! Events as JSON, byte for byte what orjson writes for `models.events.Event`.
//!
//! orjson writes dataclass fields in declaration order, without spaces; strings
//! escape only `"`, `\` and control characters (the short forms `\b \t \n \f \r`,
//! else `\u00xx` in lowercase hex), everything else (`/`, DEL, non-ASCII) is
//! written as UTF-8; floats are the shortest round-trip digits (ryu) with a `+`
//! in positive exponents (`1e+16`), and NaN and infinities become `null`.

use crate::result::{Event, Origin, Value};

/// Append the JSON object of `event` to `out`.
pub fn write_event(event: &Event, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"ts\":");
    write_str(&event.ts, out);
    out.extend_from_slice(b",\"epoch\":");
    write_f64(event.epoch, out);
    out.extend_from_slice(b",\"host\":");
    write_opt_str(event.host.as_deref(), out);
    out.extend_from_slice(b",\"source\":");
    write_str(&event.source, out);
    out.extend_from_slice(b",\"kind\":");
    write_str(&event.kind, out);
    field_str(b"outcome", event.outcome.as_deref(), out);
    field_str(b"protocol", event.protocol.as_deref(), out);
    field_str(b"user", event.user.as_deref(), out);
    field_str(b"client_ip", event.client_ip.as_deref(), out);
    field_str(b"tls", event.tls.as_deref(), out);
    field_str(b"queue_id", event.queue_id.as_deref(), out);
    field_str(b"sender", event.sender.as_deref(), out);
    field_str(b"recipient", event.recipient.as_deref(), out);
    field_int(b"nrcpt", event.nrcpt, out);
    field_int(b"size", event.size, out);
    field_str(b"status", event.status.as_deref(), out);
    field_str(b"service", event.service.as_deref(), out);
    field_str(b"session", event.session.as_deref(), out);
    field_str(b"detail", event.detail.as_deref(), out);
    field_str(b"reason", event.reason.as_deref(), out);
    field_str(b"mech", event.mech.as_deref(), out);
    field_int(b"attempts", event.attempts, out);
    out.extend_from_slice(b",\"origin\":");
    write_origin(&event.origin, out);
    out.extend_from_slice(b",\"extra\":{");
    for (n, (key, value)) in event.extra.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        write_str(key, out);
        out.push(b':');
        write_value(value, out);
    }
    out.extend_from_slice(b"}}");
}

/// `models.events.Origin` as an object.
pub fn write_origin(origin: &Origin, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"path\":");
    write_str(&origin.path, out);
    out.extend_from_slice(b",\"line\":");
    write_i64(origin.line, out);
    out.extend_from_slice(b",\"host\":");
    write_opt_str(origin.host.as_deref(), out);
    out.extend_from_slice(b",\"offset\":");
    match origin.offset {
        Some(offset) => write_i64(offset, out),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

fn field_str(name: &[u8], value: Option<&str>, out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name);
    out.extend_from_slice(b"\":");
    write_opt_str(value, out);
}

fn field_int(name: &[u8], value: Option<i64>, out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name);
    out.extend_from_slice(b"\":");
    match value {
        Some(value) => write_i64(value, out),
        None => out.extend_from_slice(b"null"),
    }
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Str(text) => write_str(text, out),
        Value::Int(number) => write_i64(*number, out),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
    }
}

/// A string or `null`.
pub fn write_opt_str(value: Option<&str>, out: &mut Vec<u8>) {
    match value {
        Some(text) => write_str(text, out),
        None => out.extend_from_slice(b"null"),
    }
}

/// An integer in decimal.
pub fn write_i64(value: i64, out: &mut Vec<u8>) {
    let mut buffer = itoa_buffer();
    out.extend_from_slice(format_i64(value, &mut buffer));
}

fn itoa_buffer() -> [u8; 20] {
    [0; 20]
}

/// Decimal digits of `value` at the end of `buffer` (20 bytes hold any i64).
fn format_i64(value: i64, buffer: &mut [u8; 20]) -> &[u8] {
    let mut rest = value.unsigned_abs();
    let mut at = buffer.len();
    loop {
        at -= 1;
        buffer[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        at -= 1;
        buffer[at] = b'-';
    }
    &buffer[at..]
}

/// A float as orjson writes it: ryu's shortest digits, `e+` for positive exponents.
pub fn write_f64(value: f64, out: &mut Vec<u8>) {
    if !value.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(value).as_bytes();
    match text.iter().position(|&b| b == b'e') {
        Some(at) if text.get(at + 1) != Some(&b'-') => {
            out.extend_from_slice(&text[..=at]);
            out.push(b'+');
            out.extend_from_slice(&text[at + 1..]);
        }
        _ => out.extend_from_slice(text),
    }
}

/// What a byte becomes inside a JSON string: 0 = itself, else the short escape
/// letter, or `u` for `\u00xx`.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut n = 0;
    while n < 0x20 {
        table[n] = b'u';
        n += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A JSON string, escaped as orjson does.
pub fn write_str(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        let escape = ESCAPE[byte as usize];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..at]);
        start = at + 1;
        if escape == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(byte >> 4) as usize]);
            out.push(HEX[(byte & 0xf) as usize]);
        } else {
            out.push(b'\\');
            out.push(escape);
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{new_event, LineContext};
    use std::rc::Rc;

    fn f64_text(value: f64) -> String {
        let mut out = Vec::new();
        write_f64(value, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn str_text(value: &str) -> String {
        let mut out = Vec::new();
        write_str(value, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn floats_as_orjson() {
        // orjson 3.13 outputs
        let cases: &[(f64, &str)] = &[
            (1700000000.0, "1700000000.0"),
            (1700000000.123456, "1700000000.123456"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (1.5e-7, "1.5e-7"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (1e-5, "0.00001"),
            (1e-6, "1e-6"),
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e21, "1e+21"),
            (9999999999999998.0, "9999999999999998.0"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (1.2345678901234568e16, "1.2345678901234568e+16"),
            (1234567890123456.8, "1234567890123456.8"),
            (f64::NAN, "null"),
            (f64::INFINITY, "null"),
        ];
        for (value, expected) in cases {
            assert_eq!(f64_text(*value), *expected, "{value:?}");
        }
    }

    #[test]
    fn strings_as_orjson() {
        let controls: String = (0u8..0x20).map(char::from).collect();
        assert_eq!(
            str_text(&controls),
            "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\
             \\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\
             \\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\""
        );
        assert_eq!(
            str_text("a\x7f/\\\"é\u{2028}\u{d7ff}\u{fffd}"),
            "\"a\x7f/\\\\\\\"é\u{2028}\u{d7ff}\u{fffd}\""
        );
        assert_eq!(str_text(""), "\"\"");
    }

    #[test]
    fn ints() {
        for value in [0i64, 7, -7, 42, i64::MAX, i64::MIN, 1_000_000] {
            let mut out = Vec::new();
            write_i64(value, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), value.to_string());
        }
    }

    #[test]
    fn event_as_orjson() {
        // models.events.Event(ts=..., epoch=1767225600.5, host="mx1", source="postfix",
        // kind="auth", outcome="failure", user="a\"b", nrcpt=3,
        // origin=Origin("/var/log/mail.log", 12, None, 5),
        // extra={"sasl": "x", "n": -1, "invalid_utf8": True, "f": False})
        let origin = Rc::new(Origin {
            path: Rc::from("/var/log/mail.log"),
            line: 12,
            host: None,
            offset: Some(5),
        });
        let ctx = LineContext {
            ts: Rc::from("2026-01-01T00:00:00.500000+00:00"),
            epoch: 1767225600.5,
            host: Some(Rc::from("mx1")),
            origin,
            program: Rc::from("postfix/smtpd"),
            pid: None,
            message: String::new(),
        };
        let mut event = new_event(&ctx, "postfix", "auth");
        event.outcome = Some("failure".into());
        event.user = Some("a\"b".into());
        event.nrcpt = Some(3);
        event.extra.push(("sasl".into(), Value::Str("x".into())));
        event.extra.push(("n".into(), Value::Int(-1)));
        event.extra.push(("invalid_utf8".into(), Value::Bool(true)));
        event.extra.push(("f".into(), Value::Bool(false)));
        let mut out = Vec::new();
        write_event(&event, &mut out);
        let expected = concat!(
            r#"{"ts":"2026-01-01T00:00:00.500000+00:00","epoch":1767225600.5,"host":"mx1","#,
            r#""source":"postfix","kind":"auth","outcome":"failure","protocol":null,"#,
            r#""user":"a\"b","client_ip":null,"tls":null,"queue_id":null,"sender":null,"#,
            r#""recipient":null,"nrcpt":3,"size":null,"status":null,"service":null,"#,
            r#""session":null,"detail":null,"reason":null,"mech":null,"attempts":null,"#,
            r#""origin":{"path":"/var/log/mail.log","line":12,"host":null,"offset":5},"#,
            r#""extra":{"sasl":"x","n":-1,"invalid_utf8":true,"f":false}}"#
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    /// Compare with orjson on many floats: generate the file with
    /// `/tmp/orjson_floats.py` (orjson.dumps of ~1M floats: epochs with
    /// microseconds, powers of ten, random bit patterns) (lines `<f64 bits hex> <orjson text>`)
    /// and run `cargo test -- --ignored`.
    #[test]
    #[ignore]
    fn float_sweep_against_orjson() {
        let path = std::env::var("ORJSON_FLOATS").unwrap_or("/tmp/orjson_floats.txt".into());
        let data = std::fs::read_to_string(&path).expect("generate the orjson float table first");
        let mut checked = 0;
        for line in data.lines() {
            let (bits, expected) = line.split_once(' ').unwrap();
            let value = f64::from_bits(u64::from_str_radix(bits, 16).unwrap());
            assert_eq!(f64_text(value), expected, "{value:?}");
            checked += 1;
        }
        assert!(checked > 0);
    }
}
