"""Attacker-controlled text (user names, HELO, passwords, replies) never moves the
client address or the account: they come from fixed positions only."""

from __future__ import annotations

import pytest

from models.events import Event, Origin
from parsers.api import MAX_LINE_BYTES, LogParser


def parse(*lines: str | bytes) -> list[Event]:
    parser = LogParser(year=2026)
    events: list[Event] = []
    for number, line in enumerate(lines, 1):
        events.extend(parser.feed(line, Origin("t.log", number)).events)
    return events


def the_failure(*lines: str) -> Event:
    failures = [e for e in parse(*lines) if e.outcome == "failure"]
    assert len(failures) == 1
    return failures[0]


@pytest.mark.parametrize(
    "user",
    [
        "x, rip=6.6.6.6",
        "x>, method=PLAIN, rip=6.6.6.6, lip=1.1.1.1, session=<x",
        "rip=6.6.6.6",
    ],
)
def test_dovecot_login_user_cannot_move_rip(user: str) -> None:
    line = (
        "Mar  3 10:00:00 mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 "
        f"secs): user=<{user}>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1, session=<S1>"
    )
    event = the_failure(line)
    assert event.client_ip == "192.0.2.10"
    assert event.user == user
    assert event.session == "S1"


def test_dovecot_successful_login_user_cannot_move_rip() -> None:
    line = (
        "Mar  3 10:00:00 mail dovecot: imap-login: Login: user=<a, rip=6.6.6.6>, method=PLAIN, "
        "rip=192.0.2.11, lip=192.0.2.1, mpid=1, TLS, session=<S2>"
    )
    [event] = parse(line)
    assert (event.user, event.client_ip) == ("a, rip=6.6.6.6", "192.0.2.11")


def test_passdb_user_with_commas_is_read_from_the_right() -> None:
    line = "Mar  3 10:00:00 mail dovecot: auth: passwd-file(a,b,c,192.0.2.12,<S3>): unknown user"
    event = the_failure(line)
    assert (event.user, event.client_ip, event.session) == ("a,b,c", "192.0.2.12", "S3")


@pytest.mark.parametrize(
    "line",
    [
        # a user name that holds a complete fake identifier
        "Mar  3 10:00:00 mail dovecot: auth: passwd-file(x,6.6.6.6): y,192.0.2.13): "
        "Password mismatch",
        # a logged password that holds one
        "Mar  3 10:00:00 mail dovecot: auth: sql(x,192.0.2.13): Password mismatch "
        "(given password: a,6.6.6.6): b)",
        # the Dovecot 2.4 prefix form
        "Mar  3 10:00:00 mail dovecot: auth(x,6.6.6.6,sasl:plain)<s>: Info: sql: Password "
        "mismatch,192.0.2.13,sasl:plain)<S>: Info: sql: Password mismatch",
    ],
)
def test_ambiguous_auth_identifiers_are_errors_not_guesses(line: str) -> None:
    result = LogParser(year=2026).feed(line, Origin("t.log", 1))
    assert result.events == []
    assert result.error == "ambiguous auth identifier"


def test_logged_passwords_are_not_copied_into_events() -> None:
    line = (
        "Mar  3 10:00:00 mail dovecot: auth: sql(x,192.0.2.14,<S>): Password mismatch "
        "(given password: hunter2)"
    )
    event = the_failure(line)
    assert "hunter2" not in event.to_json().decode()
    assert event.reason == "Password mismatch"


@pytest.mark.parametrize(
    "user",
    ["x from unknown[6.6.6.6]", "[6.6.6.6]", "root, sasl_username=root", "a from 6.6.6.6"],
)
def test_postfix_sasl_username_cannot_move_the_client(user: str) -> None:
    line = (
        "Mar  3 10:00:00 mx postfix/smtpd[1]: warning: unknown[192.0.2.20]: SASL LOGIN "
        f"authentication failed: (reason unavailable), sasl_username={user}"
    )
    event = the_failure(line)
    assert (event.client_ip, event.user) == ("192.0.2.20", user)


def test_postfix_client_line_username_and_sender_are_separate() -> None:
    [_auth, submission] = parse(
        "Mar  3 10:00:00 mx postfix/smtpd[1]: connect from unknown[192.0.2.21]",
        "Mar  3 10:00:00 mx postfix/smtpd[1]: ABCDEF1234: client=unknown[192.0.2.21], "
        "sasl_method=PLAIN, sasl_username=bob@example.com, sasl_sender=root, sasl_username=root",
    )[1:]
    assert (submission.user, submission.client_ip) == ("bob@example.com", "192.0.2.21")


