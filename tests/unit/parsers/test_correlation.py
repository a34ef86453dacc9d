"""Correlation state: bounded maps, queue ids, smtpd sessions, one attempt counted once."""

from __future__ import annotations

from models.events import Event, Origin
from parsers.api import LogParser
from parsers.correlation import ECHO_WINDOW, BoundedMap, FailedAttempts, same_account


def feed(parser: LogParser, *lines: str) -> list[list[Event]]:
    return [parser.feed(line, Origin("t.log", n)).events for n, line in enumerate(lines, 1)]


def kinds(events: list[Event]) -> list[tuple[str, str | None]]:
    return [(event.kind, event.outcome) for event in events]


# -- BoundedMap --------------------------------------------------------------


def test_bounded_map_drops_the_least_recently_used() -> None:
    entries: BoundedMap[str, int] = BoundedMap(max_size=3, ttl=100.0)
    for n, key in enumerate("abc"):
        entries.put(key, n, now=0.0)
    entries.touch("a", now=1.0)
    entries.put("d", 3, now=2.0)
    assert len(entries) == 3
    assert entries.get("b", now=2.0) is None
    assert entries.get("a", now=2.0) == 0


def test_bounded_map_expires_by_event_time() -> None:
    entries: BoundedMap[str, int] = BoundedMap(max_size=10, ttl=60.0)
    entries.put("old", 1, now=0.0)
    assert entries.get("old", now=60.0) == 1
    assert entries.get("old", now=61.0) is None


def test_many_keys_stay_bounded() -> None:
    entries: BoundedMap[int, int] = BoundedMap(max_size=1000, ttl=1e9)
    for n in range(200_000):
        entries.put(n, n, now=float(n))
    assert len(entries) == 1000


def test_sweep_retires_expired_entries_without_reads() -> None:
    entries: BoundedMap[int, int] = BoundedMap(max_size=10_000, ttl=5.0)
    for n in range(500):
        entries.put(n, n, now=float(n))
    assert len(entries) < 80


def test_removed_queue_ids_leave_the_state() -> None:
    parser = LogParser(year=2026)
    for n in range(2000):
        queue_id = f"{n:011X}"
        parser.feed(
            f"Mar  3 10:00:00 mx postfix/qmgr[1]: {queue_id}: from=<a@b.c>, size=1, nrcpt=1 "
            "(queue active)",
            Origin("flood", n),
        )
        parser.feed(f"Mar  3 10:00:00 mx postfix/qmgr[1]: {queue_id}: removed", Origin("f", n))
    assert len(parser._state.queue) == 0


# -- account names ------------------------------------------------------------


def test_same_account() -> None:
    assert same_account("Alice@Example.com", "alice@example.com")
    assert same_account("alice", "alice@example.com")
    assert same_account(None, "bob")
    assert not same_account("alice@example.com", "alice@example.org")
    assert not same_account("alice", "bob@example.com")


# -- one attempt counts once -------------------------------------------------------

POSTFIX_FAILURE = (
    "Mar  3 10:00:{s:02d} mx postfix/submission/smtpd[5]: warning: unknown[192.0.2.7]: "
    "SASL PLAIN authentication failed: (reason unavailable), sasl_username=eve@example.com"
)
DOVECOT_FAILURE = (
    "Mar  3 10:00:{s:02d} mx dovecot: auth: passwd-file(eve@example.com,192.0.2.7): "
    "Password mismatch"
)


def test_dovecot_first_then_postfix_counts_once() -> None:
    events = feed(LogParser(year=2026), DOVECOT_FAILURE.format(s=1), POSTFIX_FAILURE.format(s=3))
    assert kinds(events[0]) == [("auth", "failure")]
    assert kinds(events[1]) == [("auth_echo", "failure")]
    assert events[0][0].protocol is None  # the auth process cannot tell who asked
    assert events[1][0].protocol == "smtp"


def test_postfix_first_then_dovecot_counts_once() -> None:
    events = feed(LogParser(year=2026), POSTFIX_FAILURE.format(s=1), DOVECOT_FAILURE.format(s=1))
    assert kinds(events[0]) == [("auth", "failure")]
    assert kinds(events[1]) == [("auth_echo", "failure")]
    assert events[1][0].protocol == "smtp"


def test_three_failures_by_both_daemons_are_three_attempts() -> None:
    lines = []
    for s in (1, 7, 13):
        lines += [DOVECOT_FAILURE.format(s=s), POSTFIX_FAILURE.format(s=s + 2)]
    events = feed(LogParser(year=2026), *lines)
    assert sum(1 for per_line in events for e in per_line if e.kind == "auth") == 3


