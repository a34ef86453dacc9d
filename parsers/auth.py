"""Authentication back ends and webmail: PAM, Cyrus saslauthd, Roundcube.

- PAM ``pam_unix(<service>:auth): authentication failure; logname= uid= euid=
  tty= ruser=<r> rhost=<h>  user=<u>``, from any service (``service`` names
  it; ``protocol`` is set for the mail ones: a brute force on sshd is still an
  attack from that address). ``ruser`` and ``user`` are client words: the
  address is the ``rhost=`` field that the fixed layout puts last before the
  optional ``user=``, and a host name there gives no address at all.
  PAM failures join the same attempt bookkeeping as Postfix and Dovecot, so a
  PAM line and Dovecot's ``pam(user,ip): pam_authenticate() failed`` count once.
- Cyrus imapd/pop3d/timsieved ``badlogin: host [ip] MECH [SASL(-13): reason]``
  (``plaintext`` logins add the user name after the mechanism).
- saslauthd ``do_auth : auth failure: [user=u] [service=smtp] ...`` carries no
  address; the client's daemon (Postfix, imapd) logs the attempt with one, so
  this line is always ``auth_echo``.
- Roundcube ``IMAP Error: Login failed for <user> [against <host>] from <ip>.
  <server reply>``, ``FAILED login for <user> from <ip>``, ``Failed login for
  <user> from <ip> in session <id>`` and ``Successful login for <user> (ID: n)
  from <ip> in session <id>``. The user comes first and the IMAP server's
  reply (which may echo it) last, so the address is the ``from <ip>`` followed
  by the end, ``(X-Forwarded-For...``, `` in session`` or ``. `` and a reply;
  if several fit, the line is an error.
"""

from __future__ import annotations

import re
from typing import Final

from models.events import Outcome
from parsers.correlation import FailedAttempts, HostState
from parsers.fields import normalize_ip
from parsers.result import LineContext, ParseResult, failed, ignored, new_event

PAM_MAIL_SERVICES: Final = {
    "dovecot": None,
    "smtp": "smtp",
    "smtpd": "smtp",
    "submission": "smtp",
    "imap": "imap",
    "imaps": "imap",
    "pop": "pop3",
    "pop3": "pop3",
    "pop3s": "pop3",
    "sieve": "sieve",
    "managesieve": "sieve",
}
# Services that set PAM_RUSER to the client's login name, as they set PAM_USER.
_CLIENT_RUSER_SERVICES: Final = frozenset(
    {*PAM_MAIL_SERVICES, "vsftpd", "proftpd", "pure-ftpd", "ftp", "ftpd"}
)
_SPACES: Final = re.compile(" *")
_CYRUS_PROTOCOLS: Final = {
    "imap": "imap",
    "imaps": "imap",
    "imapd": "imap",
    "pop3": "pop3",
    "pop3s": "pop3",
    "pop3d": "pop3",
    "sieve": "sieve",
    "timsieved": "sieve",
}
_ROUNDCUBE_LOGINS: Final[tuple[tuple[str, Outcome], ...]] = (
    ("IMAP Error: Login failed for ", "failure"),
    ("FAILED login for ", "failure"),
    ("Failed login for ", "failure"),
    ("Successful login for ", "success"),
)
_IMAP_REPLY_STARTS: Final = (
    "AUTHENTICATE ",
    "LOGIN",
    "Login",
    "Authentication",
    "Could not",
    "Empty startup greeting",
    "Unable",
    "NO ",
    "A0",
)


def is_pam_message(message: str) -> bool:
    return message.startswith(("pam_unix(", "pam_unix:", "(pam_unix)"))


def is_cyrus_badlogin(message: str) -> bool:
    return message.startswith("badlogin: ")


