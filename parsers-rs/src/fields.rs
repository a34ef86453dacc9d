//! Client addresses and `host[address]` fields (`parsers/fields.py`).
//!
//! An address is accepted only where the log format puts one, and only when
//! Python's `ipaddress` would say it is one; IPv4-mapped IPv6 (`::ffff:1.2.3.4`)
//! becomes the IPv4 address. Nothing here searches a line for "something that
//! looks like an IP". Addresses already written the way `ipaddress` writes them
//! are recognised by the same fast checks as Python; the rest goes through a
//! transcription of `ipaddress` 3.11 (parser and `str()`), not `std::net`, whose
//! text forms differ (zones, IPv4-compatible tails, leading zeros).
//!
//! Python's `_valid` cache only saves building `ipaddress` objects; it never
//! changes a result, and Rust does not need it.

use crate::pytext;

/// `normalize_ip`: the canonical text of an IP address, or None.
pub fn normalize_ip(text: &str) -> Option<String> {
    parse_ip(text)
}

fn parse_ip(text: &str) -> Option<String> {
    let mut candidate = text;
    // `candidate[:5].lower() == "ipv6:"`: no non-ASCII code point lowers to these letters
    if candidate.len() >= 5 && candidate.as_bytes()[..5].eq_ignore_ascii_case(b"ipv6:") {
        candidate = &candidate[5..];
    }
    if candidate.is_empty() || pytext::char_len(candidate) > 45 {
        return None;
    }
    if is_canonical_ipv4(candidate) || is_canonical_ipv6(candidate) {
        return Some(candidate.to_string()); // what str(ip_address(candidate)) gives
    }
    ip_address_text(candidate)
}

/// `str(ip_address(text))`, or `str(address.ipv4_mapped)` for a mapped IPv6 address.
fn ip_address_text(text: &str) -> Option<String> {
    if let Some(ip) = ipv4_from_string(text) {
        return Some(ipv4_text(ip));
    }
    let (ip, scope_id) = ipv6_address(text)?;
    if (ip >> 32) == 0xFFFF {
        return Some(ipv4_text((ip & 0xFFFF_FFFF) as u32));
    }
    let mut out = ipv6_text(ip);
    if let Some(scope) = scope_id {
        out.push('%');
        out.push_str(scope);
    }
    Some(out)
}

/// Whether `text` is a dotted quad that `ipaddress` accepts and prints unchanged.
fn is_canonical_ipv4(text: &str) -> bool {
    let mut count = 0;
    for octet in text.split('.') {
        count += 1;
        if count > 4 || !is_canonical_octet(octet) {
            return false;
        }
    }
    count == 4
}

/// "0" to "255" without a leading zero (`_CANONICAL_OCTETS`).
fn is_canonical_octet(octet: &str) -> bool {
    let bytes = octet.as_bytes();
    if bytes.is_empty() || bytes.len() > 3 || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    if bytes.len() > 1 && bytes[0] == b'0' {
        return false;
    }
    octet.parse::<u32>().is_ok_and(|value| value <= 255)
}

/// Whether `text` is an IPv6 address written as `ipaddress` writes it (RFC 5952).
fn is_canonical_ipv6(text: &str) -> bool {
    if text.starts_with("::ffff:")
        || !text
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b':'))
    {
        return false;
    }
    let Some(at) = text.find("::") else {
        let groups: Vec<&str> = text.split(':').collect();
        return groups.len() == 8 && plain_groups(&groups, 1);
    };
    let (before_text, after_text) = (&text[..at], &text[at + 2..]);
    let before: Vec<&str> = if before_text.is_empty() {
        Vec::new()
    } else {
        before_text.split(':').collect()
    };
    let after: Vec<&str> = if after_text.is_empty() {
        Vec::new()
    } else {
        after_text.split(':').collect()
    };
    let skipped = 8 - before.len() as i64 - after.len() as i64;
    // the zero groups next to "::" would belong to its run
    skipped >= 2
        && before.last().is_none_or(|g| *g != "0")
        && after.first().is_none_or(|g| *g != "0")
        && plain_groups(&before, skipped - 1)
        && plain_groups(&after, skipped)
}

