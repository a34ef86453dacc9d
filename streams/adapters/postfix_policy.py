"""Postfix SMTP access policy delegation server (``check_policy_service``).

The protocol (Postfix SMTPD_POLICY_README): the client sends ``name=value``
lines; an empty line ends one request; the server answers
``action=<access(5) action>`` and an empty line. Postfix keeps the connection
for further requests until it closes it (``smtpd_policy_service_max_idle``,
``..._max_ttl``), so a connection is served until EOF.

The answer comes from :meth:`ActiveCommands.decide_smtp` on ``sasl_username``
and ``client_address``: ``DUNNO`` (no objection, the other restrictions
decide) or ``REJECT``/``DEFER``/``HOLD`` with the decision's ``reply``: a
generic phrase and a reference to the command, never the rule's reason. A
``sasl_username`` under ``deny_insecure`` is also refused (``REJECT``) when
``encryption_protocol`` is empty or below TLSv1.2 (:func:`insecure_channel`);
the strongest verdict wins.

Robustness choices (docs/adapters.md):

- a line without ``=`` or a repeated attribute is ignored and counted; the
  request is still decided on its well-formed attributes, which Postfix alone
  writes (a client cannot put a newline into an SMTP command);
- a request whose ``request`` attribute is not ``smtpd_access_policy`` gets
  ``action=DUNNO`` and a warning: we only judge what we understand;
- a request over ``max_request`` bytes or with more than ``max_attributes``
  attributes: the framing can no longer be trusted, so the
  connection is closed without an answer and Postfix applies
  ``smtpd_policy_service_default_action`` -- the operator's fail-open or
  fail-closed choice, the same as when the adapter is down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from models.enforcement import MIN_TLS, ActiveCommands, Decision, weak_tls
from streams.adapters.metrics import AdapterMetrics, count_refusal
from streams.adapters.tcp import ConnectionLimits, TcpService

log = logging.getLogger(__name__)

POLICY_REQUEST = "smtpd_access_policy"


class RequestTooLarge(ValueError):
    """A request broke a size limit; the connection's framing is lost."""


@dataclass(slots=True, frozen=True)
class RequestLimits:
    max_request: int = 16384
    max_attributes: int = 100


@dataclass(slots=True)
class PolicyRequest:
    """One request: its attributes and how many lines were not ``name=value``."""

    attributes: dict[str, str] = field(default_factory=dict)
    ignored_lines: int = 0


def insecure_channel(attributes: Mapping[str, str], min_tls: str = MIN_TLS) -> bool:
    """The client is on plaintext or TLS below ``min_tls``, by ``encryption_protocol``.

    Postfix sends the attribute empty without TLS. A request without it (not
    from Postfix) or with a protocol name the rule does not know is not judged.
    """
    protocol = attributes.get("encryption_protocol")
    return protocol is not None and weak_tls(protocol, min_tls)


def reply_for(decision: Decision) -> bytes:
    """The wire answer: ``action=DUNNO`` or ``action=REJECT <reply>``, then an empty line."""
    if decision.action == "DUNNO":
        return b"action=DUNNO\n\n"
    action = f"{decision.action} {decision.reply}".rstrip()
    return f"action={action}\n\n".encode("ascii")


async def read_request(
    reader: asyncio.StreamReader, limits: RequestLimits, idle_timeout: float
) -> PolicyRequest | None:
    """Read one request; None at a clean EOF between requests.

    The reader's own limit bounds the request (``max_request``): beyond it
    ``readuntil`` raises LimitOverrunError. Raises RequestTooLarge for too
    many attributes, TimeoutError when the client stalls, and
    IncompleteReadError at an EOF inside a request.
    """
    try:
        async with asyncio.timeout(idle_timeout):
            raw = await reader.readuntil(b"\n\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip(b"\n"):
            raise
        return None
    except asyncio.LimitOverrunError as exc:
        raise RequestTooLarge(f"request over {limits.max_request} bytes") from exc
    request = PolicyRequest()
    attributes = request.attributes
    text = raw.decode("utf-8", "surrogateescape")
    # Stray empty lines before a request are not requests of their own.
    for line in text.lstrip("\n").split("\n")[:-2]:
        name, sep, value = line.removesuffix("\r").partition("=")
        if not sep or not name or name in attributes:
            request.ignored_lines += 1
            continue
        if len(attributes) >= limits.max_attributes:
            raise RequestTooLarge(f"more than {limits.max_attributes} attributes")
        attributes[name] = value
    return request


class PostfixPolicyServer(TcpService):
    """Answers Postfix policy requests from an :class:`ActiveCommands`."""

    name = "postfix-policy"

    def __init__(
        self,
        active: ActiveCommands,
        metrics: AdapterMetrics | None = None,
        *,
        limits: ConnectionLimits | None = None,
        request_limits: RequestLimits | None = None,
        min_tls: str = MIN_TLS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.request_limits = request_limits or RequestLimits()
        super().__init__(limits, self.request_limits.max_request)
        self.active = active
        self.metrics = metrics
        self.min_tls = min_tls
        self._clock = clock

    def decide(self, attributes: Mapping[str, str]) -> Decision:
        """The decision for one request's attributes."""
        if attributes.get("request") != POLICY_REQUEST:
            self._malformed("not smtpd_access_policy")
            log.warning("answered DUNNO to a request of type %r", attributes.get("request"))
            return Decision("DUNNO")
        now = self._clock()
        sasl_username = attributes.get("sasl_username", "")
        decision = self.active.decide_smtp(sasl_username, attributes.get("client_address", ""), now)
        # deny_insecure only ever says REJECT, the strongest verdict.
        if decision.action != "REJECT" and insecure_channel(attributes, self.min_tls):
            denied = self.active.decide_insecure(sasl_username, now)
            if denied.refuses:
                decision = denied
        if decision.refuses:
            count_refusal(self.metrics, decision)
            command = decision.command
            log.info(
                "%s sasl_username=%r client_address=%r state=%s tls=%r queue_id=%s: %s "
                "(rule %s, id %s, reason %r)",
                decision.action,
                sasl_username,
                attributes.get("client_address", ""),
                attributes.get("protocol_state", ""),
                attributes.get("encryption_protocol", ""),
                attributes.get("queue_id", ""),
                decision.reply,
                command.rule if command else "",
                command.id if command else "",
                command.reason if command else "",
            )
        return decision

    async def serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        while True:
            try:
                request = await read_request(reader, self.request_limits, self.limits.idle_timeout)
            except RequestTooLarge as exc:
                self._malformed("too large")
                log.warning("closing policy connection from %s: %s", peer, exc)
                return
            if request is None:
                return
            started = time.perf_counter()
            if request.ignored_lines:
                self._malformed("ignored lines")
                log.warning(
                    "ignored %d malformed line(s) in a request from %s", request.ignored_lines, peer
                )
            decision = self.decide(request.attributes)
            writer.write(reply_for(decision))
            await writer.drain()
            if self.metrics is not None:
                self.metrics.requests.labels(decision.action).inc()
                self.metrics.latency.observe(time.perf_counter() - started)

    def _malformed(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.malformed.labels(reason).inc()
