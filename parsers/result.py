"""What one parsed line gives back, and the per-line context the families share."""

from __future__ import annotations

from dataclasses import dataclass, field

from models.events import Event, Origin


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


def ignored(category: str) -> ParseResult:
    return ParseResult(ignored=category)


def failed(reason: str) -> ParseResult:
    return ParseResult(error=reason)


def emitted(*events: Event) -> ParseResult:
    return ParseResult(events=list(events))
