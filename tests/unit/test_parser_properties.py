"""Properties every input must keep, checked with hypothesis.

- ``feed`` never raises: arbitrary bytes (invalid UTF-8, NUL, control
  characters) and arbitrary text give exactly one of events, ignored, error;
- lines built to make backtracking regexes explode (GHSA-33wh-ccjc-p397), just
  under the 64 KiB line cap and at a megabyte, finish and are reported. No
  timing is asserted here: a super-linear pattern shows up as a test that never
  ends, and ``mailwarden bench parse`` times the same lines at two sizes;
- filling the attacker-controlled field of a real line template with any mix of
  address-like tokens never yields a client IP other than the fixed position's;
- parsing is deterministic: the same lines through two fresh parsers give the
  same events.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailwarden.loggen import pathological_lines
from models.events import Event, Origin
from parsers.api import LogParser

REAL_IP = "192.0.2.77"
STAMP = "Nov 27 05:43:09"
ORIGIN = Origin(path="property.log", line=1)
MEGABYTE = 1 << 20

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MUTATIONS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fresh_parser() -> LogParser:
    return LogParser(host=None, timezone="UTC", year=2026)


def feed_checked(parser: LogParser, raw: bytes | str) -> list[Event]:
    result = parser.feed(raw, ORIGIN)
    held = sum((bool(result.events), result.ignored is not None, result.error is not None))
    assert held == 1, f"exactly one of events/ignored/error, got {result!r}"[:500]
    if result.error is not None:
        assert result.error.strip(), "an error needs a reason"
    return list(result.events)


# Real line prefixes, so random tails reach the family parsers and not only the envelope.
PREFIXES = (
    f"{STAMP} mail postfix/smtpd[17022]: ",
    f"{STAMP} mail postfix/submission/smtpd[17022]: warning: unknown[{REAL_IP}]: ",
    f"{STAMP} mail postfix/qmgr[17001]: 1F0E22121C7: ",
    f"{STAMP} imap-login: Info: ",
    f"{STAMP} auth: Info: passwd-file(",
    f"{STAMP} mail dovecot: auth-worker(304): ",
    f"{STAMP} mail auth: pam_unix(dovecot:auth): authentication failure; ",
    f"{STAMP} mail saslauthd[1234]: ",
    f"{STAMP} mail roundcube: IMAP Error: Login failed for ",
    "@400000004c91b044077a9e94 imap-login: ",
    "2024-12-31T06:56:17.784598+01:00 mail dovecot: ",
    "",
)


@FAST
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    feed_checked(fresh_parser(), raw)


@FAST
@given(st.sampled_from(PREFIXES), st.binary(max_size=600))
def test_real_prefix_with_arbitrary_bytes_never_raises(prefix: str, tail: bytes) -> None:
    feed_checked(fresh_parser(), prefix.encode() + tail)


@FAST
@given(st.sampled_from(PREFIXES), st.text(max_size=600))
def test_real_prefix_with_arbitrary_text_never_raises(prefix: str, tail: str) -> None:
    feed_checked(fresh_parser(), prefix + tail)


@FAST
@given(st.lists(st.tuples(st.sampled_from(PREFIXES), st.text(max_size=200)), max_size=30))
def test_a_stream_of_garbage_keeps_the_parser_usable(lines: list[tuple[str, str]]) -> None:
    """Garbage must not poison the per-host state: a real line still parses after it."""
    parser = fresh_parser()
    for prefix, tail in lines:
        feed_checked(parser, prefix + tail)
    after = (
        f"Dec 31 23:59:59 mail postfix/smtpd[1]: warning: unknown[{REAL_IP}]: "
        "SASL LOGIN authentication failed: authentication failure"
    )
    events = feed_checked(parser, after)
    assert any(e.kind in ("auth", "auth_echo") and e.client_ip == REAL_IP for e in events)


# Just under the parser's line cap (64 KiB), so the family parsers see them;
# and a megabyte, which must be refused cheaply.
SIZES = {"60k": 60_000, "1M": MEGABYTE}
HUGE_LINES = {
    f"{name}-{label}": line
    for label, size in SIZES.items()
    for name, line in pathological_lines(size, client_ip=REAL_IP).items()
}
HUGE_LINES |= {
    "garbage-1M": "A" * MEGABYTE,
    "newlines-1M": "\n" * MEGABYTE,
    "nul-1M": "\x00" * MEGABYTE,
}


@pytest.mark.parametrize("raw", list(HUGE_LINES.values()), ids=list(HUGE_LINES))
def test_pathological_lines_finish_and_are_reported(raw: str) -> None:
    events = feed_checked(fresh_parser(), raw)
    assert all(e.client_ip in (REAL_IP, None) for e in events)


@pytest.mark.parametrize("raw", list(HUGE_LINES.values()), ids=list(HUGE_LINES))
def test_pathological_lines_as_bytes_finish_and_are_reported(raw: str) -> None:
    feed_checked(fresh_parser(), raw.encode("utf-8"))


# Tokens an attacker would mix into a free-text field to imitate the fixed ones.
TOKENS = st.sampled_from(
    [
        "6.6.6.6",
        "192.0.2.1",
        "::1",
        "::ffff:6.6.6.6",
        "[",
        "]",
        "<",
        ">",
        "(",
        ")",
        ",",
        ", ",
        ": ",
        " ",
        "=",
        ".",
        "rip=",
        "lip=",
        "rhost=",
        "ruser=",
        "user=",
        "user=<",
        "sasl_username=",
        "client=",
        "from ",
        " from ",
        "unknown[",
        "RCPT from ",
        "authentication failed",
        "auth failed, 1 attempts",
        "Password mismatch",
        "unknown user",
        "in session",
        "６",
        "\u200b",
        "a",
        "root@victim.example",
    ]
)
FIELD = st.lists(TOKENS, max_size=25).map("".join)

TEMPLATES: dict[str, Callable[[str], str]] = {
    "postfix-sasl-user": lambda f: (
        f"{STAMP} mail postfix/smtpd[1]: warning: unknown[{REAL_IP}]: "
        f"SASL LOGIN authentication failed: (reason unavailable), sasl_username={f}"
    ),
    "postfix-sasl-rdns": lambda f: (
        f"{STAMP} mail postfix/smtpd[1]: warning: {f}[{REAL_IP}]: "
        "SASL LOGIN authentication failed: authentication failure"
    ),
    "postfix-noqueue-helo": lambda f: (
        f"{STAMP} mail postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[{REAL_IP}]: "
        f"554 5.7.1 <v@example.net>: Relay access denied; from=<{f}> to=<v@example.net> "
        f"proto=ESMTP helo=<{f}>"
    ),
    "postfix-client-sasl-user": lambda f: (
        f"{STAMP} mail postfix/smtpd[1]: 1F0E22121C7: client=unknown[{REAL_IP}], "
        f"sasl_method=PLAIN, sasl_username={f}"
    ),
    "dovecot-aborted-user": lambda f: (
        f"{STAMP} imap-login: Info: Disconnected (auth failed, 1 attempts in 2 secs): "
        f"user=<{f}>, method=PLAIN, rip={REAL_IP}, lip=192.0.2.1, session=<abc>"
    ),
    "dovecot-login-user": lambda f: (
        f"{STAMP} imap-login: Info: Login: user=<{f}>, method=PLAIN, rip={REAL_IP}, "
        "lip=192.0.2.1, mpid=1, TLS, session=<abc>"
    ),
    "dovecot-passdb-user": lambda f: (
        f"{STAMP} auth: Info: passwd-file({f},{REAL_IP},<abc>): Password mismatch"
    ),
    "dovecot-auth-worker-user": lambda f: (
        f"{STAMP} mail dovecot: auth-worker(1): sql({f},{REAL_IP}): unknown user"
    ),
    "pam-unix-user": lambda f: (
        f"{STAMP} mail auth: pam_unix(dovecot:auth): authentication failure; logname= uid=0 "
        f"euid=0 tty=dovecot ruser={f} rhost={REAL_IP}  user={f}"
    ),
    "roundcube-user": lambda f: (
        f"{STAMP} mail roundcube: IMAP Error: Login failed for {f} from {REAL_IP}. "
        "AUTHENTICATE PLAIN: Authentication failed. in rcube_imap.php on line 200"
    ),
}


@MUTATIONS
@given(st.sampled_from(sorted(TEMPLATES)), FIELD)
def test_filled_fields_never_yield_a_foreign_ip(template: str, field: str) -> None:
    line = TEMPLATES[template](field)
    events = feed_checked(fresh_parser(), line)
    strays = {e.client_ip for e in events} - {REAL_IP, None}
    assert not strays, f"{template}: {line!r} gave {strays}"


# Templates whose field is the line's user position; in the others it is rDNS/HELO/sender.
USER_FIELD_TEMPLATES = frozenset(name for name in TEMPLATES if name.endswith("-user"))


@MUTATIONS
@given(st.sampled_from(sorted(TEMPLATES)), FIELD)
def test_filled_fields_name_only_the_fixed_user(template: str, field: str) -> None:
    """The user is the whole field (trimmed at most), never a piece of it."""
    events = feed_checked(fresh_parser(), TEMPLATES[template](field))
    allowed: set[str | None] = {None}
    if template in USER_FIELD_TEMPLATES:
        allowed |= {field, field.strip()} - {""}
    users = {e.user for e in events}
    assert users <= allowed, f"{template}: field {field!r} gave users {users - allowed}"


@FAST
@given(st.lists(st.tuples(st.sampled_from(sorted(TEMPLATES)), FIELD), min_size=1, max_size=20))
def test_parsing_is_deterministic(lines: list[tuple[str, str]]) -> None:
    def run() -> list[dict[str, object]]:
        parser = fresh_parser()
        out: list[dict[str, object]] = []
        for number, (template, field) in enumerate(lines, 1):
            result = parser.feed(TEMPLATES[template](field), Origin("p.log", number))
            out += [event.to_dict() for event in result.events]
        return out

    assert run() == run()
