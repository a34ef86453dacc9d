"""Dovecot: logins, login summaries, passdb failures, logouts and kicks.

Both log layouts are read: Dovecot's own file (``imap-login: Info: Login:
...``, no host) and syslog (``host dovecot[123]: imap-login: Login: ...``,
usually no level word). Versions 2.2 to 2.4 are covered (``Aborted login
(auth failed, N attempts)``, ``Disconnected: ... (auth failed, N attempts in
M secs)``, 2.4's ``Login aborted: ... (auth_failed)``, ``auth(user,ip,sasl:m)
<session>: sql: Password mismatch``).

Counting one attempt once (kind ``auth`` vs ``auth_echo``):

- an auth process line naming a passdb result, ``passwd-file(user,ip,<session>):
  Password mismatch`` (also ``pam``, ``sql``, ``ldap``, ``policy`` refusals),
  is the canonical record of one attempt (``auth``, ``failure``);
- the login process summary ``(auth failed, N attempts ...)`` is then an
  ``auth_echo`` with ``attempts=N``. When the auth process logged fewer than
  N failures for that session (``auth_verbose=no`` logs none), the summary is
  an ``auth`` counting the missing ones (``attempts`` = N minus those seen);
- an auth line without ``<session>`` comes from another SASL client, in
  practice Postfix; it and Postfix's ``SASL ... authentication failed`` are
  paired by :class:`parsers.correlation.FailedAttempts` (first line wins).

Fields are read from Dovecot's fixed layout only. In login lines the user
name comes first and is the only free text, so ``rip=`` is the last
``, rip=`` field; in auth lines the identifier ``driver(user,ip[,master]
[,<session>])`` is read from its right end, and a line where more than one
reading is possible (a crafted user name or password holding ``,1.2.3.4):
``) is an error, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from models.events import Event, Outcome
from parsers.correlation import FailedAttempts, HostState, LoginSession
from parsers.fields import INT64_MAX, normalize_ip
from parsers.result import LineContext, ParseResult, failed, ignored, new_event

SOURCE: Final = "dovecot"

LOGIN_PROCESSES: Final = {
    "imap-login": "imap",
    "pop3-login": "pop3",
    "submission-login": "submission",
    "managesieve-login": "sieve",
}
MAIL_PROCESSES: Final = {
    "imap": "imap",
    "pop3": "pop3",
    "submission": "submission",
    "managesieve": "sieve",
    "lmtp": "lmtp",
}
AUTH_PROCESSES: Final = frozenset({"auth", "auth-worker", "dovecot-auth"})
SERVICE_PROCESSES: Final = frozenset(
    {
        "master",
        "stats",
        "anvil",
        "log",
        "config",
        "dict",
        "dict-async",
        "indexer",
        "indexer-worker",
        "doveadm",
        "doveadm-server",
        "replicator",
        "aggregator",
        "quota-status",
        "imap-hibernate",
        "imap-urlauth",
        "imap-urlauth-login",
        "imap-urlauth-worker",
        "director",
        "ssl-params",
        "lda",
        "dovecot-lda",
        "old-stats",
    }
)
_LEVELS: Final = ("Info: ", "Warning: ", "Error: ", "Fatal: ", "Panic: ", "Debug: ")
_PASSDB_FAILURES: Final = (
    "Password mismatch",
    "password mismatch",
    "unknown user",
    "User not known",
    "pam_authenticate() failed",
    "invalid credentials",
    "Invalid credentials",
    "Authentication failure due to policy server refusal",
    "Login failed",
    "Invalid password",
)
_BASES_LIMIT: Final = 1024
_POLICY_MESSAGES: Final = ("Policy check action is ", "Policy server ")
_SECRET_MARKERS: Final = (" (given password", " (SHA1 of given password", " (given password hash")


def process_base(process: str) -> str:
    """``imap(alice)<1><s>`` -> ``imap``; ``auth-worker(123)`` -> ``auth-worker``."""
    end = len(process)
    for char in "(<[":
        at = process.find(char, 0, end)
        if at >= 0:
            end = at
    return process[:end]


def without_level(text: str) -> str:
    """``Info: Login: ...`` -> ``Login: ...``; text without a level word is kept."""
    if text.startswith(_LEVELS):
        return text[text.find(": ") + 2 :]  # no level word holds ": "
    return text


def is_dovecot_process(program: str) -> bool:
    base = process_base(program)
    return (
        base in LOGIN_PROCESSES
        or base in MAIL_PROCESSES
        or base in AUTH_PROCESSES
        or base in SERVICE_PROCESSES
    )


@dataclass(slots=True)
class LoginFields:
    """The ``user=<..>, method=.., rip=.., lip=.., mpid=.., TLS, session=<..>`` part."""

    user: str | None = field(default=None, init=False)
    method: str | None = field(default=None, init=False)
    client_ip: str | None = field(default=None, init=False)
    rip_present: bool = field(default=False, init=False)
    mpid: str | None = field(default=None, init=False)
    session: str | None = field(default=None, init=False)
    tls: str | None = field(default=None, init=False)
    encrypted: bool = field(default=False, init=False)
    # rip == lip or login_trusted_networks: Dovecot trusts the channel, but it is not TLS
    secured: bool = field(default=False, init=False)

    @property
    def extra(self) -> dict[str, bool]:
        """What the events of the line add beyond ``tls``."""
        extra = {}
        if self.tls is None and self.encrypted:
            extra["encrypted"] = True
        if self.secured:
            extra["secured"] = True
        return extra


def parse_login_fields(tail: str) -> LoginFields:
    """Read the field list of a login process line (see the module docstring)."""
    fields = LoginFields()
    if tail.startswith("rip="):
        front, back = "", tail
    else:
        rip_at = tail.rfind(", rip=")
        if rip_at < 0:
            front, back = tail, ""
        else:
            front, back = tail[:rip_at], tail[rip_at + 2 :]
    method_at = front.rfind(", method=")
    if method_at >= 0:
        fields.method = front[method_at + 9 :] or None
        front = front[:method_at]
    elif front.startswith("method="):
        fields.method = front[7:] or None
        front = ""
    if front.startswith("user=<") and front.endswith(">"):
        fields.user = front[6:-1] or None
    handshaking = False
    version = None
    for item in back.split(", "):
        head = item[:4]  # most items are skipped on this alone (lip=, port=, ...)
        if head == "rip=":
            fields.rip_present = True
            fields.client_ip = normalize_ip(item[4:])
        elif head == "mpid" and item.startswith("mpid="):
            fields.mpid = item[5:]
        elif head == "sess" and item.startswith("session=<") and item.endswith(">"):
            fields.session = item[9:-1]
        elif head == "secu" and item == "secured":
            fields.secured = True
        elif item.startswith(("TLS", "SSL")):
            if item == "TLS" or item.startswith("TLS: "):
                fields.encrypted = True
            elif item.startswith("TLS handshaking"):
                handshaking = True
            elif item.startswith(("TLSv", "SSLv")):
                version = item.partition(" ")[0]
    if version is not None:
        fields.tls = version
    elif not fields.encrypted and not handshaking:
        fields.tls = "none"
    return fields


@dataclass(slots=True)
class AuthIdentity:
    """``driver(user,ip[,master][,<session>])`` or 2.4's ``auth(user,ip,sasl:mech)<session>``."""

    user: str | None
    client_ip: str | None
    session: str | None
    mech: str | None
    message: str