/// Whether the groups are 1-4 digits without leading zeros, no run of "0" too long.
fn plain_groups(groups: &[&str], longest_zero_run: i64) -> bool {
    let mut run = 0;
    for group in groups {
        if group.is_empty() || group.len() > 4 || (group.len() > 1 && group.as_bytes()[0] == b'0') {
            return false;
        }
        run = if *group == "0" { run + 1 } else { 0 };
        if run > longest_zero_run {
            return false;
        }
    }
    true
}

// -- ipaddress 3.11, transcribed ---------------------------------------------------

/// `IPv4Address(text)._ip`, None where it raises.
fn ipv4_from_string(text: &str) -> Option<u32> {
    if text.contains('/') || text.is_empty() {
        return None;
    }
    let mut value: u32 = 0;
    let mut count = 0;
    for octet in text.split('.') {
        count += 1;
        if count > 4 {
            return None;
        }
        value = (value << 8) | parse_octet(octet)?;
    }
    (count == 4).then_some(value)
}

/// `_parse_octet`: ASCII digits, at most 3, no leading zero, up to 255.
fn parse_octet(octet: &str) -> Option<u32> {
    let bytes = octet.as_bytes();
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) || bytes.len() > 3 {
        return None;
    }
    if octet != "0" && bytes[0] == b'0' {
        return None;
    }
    let value: u32 = octet.parse().ok()?;
    (value <= 255).then_some(value)
}

fn ipv4_text(ip: u32) -> String {
    let [a, b, c, d] = ip.to_be_bytes();
    format!("{a}.{b}.{c}.{d}")
}

/// `IPv6Address(text)`: (`_ip`, `_scope_id`), None where it raises.
fn ipv6_address(text: &str) -> Option<(u128, Option<&str>)> {
    if text.contains('/') {
        return None;
    }
    // _split_scope_id
    let (address, scope_id) = match text.find('%') {
        None => (text, None),
        Some(at) => {
            let scope = &text[at + 1..];
            if scope.is_empty() || scope.contains('%') {
                return None;
            }
            (&text[..at], Some(scope))
        }
    };
    Some((ipv6_int_from_string(address)?, scope_id))
}

const HEXTET_COUNT: usize = 8;

/// `IPv6Address._ip_int_from_string`.
fn ipv6_int_from_string(ip_str: &str) -> Option<u128> {
    if ip_str.is_empty() {
        return None;
    }
    let mut parts: Vec<std::borrow::Cow<str>> = ip_str.split(':').map(Into::into).collect();
    if parts.len() < 3 {
        return None;
    }
    // an IPv4-style suffix becomes two hextets
    if parts[parts.len() - 1].contains('.') {
        let tail = parts.pop()?;
        let ipv4 = ipv4_from_string(&tail)?;
        parts.push(format!("{:x}", (ipv4 >> 16) & 0xFFFF).into());
        parts.push(format!("{:x}", ipv4 & 0xFFFF).into());
    }
    if parts.len() > HEXTET_COUNT + 1 {
        return None;
    }
    let mut skip_index = None;
    for (i, part) in parts.iter().enumerate().take(parts.len() - 1).skip(1) {
        if part.is_empty() {
            if skip_index.is_some() {
                return None; // at most one '::'
            }
            skip_index = Some(i);
        }
    }
    let last = parts.len() - 1;
    let (parts_hi, parts_lo, parts_skipped) = if let Some(skip) = skip_index {
        let mut parts_hi = skip;
        let mut parts_lo = parts.len() - skip - 1;
        if parts[0].is_empty() {
            parts_hi -= 1;
            if parts_hi != 0 {
                return None;
            }
        }
        if parts[last].is_empty() {
            parts_lo -= 1;
            if parts_lo != 0 {
                return None;
            }
        }
        let skipped = HEXTET_COUNT as i64 - (parts_hi + parts_lo) as i64;
        if skipped < 1 {
            return None;
        }
        (parts_hi, parts_lo, skipped as u32)
    } else {
        if parts.len() != HEXTET_COUNT || parts[0].is_empty() || parts[last].is_empty() {
            return None;
        }
        (parts.len(), 0, 0)
    };
    let mut ip: u128 = 0;
    for part in &parts[..parts_hi] {
        ip = (ip << 16) | parse_hextet(part)?;
    }
    ip = ip.checked_shl(16 * parts_skipped).unwrap_or(0);
    for part in &parts[parts.len() - parts_lo..] {
        ip = (ip << 16) | parse_hextet(part)?;
    }
    Some(ip)
}

