"""The one entry point every caller of the parsers uses.

`LogParser` holds the small per-host correlation state (Postfix queue ids to
the submitting account, smtpd sessions to their TLS version, recent auth
failures for de-duplication) and turns raw lines into events. It does no I/O.
"""

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