def test_records_too_far_apart_are_separate_attempts() -> None:
    late = int(ECHO_WINDOW) + 5
    events = feed(
        LogParser(year=2026), DOVECOT_FAILURE.format(s=1), POSTFIX_FAILURE.format(s=1 + late)
    )
    assert kinds(events[1]) == [("auth", "failure")]


def test_a_different_account_is_a_different_attempt() -> None:
    other = POSTFIX_FAILURE.replace("eve@example.com", "mallory@example.com")
    events = feed(LogParser(year=2026), DOVECOT_FAILURE.format(s=1), other.format(s=2))
    assert kinds(events[1]) == [("auth", "failure")]


def test_imap_session_failures_never_pair_with_smtp() -> None:
    imap = (
        "Mar  3 10:00:01 mx dovecot: auth: passwd-file(eve@example.com,192.0.2.7,<S1>): "
        "Password mismatch"
    )
    events = feed(LogParser(year=2026), imap, POSTFIX_FAILURE.format(s=2))
    assert kinds(events[1]) == [("auth", "failure")]


def test_login_summary_echoes_the_passdb_lines_of_its_session() -> None:
    passdb = (
        "Mar  3 10:00:0{s} mx dovecot: auth: passwd-file(eve@x.test,192.0.2.7,<S1>): unknown user"
    )
    summary = (
        "Mar  3 10:00:09 mx dovecot: imap-login: Disconnected (auth failed, 3 attempts in 8 secs): "
        "user=<eve@x.test>, method=PLAIN, rip=192.0.2.7, lip=192.0.2.1, session=<S1>"
    )
    events = feed(LogParser(year=2026), passdb.format(s=1), passdb.format(s=4), summary)
    assert kinds(events[2]) == [("auth", "failure")]
    assert events[2][0].attempts == 1  # the one attempt the auth process did not log
    full = feed(
        LogParser(year=2026), passdb.format(s=1), passdb.format(s=4), passdb.format(s=7), summary
    )
    assert kinds(full[3]) == [("auth_echo", "failure")]
    assert full[3][0].attempts == 3


def test_summary_without_session_claims_sessionless_passdb_lines() -> None:
    passdb = "Mar  3 10:00:01 mx dovecot: auth-worker(9): pam(eve,192.0.2.7): unknown user"
    summary = (
        "Mar  3 10:00:03 mx dovecot: pop3-login: Aborted login (auth failed, 1 attempts): "
        "user=<eve>, method=PLAIN, rip=192.0.2.7, lip=192.0.2.1"
    )
    events = feed(LogParser(year=2026), passdb, summary)
    assert kinds(events[1]) == [("auth_echo", "failure")]


def test_failed_attempts_direct() -> None:
    attempts = FailedAttempts()
    assert attempts.record("192.0.2.1", "a", FailedAttempts.PAM, 0.0, False) == (True, frozenset())
    assert attempts.record("192.0.2.1", "a", FailedAttempts.DOVECOT, 1.0, True) == (
        False,
        frozenset({FailedAttempts.PAM}),
    )
    # each program contributes one record per attempt
    assert attempts.record("192.0.2.1", "a", FailedAttempts.PAM, 1.0, False)[0] is True


# -- Postfix sessions and queue ids ---------------------------------------------


SESSION = [
    "Mar  3 10:00:00 mx postfix/submission/smtpd[7]: connect from unknown[198.51.100.3]",
    "Mar  3 10:00:00 mx postfix/submission/smtpd[7]: Anonymous TLS connection established "
    "from unknown[198.51.100.3]: TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)",
    "Mar  3 10:00:01 mx postfix/submission/smtpd[7]: ABCDE12345: client=unknown[198.51.100.3], "
    "sasl_method=PLAIN, sasl_username=olivia@example.com",
    "Mar  3 10:00:01 mx postfix/submission/smtpd[7]: BCDEF23456: client=unknown[198.51.100.3], "
    "sasl_method=PLAIN, sasl_username=olivia@example.com",
    "Mar  3 10:00:01 mx postfix/qmgr[2]: ABCDE12345: from=<olivia@example.com>, size=10, nrcpt=1 "
    "(queue active)",
    "Mar  3 10:00:02 mx postfix/submission/smtpd[7]: disconnect from unknown[198.51.100.3] ehlo=2 "
    "starttls=1 auth=1 mail=2 rcpt=2 data=2 quit=1 commands=11",
    "Mar  3 10:00:03 mx postfix/smtp[8]: ABCDE12345: to=<x@example.net>, relay=none, delay=2, "
    "delays=1/0/1/0, dsn=4.4.1, status=deferred (connect to example.net[203.0.113.1]:25: "
    "Connection timed out)",
    "Mar  3 10:00:04 mx postfix/smtp[8]: BCDEF23456: to=<y@example.net>, relay=mx.example.net"
    "[203.0.113.2]:25, delay=3, delays=1/0/1/1, dsn=5.7.1, status=bounced (host mx.example.net"
    "[203.0.113.2] said: 550 5.7.1 rejected from [6.6.6.6] sasl_username=root (in reply to end "
    "of DATA command))",
]