/// `_parse_hextet`: 1 to 4 hex digits of either case.
fn parse_hextet(hextet: &str) -> Option<u128> {
    if !hextet.bytes().all(|b| b.is_ascii_hexdigit()) || hextet.len() > 4 || hextet.is_empty() {
        return None;
    }
    u128::from_str_radix(hextet, 16).ok()
}

/// `IPv6Address._string_from_ip_int` with `_compress_hextets`.
fn ipv6_text(ip: u128) -> String {
    let hextets: Vec<u16> = (0..8).map(|i| (ip >> (112 - 16 * i)) as u16).collect();
    let (mut best_start, mut best_len) = (0usize, 0usize);
    let (mut start, mut len) = (0usize, 0usize);
    for (index, hextet) in hextets.iter().enumerate() {
        if *hextet == 0 {
            if len == 0 {
                start = index;
            }
            len += 1;
            if len > best_len {
                best_len = len;
                best_start = start;
            }
        } else {
            len = 0;
        }
    }
    let texts: Vec<String> = hextets.iter().map(|h| format!("{h:x}")).collect();
    if best_len <= 1 {
        return texts.join(":");
    }
    let head = texts[..best_start].join(":");
    let tail = texts[best_start + best_len..].join(":");
    format!("{head}::{tail}")
}

/// `host_and_ip(text, start)`: (host, address or None, end offset in bytes); Err where Python raises ValueError.
///
/// The token ends at the first space; the address is in its last brackets, so
/// a reverse name that holds brackets (the PTR record is the client's) cannot
/// supply it. A `:port` after the brackets is read too.
#[allow(clippy::result_unit_err)] // fixed interface: Python's ValueError carries nothing the callers read
pub fn host_and_ip(text: &str, start: usize) -> Result<(&str, Option<String>, usize), ()> {
    let Some(rest) = text.get(start..) else {
        return Err(());
    };
    let end_of_token = rest.find(' ').map_or(text.len(), |at| start + at);
    let close = text[start..end_of_token].rfind(']').ok_or(())? + start;
    let open_bracket = text[start..close].rfind('[').ok_or(())? + start;
    let host = &text[start..open_bracket];
    let ip = normalize_ip(&text[open_bracket + 1..close]);
    let mut end = close + 1;
    let after = &text[end..];
    if let Some(port) = after.strip_prefix(':') {
        if port.chars().next().is_some_and(is_digit_char) {
            end += 1;
            for c in port.chars() {
                if !is_digit_char(c) {
                    break;
                }
                end += c.len_utf8();
            }
        }
    }
    Ok((host, ip, end))
}

