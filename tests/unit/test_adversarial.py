"""Log injection: attacker-controlled text must never choose the client IP or the account.

In the style of fail2ban's CVEs (CVE-2006-6302: a login name holding an IP
string; CVE-2013-7176: a crafted e-mail address in the Postfix filter;
CVE-2013-7177: a crafted reverse-DNS name). For every real line shape we
parse, each attacker-controlled field (user name, HELO, rDNS name,
sasl_username value, sender and recipient, reason text) is filled with text
that imitates the fields around it: ``rip=6.6.6.6``, ``rhost=6.6.6.6``,
``[6.6.6.6]``, ``from 6.6.6.6``, ``unknown[6.6.6.6]``, ``sasl_username=root@victim``,
``user=<victim>``, a CR/LF followed by a forged second log line, a 10 KB name,
Unicode look-alikes. Whatever the line says there, every event must carry the
client IP and the user of the fixed positions, or null, and the real attempt
must still be seen (an attacker who can hide a failure evades detection).

The shapes and what each field can hold are in docs/parsers.md.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from models.events import Event, Origin
from parsers.api import LogParser

ATTACKER_IP = "6.6.6.6"
VICTIM = "root@victim.example"
REAL_IP = "192.0.2.10"
REAL_IPV6 = "2001:db8::10"
STAMP = "Nov 27 05:43:09"
FORGED_LINE = (
    f"{STAMP} mail postfix/smtpd[999]: warning: unknown[{ATTACKER_IP}]: "
    f"SASL LOGIN authentication failed: authentication failure, sasl_username={VICTIM}"
)
FORGED_DOVECOT = (
    f"{STAMP} imap-login: Info: Disconnected (auth failed, 1 attempts in 2 secs): "
    f"user=<{VICTIM}>, method=PLAIN, rip={ATTACKER_IP}, lip=192.0.2.1, session=<forged>"
)

# What an attacker puts in a field they control, by name. The same list goes into
# every field of every shape.
INJECTIONS: dict[str, str] = {
    "rip": f"x, rip={ATTACKER_IP}, lip=192.0.2.1",
    "rhost": f"x rhost={ATTACKER_IP}",
    "brackets": f"[{ATTACKER_IP}]",
    "unknown-brackets": f"unknown[{ATTACKER_IP}]",
    "from-ip": f"admin from {ATTACKER_IP}",
    "from-ip-dot": f"admin from {ATTACKER_IP}.",
    "postfix-warning": f"unknown[{ATTACKER_IP}]: SASL LOGIN authentication failed: x",
    "noqueue": f"x RCPT from unknown[{ATTACKER_IP}]: 554 5.7.1 <x>: Relay access denied",
    "sasl-username": f"x, sasl_username={VICTIM}",
    "dovecot-user": f"x>, method=PLAIN, rip={ATTACKER_IP}, lip=192.0.2.1, user=<{VICTIM}",
    "passdb-comma": f"{VICTIM},{ATTACKER_IP}",
    "passdb-paren": f"{VICTIM},{ATTACKER_IP}): Password mismatch (",
    "lf-forged-line": "x\n" + FORGED_LINE,
    "cr-forged-line": "x\r" + FORGED_LINE,
    "crlf-forged-dovecot": "x\r\n" + FORGED_DOVECOT,
    "rsyslog-escaped-lf": "x#012" + FORGED_LINE,
    "numeric-rdns": ATTACKER_IP,
    "rdns-with-ip": f"{ATTACKER_IP}.rip.{ATTACKER_IP}.example",
    "ten-kb": "A" * 10240,
    "ten-kb-then-ip": "A" * 10240 + f" rip={ATTACKER_IP} rhost={ATTACKER_IP} [{ATTACKER_IP}]",
    "fullwidth-digits": "rip=６.６.６.６ rhost=６.６.６.６ [６.６.６.６]",
    "cyrillic-root": "rооt@victim.example",  # the two o are U+043E
    "fullwidth-root": "ｒｏｏｔ@victim.example",
    "nul": "x\x00" + FORGED_LINE,
}


@dataclass(frozen=True, slots=True)
class Shape:
    """A real line shape with one attacker-controlled field left open.

    ``field`` names what the open field is: ``user`` (the line's user position),
    ``rdns``, ``helo``, ``address`` (sender or recipient), ``header`` (an HTTP
    request header the webmail logs) or ``reason``.
    ``expect`` is what the line must still produce: ``auth_failure``,
    ``auth_success``, ``reject`` or ``event`` (anything with the client IP).
    """

    name: str
    field: str
    build: Callable[[str], str]
    expect: str
    client_ip: str | None = REAL_IP
    # The line another program writes for the same attempt (the login summary
    # for a passdb line): a crafted line may be dead-lettered when it cannot be
    # read unambiguously, as long as the attempt is then counted from the partner.
    partner: Callable[[str], str] | None = None
    fixed_user: str | None = None  # the line's user when the open field is something else


def _sasl_failure(user: str) -> str:
    return (
        f"{STAMP} mail postfix/submission/smtpd[17022]: warning: unknown[{REAL_IP}]: "
        f"SASL PLAIN authentication failed: (reason unavailable), sasl_username={user}"
    )


def _sasl_failure_rdns(rdns: str) -> str:
    return (
        f"{STAMP} mail postfix/smtpd[17022]: warning: {rdns}[{REAL_IP}]: "
        "SASL LOGIN authentication failed: authentication failure"
    )


def _noqueue(field: str, where: str) -> str:
    helo = field if where == "helo" else "client.example"
    sender = field if where == "sender" else "someone@example.org"
    rcpt = field if where == "rcpt" else "victim@example.net"
    rdns = field if where == "rdns" else "client.example"
    return (
        f"{STAMP} mail postfix/smtpd[17018]: NOQUEUE: reject: RCPT from {rdns}[{REAL_IP}]: "
        f"554 5.7.1 <{rcpt}>: Relay access denied; from=<{sender}> to=<{rcpt}> "
        f"proto=ESMTP helo=<{helo}>"
    )


def _connect(rdns: str) -> str:
    return f"{STAMP} mail postfix/smtpd[17018]: connect from {rdns}[{REAL_IP}]"


def _disconnect(rdns: str) -> str:
    return (
        f"{STAMP} mail postfix/smtpd[17018]: disconnect from {rdns}[{REAL_IP}] "
        "ehlo=1 auth=0/1 quit=1 commands=2/3"
    )


def _client_sasl(user: str) -> str:
    return (
        f"{STAMP} mail postfix/submission/smtpd[17022]: 1F0E22121C7: "
        f"client=unknown[{REAL_IP}], sasl_method=PLAIN, sasl_username={user}"
    )


def _no_resolve(rdns: str) -> str:
    return (
        f"{STAMP} mail postfix/smtpd[17018]: warning: hostname {rdns} does not resolve "
        f"to address {REAL_IP}: Name or service not known"
    )


def _dovecot_login(user: str) -> str:
    return (
        f"{STAMP} imap-login: Info: Login: user=<{user}>, method=PLAIN, rip={REAL_IP}, "
        "lip=192.0.2.1, mpid=17745, TLS, session=<sKHnjTthy79/AAAp>"
    )


def _dovecot_aborted(user: str) -> str:
    return (
        f"{STAMP} imap-login: Info: Disconnected: Aborted login by logging out "
        f"(auth failed, 1 attempts in 2 secs): user=<{user}>, method=PLAIN, rip={REAL_IP}, "
        "lip=192.0.2.1, session=<G8xYjjth2eB/AAAz>"
    )


def _dovecot_syslog_aborted(user: str) -> str:
    return (
        f"{STAMP} mail dovecot: pop3-login: Aborted login (auth failed, 1 attempts in 17 secs): "
        f"user=<{user}>, method=PLAIN, rip={REAL_IP}, lip=192.0.2.1, session=<YADINsQCDs5BH8Pg>"
    )


def _dovecot_reason(reason: str) -> str:
    return (
        f"{STAMP} imap-login: Info: Disconnected: {reason} (no auth attempts in 0 secs): "
        f"user=<>, rip={REAL_IP}, lip=192.0.2.1, session=<VhbwhzthBqN/AAAB>"
    )


def _passdb(user: str) -> str:
    return (
        f"{STAMP} auth: Info: passwd-file({user},{REAL_IP},<G8xYjjth2eB/AAAz>): Password mismatch"
    )


def _passdb_no_session(user: str) -> str:
    return f"{STAMP} auth: Info: passwd-file({user},{REAL_IP}): unknown user"


def _auth_worker_pam(user: str) -> str:
    return (
        f"{STAMP} mail dovecot: auth-worker(304): pam({user},{REAL_IP}): "
        "pam_authenticate() failed: Authentication failure (password mismatch?)"
    )


def _dovecot24(user: str) -> str:
    return (
        f"{STAMP} auth({user},{REAL_IP},sasl:login)<CvN+E95Uf4e7eEnj>: Info: sql: Password mismatch"
    )


def _dovecot24_summary(user: str) -> str:
    return (
        f"{STAMP} imap-login: Info: Login aborted: Connection closed (auth failed, 1 attempts "
        f"in 2 secs) (auth_failed): user=<{user}>, method=PLAIN, rip={REAL_IP}, lip=192.0.2.1, "
        "TLS, session=<CvN+E95Uf4e7eEnj>"
    )


def _pam_unix_ruser(user: str) -> str:
    return (
        f"{STAMP} mail dovecot-auth: pam_unix(dovecot:auth): authentication failure; logname= "
        f"uid=0 euid=0 tty=dovecot ruser={user} rhost={REAL_IP}"
    )


def _pam_unix_both(user: str) -> str:
    # Dovecot sets PAM_RUSER and PAM_USER to the same login name.
    return (
        f"{STAMP} mail auth: pam_unix(dovecot:auth): authentication failure; logname= uid=0 "
        f"euid=0 tty=dovecot ruser={user} rhost={REAL_IP}  user={user}"
    )


def _saslauthd(user: str) -> str:
    return (
        f"{STAMP} mail saslauthd[1234]: do_auth         : auth failure: [user={user}] "
        "[service=smtp] [realm=example.org] [mech=pam] [reason=PAM auth error]"
    )


def _roundcube_imap(user: str) -> str:
    return (
        f"{STAMP} mail roundcube: IMAP Error: Login failed for {user} from {REAL_IP}. "
        "AUTHENTICATE PLAIN: Authentication failed. in /usr/share/roundcube/program/lib/"
        "Roundcube/rcube_imap.php on line 200 (POST /?_task=login&_action=login)"
    )


def _roundcube_userlogins(user: str) -> str:
    return (
        f"[27-Nov-2026 05:43:09 +0000]: <3z506z6r> Failed login for {user} from {REAL_IP} "
        "in session 1z506z6rvddstv6k7jz08hxo27 (error: 0)"
    )


def _roundcube_forwarded(header: str) -> str:
    # X-Real-IP / X-Forwarded-For are request headers: the client writes them.
    return (
        f"[27-Nov-2026 05:43:09 +0000]: <j2pncet8> IMAP Error: Login failed for admin@example.org "
        f"from {REAL_IP}(X-Real-IP: {header},X-Forwarded-For: {header}). AUTHENTICATE PLAIN: "
        "Authentication failed. in /usr/share/roundcubemail/program/lib/Roundcube/rcube_imap.php "
        "on line 197 (POST /?_task=login&_action=login)"
    )


def _sasl_failure_v6(user: str) -> str:
    return (
        f"{STAMP} mail postfix/smtps/smtpd[17025]: warning: unknown[{REAL_IPV6}]: "
        f"SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username={user}"
    )


SHAPES: tuple[Shape, ...] = (
    Shape("postfix-sasl-failure.user", "user", _sasl_failure, "auth_failure"),
    Shape("postfix-sasl-failure-ipv6.user", "user", _sasl_failure_v6, "auth_failure", REAL_IPV6),
    Shape("postfix-sasl-failure.rdns", "rdns", _sasl_failure_rdns, "auth_failure"),
    Shape("postfix-noqueue.helo", "helo", lambda f: _noqueue(f, "helo"), "reject"),
    Shape("postfix-noqueue.sender", "address", lambda f: _noqueue(f, "sender"), "reject"),
    Shape("postfix-noqueue.rcpt", "address", lambda f: _noqueue(f, "rcpt"), "reject"),
    Shape("postfix-noqueue.rdns", "rdns", lambda f: _noqueue(f, "rdns"), "reject"),
    Shape("postfix-connect.rdns", "rdns", _connect, "event"),
    Shape("postfix-disconnect.rdns", "rdns", _disconnect, "event"),
    Shape("postfix-client-sasl.user", "user", _client_sasl, "event"),
    Shape("postfix-no-resolve.rdns", "rdns", _no_resolve, "event"),
    Shape("dovecot-login.user", "user", _dovecot_login, "auth_success"),
    Shape("dovecot-aborted.user", "user", _dovecot_aborted, "auth_failure"),
    Shape("dovecot-syslog-aborted.user", "user", _dovecot_syslog_aborted, "auth_failure"),
    Shape("dovecot-disconnect.reason", "reason", _dovecot_reason, "event"),
    Shape("dovecot-passdb.user", "user", _passdb, "auth_failure", partner=_dovecot_aborted),
    Shape(
        "dovecot-passdb-smtp.user",
        "user",
        _passdb_no_session,
        "auth_failure",
        partner=_sasl_failure,
    ),
    Shape(
        "dovecot-auth-worker-pam.user",
        "user",
        _auth_worker_pam,
        "auth_failure",
        partner=_dovecot_syslog_aborted,
    ),
    Shape("dovecot-2.4-auth.user", "user", _dovecot24, "auth_failure", partner=_dovecot24_summary),
    Shape("pam-unix-ruser.user", "user", _pam_unix_ruser, "auth_failure"),
    Shape("pam-unix-ruser-and-user.user", "user", _pam_unix_both, "auth_failure"),
    Shape("saslauthd.user", "user", _saslauthd, "auth_failure", client_ip=None),
    Shape("roundcube-imap-error.user", "user", _roundcube_imap, "auth_failure"),
    Shape("roundcube-userlogins.user", "user", _roundcube_userlogins, "auth_failure"),
    Shape(
        "roundcube-forwarded-for.header",
        "header",
        _roundcube_forwarded,
        "auth_failure",
        fixed_user="admin@example.org",
    ),
)


@dataclass(frozen=True, slots=True)
class Case:
    shape: Shape
    injection: str
    value: str

    @property
    def line(self) -> str:
        return self.shape.build(self.value)

    @property
    def user(self) -> str | None:
        """The user of the line's fixed user position."""
        return self.value if self.shape.field == "user" else self.shape.fixed_user

    @property
    def loggable(self) -> bool:
        """Could the daemon write this value into this field?

        Postfix and Dovecot replace control characters before logging, and
        Postfix logs an rDNS name only when it is a valid host name (else
        ``unknown``); Dovecot writes its own reason texts. Lines that cannot
        occur must still never blame another IP or account, but need not be
        understood.
        """
        if not self.value.isprintable() or self.shape.field == "reason":
            return False
        if self.shape.field == "rdns":
            return HOSTNAME.fullmatch(self.value) is not None
        return True

    @property
    def unambiguous(self) -> bool:
        """Does the line still have one reading that the fixed positions decide?

        An rDNS name is one token in Postfix lines (it is validated, so it has
        no spaces): with a space in it, the injected text can form a complete
        line of its own, indistinguishable from a real one from another client.
        Every other field either follows the fixed client position or is
        delimited so that the fixed positions still decide.
        """
        return not (self.shape.field == "rdns" and any(c.isspace() for c in self.value))


HOSTNAME = re.compile(r"[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*")

CASES = [Case(shape, name, value) for shape in SHAPES for name, value in INJECTIONS.items()]
UNAMBIGUOUS_CASES = [case for case in CASES if case.unambiguous]
LOGGABLE_CASES = [case for case in CASES if case.loggable]


def parse(line: str) -> list[Event]:
    parser = LogParser(host=None, timezone="UTC", year=2026)
    result = parser.feed(line, Origin(path="adversarial.log", line=1))
    held = sum((bool(result.events), result.ignored is not None, result.error is not None))
    assert held == 1, f"exactly one of events/ignored/error, got {result!r}"
    return list(result.events)


def describe(events: list[Event]) -> str:
    return (
        "; ".join(
            f"{e.kind} {e.outcome} user={e.user!r:.60} client_ip={e.client_ip}" for e in events
        )
        or "no events"
    )


@pytest.mark.parametrize("case", UNAMBIGUOUS_CASES, ids=lambda c: f"{c.shape.name}={c.injection}")
def test_injected_text_never_chooses_the_ip(case: Case) -> None:
    events = parse(case.line)
    for event in events:
        assert event.client_ip in (case.shape.client_ip, None), describe(events)
        if event.client_ip is not None:
            # canonical ASCII form: never a look-alike read with \d or int()
            assert str(ipaddress.ip_address(event.client_ip)) == event.client_ip


@pytest.mark.parametrize("case", UNAMBIGUOUS_CASES, ids=lambda c: f"{c.shape.name}={c.injection}")
def test_injected_text_never_chooses_the_account(case: Case) -> None:
    events = parse(case.line)
    # A carriage return may be shown as "?", as Postfix and Dovecot show control characters.
    allowed = {case.user, None} | ({case.user.replace("\r", "?")} if case.user else set())
    for event in events:
        assert event.user != VICTIM, describe(events)
        assert event.user in allowed, describe(events)


@pytest.mark.parametrize("case", LOGGABLE_CASES, ids=lambda c: f"{c.shape.name}={c.injection}")
def test_the_real_attempt_is_still_seen(case: Case) -> None:
    """Crafting the field must not hide the client from detection (evasion)."""
    events = parse(case.line)
    expect = case.shape.expect
    client_ip = case.shape.client_ip
    if expect == "auth_failure" and case.shape.partner is not None:
        assert_counted_once_with_partner(case)
    elif expect == "auth_failure":
        found = [e for e in failures(events) if e.client_ip == client_ip]
        assert found, f"no auth failure from {client_ip}: {describe(events)}"
        if case.user is not None:
            assert any(e.user == case.user for e in found), describe(events)
    elif expect == "auth_success":
        assert any(
            e.kind == "auth" and e.outcome == "success" and e.client_ip == client_ip for e in events
        ), describe(events)
    elif expect == "reject":
        assert any(e.kind == "reject" and e.client_ip == client_ip for e in events), describe(
            events
        )
        assert not any(e.kind == "auth" for e in events), "a reject is not an authentication"
    else:
        assert any(e.client_ip == client_ip for e in events), describe(events)


def failures(events: list[Event]) -> list[Event]:
    return [e for e in events if e.kind in ("auth", "auth_echo") and e.outcome == "failure"]


def assert_counted_once_with_partner(case: Case) -> None:
    """The line is read or dead-lettered (never ignored); with its partner, one attempt."""
    assert case.shape.partner is not None
    parser = LogParser(host=None, timezone="UTC", year=2026)
    first = parser.feed(case.line, Origin(path="adversarial.log", line=1))
    assert first.ignored is None, f"a crafted auth line must not pass as housekeeping: {first!r}"
    if first.events:
        assert any(e.client_ip == case.shape.client_ip for e in failures(first.events))
    second = parser.feed(case.shape.partner(case.value), Origin(path="adversarial.log", line=2))
    counted = [e for e in first.events + second.events if e.kind == "auth"]
    assert len(counted) == 1, describe(first.events + second.events)
    assert counted[0].outcome == "failure"
    assert counted[0].client_ip == case.shape.client_ip
    assert counted[0].user == case.user


FORGED_SPLITS = [
    pytest.param(_sasl_failure("x") + "\n" + FORGED_LINE, id="postfix-then-forged-postfix"),
    pytest.param(_dovecot_aborted("x") + "\r\n" + FORGED_DOVECOT, id="dovecot-then-forged"),
    pytest.param(_passdb("x") + "\r" + FORGED_LINE, id="passdb-cr-forged-postfix"),
]


@pytest.mark.parametrize("raw", FORGED_SPLITS)
def test_embedded_line_break_adds_no_attempt_for_another_ip(raw: str) -> None:
    """One feed() call holding a line break: at most the real line's events come out."""
    events = parse(raw)
    assert not [e for e in events if e.client_ip == ATTACKER_IP], describe(events)
    assert not [e for e in events if e.user == VICTIM], describe(events)
    counted = [e for e in events if e.kind == "auth" and e.outcome == "failure"]
    assert len(counted) <= 1, describe(events)


@pytest.mark.parametrize(
    ("line", "real_ip"),
    [
        pytest.param(
            f"{STAMP} mail postfix/smtpd[1]: warning: unknown[６.６.６.６]: "
            "SASL LOGIN authentication failed: authentication failure",
            None,
            id="postfix-fullwidth-ip-in-fixed-position",
        ),
        pytest.param(
            f"{STAMP} imap-login: Info: Disconnected (auth failed, 1 attempts in 2 secs): "
            "user=<x>, method=PLAIN, rip=６.６.６.６, lip=192.0.2.1, session=<s>",
            None,
            id="dovecot-fullwidth-rip",
        ),
        pytest.param(
            f"{STAMP} auth: Info: passwd-file(x,٦.٦.٦.٦): Password mismatch",
            None,
            id="passdb-arabic-indic-digits",
        ),
        pytest.param(
            f"{STAMP} mail postfix/smtpd[1]: warning: unknown[::ffff:{ATTACKER_IP}x]: "
            "SASL LOGIN authentication failed: authentication failure",
            None,
            id="postfix-mapped-ipv6-with-garbage",
        ),
    ],
)
def test_look_alike_addresses_in_the_fixed_position_are_not_addresses(
    line: str, real_ip: str | None
) -> None:
    """A fixed position holding something that only looks like an IP yields no IP."""
    events = parse(line)
    assert all(e.client_ip == real_ip for e in events), describe(events)


def test_user_names_are_kept_verbatim_not_normalised() -> None:
    """NFKC would turn ｒｏｏｔ into root and blame another account."""
    for look_alike in ("ｒｏｏｔ", "rооt", "ROOT"):
        events = parse(_sasl_failure(look_alike))
        users = {e.user for e in events if e.kind in ("auth", "auth_echo")}
        assert users == {look_alike}, describe(events)