# Two brute-force connections from one address at once (F6, from the bench log):
# smtps[32609] tries test@example.org with PLAIN (the account is logged), smtpd[32610]
# office@mail.example.com with LOGIN (no account logged).
F6_IP = "176.116.169.81"
F6_LINES = (
    f"Nov 27 11:47:10 mx postfix/smtps/smtpd[32609]: connect from unknown[{F6_IP}]",
    f"Nov 27 11:47:10 mx postfix/smtpd[32610]: connect from unknown[{F6_IP}]",
    f"Nov 27 11:47:16 mx dovecot: auth: passwd-file(test@example.org,{F6_IP}): Password mismatch",
    "Nov 27 11:47:16 mx dovecot: auth: passwd-file(office@mail.example.com,"
    f"{F6_IP}): Password mismatch",
    f"Nov 27 11:47:18 mx postfix/smtpd[32610]: warning: unknown[{F6_IP}]: "
    "SASL LOGIN authentication failed: UGFzc3dvcmQ6",
    f"Nov 27 11:47:18 mx postfix/smtps/smtpd[32609]: warning: unknown[{F6_IP}]: "
    "SASL PLAIN authentication failed: (reason unavailable), sasl_username=test@example.org",
)


def test_userless_postfix_line_leaves_the_named_line_its_record() -> None:
    results = feed(LogParser(year=2026), *F6_LINES)
    failures = [e for events in results for e in events if e.outcome == "failure"]
    assert [(e.source, e.kind) for e in failures] == [
        ("dovecot", "auth"),
        ("dovecot", "auth"),
        ("postfix", "auth_echo"),
        ("postfix", "auth_echo"),
    ]


def test_named_line_first_then_userless_line_still_counts_two() -> None:
    connects, passdb, (userless, named) = F6_LINES[:2], F6_LINES[2:4], F6_LINES[4:]
    results = feed(LogParser(year=2026), *connects, *passdb, named, userless)
    counted = [e for events in results for e in events if e.kind == "auth"]
    assert [e.source for e in counted] == ["dovecot", "dovecot"]


def test_a_third_postfix_line_is_still_a_new_attempt() -> None:
    """Moving a guess never makes two Postfix lines share one Dovecot record."""
    extra = (
        f"Nov 27 11:47:19 mx postfix/smtpd[32610]: warning: unknown[{F6_IP}]: "
        "SASL LOGIN authentication failed: UGFzc3dvcmQ6"
    )
    results = feed(LogParser(year=2026), *F6_LINES, extra)
    counted = [e for events in results for e in events if e.kind == "auth"]
    assert [e.source for e in counted] == ["dovecot", "dovecot", "postfix"]


def test_userless_line_prefers_the_account_its_connection_named() -> None:
    attempts = FailedAttempts()
    ip = "192.0.2.9"
    assert attempts.record(ip, "b@x", FailedAttempts.DOVECOT, 0.0, False)[0]
    assert attempts.record(ip, "a@x", FailedAttempts.DOVECOT, 0.0, False)[0]
    canonical, earlier = attempts.record(
        ip, None, FailedAttempts.SMTPD, 1.0, False, session_user="a@x"
    )
    assert (canonical, earlier) == (False, frozenset({FailedAttempts.DOVECOT}))
    # b@x's record is still free (a summary could claim it); a@x's is paired
    assert attempts.claim_for_summary(ip, "b@x", 0.0, 1.0, 5) == 1
    assert attempts.claim_for_summary(ip, "a@x", 0.0, 1.0, 5) == 0


def test_userless_line_without_a_hint_takes_the_oldest_record() -> None:
    attempts = FailedAttempts()
    ip = "192.0.2.9"
    attempts.record(ip, "b@x", FailedAttempts.DOVECOT, 0.0, False)
    attempts.record(ip, "a@x", FailedAttempts.DOVECOT, 0.0, False)
    assert attempts.record(ip, None, FailedAttempts.SMTPD, 1.0, False)[0] is False
    assert attempts.claim_for_summary(ip, "b@x", 0.0, 1.0, 5) == 0
    assert attempts.claim_for_summary(ip, "a@x", 0.0, 1.0, 5) == 1