/// `char.isdigit()`.
fn is_digit_char(c: char) -> bool {
    let mut buffer = [0u8; 4];
    pytext::is_digit(c.encode_utf8(&mut buffer))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `normalize_ip(text)` as Python 3.11 gives it (values printed by parsers/fields.py).
    const PYTHON: &[(&str, Option<&str>)] = &[
        ("192.0.2.1", Some("192.0.2.1")),
        ("0.0.0.0", Some("0.0.0.0")),
        ("255.255.255.255", Some("255.255.255.255")),
        ("256.1.1.1", None),
        ("01.2.3.4", None),
        ("1.2.3.04", None),
        ("1.2.3", None),
        ("1.2.3.4.5", None),
        ("1.2.3.4 ", None),
        (" 1.2.3.4", None),
        ("\u{ff11}.2.3.4", None),
        ("1.2.3.4/32", None),
        ("", None),
        ("IPv6:", None),
        ("ipv6:192.0.2.1", Some("192.0.2.1")),
        ("IPV6:2001:db8::1", Some("2001:db8::1")),
        ("2001:db8::1", Some("2001:db8::1")),
        ("2001:DB8::1", Some("2001:db8::1")),
        ("2001:0db8::0001", Some("2001:db8::1")),
        ("2001:db8:0:0:0:0:0:1", Some("2001:db8::1")),
        ("2001:db8::0:1", Some("2001:db8::1")),
        ("::", Some("::")),
        ("::1", Some("::1")),
        ("::0", Some("::")),
        ("0::0", Some("::")),
        ("1::", Some("1::")),
        ("1:0:0:0:0:0:0:0", Some("1::")),
        ("::ffff:1.2.3.4", Some("1.2.3.4")),
        ("::FFFF:1.2.3.4", Some("1.2.3.4")),
        ("::ffff:c000:0201", Some("192.0.2.1")),
        ("::ffff:c000:201", Some("192.0.2.1")),
        ("0:0:0:0:0:ffff:c000:201", Some("192.0.2.1")),
        ("::1.2.3.4", Some("::102:304")),
        ("::0.0.0.1", Some("::1")),
        ("64:ff9b::1.2.3.4", Some("64:ff9b::102:304")),
        ("fe80::1%eth0", Some("fe80::1%eth0")),
        ("fe80::1%", None),
        ("fe80::1%a%b", None),
        ("fe80::1%25eth0", Some("fe80::1%25eth0")),
        ("::ffff:1.2.3.4%eth0", Some("1.2.3.4")),
        ("fe80::1%\u{fc}n\u{ef}", Some("fe80::1%\u{fc}n\u{ef}")),
        ("FE80::1%ETH0", Some("fe80::1%ETH0")),
        ("1:2:3:4:5:6:7:8", Some("1:2:3:4:5:6:7:8")),
        ("1:2:3:4:5:6:7:8:9", None),
        ("1:2:3:4:5:6:7::", Some("1:2:3:4:5:6:7:0")),
        ("::2:3:4:5:6:7:8", Some("0:2:3:4:5:6:7:8")),
        ("1::3:4:5:6:7:8", Some("1:0:3:4:5:6:7:8")),
        ("1:0:0:4:0:0:0:8", Some("1:0:0:4::8")),
        ("1:0:0:4:5:0:0:8", Some("1::4:5:0:0:8")),
        ("1:0:3:4:5:6:7:8", Some("1:0:3:4:5:6:7:8")),
        ("1::2::3", None),
        (":1:2:3:4:5:6:7", None),
        ("1:2:3:4:5:6:7:", None),
        (":::", None),
        ("1:::2", None),
        ("12345::1", None),
        ("g::1", None),
        ("::1.2.3", None),
        ("::1.2.3.04", None),
        ("1:2:3:4:5:6:1.2.3.4", Some("1:2:3:4:5:6:102:304")),
        ("1:2:3:4:5:6:7:1.2.3.4", None),
        ("1:2:3:4:5::1.2.3.4", Some("1:2:3:4:5:0:102:304")),
        ("::ffff:255.255.255.255", Some("255.255.255.255")),
        ("0000:0000:0000:0000:0000:0000:0000:0001", Some("::1")),
        ("2001:db8:0:1:1:1:1:1", Some("2001:db8:0:1:1:1:1:1")),
        ("2001:db8:0:0:1:0:0:1", Some("2001:db8::1:0:0:1")),
        ("2001:db8::1:0:0:1", Some("2001:db8::1:0:0:1")),
        ("a:b:c:d:e:f:0:0", Some("a:b:c:d:e:f::")),
        ("0:0:a:b:c:d:e:f", Some("::a:b:c:d:e:f")),
        ("::ffff:0:0", Some("0.0.0.0")),
        ("::fffe:1.2.3.4", Some("::fffe:102:304")),
        ("::1:ffff:1.2.3.4", Some("::1:ffff:102:304")),
        ("[::1]", None),
        ("1.2.3.4:25", None),
        ("unknown", None),
        ("1:2:3:4:5:6:7:8%eeeeeeeeeeeeeeeeeeeeeeeeeeeeee", None),
        (
            "1:2:3:4:5:6:7:8%eeeeeeeeeeeeeeeeeeeeeeeeeeeee",
            Some("1:2:3:4:5:6:7:8%eeeeeeeeeeeeeeeeeeeeeeeeeeeee"),
        ),
        ("2001:db8::1/64", None),
        ("fe80::1%eth/0", None),
        ("ipv6:ipv6:::1", None),
        ("iPv6:::1", Some("::1")),
        ("\u{406}Pv6:::1", None),
        ("::ffff:1.2.3.4.5", None),
        ("0.0.0.0.", None),
        (".1.2.3", None),
        ("1..2.3", None),
        ("\u{663}.2.3.4", None),
        (
            "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff",
            Some("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"),
        ),
        (
            "2001:db8:aaaa:bbbb:cccc:dddd:eeee:FFFF",
            Some("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"),
        ),
        ("0:0:0:0:0:0:0:0", Some("::")),
        ("::0:0", Some("::")),
        ("1:0::", Some("1::")),
        ("1:0:0:0:0:0:0::", Some("1::")),
        ("::0:0:0:0:0:0:0", Some("::")),
        ("::0:0:0:0:0:0:0:0", None),
        ("0::1:2:3:4:5:6:7", None),
        ("::1%x", Some("::1%x")),
        ("1.2.3.4%x", None),
        ("fe80::%eth0", Some("fe80::%eth0")),
        ("::ffff:1.2.3.4%", None),
        ("::ffff:01.2.3.4", None),
        ("2001:db8::00001", None),
        ("2001:db8::abcd", Some("2001:db8::abcd")),
        ("2001:db8::ABcd", Some("2001:db8::abcd")),
        ("1:2:3:4:5:6:7:8 ", None),
        ("::ffff:0.0.0.0", Some("0.0.0.0")),
        ("::ffff:ffff:ffff", Some("255.255.255.255")),
        ("::1:0:0", Some("::1:0:0")),
        ("1:0:0:2:0:0:3:4", Some("1::2:0:0:3:4")),
        ("1:2:0:0:3:0:0:4", Some("1:2::3:0:0:4")),
        ("fe80::1%eth0\u{0}", Some("fe80::1%eth0\u{0}")),
        ("fe80::1%\u{2028}", Some("fe80::1%\u{2028}")),
        ("1.2.3.4\u{a}", None),
        ("::ffff:1.2.3.4\u{a}", None),
    ];

    #[test]
    fn normalize_ip_matches_python() {
        for (text, want) in PYTHON {
            assert_eq!(
                normalize_ip(text).as_deref(),
                *want,
                "normalize_ip({text:?})"
            );
        }
        let long = "x".repeat(50);
        assert_eq!(normalize_ip(&long), None);
    }

    #[test]
    fn host_and_ip_matches_python() {
        let ok: &[(&str, usize, &str, Option<&str>, usize)] = &[
            ("unknown[192.0.2.1]", 0, "unknown", Some("192.0.2.1"), 18),
            (
                "mail.example.com[2001:DB8::1]:25, x",
                0,
                "mail.example.com",
                Some("2001:db8::1"),
                32,
            ),
            (
                "from x[y][192.0.2.1]:587 z",
                5,
                "x[y]",
                Some("192.0.2.1"),
                24,
            ),
            ("a[1.2.3.4]:", 0, "a", Some("1.2.3.4"), 10),
            ("a[1.2.3.4]:x", 0, "a", Some("1.2.3.4"), 10),
            ("a[1.2.3.4]:2\u{663}\u{b2}x", 0, "a", Some("1.2.3.4"), 16),
            ("[::ffff:1.2.3.4]", 0, "", Some("1.2.3.4"), 16),
            ("h[unknown]", 0, "h", None, 10),
            (
                "\u{e9}[IPv6:fe80::1%eth0] x",
                0,
                "\u{e9}",
                Some("fe80::1%eth0"),
                21,
            ),
        ];
        for (text, start, host, ip, end) in ok {
            let got = host_and_ip(text, *start);
            assert_eq!(
                got,
                Ok((*host, ip.map(str::to_string), *end)),
                "host_and_ip({text:?}, {start})"
            );
        }
        for text in [
            "no brackets here",
            "a] b[1.2.3.4]",
            "x [1.2.3.4]",
            "a[1.2.3.4",
            "a1.2.3.4]",
        ] {
            assert_eq!(host_and_ip(text, 0), Err(()), "host_and_ip({text:?})");
        }
        assert_eq!(host_and_ip("a[1.2.3.4]", 99), Err(()));
    }

    #[test]
    fn canonical_fast_paths_agree_with_the_transcribed_parser() {
        for text in [
            "192.0.2.1",
            "2001:db8::1",
            "::",
            "1::",
            "::1:0:0",
            "1::2:0:0:3:4",
            "a:b:c:d:e:f::",
        ] {
            assert!(is_canonical_ipv4(text) || is_canonical_ipv6(text), "{text}");
            assert_eq!(ip_address_text(text).as_deref(), Some(text));
        }
    }
}
