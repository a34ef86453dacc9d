"""The normalized event: one fact read from one log line (or one policy request).

This is a public contract (see DESIGN.md, "Contracts"): the JSON form of
:class:`Event` is what `mailwarden parse` prints and what travels on
`mail.events`. Add fields freely; rename or remove them only on purpose.

Kinds (``kind``):

``auth``
    One authentication attempt, counted once. ``outcome`` is ``success`` or
    ``failure``. Lines that only corroborate an attempt already counted (the
    Dovecot auth process echoing a Postfix SASL failure, a login process
    summary of attempts logged one by one) carry ``kind="auth_echo"`` so that
    rules never count one attempt twice.
``auth_echo``
    A second record of an attempt counted elsewhere (see above).
``auth_report``
    Dovecot's auth-policy ``report`` for an attempt (source ``dovecot-policy``):
    the same attempt its log lines count, plus what logs lack (the truncated
    password hash in ``extra["pwhash"]``, a real-time success for SMTP AUTH).
    Kept apart from ``auth`` so that running the adapter never doubles counts.
``submission``
    A message accepted from a client (Postfix ``QID: client=...`` with
    ``sasl_username``, or a local ``pickup``).
``queued``
    The queue manager's ``from=, size=, nrcpt=`` record of a message.
``delivery``
    A delivery attempt; ``status`` is ``sent``, ``deferred``, ``bounced`` or
    ``expired``. ``user`` is the submitting account once correlated.
``reject``
    An SMTP-level refusal (``NOQUEUE: reject``), ``hold`` for ``NOQUEUE: hold``.
``connect``, ``disconnect``, ``tls``, ``logout``, ``kick``, ``policy``
    Session bookkeeping that rules and audits may use.
``message_id``, ``dsn``, ``queue_admin``, ``reinjected``
    Message bookkeeping: cleanup's message-id, bounce and delay notices,
    postsuper hold/release/delete, mail re-injected by a content filter.
``protocol_error``, ``warning``
    Client misbehaviour that is not a login attempt (an unknown SASL
    mechanism, a TLS handshake failure) and daemon warnings worth keeping.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

Outcome = Literal["success", "failure"]
DeliveryStatus = Literal["sent", "deferred", "bounced", "expired"]

AUTH = "auth"
AUTH_ECHO = "auth_echo"
SUBMISSION = "submission"
QUEUED = "queued"
DELIVERY = "delivery"
REJECT = "reject"


# Event and Origin keep an instance __dict__ (no __slots__): orjson serializes
# such dataclasses straight from it, about three times faster than reading slots.


@dataclass(frozen=True, init=False)
class Origin:
    """Where an event came from, for audits and the dead-letter topic.

    ``line`` is 1-based. ``host`` and ``offset`` (byte offset of the line's
    start) are set when the event came through the publisher.
    """

    path: str
    line: int
    host: str | None = None
    offset: int | None = None

    def __init__(
        self, path: str, line: int, host: str | None = None, offset: int | None = None
    ) -> None:
        # One Origin per log line: filling the instance dict directly costs half of
        # the generated frozen __init__ (an object.__setattr__ call per field).
        # Keys in field order, as orjson writes them in this order.
        values = self.__dict__
        values["path"] = path
        values["line"] = line
        values["host"] = host
        values["offset"] = offset


@dataclass
class Event:
    """A normalized mail-platform event.

    ``ts`` is the event time in ISO-8601 UTC with offset; ``epoch`` the same
    instant in seconds, for rules that do arithmetic on time.
    """

    ts: str
    epoch: float
    host: str | None
    source: str
    kind: str
    outcome: Outcome | None = None
    protocol: str | None = None
    user: str | None = None
    client_ip: str | None = None
    tls: str | None = None
    queue_id: str | None = None
    sender: str | None = None
    recipient: str | None = None
    nrcpt: int | None = None
    size: int | None = None
    status: DeliveryStatus | None = None
    service: str | None = None
    session: str | None = None
    detail: str | None = None
    reason: str | None = None
    mech: str | None = None
    attempts: int | None = None
    origin: Origin | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str | None:
        """The Kafka key on ``mail.events``: the account when known, else the client IP.

        The account is normalized, so that "Alice@X" and "alice@x" (one mailbox
        to the servers) land on one partition and one worker's state.
        """
        return event_key(self.user, self.client_ip)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        """Rebuild an event from its JSON form, ignoring fields this version does not know."""
        values = {k: v for k, v in data.items() if k in _EVENT_FIELDS}
        origin = values.get("origin")
        if isinstance(origin, dict):
            values["origin"] = Origin(
                path=str(origin.get("path", "")),
                line=int(origin.get("line", 0)),
                host=origin.get("host"),
                offset=origin.get("offset"),
            )
        return cls(**values)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        data = orjson.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("event JSON must be an object")
        return cls.from_dict(data)


_EVENT_FIELDS: frozenset[str] = frozenset(f.name for f in fields(Event))


def event_key(user: str | None, client_ip: str | None) -> str | None:
    """:attr:`Event.key` from the two fields it depends on (for events held as JSON)."""
    return (normalize_account(user) if user else None) or client_ip


def normalize_account(user: str) -> str | None:
    """The account name as state is keyed: stripped and case-folded; None when empty."""
    key = user.strip().casefold()
    return key or None


def iso_utc(epoch: float) -> str:
    """ISO-8601 with an explicit UTC offset, second resolution unless fractional."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    if moment.microsecond:
        return moment.isoformat(timespec="microseconds")
    return moment.isoformat(timespec="seconds")