class AmbiguousIdentifier(ValueError):
    """More than one reading of an auth identifier is possible."""


def parse_auth_identifier(text: str) -> AuthIdentity | None:
    """Read an identifier from ``text``, which starts just after ``driver(``.

    Every ``)`` that could close the identifier (followed by ``: `` or by
    ``<session>: ``) is tried; the identifier must end with a valid address
    field. None when no reading fits; :class:`AmbiguousIdentifier` when more
    than one does.
    """
    found: AuthIdentity | None = None
    close = text.find(")")
    while close >= 0:
        candidate = _identity_at(text, close)
        if candidate is not None:
            if found is not None:
                raise AmbiguousIdentifier("ambiguous auth identifier")
            found = candidate
        close = text.find(")", close + 1)
    return found


def _identity_at(text: str, close: int) -> AuthIdentity | None:
    session = None
    after = text[close + 1 : close + 3]
    if after == ": ":
        message_at = close + 3
    elif after[:1] == "<":
        end = text.find(">", close + 2)
        if end < 0 or text[end + 1 : end + 3] != ": ":
            return None
        session = text[close + 2 : end]
        message_at = end + 3
    else:
        return None
    inner = text[:close]
    mech = None
    head, sep, last = inner.rpartition(",")
    while sep and last == "":
        head, sep, last = head.rpartition(",")
    if sep and last.startswith("<") and last.endswith(">"):
        session = last[1:-1]
        head, sep, last = head.rpartition(",")
    if sep and last.startswith("sasl:"):
        mech = last[5:].upper() or None
        head, sep, last = head.rpartition(",")
    if sep and last == "master":
        head, sep, last = head.rpartition(",")
    if not sep:
        return None
    ip = normalize_ip(last)
    if ip is None:
        return None
    user = head if head and head != "?" else None
    return AuthIdentity(user, ip, session or None, mech, text[message_at:])


