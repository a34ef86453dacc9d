"""What one parsed line gives back, the per-line context the families share, and events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Final

from models.events import DeliveryStatus, Event, Origin, Outcome


@dataclass(slots=True)
class ParseResult:
    """What one line produced.

    Exactly one of these holds:
    - ``events`` is non-empty: the line was understood;
    - ``ignored`` is set: a known line with nothing for detection (housekeeping),
      named by a short category so it can be counted;
    - ``error`` is set: the line could not be parsed, with the reason. Such lines
      go to the dead-letter topic.
    """

    events: list[Event] = field(default_factory=list)
    ignored: str | None = None
    error: str | None = None


@dataclass(slots=True)
class LineContext:
    """One line split into its envelope: what every event of the line carries."""

    ts: str
    epoch: float
    host: str | None
    origin: Origin
    program: str
    pid: str | None
    message: str


# A parser for one program: (message, context, service) -> result, and the
# service name it is called with (Postfix's master.cf service, else None).
Handler = Callable[[str, LineContext, str | None], ParseResult]
Route = tuple[Handler, str | None]


def ignored(category: str) -> ParseResult:
    return ParseResult(ignored=category)


def failed(reason: str) -> ParseResult:
    return ParseResult(error=reason)


# new_event passes the fields by position; a field inserted or renamed in Event
# must be caught here, at import, not by events with shifted values.
_EVENT_FIELDS = (
    "ts",
    "epoch",
    "host",
    "source",
    "kind",
    "outcome",
    "protocol",
    "user",
    "client_ip",
    "tls",
    "queue_id",
    "sender",
    "recipient",
    "nrcpt",
    "size",
    "status",
    "service",
    "session",
    "detail",
    "reason",
    "mech",
    "attempts",
    "origin",
    "extra",
)
if tuple(f.name for f in fields(Event))[: len(_EVENT_FIELDS)] != _EVENT_FIELDS:
    raise ImportError("models.events.Event fields changed: update parsers.result.new_event")
# Event(...) goes through type.__call__, which packs the arguments into a tuple and
# looks __init__ up on every call; the dataclass __init__ called on a bare instance
# builds the same event about a fifth faster.
if Event.__new__ is not object.__new__:
    raise ImportError("models.events.Event has its own __new__: update parsers.result.new_event")
_bare_object: Final = object.__new__
_init_event: Final = Event.__init__


def new_event(
    ctx: LineContext,
    source: str,
    kind: str,
    *,
    outcome: Outcome | None = None,
    protocol: str | None = None,
    user: str | None = None,
    client_ip: str | None = None,
    tls: str | None = None,
    queue_id: str | None = None,
    sender: str | None = None,
    recipient: str | None = None,
    nrcpt: int | None = None,
    size: int | None = None,
    status: DeliveryStatus | None = None,
    service: str | None = None,
    session: str | None = None,
    detail: str | None = None,
    reason: str | None = None,
    mech: str | None = None,
    attempts: int | None = None,
    extra: dict[str, Any] | None = None,
) -> Event:
    """An event of the line ``ctx``.

    Named parameters, then one positional call: building an event is on the
    path of every line, and this is about twice as fast as forwarding
    ``**values`` to the dataclass.
    """
    event = _bare_object(Event)
    _init_event(
        event,
        ctx.ts,
        ctx.epoch,
        ctx.host,
        source,
        kind,
        outcome,
        protocol,
        user,
        client_ip,
        tls,
        queue_id,
        sender,
        recipient,
        nrcpt,
        size,
        status,
        service,
        session,
        detail,
        reason,
        mech,
        attempts,
        ctx.origin,
        {} if extra is None else extra,
    )
    return event