def test_reject_helo_and_addresses_cannot_move_the_client() -> None:
    [event] = parse(
        "Mar  3 10:00:00 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[192.0.2.22]: "
        "554 5.7.1 <v@[6.6.6.6]>: Relay access denied; from=<a@[6.6.6.6]> to=<v@[6.6.6.6]> "
        "proto=ESMTP helo=<RCPT from unknown[6.6.6.6]>"
    )
    assert (event.kind, event.client_ip, event.user) == ("reject", "192.0.2.22", None)


def test_pam_rhost_hostname_gives_no_address() -> None:
    event = the_failure(
        "Mar  3 10:00:00 mail dovecot-auth: pam_unix(dovecot:auth): authentication failure; "
        "logname= uid=0 euid=0 tty=dovecot ruser=x rhost=evil.example.net  user=x"
    )
    assert event.client_ip is None


def test_roundcube_user_with_from_ip_is_not_the_client() -> None:
    event = the_failure(
        "Mar  3 10:00:00 web roundcube: IMAP Error: Login failed for admin from 6.6.6.6 from "
        "192.0.2.24. AUTHENTICATE PLAIN: NO Login failed. user=admin from 7.7.7.7 in x.php"
    )
    assert (event.client_ip, event.user) == ("192.0.2.24", "admin from 6.6.6.6")


def test_invalid_addresses_are_never_guessed() -> None:
    result = LogParser(year=2026).feed(
        "Mar  3 10:00:00 mail dovecot: imap-login: Login: user=<a>, method=PLAIN, "
        "rip=999.1.1.1, lip=192.0.2.1, session=<S>",
        Origin("t.log", 1),
    )
    assert result.events == []
    assert result.error == "dovecot login with an invalid rip"


def test_ipv4_mapped_addresses_are_normalized() -> None:
    event = the_failure(
        "Mar  3 10:00:00 mail dovecot: pop3-login: Aborted login (auth failed, 1 attempts): "
        "user=<a>, method=PLAIN, rip=::ffff:192.0.2.25, lip=192.0.2.1"
    )
    assert event.client_ip == "192.0.2.25"


def test_cr_lf_inside_a_line_is_never_a_second_line() -> None:
    parser = LogParser(year=2026)
    crafted = (
        "Mar  3 10:00:00 mx postfix/smtpd[1]: warning: unknown[192.0.2.26]: SASL LOGIN "
        "authentication failed: x, sasl_username=a\nMar  3 10:00:00 mx postfix/smtpd[1]: "
        "warning: unknown[6.6.6.6]: SASL LOGIN authentication failed: x"
    )
    result = parser.feed(crafted, Origin("t.log", 1))
    assert (result.events, result.error) == ([], "line break inside a line")
    [event] = parser.feed(crafted.replace("\n", "\r"), Origin("t.log", 2)).events
    assert event.client_ip == "192.0.2.26"
    trailing = parser.feed(
        b"Mar  3 10:00:00 mx postfix/smtpd[1]: connect from unknown[192.0.2.27]\r\n",
        Origin("t.log", 3),
    )
    assert [e.client_ip for e in trailing.events] == ["192.0.2.27"]


def test_invalid_utf8_is_replaced_and_flagged() -> None:
    [event] = parse(
        b"Mar  3 10:00:00 mx postfix/smtpd[1]: warning: unknown[192.0.2.28]: SASL LOGIN "
        b"authentication failed: x, sasl_username=b\xff\xfeob"
    )
    assert (event.client_ip, event.user) == ("192.0.2.28", "b\ufffd\ufffdob")
    assert event.extra["invalid_utf8"] is True


def test_huge_lines_are_refused_with_their_size() -> None:
    line = b"Mar  3 10:00:00 mx postfix/smtpd[1]: " + b"A" * MAX_LINE_BYTES
    result = LogParser(year=2026).feed(line, Origin("t.log", 1))
    assert result.error == f"line too long ({len(line)} bytes)"


@pytest.mark.parametrize(
    "line",
    [
        "Aug 31 16:06:06 h dovecot: imap-login: Disconnected: " + "a: " * 5000 + "test",
        "Aug 31 16:06:06 h postfix/smtp[1]: ABCDEF1234: to=<" + "a>, " * 5000,
        "Aug 31 16:06:06 h postfix/smtpd[1]: " + "smtp: A " * 5000,
        "\x00\x01\x02",
    ],
)
def test_hostile_lines_never_raise(line: str) -> None:
    result = LogParser(year=2026).feed(line, Origin("t.log", 1))
    assert result.events or result.ignored or result.error
