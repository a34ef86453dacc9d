"""Dovecot auth policy server (``auth_policy_server_url``), on aiohttp.

Dovecot POSTs JSON to ``<url>?command=allow`` before authentication (and
again after a successful password check), and to ``?command=report`` after
it. The body holds the ``auth_policy_request_attributes`` (``login``,
``remote``, ``protocol``, ``pwhash``, ...) plus ``tls``, and for reports
``success`` and ``policy_reject``.

- ``allow``: :meth:`ActiveCommands.decide_login`; a suspended login or a
  blocked address gets ``{"status": -1, "msg": "<reply>"}`` (Dovecot refuses
  the login and shows the reply, e.g. ``account suspended (ref 7b43e346)``,
  to the client), and so does an account under ``deny_insecure`` that logs
  in over plaintext (:func:`plaintext_login`); anything else
  ``{"status": 0, "msg": ""}``. SMTP AUTH through Postfix's Dovecot SASL
  arrives here too, with ``protocol: "smtp"``.
- ``report``: always ``{"status": 0, "msg": ""}``; the report becomes an
  :class:`Event` (source ``dovecot-policy``, kind ``auth_report``) handed to a
  :class:`ReportSink`, which publishes to `mail.events` without making
  Dovecot wait for Kafka.

Optional HTTP authentication: Dovecot sends ``auth_policy_server_api_header``
(e.g. ``Authorization: Basic <base64 user:password>``) with every request;
when configured, any other value gets 401, which Dovecot treats as a policy
server failure (``auth_policy_reject_on_fail`` decides; docs/adapters.md).
"""

from __future__ import annotations

import base64
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import orjson
from aiohttp import web

from models.enforcement import ActiveCommands, Decision, parse_address
from models.events import Event, Origin, iso_utc
from streams.adapters.metrics import AdapterMetrics, count_refusal

log = logging.getLogger(__name__)

SOURCE = "dovecot-policy"
ORIGIN_PATH = "dovecot-auth-policy"
MAX_BODY = 64 * 1024
ALLOW_OK: Mapping[str, Any] = {"status": 0, "msg": ""}
# Dovecot's %{secured}: "TLS", "secured" (a trusted channel: the client's IP
# is the server's, or in login_trusted_networks), or "" for neither.
SECURED_CHANNELS = frozenset({"TLS", "secured"})


class ReportSink(Protocol):
    """Where report events go; ``submit`` must not block (Dovecot is waiting)."""

    def submit(self, event: Event) -> bool:
        """Take the event; False if it had to be dropped."""
        ...


def basic_authorization(credentials: str) -> str:
    """The ``Authorization`` header value Dovecot sends for ``user:password``."""
    if ":" not in credentials:
        raise ValueError("basic auth credentials must be 'user:password'")
    return "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")