class AuthLogParser:
    """PAM, saslauthd and Roundcube lines of one host."""

    def __init__(self, state: HostState) -> None:
        self._state = state

    # -- PAM -----------------------------------------------------------------

    def pam(self, ctx: LineContext) -> ParseResult:
        message = ctx.message
        service = _pam_service(message, ctx.program)
        marker = message.find("authentication failure; ")
        if marker < 0:
            return ignored("pam_other")
        fields = message[marker + 24 :]
        rhost, user = pam_rhost_and_user(fields, service)
        ip = normalize_ip(rhost) if rhost else None
        canonical = True
        if ip is not None:
            canonical, _earlier = self._state.failures.record(
                ip, user, FailedAttempts.PAM, ctx.epoch, in_login_session=False
            )
        return ParseResult(
            [
                new_event(
                    ctx,
                    "pam",
                    "auth" if canonical else "auth_echo",
                    outcome="failure",
                    protocol=PAM_MAIL_SERVICES.get(service or ""),
                    user=user,
                    client_ip=ip,
                    service=service,
                    reason="authentication failure",
                    extra={"rhost": rhost} if rhost and ip is None else {},
                )
            ]
        )

    # -- saslauthd -------------------------------------------------------------

    def saslauthd(self, ctx: LineContext) -> ParseResult:
        message = ctx.message
        if is_pam_message(message):
            return self.pam(ctx)
        marker = message.find(": auth failure: ")
        if marker < 0:
            return ignored("saslauthd_other")
        fields = message[marker + 16 :]
        user = _bracketed(fields, "[user=", "] [service=")
        service = _bracketed(fields, "[service=", "]")
        reason = _bracketed(fields, "[reason=", "]")
        return ParseResult(
            [
                new_event(
                    ctx,
                    "saslauthd",
                    "auth_echo",
                    outcome="failure",
                    protocol=PAM_MAIL_SERVICES.get(service or ""),
                    user=user or None,
                    service=service,
                    reason=reason,
                    detail="saslauthd logs no client address; the client daemon's line counts",
                )
            ]
        )

    # -- Cyrus ---------------------------------------------------------------------

    def cyrus(self, ctx: LineContext) -> ParseResult:
        text = ctx.message[10:]  # after "badlogin: "
        open_bracket = text.find("[")
        close = text.find("]", open_bracket + 1)
        if open_bracket < 0 or close < 0 or " " in text[:open_bracket].strip():
            return failed("cyrus badlogin without host [address]")
        ip = normalize_ip(text[open_bracket + 1 : close])
        if ip is None:
            return failed("cyrus badlogin with an invalid address")
        mech, _, rest = text[close + 1 :].strip().partition(" ")
        user = None
        if mech == "plaintext":
            user, _, rest = rest.partition(" ")
        process = ctx.program.rpartition("/")[2]
        canonical, _earlier = self._state.failures.record(
            ip, user, FailedAttempts.CYRUS, ctx.epoch, in_login_session=False
        )
        return ParseResult(
            [
                new_event(
                    ctx,
                    "cyrus",
                    "auth" if canonical else "auth_echo",
                    outcome="failure",
                    protocol=_CYRUS_PROTOCOLS.get(process),
                    user=user or None,
                    client_ip=ip,
                    mech=mech.upper() or None,
                    service=process,
                    reason=rest.strip("[] ") or None,
                )
            ]
        )

    # -- Roundcube -------------------------------------------------------------

    def roundcube(self, ctx: LineContext) -> ParseResult:
        text = ctx.message
        if text.startswith("<"):
            # "<sessid> IMAP Error: ..."
            text = text[text.find("> ") + 2 :] if "> " in text[:40] else text
        for prefix, outcome in _ROUNDCUBE_LOGINS:
            if text.startswith(prefix):
                return self._roundcube_login(text[len(prefix) :], outcome, ctx)
        return ignored("roundcube_other")

    def _roundcube_login(self, text: str, outcome: Outcome, ctx: LineContext) -> ParseResult:
        candidates = _roundcube_addresses(text)
        if len(candidates) != 1:
            reason = "no client address" if not candidates else "ambiguous client address"
            return failed(f"roundcube login line with {reason}")
        from_at, ip = candidates[0]
        user = text[:from_at]
        against = user.find(" against ")
        if against >= 0:
            user = user[:against]
        if outcome == "success":
            user = user.partition(" (ID: ")[0]
        return ParseResult(
            [
                new_event(
                    ctx,
                    "roundcube",
                    "auth",
                    outcome=outcome,
                    protocol="webmail",
                    user=user or None,
                    client_ip=ip,
                )
            ]
        )