def test_session_remembers_the_account_of_its_named_failures() -> None:
    ip = "192.0.2.11"
    parser = LogParser(year=2026)
    feed(
        parser,
        f"Nov 27 11:00:00 mx postfix/smtpd[1]: connect from unknown[{ip}]",
        f"Nov 27 11:00:01 mx dovecot: auth: passwd-file(a@x,{ip}): Password mismatch",
        f"Nov 27 11:00:02 mx postfix/smtpd[1]: warning: unknown[{ip}]: "
        "SASL PLAIN authentication failed: (reason unavailable), sasl_username=a@x",
        f"Nov 27 11:00:03 mx dovecot: auth: passwd-file(b@x,{ip}): Password mismatch",
        f"Nov 27 11:00:03 mx dovecot: auth: passwd-file(a@x,{ip}): Password mismatch",
        f"Nov 27 11:00:04 mx postfix/smtpd[1]: warning: unknown[{ip}]: "
        "SASL LOGIN authentication failed: UGFzc3dvcmQ6",
    )
    # the user-less line of connection 1 paired with a@x; b@x's record is free
    summary = (
        "Nov 27 11:00:05 mx dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 "
        f"secs): user=<b@x>, method=PLAIN, rip={ip}, lip=192.0.2.1, session=<S9>"
    )
    [event] = feed(parser, summary)[0]
    assert (event.kind, event.attempts) == ("auth_echo", 1)


def test_one_auth_success_per_session_with_its_tls_version() -> None:
    events = feed(LogParser(year=2026), *SESSION)
    successes = [e for per_line in events for e in per_line if e.kind == "auth"]
    assert [(e.user, e.client_ip, e.tls, e.mech) for e in successes] == [
        ("olivia@example.com", "198.51.100.3", "TLSv1.2", "PLAIN")
    ]
    submissions = [e for per_line in events for e in per_line if e.kind == "submission"]
    assert [e.tls for e in submissions] == ["TLSv1.2", "TLSv1.2"]


def test_deliveries_and_bounces_carry_the_submitting_account() -> None:
    events = feed(LogParser(year=2026), *SESSION)
    deferred, bounced = events[6][0], events[7][0]
    assert (deferred.status, deferred.user, deferred.client_ip, deferred.sender) == (
        "deferred",
        "olivia@example.com",
        "198.51.100.3",
        "olivia@example.com",
    )
    # the remote reply mentions [6.6.6.6] and sasl_username=root: data, not fields
    assert (bounced.status, bounced.user, bounced.client_ip, bounced.recipient) == (
        "bounced",
        "olivia@example.com",
        "198.51.100.3",
        "y@example.net",
    )


def test_a_new_session_on_the_same_pid_starts_clean() -> None:
    parser = LogParser(year=2026)
    feed(parser, *SESSION[:6])
    events = feed(
        parser,
        "Mar  3 10:01:00 mx postfix/submission/smtpd[7]: connect from unknown[198.51.100.4]",
        "Mar  3 10:01:01 mx postfix/submission/smtpd[7]: warning: unknown[198.51.100.4]: "
        "SASL LOGIN authentication failed: UGFzc3dvcmQ6",
    )
    failure = events[1][0]
    assert (failure.kind, failure.user, failure.client_ip, failure.tls) == (
        "auth",
        None,
        "198.51.100.4",
        "none",
    )


def test_hold_before_the_queue_id_marks_the_submission() -> None:
    events = feed(
        LogParser(year=2026),
        "Mar  3 10:00:00 mx postfix/submission/smtpd[7]: connect from unknown[198.51.100.5]",
        "Mar  3 10:00:01 mx postfix/submission/smtpd[7]: NOQUEUE: hold: RCPT from "
        "unknown[198.51.100.5]: <r@example.net>: Recipient address under review; "
        "from=<p@example.com> to=<r@example.net> proto=ESMTP helo=<client>",
        "Mar  3 10:00:01 mx postfix/submission/smtpd[7]: CDEFA34567: client=unknown[198.51.100.5],"
        " sasl_method=PLAIN, sasl_username=p@example.com",
    )
    assert events[1][0].kind == "hold"
    submission = events[2][-1]
    assert (submission.kind, submission.detail) == ("submission", "held by policy")