def _text(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    return value if isinstance(value, str) else ""


def tls_of(body: Mapping[str, Any]) -> str | None:
    """The event's ``tls`` from a report: ``TLS`` (version unknown), ``none`` or None.

    IMAP and POP3 reports carry Dovecot's own ``tls`` flag. SMTP AUTH from
    Postfix always says ``tls: false``; there only Postfix's ``secured`` tells,
    and it means "TLS or a trusted network", so it proves plaintext when empty
    and nothing otherwise. Dovecot's ``secured`` for IMAP/POP3 includes
    loopback plaintext, so it is not used there.
    """
    tls = body.get("tls")
    if tls is True:
        return "TLS"
    if _text(body, "protocol") == "smtp":
        return "none" if body.get("secured") == "" else None
    if tls is False:
        return "none"
    return None


def plaintext_login(body: Mapping[str, Any]) -> bool:
    """True when the login crossed the network unencrypted, as far as Dovecot tells.

    That is :func:`tls_of` ``none`` on a channel Dovecot does not call
    secured: the insecure_auth rule never judges secured channels (local
    webmail), so ``deny_insecure`` does not refuse them either. SMTP AUTH
    without ``secured`` in the request says nothing about TLS, so it is not
    refused.
    """
    return tls_of(body) == "none" and body.get("secured") not in SECURED_CHANNELS


def report_event(body: Mapping[str, Any], now: float, *, host: str | None, sequence: int) -> Event:
    """The ``auth`` event for one ``command=report`` body, stamped at arrival time.

    The client IP is kept only when ``remote`` is an IP address; ``origin``
    names the policy endpoint and the report's sequence number since start.
    """
    address = parse_address(_text(body, "remote"))
    protocol = _text(body, "protocol").lower()
    extra: dict[str, Any] = {"policy_reject": body.get("policy_reject") is True}
    pwhash = _text(body, "pwhash")
    if pwhash:
        extra["pwhash"] = pwhash
    return Event(
        ts=iso_utc(now),
        epoch=now,
        host=host,
        source=SOURCE,
        kind="auth_report",
        outcome="success" if body.get("success") is True else "failure",
        protocol=protocol or None,
        user=_text(body, "login") or None,
        client_ip=str(address) if address is not None else None,
        tls=tls_of(body),
        session=_text(body, "session_id") or None,
        mech=_text(body, "mech") or None,
        origin=Origin(path=ORIGIN_PATH, line=sequence, host=host),
        extra=extra,
    )


class DovecotPolicyServer:
    """The HTTP endpoint Dovecot's auth policy client talks to."""

    name = "dovecot-policy"

    def __init__(
        self,
        active: ActiveCommands,
        sink: ReportSink,
        metrics: AdapterMetrics | None = None,
        *,
        authorization: str | None = None,
        host: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.active = active
        self.sink = sink
        self.metrics = metrics
        self.host = host
        self._authorization = authorization.encode() if authorization else None
        self._clock = clock
        self._reports = 0
        self._runner: web.AppRunner | None = None

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/{path:.*}", self._handle)
        return app

    @property
    def address(self) -> tuple[str, int]:
        addresses = self._runner.addresses if self._runner is not None else []
        if not addresses:
            raise RuntimeError(f"{self.name} is not listening")
        return str(addresses[0][0]), int(addresses[0][1])

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.application(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        log.info("%s listening on %s:%d", self.name, *self.address)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        if self._authorization is not None and not hmac.compare_digest(
            request.headers.get("Authorization", "").encode(), self._authorization
        ):
            self._malformed("unauthorized")
            log.warning("refused a policy request from %s: bad credentials", request.remote)
            return web.json_response({"error": "unauthorized"}, status=401)
        command = request.query.get("command", "")
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            self._malformed("bad body")
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        if command == "allow":
            reply, label = self._allow(body)
        elif command == "report":
            reply, label = self._report(body), "report"
        else:
            self._malformed("unknown command")
            return web.json_response({"error": "command must be allow or report"}, status=400)
        response = web.Response(body=orjson.dumps(reply), content_type="application/json")
        if self.metrics is not None:
            self.metrics.requests.labels(label).inc()
            self.metrics.latency.observe(time.perf_counter() - started)
        return response

    def decide(self, body: Mapping[str, Any]) -> Decision:
        """The decision for one ``allow`` body: suspended, blocked, or plaintext denied."""
        login, remote = _text(body, "login"), _text(body, "remote")
        now = self._clock()
        decision = self.active.decide_login(login, remote, now)
        if not decision.refuses and plaintext_login(body):
            decision = self.active.decide_insecure(login, now)
        return decision

    def _allow(self, body: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
        decision = self.decide(body)
        if not decision.refuses:
            return ALLOW_OK, "DUNNO"
        login, remote = _text(body, "login"), _text(body, "remote")
        command = decision.command
        count_refusal(self.metrics, decision)
        log.info(
            "refused login=%r remote=%r protocol=%r tls=%r secured=%r: %s "
            "(rule %s, id %s, reason %r)",
            login,
            remote,
            _text(body, "protocol"),
            body.get("tls"),
            body.get("secured"),
            decision.reply,
            command.rule if command else "",
            command.id if command else "",
            command.reason if command else "",
        )
        return {"status": -1, "msg": decision.reply}, "REJECT"

    def _report(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        self._reports += 1
        event = report_event(body, self._clock(), host=self.host, sequence=self._reports)
        if not self.sink.submit(event):
            log.warning("dropped the report for %r from %r", event.user, event.client_ip)
        return ALLOW_OK

    def _malformed(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.malformed.labels(reason).inc()
