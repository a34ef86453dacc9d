"""Postfix: smtpd sessions, SASL failures, queue life cycle, deliveries, postscreen.

The client address is read only where Postfix puts it: ``host[ip]`` right
after ``connect from``, ``warning:``, ``client=`` or ``<STAGE> from``. Text
after it (SASL user names, HELO, envelope addresses, remote replies) is
attacker-controlled and is read last, from the first delimiter that follows
the fixed fields, so it cannot move them. Host names before ``[`` come from
Postfix's validated reverse lookup and hold no brackets or spaces.

Correlation (see :mod:`parsers.correlation`): an smtpd session is keyed by
program and pid between ``connect from`` and ``disconnect from``; it carries
the TLS version (``none`` when no handshake was logged) and the SASL account
once a ``client=..., sasl_username=`` line names it. The queue id then
carries account, address and TLS to the cleanup, qmgr, delivery and bounce
lines of that message, and bounce/delay notices inherit the account of the
message they report on.

One successful SMTP AUTH gives one ``auth`` success per session: at the
first ``sasl_username=``, or at ``disconnect ... auth=1`` when the session
sent no mail (Postfix logs nothing else for a successful AUTH; the account
is then unknown). ``lost connection after AUTH`` and ``too many errors after
AUTH`` following a logged SASL failure are ``auth_echo`` records of it.
"""

from __future__ import annotations

import re
from typing import Any, Final

from models.events import DeliveryStatus, Event
from parsers.correlation import FailedAttempts, HostState, QueuedMessage, SmtpdSession
from parsers.fields import count_or_none, host_and_ip, normalize_ip
from parsers.result import (
    Handler,
    LineContext,
    ParseResult,
    Route,
    failed,
    ignored,
    new_event,
)

SOURCE: Final = "postfix"
SMTP: Final = "smtp"

_DELIVERY_SERVICES: Final = frozenset(
    {"smtp", "lmtp", "local", "virtual", "pipe", "error", "discard", "retry", "relay"}
)
_HOUSEKEEPING_SERVICES: Final = frozenset(
    {
        "master",
        "postfix-script",
        "anvil",
        "scache",
        "tlsmgr",
        "verify",
        "trivial-rewrite",
        "proxymap",
        "postlogd",
        "showq",
        "flush",
        "postdrop",
        "sendmail",
        "postqueue",
        "postmap",
        "postalias",
        "postconf",
        "dnsblog",
        "tlsproxy",
        "spawn",
        "policy-spf",
        "oqmgr",
    }
)
_TLS_ESTABLISHED: Final = (
    "Anonymous TLS connection established from ",
    "Trusted TLS connection established from ",
    "Verified TLS connection established from ",
    "Untrusted TLS connection established from ",
)
_POLICY_ACTIONS: Final = frozenset(
    {"discard", "filter", "redirect", "warn", "prepend", "bcc", "replace"}
)
_DELIVERY_TAIL: Final = re.compile(
    r">, (?:orig_to=<[^>]*>, )?relay=([^,]*), (?:conn_use=\d+, )?delay=[\d.]+, "
    r"delays=[\d./]+, dsn=(\d\.\d{1,3}\.\d{1,3}), status=([a-z]+)(?: \((.*)\))?$"
)
# the disconnect counters cache: entries, and the longest text kept (a crafted
# line must not make it hold much memory)
_COUNTERS_CACHE_LIMIT: Final = 1024
_COUNTERS_TEXT_LIMIT: Final = 200
_DELIVERY_STATUSES: Final[dict[str, DeliveryStatus]] = {
    "sent": "sent",
    "deferred": "deferred",
    "bounced": "bounced",
    "expired": "expired",
}
_NOTICES: Final = {
    "sender non-delivery notification": "non-delivery",
    "sender delay notification": "delay",
    "sender delivery status notification": "success",
    "postmaster non-delivery notification": "postmaster non-delivery",
}


def is_queue_id(text: str) -> bool:
    """Short (hex) and long (base-52) Postfix queue ids are alphanumeric."""
    return 5 <= len(text) <= 20 and text.isalnum() and text != "NOQUEUE"