def _without_secrets(reason: str) -> str:
    """Drop ``(given password: ...)`` and its hashes: a log must not spread passwords."""
    for marker in _SECRET_MARKERS:
        at = reason.find(marker)
        if at >= 0:
            reason = reason[:at]
    return reason


class DovecotParser:
    """Parses Dovecot lines of one host."""

    def __init__(self, state: HostState) -> None:
        self._state = state
        self._bases: dict[str, str] = {}  # process prefix -> process_base of it

    def parse(self, ctx: LineContext) -> ParseResult | str:
        """Parse one line; a PAM message logged by the auth process comes back as text."""
        program, message = ctx.program, ctx.message
        if program == "dovecot":
            process, sep, rest = message.partition(": ")
            if process == "dovecot" and sep:
                process, sep, rest = rest.partition(": ")
            if not sep:
                return ignored("dovecot_other")
        else:
            process, rest = program, message
        if rest.startswith(_LEVELS):
            rest = without_level(rest)
        base = self._bases.get(process)
        if base is None:
            base = process_base(process)
            if base == process:  # a constant name; imap(user)<pid><session> is not
                if len(self._bases) >= _BASES_LIMIT:
                    self._bases.clear()
                self._bases[process] = base
        login_protocol = LOGIN_PROCESSES.get(base)
        if login_protocol is not None:
            return self._login_process(login_protocol, rest, ctx)
        if base in AUTH_PROCESSES:
            return self._auth_process(process, rest, ctx)
        mail_protocol = MAIL_PROCESSES.get(base)
        if mail_protocol is not None:
            return self._mail_process(base, mail_protocol, process, rest, ctx)
        if base in SERVICE_PROCESSES:
            return ignored("dovecot_service")
        return ignored("dovecot_other")

    # -- login processes -------------------------------------------------

    def _login_process(self, protocol: str, rest: str, ctx: LineContext) -> ParseResult:
        if rest.startswith("Login: "):
            return self._login(protocol, parse_login_fields(rest[7:]), ctx)
        fields_at = rest.find(": user=<")
        if fields_at < 0:
            fields_at = rest.find(": method=")
        if fields_at < 0:
            fields_at = rest.find(": rip=")
        if fields_at < 0:
            if rest.startswith(("Disconnected", "Aborted login", "Login aborted")):
                return failed("unrecognised dovecot login summary")
            return ignored("dovecot_login_other")
        head = rest[:fields_at]
        fields = parse_login_fields(rest[fields_at + 2 :])
        if fields.rip_present and fields.client_ip is None:
            return failed("dovecot login line with an invalid rip")
        failed_at = head.find("(auth failed, ")
        if failed_at >= 0:
            return self._summary(protocol, head, failed_at, fields, ctx)
        if "(proxy dest auth failed)" in head:
            return self._proxy_failure(protocol, head, fields, ctx)
        if "(tried to use dis" in head:
            kind = "protocol_error"
        elif "SSL_accept() failed" in head or "(disconnected during TLS handshake)" in head:
            kind = "tls"
        else:
            kind = "disconnect"
        return ParseResult(
            [
                new_event(
                    ctx,
                    SOURCE,
                    kind,
                    outcome="failure" if kind == "tls" else None,
                    protocol=protocol,
                    user=fields.user,
                    client_ip=fields.client_ip,
                    tls=fields.tls,
                    session=fields.session,
                    detail=head,
                    extra=fields.extra,
                )
            ]
        )

    def _login(self, protocol: str, fields: LoginFields, ctx: LineContext) -> ParseResult:
        if fields.client_ip is None and fields.rip_present:
            return failed("dovecot login with an invalid rip")
        if fields.session is not None:
            self._state.logins.put(
                fields.session,
                LoginSession(fields.user, fields.client_ip, fields.tls, protocol),
                ctx.epoch,
            )
            if fields.mpid is not None:
                self._state.login_pids.put(fields.mpid, fields.session, ctx.epoch)
        return ParseResult([_login_event(ctx, "auth", "success", protocol, fields)])

    def _summary(
        self, protocol: str, head: str, failed_at: int, fields: LoginFields, ctx: LineContext
    ) -> ParseResult:
        numbers = head[failed_at + 14 :]
        count_text, _, after = numbers.partition(" attempts")
        if not count_text.isdecimal():  # what int() reads; isdigit would take "²"
            return failed("unrecognised dovecot login summary")
        attempts = int(count_text)
        if attempts > INT64_MAX:  # crafted: no event can carry the count
            return failed("unrecognised dovecot login summary")
        seconds = 0
        if after.startswith(" in "):
            seconds_text = after[4:].partition(" secs")[0]
            if seconds_text.isdecimal():
                seconds = int(seconds_text)
        seen = 0
        if fields.session is not None:
            seen = self._state.session_failures.pop(fields.session) or 0
        if seen == 0 and fields.client_ip is not None:
            # versions whose passdb lines carry no <session>
            seen = self._state.failures.claim_for_summary(
                fields.client_ip, fields.user, ctx.epoch - seconds, ctx.epoch, attempts
            )
        echo = seen >= attempts
        kind = "auth_echo" if echo else "auth"
        counted = attempts if echo else attempts - seen
        return ParseResult([_login_event(ctx, kind, "failure", protocol, fields, counted, head)])

    def _proxy_failure(
        self, protocol: str, head: str, fields: LoginFields, ctx: LineContext
    ) -> ParseResult:
        seen = 0
        if fields.session is not None:
            seen = self._state.session_failures.pop(fields.session) or 0
        kind = "auth_echo" if seen else "auth"
        return ParseResult([_login_event(ctx, kind, "failure", protocol, fields, 1, head)])

    # -- auth processes --------------------------------------------------

    def _auth_process(self, process: str, rest: str, ctx: LineContext) -> ParseResult | str:
        if process.startswith("auth(") and ("," in process or not process.endswith(")")):
            # 2.4 and late 2.3 event prefix: auth(user,ip,sasl:mech)<session>: sql: ...
            # (a user name holding ": " split it early; the identifier is read again whole)
            return self._passdb(process[5:] + ": " + rest, ctx, strip_driver=True)
        if rest.startswith("conn unix:"):
            worker_at = rest.find(": auth-worker<")
            if worker_at < 0:
                return ignored("dovecot_auth_other")
            end = rest.find(">: ", worker_at)
            if end < 0:
                return ignored("dovecot_auth_other")
            rest = rest[end + 3 :]
        elif rest.startswith("auth-worker<"):
            end = rest.find(">: ")
            if end < 0:
                return ignored("dovecot_auth_other")
            rest = rest[end + 3 :]
        if rest.startswith(("pam_unix", "(pam_unix)", "pam_")):
            return rest
        open_paren = rest.find("(")
        if open_paren <= 0 or not rest[:open_paren].replace("-", "").replace("_", "").isalnum():
            if rest.startswith("auth client ") and " disconnected with " in rest:
                return ignored("auth_client_disconnected")
            return ignored("dovecot_auth_other")
        return self._passdb(rest[open_paren + 1 :], ctx, strip_driver=False)

    def _passdb(self, text: str, ctx: LineContext, strip_driver: bool) -> ParseResult:
        try:
            identity = parse_auth_identifier(text)
        except AmbiguousIdentifier as exc:
            return failed(str(exc))
        if identity is None:
            return ignored("dovecot_auth_other")
        message = identity.message
        if strip_driver:
            message = without_level(message)
            driver, sep, after = message.partition(": ")
            if sep and driver.replace("-", "").isalnum():
                message = after
        if message.startswith(_POLICY_MESSAGES):
            return ParseResult(
                [
                    new_event(
                        ctx,
                        SOURCE,
                        "policy",
                        user=identity.user,
                        client_ip=identity.client_ip,
                        session=identity.session,
                        detail=message,
                    )
                ]
            )
        if not message.startswith(_PASSDB_FAILURES):
            return ignored("dovecot_auth_other")
        return ParseResult([self._passdb_failure(identity, _without_secrets(message), ctx)])

    def _passdb_failure(self, identity: AuthIdentity, reason: str, ctx: LineContext) -> Event:
        session = identity.session
        protocol = None
        tls = None
        if session is not None:
            count = self._state.session_failures.get(session, ctx.epoch) or 0
            self._state.session_failures.put(session, count + 1, ctx.epoch)
            login = self._state.logins.get(session, ctx.epoch)
            if login is not None:
                protocol, tls = login.protocol, login.tls
        canonical = True
        if identity.client_ip is not None:
            canonical, earlier = self._state.failures.record(
                identity.client_ip,
                identity.user,
                FailedAttempts.DOVECOT,
                ctx.epoch,
                in_login_session=session is not None,
            )
            if FailedAttempts.SMTPD in earlier:
                protocol = "smtp"
        return new_event(
            ctx,
            SOURCE,
            "auth" if canonical else "auth_echo",
            outcome="failure",
            protocol=protocol,
            user=identity.user,
            client_ip=identity.client_ip,
            tls=tls,
            mech=identity.mech,
            session=session,
            reason=reason,
        )

    # -- mail processes ----------------------------------------------------

    def _mail_process(
        self, base: str, protocol: str, process: str, rest: str, ctx: LineContext
    ) -> ParseResult:
        inner, groups = _split_process(base, process)
        if inner is None:
            return ignored("dovecot_mail_process")
        if rest.startswith("Killed with signal ") and inner.isdigit():
            return self._kick(inner, protocol, rest, ctx)
        if base == "lmtp":
            return ignored("dovecot_lmtp")
        if rest.startswith(("Disconnected", "Connection closed", "Logged out")):
            session = groups[1] if len(groups) >= 2 else None
            login = self._state.logins.pop(session) if session is not None else None
            if groups:
                self._state.login_pids.pop(groups[0])
            return ParseResult(
                [
                    new_event(
                        ctx,
                        SOURCE,
                        "logout",
                        protocol=protocol,
                        user=inner or None,
                        client_ip=login.client_ip if login is not None else None,
                        tls=login.tls if login is not None else None,
                        session=session,
                        detail=rest.partition(" in=")[0].partition(" top=")[0],
                    )
                ]
            )
        return ignored("dovecot_mail_process")

    def _kick(self, pid: str, protocol: str, rest: str, ctx: LineContext) -> ParseResult:
        session = self._state.login_pids.get(pid, ctx.epoch)
        login = self._state.logins.get(session, ctx.epoch) if session is not None else None
        return ParseResult(
            [
                new_event(
                    ctx,
                    SOURCE,
                    "kick",
                    protocol=protocol,
                    user=login.user if login is not None else None,
                    client_ip=login.client_ip if login is not None else None,
                    tls=login.tls if login is not None else None,
                    session=session,
                    detail=rest,
                    extra={"pid": pid},
                )
            ]
        )


def _split_process(base: str, process: str) -> tuple[str | None, list[str]]:
    """``imap(alice)<17745><sKHn>`` -> (``alice``, [``17745``, ``sKHn``])."""
    groups: list[str] = []
    text = process
    while text.endswith(">"):
        opening = text.rfind("<")
        if opening < 0:
            break
        groups.insert(0, text[opening + 1 : -1])
        text = text[:opening]
    if not (text[len(base) : len(base) + 1] == "(" and text.endswith(")")):
        return None, groups
    return text[len(base) + 1 : -1], groups


def _login_event(
    ctx: LineContext,
    kind: str,
    outcome: Outcome,
    protocol: str,
    fields: LoginFields,
    attempts: int | None = None,
    detail: str | None = None,
) -> Event:
    """The event of a login process line: what it says of the login, from ``fields``."""
    return new_event(
        ctx,
        SOURCE,
        kind,
        outcome=outcome,
        protocol=protocol,
        user=fields.user,
        client_ip=fields.client_ip,
        tls=fields.tls,
        mech=fields.method,
        session=fields.session,
        attempts=attempts,
        detail=detail,
        extra=fields.extra,
    )
