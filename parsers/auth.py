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

from models.events import Outcome
from parsers.correlation import FailedAttempts, HostState
from parsers.fields import normalize_ip
from parsers.result import LineContext, ParseResult, failed, ignored, new_event

PAM_MAIL_SERVICES = {
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
_CYRUS_PROTOCOLS = {
    "imap": "imap",
    "imaps": "imap",
    "imapd": "imap",
    "pop3": "pop3",
    "pop3s": "pop3",
    "pop3d": "pop3",
    "sieve": "sieve",
    "timsieved": "sieve",
}
_ROUNDCUBE_LOGINS: tuple[tuple[str, Outcome], ...] = (
    ("IMAP Error: Login failed for ", "failure"),
    ("FAILED login for ", "failure"),
    ("Failed login for ", "failure"),
    ("Successful login for ", "success"),
)
_IMAP_REPLY_STARTS = (
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
        rhost, user = _pam_rhost_user(fields)
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


def _pam_rhost_user(fields: str) -> tuple[str | None, str | None]:
    """Read ``rhost`` and ``user`` (falling back to ``ruser``) from pam_unix's field list.

    pam_unix writes ``... ruser=%s rhost=%s  user=%s``: the real ``rhost=`` is
    the first one followed by the end of the line or by `` user=``.
    """
    position = fields.find(" rhost=")
    while position >= 0:
        value_start = position + 7
        value_end = fields.find(" ", value_start)
        if value_end < 0:
            value_end = len(fields)
        after = fields[value_end:]
        stripped = after.lstrip(" ")
        if not stripped or stripped.startswith("user="):
            rhost = fields[value_start:value_end] or None
            user = stripped[5:].strip() if stripped else ""
            if not user:
                ruser_at = fields.find("ruser=")
                ruser = fields[ruser_at + 6 : position] if 0 <= ruser_at < position else ""
                user = ruser.strip()
            return rhost, user or None
        position = fields.find(" rhost=", value_end)
    return None, None


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