def _pam_service(message: str, program: str) -> str | None:
    """``pam_unix(dovecot:auth)`` -> ``dovecot``; ``(pam_unix)`` -> the program."""
    if message.startswith("pam_unix("):
        close = message.find(")")
        return message[9:close].partition(":")[0] if close > 0 else None
    return program or None


def pam_rhost_and_user(fields: str, service: str | None) -> tuple[str | None, str | None]:
    """Read ``rhost`` and ``user`` (falling back to ``ruser``) from pam_unix's field list.

    pam_unix writes ``... ruser=R rhost=H  user=U``, or ``ruser=R rhost=H`` when
    PAM has no user (and before Linux-PAM 1.0). H is one token; R and U may be
    client words, so a crafted name can add readings: a `` rhost=`` whose token
    is followed by the end of the line or by ``user=``. Which one is real
    depends on who fills R:

    - mail and FTP daemons set R to the client's login name, which is also U:
      the real reading is the one with R == U; without a user field only R is
      the client's, so the real reading is the one at the end of the line;
    - elsewhere (sshd, sudo, unknown services) R is empty or a local account
      and only U is the client's, after the real field: the first reading.

    One left-to-right pass: the cost is linear in the line, whatever R and U hold.
    """
    ruser_at = fields.find("ruser=")
    ruser_start = ruser_at + 6 if ruser_at >= 0 else -1
    mirrored = ruser_at >= 0 and service in _CLIENT_RUSER_SERVICES
    end = len(fields)
    first: tuple[int, int, int] | None = None
    last_at_end: tuple[int, int, int] | None = None
    position = fields.find(" rhost=", max(ruser_start - 1, 0))
    while position >= 0:
        value_end = fields.find(" ", position + 7)
        if value_end < 0:
            value_end = end
        follower = _after_spaces(fields, value_end)
        if follower == end:
            last_at_end = (position, value_end, end)
            if first is None:
                first = last_at_end
        elif fields.startswith("user=", follower):
            user_start = follower + 5
            if first is None:
                first = (position, value_end, user_start)
            # R == U needs equal lengths, and position + user_start grows with every
            # reading: at most one reading gets to the string comparison
            if (
                mirrored
                and position - ruser_start == end - user_start
                and fields[ruser_start:position] == fields[user_start:]
            ):
                return _pam_reading(fields, ruser_start, position, value_end, user_start)
        position = fields.find(" rhost=", value_end)
    reading = last_at_end if mirrored and last_at_end is not None else first
    if reading is None:
        return None, None
    return _pam_reading(fields, ruser_start, *reading)


def _after_spaces(text: str, at: int) -> int:
    """The index of the first character at or after ``at`` that is not a space."""
    match = _SPACES.match(text, at)
    return match.end() if match is not None else at


def _pam_reading(
    fields: str, ruser_start: int, position: int, value_end: int, user_start: int
) -> tuple[str | None, str | None]:
    """(rhost, user) of the reading whose `` rhost=`` is at ``position``."""
    rhost = fields[position + 7 : value_end] or None
    user = fields[user_start:].strip()
    if not user and 0 <= ruser_start <= position:
        user = fields[ruser_start:position].strip()
    return rhost, user or None


def _bracketed(text: str, opening: str, closing: str) -> str | None:
    start = text.find(opening)
    if start < 0:
        return None
    start += len(opening)
    end = text.find(closing, start)
    return text[start:] if end < 0 else text[start:end]


def _roundcube_addresses(text: str) -> list[tuple[int, str]]:
    """Every ``from <ip>`` whose follower fits Roundcube's layout (see the module docstring)."""
    found: list[tuple[int, str]] = []
    at = text.find(" from ")
    while at >= 0:
        start = at + 6
        end = start
        while end < len(text) and (text[end].isalnum() or text[end] in ".:"):
            end += 1
        address = text[start:end].rstrip(".")
        ip = normalize_ip(address) if address else None
        if ip is not None:
            after = text[start + len(address) :]
            if (
                after in ("", ".")
                or after.startswith(("(", " in session ", " (X-"))
                or (after.startswith(". ") and after[2:].startswith(_IMAP_REPLY_STARTS))
            ):
                found.append((at, ip))
        at = text.find(" from ", at + 1)
    return found