class PostfixParser:
    """Parses the lines of every Postfix program of one host."""

    def __init__(self, state: HostState) -> None:
        self._state = state
        self._handlers: dict[str, Handler] = {
            "smtpd": self._smtpd,
            "postscreen": self._postscreen,
            "cleanup": self._cleanup,
            "qmgr": self._qmgr,
            "bounce": self._bounce,
            "pickup": self._pickup,
            "postsuper": self._postsuper,
        }
        # disconnect counters text -> (counters, AUTH successes, AUTH attempts); most
        # sessions end with one of a few dozen texts
        self._counters: dict[str, tuple[dict[str, str], int, int | None]] = {}

    def route(self, program: str) -> Route:
        """``postfix/submission/smtpd`` -> (the smtpd handler, ``submission``)."""
        parts = program.split("/")
        process = parts[-1]
        service = parts[-2] if len(parts) > 2 else process
        handler = self._handlers.get(process)
        if handler is None:
            if process in _DELIVERY_SERVICES:
                handler = self._delivery
            elif process in _HOUSEKEEPING_SERVICES:
                handler = _housekeeping
            else:
                handler = _other_program
        return handler, service

    # -- smtpd -------------------------------------------------------------

    def _smtpd(self, message: str, ctx: LineContext, service: str | None) -> ParseResult:
        if message.startswith("connect from "):
            return self._connect(message, ctx, service)
        if message.startswith("disconnect from "):
            return self._disconnect(message, ctx, service)
        if message.startswith("warning: "):
            return self._smtpd_warning(message, ctx, service)
        colon = message.find(": ")
        # queue ids are at most 20 characters: longer heads are not sliced off to be tested
        if 0 < colon <= 20 and (message[:colon] == "NOQUEUE" or is_queue_id(message[:colon])):
            queue_id = message[:colon]
            rest = message[colon + 2 :]
            if rest.startswith("client="):
                return self._client(queue_id, rest, ctx, service)
            if queue_id == "NOQUEUE" and rest.startswith("lost connection after "):
                return self._lost(rest, ctx, service)
            return self._action(queue_id, rest, ctx, service)
        if message.startswith(("lost connection after ", "timeout after ")):
            return self._lost(message, ctx, service)
        if message.startswith(("too many errors after ", "improper command pipelining after ")):
            return self._lost(message, ctx, service)
        if message.startswith(_TLS_ESTABLISHED):
            return self._tls(message, ctx, service)
        if message.startswith("SSL_accept error from "):
            return self._tls_failure(message, ctx, service)
        if message.startswith(("setting up TLS connection", "discarding EHLO keywords")):
            return ignored("smtpd_housekeeping")
        return failed("unrecognised postfix smtpd message")

    def _session_key(self, ctx: LineContext) -> tuple[str, str | None]:
        # a pair of strings the envelope's tag cache already holds: no text to build
        return ctx.program, ctx.pid

    def _session_for(self, ctx: LineContext, client_ip: str | None) -> SmtpdSession | None:
        session = self._state.smtpd.get(self._session_key(ctx), ctx.epoch)
        if session is None or session.client_ip != client_ip:
            return None
        return session

    def _connect(self, message: str, ctx: LineContext, service: str | None) -> ParseResult:
        try:
            _host, ip, _end = host_and_ip(message, 13)
        except ValueError:
            return failed("connect line without host[address]")
        self._state.smtpd.put(self._session_key(ctx), SmtpdSession(client_ip=ip), ctx.epoch)
        return ParseResult(
            [new_event(ctx, SOURCE, "connect", service=service, protocol=SMTP, client_ip=ip)]
        )

    def _disconnect(self, message: str, ctx: LineContext, service: str | None) -> ParseResult:
        try:
            _host, ip, end = host_and_ip(message, 16)
        except ValueError:
            return failed("disconnect line without host[address]")
        session = self._session_for(ctx, ip)
        counters, auth_ok, auth_total = self._session_counters(message[end:])
        events = []
        tls = session.tls_state if session is not None else None
        if auth_ok and (session is None or not session.auth_reported):
            events.append(
                new_event(
                    ctx,
                    SOURCE,
                    "auth",
                    service=service,
                    outcome="success",
                    protocol=SMTP,
                    user=session.user if session is not None else None,
                    client_ip=ip,
                    tls=tls,
                    detail="AUTH succeeded; the account is not logged",
                )
            )
        events.append(
            new_event(
                ctx,
                SOURCE,
                "disconnect",
                service=service,
                protocol=SMTP,
                user=session.user if session is not None else None,
                client_ip=ip,
                tls=tls,
                attempts=auth_total,
                extra=counters,
            )
        )
        if session is not None:
            self._state.smtpd.pop(self._session_key(ctx))
        return ParseResult(events=events)

    def _session_counters(self, text: str) -> tuple[dict[str, str], int, int | None]:
        """The ``name=value`` counters of a disconnect line (a fresh dict) and its AUTH ratio."""
        known = self._counters.get(text)
        if known is None:
            counters = _counters(text)
            auth_ok, auth_total = _ratio(counters.get("auth"))
            known = (counters, auth_ok, auth_total)
            if len(text) <= _COUNTERS_TEXT_LIMIT:
                if len(self._counters) >= _COUNTERS_CACHE_LIMIT:
                    self._counters.clear()
                self._counters[text] = known
        return known[0].copy(), known[1], known[2]

    def _tls(self, message: str, ctx: LineContext, service: str | None) -> ParseResult:
        start = message.find(" from ") + 6
        try:
            _host, ip, end = host_and_ip(message, start)
        except ValueError:
            return failed("TLS line without host[address]")
        version = message[end + 2 :].partition(" ")[0]
        if not version.startswith(("TLSv", "SSLv")):
            return failed("TLS line without a protocol version")
        key = self._session_key(ctx)
        session = self._state.smtpd.get(key, ctx.epoch)
        if session is None or session.client_ip != ip:
            session = SmtpdSession(client_ip=ip)
            self._state.smtpd.put(key, session, ctx.epoch)
        session.tls = version
        return ParseResult(
            [
                new_event(
                    ctx,
                    SOURCE,
                    "tls",
                    service=service,
                    outcome="success",
                    protocol=SMTP,
                    client_ip=ip,
                    tls=version,
                )
            ]
        )

    def _tls_failure(self, message: str, ctx: LineContext, service: str | None) -> ParseResult:
        try:
            _host, ip, end = host_and_ip(message, 22)
        except ValueError:
            return failed("TLS failure without host[address]")
        return ParseResult(
            [
                new_event(
                    ctx,
                    SOURCE,
                    "tls",
                    service=service,
                    outcome="failure",
                    protocol=SMTP,
                    client_ip=ip,
                    detail="TLS handshake failed",
                    reason=message[end + 2 :] or None,
                )
            ]
        )

    def _lost(self, message: str, ctx: LineContext, service: str | None) -> ParseResult:
        """``lost connection``/``timeout``/``too many errors``/``improper pipelining`` after X."""
        after = message.find(" after ")
        from_at = message.find(" from ", after)
        if after < 0 or from_at < 0:
            return failed("unrecognised postfix smtpd message")
        stage = message[after + 7 : from_at]
        try:
            _host, ip, _end = host_and_ip(message, from_at + 6)
        except ValueError:
            return failed("smtpd line without host[address]")
        what = message[:after]
        session = self._session_for(ctx, ip)
        tls = session.tls_state if session is not None else None
        if (
            stage == "AUTH"
            and what in ("lost connection", "too many errors")
            and session is not None
            and session.failures
        ):
            return ParseResult(
                [
                    new_event(
                        ctx,
                        SOURCE,
                        "auth_echo",
                        service=service,
                        outcome="failure",
                        protocol=SMTP,
                        client_ip=ip,
                        tls=tls,
                        detail=f"{what} after AUTH",
                    )
                ]
            )
        kind = "disconnect" if what in ("lost connection", "timeout") else "protocol_error"
        return ParseResult(
            [
                new_event(
                    ctx,
                    SOURCE,
                    kind,
                    service=service,
                    protocol=SMTP,
                    user=session.user if session is not None else None,
                    client_ip=ip,
                    tls=tls,
                    detail=f"{what} after {stage}",
                )
            ]
        )

    def _smtpd_warning(self, message: str, ctx: LineContext, service: str | None) -> ParseResult:
        body = message[9:]
        if body.startswith("non-SMTP command from "):
            return self._client_warning(
                body, 22, "protocol_error", "non-SMTP command", ctx, service
            )
        if body.startswith("hostname ") and " does not resolve to address " in body:
            address = body[body.find(" does not resolve to address ") + 29 :].partition(":")[0]
            ip = normalize_ip(address)
            if ip is None:
                return failed("reverse DNS warning without a valid address")
            return ParseResult(
                [
                    new_event(
                        ctx,
                        SOURCE,
                        "warning",
                        service=service,
                        protocol=SMTP,
                        client_ip=ip,
                        detail="hostname does not resolve to address",
                    )
                ]
            )
        if " rate limit exceeded: " in body or body.startswith("Connection concurrency limit"):
            from_at = body.find(" from ")
            if from_at > 0:
                return self._client_warning(
                    body, from_at + 6, "policy", body[: body.find(":")], ctx, service
                )
        if " authentication failed" in body and ": SASL " in body:
            return self._sasl_failure(body, ctx, service)
        if body.startswith("TLS library problem"):
            return self._tls_library_problem(body, ctx, service)
        if body.startswith(("connect to ", "problem talking to server")):
            return ignored("smtpd_service_warning")
        return ignored("smtpd_warning")

    def _tls_library_problem(self, body: str, ctx: LineContext, service: str | None) -> ParseResult:
        """OpenSSL's complaint names no client; the session of this smtpd process does."""
        session = self._state.smtpd.get(self._session_key(ctx), ctx.epoch)
        if session is None:
            return ignored("smtpd_tls_warning")
        return ParseResult(
            [
                new_event(
                    ctx,
                    SOURCE,
                    "tls",
                    service=service,
                    outcome="failure",
                    protocol=SMTP,
                    client_ip=session.client_ip,
                    detail="TLS library problem",
                    reason=body[21:] or None,
                )
            ]
        )

    def _client_warning(
        self,
        body: str,
        start: int,
        kind: str,
        detail: str,
        ctx: LineContext,
        service: str | None,
    ) -> ParseResult:
        try:
            _host, ip, _end = host_and_ip(body, start)
        except ValueError:
            return failed("smtpd warning without host[address]")
        return ParseResult(
            [
                new_event(
                    ctx, SOURCE, kind, service=service, protocol=SMTP, client_ip=ip, detail=detail
                )
            ]
        )

    def _sasl_failure(self, body: str, ctx: LineContext, service: str | None) -> ParseResult:
        # "unknown[1.2.3.4]: SASL LOGIN authentication failed: reason, sasl_username=user"
        try:
            _host, ip, end = host_and_ip(body, 0)
        except ValueError:
            return failed("SASL failure without host[address]")
        if body[end : end + 7] != ": SASL ":
            return failed("unrecognised SASL failure")
        mech_end = body.find(" authentication failed", end + 7)
        if mech_end < 0:
            return failed("unrecognised SASL failure")
        mech = body[end + 7 : mech_end].upper()
        rest = body[mech_end + 22 :].removeprefix(":").removeprefix(" ")
        reason, sep, user_text = rest.partition(", sasl_username=")
        user: str | None = user_text if sep and user_text != "(unavailable)" else None
        if not user:
            user = None
        if reason == "Invalid authentication mechanism":
            # the client asked for a mechanism not offered: no credential was checked
            return ParseResult(
                [
                    new_event(
                        ctx,
                        SOURCE,
                        "protocol_error",
                        service=service,
                        protocol=SMTP,
                        user=user,
                        client_ip=ip,
                        mech=mech,
                        detail="SASL mechanism not offered",
                    )
                ]
            )
        session = self._session_for(ctx, ip)
        tls = None
        session_user = None
        if session is not None:
            session.failures += 1
            tls = session.tls_state
            if user is not None:
                session.failed_user = user
            session_user = session.failed_user
        canonical = True
        if ip is not None:
            canonical, _others = self._state.failures.record(
                ip,
                user,
                FailedAttempts.SMTPD,
                ctx.epoch,
                in_login_session=False,
                session_user=session_user,
            )
        return ParseResult(
            [
                new_event(
                    ctx,
                    SOURCE,
                    "auth" if canonical else "auth_echo",
                    service=service,
                    outcome="failure",
                    protocol=SMTP,
                    user=user,
                    client_ip=ip,
                    tls=tls,
                    mech=mech,
                    reason=reason or None,
                )
            ]
        )

    def _client(
        self, queue_id: str, rest: str, ctx: LineContext, service: str | None
    ) -> ParseResult:
        try:
            _host, ip, end = host_and_ip(rest, 7)
        except ValueError:
            return failed("client= line without host[address]")
        tail = rest[end:]
        mech = _field(tail, ", sasl_method=", ", ")
        user: str | None = None
        user_at = tail.find(", sasl_username=")
        if user_at >= 0:
            user_text = tail[user_at + 16 :]
            sender_at = user_text.find(", sasl_sender=")
            user = (user_text[:sender_at] if sender_at >= 0 else user_text) or None
        session = self._session_for(ctx, ip)
        tls = session.tls_state if session is not None else None
        events = []
        original = _field(tail, ", orig_queue_id=", ", ")
        if original:
            # a message re-injected after a content filter: the same message again
            known = self._state.queue.get(original, ctx.epoch)
            entry = QueuedMessage(
                user=known.user if known else None,
                client_ip=known.client_ip if known else None,
                tls=known.tls if known else None,
                protocol=known.protocol if known else None,
                sender=known.sender if known else None,
            )
            self._state.queue.put(queue_id, entry, ctx.epoch)
            return ParseResult(
                [
                    new_event(
                        ctx,
                        SOURCE,
                        "reinjected",
                        service=service,
                        protocol=entry.protocol,
                        user=entry.user,
                        client_ip=entry.client_ip,
                        queue_id=queue_id,
                        detail=f"re-injected copy of {original}",
                    )
                ]
            )
        detail = None
        if session is not None:
            if session.hold_pending:
                detail = "held by policy"
                session.hold_pending = False
            if user is not None:
                session.user = user
                if not session.auth_reported:
                    session.auth_reported = True
                    events.append(
                        new_event(
                            ctx,
                            SOURCE,
                            "auth",
                            service=service,
                            outcome="success",
                            protocol=SMTP,
                            user=user,
                            client_ip=ip,
                            tls=tls,
                            mech=mech,
                        )
                    )
        self._state.queue.put(
            queue_id,
            QueuedMessage(user=user, client_ip=ip, tls=tls, protocol=SMTP),
            ctx.epoch,
        )
        events.append(
            new_event(
                ctx,
                SOURCE,
                "submission",
                service=service,
                protocol=SMTP,
                user=user,
                client_ip=ip,
                tls=tls,
                queue_id=queue_id,
                mech=mech,
                detail=detail,
            )
        )
        return ParseResult(events=events)

    def _action(
        self, queue_id: str, rest: str, ctx: LineContext, service: str | None
    ) -> ParseResult:
        """``NOQUEUE: reject: RCPT from host[ip]: 550 ...; from=<> to=<> proto= helo=<>``."""
        action, sep, detail = rest.partition(": ")
        if not sep:
            return failed("unrecognised postfix smtpd message")
        from_at = detail.find(" from ")
        if from_at <= 0 or not detail[:from_at].replace("-", "").isupper():
            return failed("unrecognised postfix smtpd message")
        stage = detail[:from_at]
        try:
            _host, ip, end = host_and_ip(detail, from_at + 6)
        except ValueError:
            return failed("policy action without host[address]")
        if action in ("reject", "milter-reject"):
            kind = "reject"
        elif action == "hold":
            kind = "hold"
        elif action in _POLICY_ACTIONS:
            kind = "policy"
        else:
            return failed("unrecognised postfix smtpd message")
        reply = detail[end + 2 :] if detail[end : end + 2] == ": " else detail[end:]
        sender, recipient, helo, reply = _envelope_fields(reply)
        session = self._session_for(ctx, ip)
        tls = session.tls_state if session is not None else None
        if kind == "hold" and session is not None:
            session.hold_pending = True
        return ParseResult(
            [
                new_event(
                    ctx,
                    SOURCE,
                    kind,
                    service=service,
                    protocol=SMTP,
                    user=session.user if session is not None else None,
                    client_ip=ip,
                    tls=tls,
                    queue_id=queue_id if queue_id != "NOQUEUE" else None,
                    sender=sender,
                    recipient=recipient,
                    reason=reply or None,
                    detail=f"{action} at {stage}",
                    extra={"helo": helo} if helo is not None else {},
                )
            ]
        )

    # -- postscreen --------------------------------------------------------

    def _postscreen(self, message: str, ctx: LineContext, service: str | None) -> ParseResult:
        word = message.partition(" ")[0]
        if word == "CONNECT":
            return self._screen(message, message.find("["), "connect", "connect", ctx, service)
        if word == "PASS":
            detail = message[: message.find(" [")].lower()
            return self._screen(message, message.find("["), "connect", detail, ctx, service)
        if word in ("WHITELISTED", "ALLOWLISTED"):
            return self._screen(message, message.find("["), "connect", "allowlisted", ctx, service)
        if word in ("BLACKLISTED", "DENYLISTED"):
            return self._screen(message, message.find("["), "reject", "denylisted", ctx, service)
        if word == "DNSBL":
            at = message.find(" for [")
            detail = message[:at] if at > 0 else "DNSBL"
            return self._screen(message, at + 5, "reject", detail, ctx, service)
        if word == "PREGREET":
            return self._screen(
                message, message.find(" from [") + 6, "reject", "pregreet", ctx, service
            )
        if word in ("HANGUP", "DISCONNECT"):
            start = message.find("[")
            return self._screen(message, start, "disconnect", word.lower(), ctx, service)
        if word in ("COMMAND", "NON-SMTP", "BARE"):
            at = message.find(" from [")
            detail = message[:at] if at > 0 else word
            return self._screen(message, at + 6, "protocol_error", detail, ctx, service)
        if word == "NOQUEUE:":
            colon = message.find(": ")
            return self._action("NOQUEUE", message[colon + 2 :], ctx, service)
        if word in ("cache", "warning:", "WHITELIST", "ALLOWLIST"):
            return ignored("postscreen_housekeeping")
        return failed("unrecognised postscreen message")

    def _screen(
        self,
        message: str,
        start: int,
        kind: str,
        detail: str,
        ctx: LineContext,
        service: str | None,
    ) -> ParseResult:
        if start < 0 or message[start : start + 1] != "[":
            return failed("postscreen line without [address]")
        try:
            _host, ip, _end = host_and_ip(message, start)
        except ValueError:
            return failed("postscreen line without [address]")
        return ParseResult(
            [
                new_event(
                    ctx, SOURCE, kind, service=service, protocol=SMTP, client_ip=ip, detail=detail
                )
            ]
        )

    # -- queue life cycle ---------------------------------------------------

    def _queued(self, queue_id: str, ctx: LineContext) -> QueuedMessage | None:
        return self._state.queue.get(queue_id, ctx.epoch)

    def _message_event(
        self,
        ctx: LineContext,
        kind: str,
        service: str | None,
        queue_id: str,
        entry: QueuedMessage | None,
        *,
        sender: str | None = None,
        recipient: str | None = None,
        size: int | None = None,
        nrcpt: int | None = None,
        status: DeliveryStatus | None = None,
        reason: str | None = None,
        detail: str | None = None,
        client_ip: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Event:
        """An event about a queued message; ``client_ip`` applies to an unknown message only."""
        if entry is None:
            user = protocol = None
        else:
            user, client_ip, protocol = entry.user, entry.client_ip, entry.protocol
            if detail is None and entry.notice_of is not None:
                detail = f"{entry.notice_kind} notice for {entry.notice_of}"
            if sender is None:
                sender = entry.sender
        return new_event(
            ctx,
            SOURCE,
            kind,
            service=service,
            queue_id=queue_id,
            user=user,
            client_ip=client_ip,
            protocol=protocol,
            sender=sender,
            recipient=recipient,
            size=size,
            nrcpt=nrcpt,
            status=status,
            reason=reason,
            detail=detail,
            extra=extra,
        )

    def _cleanup(self, message: str, ctx: LineContext, service: str | None) -> ParseResult:
        queue_id, sep, rest = message.partition(": ")
        if not sep or not is_queue_id(queue_id):
            return ignored("cleanup_housekeeping")
        entry = self._queued(queue_id, ctx)
        if rest.startswith("message-id="):
            return ParseResult(
                [
                    self._message_event(
                        ctx,
                        "message_id",
                        service,
                        queue_id,
                        entry,
                        extra={"message_id": rest[11:]},
                    )
                ]
            )
        action = rest.partition(": ")[0]
        if action in ("reject", "milter-reject", "hold") or action in _POLICY_ACTIONS:
            return self._cleanup_action(queue_id, action, rest, ctx, service, entry)
        return ignored("cleanup_housekeeping")

    def _cleanup_action(
        self,
        queue_id: str,
        action: str,
        rest: str,
        ctx: LineContext,
        service: str | None,
        entry: QueuedMessage | None,
    ) -> ParseResult:
        kind = {"reject": "reject", "milter-reject": "reject", "hold": "hold"}.get(action, "policy")
        ip = entry.client_ip if entry is not None else None
        from_at = rest.find(" from ")
        if from_at > 0:
            try:
                _host, ip, _end = host_and_ip(rest, from_at + 6)
            except ValueError:
                ip = entry.client_ip if entry is not None else None
        return ParseResult(
            [
                self._message_event(
                    ctx,
                    kind,
                    service,
                    queue_id,
                    entry,
                    detail=f"{action} in cleanup",
                    client_ip=ip,
                )
            ]
        )

    def _qmgr(self, message: str, ctx: LineContext, service: str | None) -> ParseResult:
        queue_id, sep, rest = message.partition(": ")
        if not sep or not is_queue_id(queue_id):
            return ignored("qmgr_housekeeping")
        if rest == "removed":
            self._state.queue.pop(queue_id)
            return ignored("qmgr_removed")
        if not rest.startswith("from=<"):
            return ignored("qmgr_housekeeping")
        if rest.endswith(" (queue active)"):
            size_at = rest.rfind(">, size=")
            if size_at < 0:
                return failed("unrecognised qmgr message")
            sender = rest[6:size_at]
            size_text, _, nrcpt_text = rest[size_at + 8 : -15].partition(", nrcpt=")
            # isdecimal, not isdigit: int() refuses superscripts ("1²") that isdigit accepts
            if not (size_text.isdecimal() and nrcpt_text.isdecimal()):
                return failed("unrecognised qmgr message")
            entry = self._queued(queue_id, ctx)
            retry = False
            if entry is None:
                entry = QueuedMessage(user=None, client_ip=None, tls=None, protocol=None)
                self._state.queue.put(queue_id, entry, ctx.epoch)
            else:
                retry = entry.queued_before
            entry.queued_before = True
            entry.sender = sender
            return ParseResult(
                [
                    self._message_event(
                        ctx,
                        "queued",
                        service,
                        queue_id,
                        entry,
                        sender=sender,
                        size=count_or_none(int(size_text)),
                        nrcpt=count_or_none(int(nrcpt_text)),
                        detail="queue active again (retry)" if retry else None,
                    )
                ]
            )
        status_at = rest.rfind(">, status=expired")
        if status_at > 0:
            entry = self._queued(queue_id, ctx)
            return ParseResult(
                [
                    self._message_event(
                        ctx,
                        "delivery",
                        service,
                        queue_id,
                        entry,
                        sender=rest[6:status_at],
                        status="expired",
                        reason=rest[status_at + 18 :] or None,
                    )
                ]
            )
        return ignored("qmgr_housekeeping")

    def _delivery(self, message: str, ctx: LineContext, service: str | None) -> ParseResult:
        queue_id, sep, rest = message.partition(": ")
        if not sep or not is_queue_id(queue_id) or not rest.startswith("to=<"):
            return ignored("postfix_delivery_agent")
        tail = _DELIVERY_TAIL.search(rest, 4)
        if tail is None:
            return failed("unrecognised delivery status")
        relay, dsn, status_text, text = tail.groups()
        status = _DELIVERY_STATUSES.get(status_text)
        if status is None:
            return ignored("address_verification")
        entry = self._queued(queue_id, ctx)
        return ParseResult(
            [
                self._message_event(
                    ctx,
                    "delivery",
                    service,
                    queue_id,
                    entry,
                    sender=entry.sender if entry is not None else None,
                    recipient=rest[4 : tail.start()],
                    status=status,
                    reason=text,
                    extra={"relay": relay, "dsn": dsn},
                )
            ]
        )

    def _bounce(self, message: str, ctx: LineContext, service: str | None) -> ParseResult:
        queue_id, sep, rest = message.partition(": ")
        if not sep or not is_queue_id(queue_id):
            return ignored("bounce_housekeeping")
        what, sep, notice_id = rest.rpartition(": ")
        notice_kind = _NOTICES.get(what)
        if notice_kind is None or not is_queue_id(notice_id):
            return ignored("bounce_housekeeping")
        entry = self._queued(queue_id, ctx)
        notice = self._queued(notice_id, ctx)
        if notice is None:
            notice = QueuedMessage(user=None, client_ip=None, tls=None, protocol=None, sender="")
            self._state.queue.put(notice_id, notice, ctx.epoch)
        if entry is not None:
            notice.user, notice.client_ip, notice.protocol = (
                entry.user,
                entry.client_ip,
                entry.protocol,
            )
        notice.notice_of, notice.notice_kind = queue_id, notice_kind
        return ParseResult(
            [
                self._message_event(
                    ctx,
                    "dsn",
                    service,
                    queue_id,
                    entry,
                    detail=what,
                    extra={"notice_queue_id": notice_id},
                )
            ]
        )

    def _pickup(self, message: str, ctx: LineContext, service: str | None) -> ParseResult:
        queue_id, sep, rest = message.partition(": ")
        if not sep or not is_queue_id(queue_id) or not rest.startswith("uid="):
            return ignored("pickup_housekeeping")
        uid, _, sender_part = rest[4:].partition(" from=<")
        sender = sender_part[: sender_part.rfind(">")] if sender_part else None
        self._state.queue.put(
            queue_id,
            QueuedMessage(user=None, client_ip=None, tls=None, protocol=None, sender=sender),
            ctx.epoch,
        )
        return ParseResult(
            [
                new_event(
                    ctx,
                    SOURCE,
                    "submission",
                    service=service,
                    queue_id=queue_id,
                    sender=sender,
                    detail="local submission (pickup)",
                    extra={"uid": uid},
                )
            ]
        )

    def _postsuper(self, message: str, ctx: LineContext, service: str | None) -> ParseResult:
        queue_id, sep, rest = message.partition(": ")
        if sep and is_queue_id(queue_id):
            entry = self._queued(queue_id, ctx)
            if rest == "removed":
                self._state.queue.pop(queue_id)
            return ParseResult(
                [self._message_event(ctx, "queue_admin", service, queue_id, entry, detail=rest)]
            )
        return ignored("postsuper_summary")


def _housekeeping(_message: str, _ctx: LineContext, _service: str | None) -> ParseResult:
    return ignored("postfix_housekeeping")


def _other_program(_message: str, _ctx: LineContext, _service: str | None) -> ParseResult:
    return ignored("postfix_other_program")


def _counters(text: str) -> dict[str, str]:
    """`` ehlo=1 auth=0/1 quit=1`` -> {"ehlo": "1", "auth": "0/1", "quit": "1"}."""
    counters: dict[str, str] = {}
    for token in text.split():
        name, sep, value = token.partition("=")
        if sep:
            counters[name] = value
    return counters


def _ratio(text: str | None) -> tuple[int, int | None]:
    """``auth=0/3`` -> (0, 3); ``auth=1`` -> (1, 1); absent -> (0, None).

    A total beyond 64 bits (a crafted line) is None.
    """
    if not text:
        return 0, None
    done, _, total = text.partition("/")
    try:
        ok = int(done)
        return ok, count_or_none(int(total) if total else ok)
    except ValueError:
        return 0, None


def _field(text: str, prefix: str, terminator: str) -> str | None:
    at = text.find(prefix)
    if at < 0:
        return None
    start = at + len(prefix)
    end = text.find(terminator, start)
    return text[start:] if end < 0 else text[start:end]


def _envelope_fields(reply: str) -> tuple[str | None, str | None, str | None, str]:
    """Split ``550 ...; from=<s> to=<r> proto=ESMTP helo=<h>`` into its parts.

    The envelope addresses and HELO are the client's words; they are returned
    as data and never used to find the client or the account.
    """
    at = reply.find("; from=<")
    if at < 0:
        proto_at = reply.find("; proto=")
        return None, None, None, reply if proto_at < 0 else reply[:proto_at]
    fields = reply[at + 2 :]
    sender = _between(fields, "from=<", ">")
    recipient = _between(fields, "to=<", ">")
    helo = _between(fields, "helo=<", ">")
    return sender, recipient, helo, reply[:at]


def _between(text: str, opening: str, closing: str) -> str | None:
    start = text.find(opening)
    if start < 0:
        return None
    start += len(opening)
    end = text.find(closing, start)
    return text[start:] if end < 0 else text[start:end]
