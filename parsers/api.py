"""The one entry point every caller of the parsers uses.

`LogParser` holds the small per-host correlation state (Postfix queue ids to
the submitting account, smtpd sessions to their TLS version, recent auth
failures for de-duplication) and turns raw lines into events. It does no I/O.

A line goes: bytes -> text (UTF-8; invalid bytes are replaced and the events
say so in ``extra["invalid_utf8"]``) -> envelope (:mod:`parsers.envelope`) ->
the family chosen by program name (:mod:`parsers.postfix`,
:mod:`parsers.dovecot`, :mod:`parsers.auth`) -> events. ``feed`` never
raises: bad input comes back as ``ParseResult.error``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from models.events import Origin
from parsers.auth import AuthLogParser, is_cyrus_badlogin, is_pam_message
from parsers.correlation import HostState, QueueImport
from parsers.dovecot import DovecotParser, is_dovecot_process
from parsers.envelope import EnvelopeError, EnvelopeReader
from parsers.postfix import PostfixParser
from parsers.result import LineContext, ParseResult, Route, failed, ignored

__all__ = ["MAX_LINE_BYTES", "LogParser", "ParseResult", "ParserStats", "QueueImport"]

MAX_LINE_BYTES: Final = 64 * 1024
_ROUTE_CACHE_LIMIT: Final = 4096


@dataclass(slots=True)
class ParserStats:
    """Counters since the parser was made. Error reasons are counted without details."""

    lines: int = 0
    events: int = 0
    ignored: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    invalid_utf8: int = 0

    def count_unproductive(self, result: ParseResult) -> None:
        """Count a line that gave no event, by its category or reason."""
        if result.ignored is not None:
            self.ignored[result.ignored] = self.ignored.get(result.ignored, 0) + 1
        elif result.error is not None:
            reason = result.error.partition(" (")[0]
            self.errors[reason] = self.errors.get(reason, 0) + 1


class LogParser:
    """Parses the log lines of one mail host, in the order they were written.

    ``timezone`` applies to stamps without an offset; ``year`` to RFC 3164
    stamps, which have none (``now``, the caller's clock as epoch seconds, is
    the alternative: the year is then the one that puts the first stamp no
    more than a day in the future). ``host`` overrides the host field of the
    lines, which Dovecot's own log file does not have.
    """

    def __init__(
        self,
        host: str | None = None,
        timezone: str = "UTC",
        year: int | None = None,
        *,
        now: float | None = None,
    ) -> None:
        self._envelopes = EnvelopeReader(timezone=timezone, year=year, now=now, host=host)
        self._state = HostState()
        self._postfix = PostfixParser(self._state)
        self._dovecot = DovecotParser(self._state)
        self._auth = AuthLogParser(self._state)
        self._routes: dict[str, Route] = {}
        self.stats = ParserStats()

    def feed(self, raw: bytes | str, origin: Origin) -> ParseResult:
        """Parse one line (without or with its line ending). Never raises on input."""
        stats = self.stats
        stats.lines += 1
        invalid_utf8 = False
        try:
            if isinstance(raw, bytes):
                if len(raw) > MAX_LINE_BYTES:
                    raise UnreadableLine(f"line too long ({len(raw)} bytes)")
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    text = raw.decode("utf-8", "replace")
                    invalid_utf8 = True
                    stats.invalid_utf8 += 1
            else:
                text = _checked_text(raw)
            if "\n" in text or "\r" in text:
                text = _one_line(text)
            context = self._envelopes.read(text, origin)
            route = self._routes.get(context.program)
            if route is None:
                route = self._route_for(context.program)
            result = route[0](context.message, context, route[1])
            if invalid_utf8:
                for event in result.events:
                    event.extra["invalid_utf8"] = True
        except (UnreadableLine, EnvelopeError) as exc:
            result = failed(str(exc))
        except Exception as exc:  # a parser bug must cost one line, not the stream
            result = failed(f"internal parser error ({type(exc).__name__}: {exc})")
        if result.events:
            stats.events += len(result.events)
        else:
            stats.count_unproductive(result)
        return result

    def export_correlation(self) -> dict[str, object]:
        """The Postfix queue id -> account map, as JSON values, to outlive a restart.

        Sessions and recent failures are left out on purpose (see
        :mod:`parsers.correlation`).
        """
        return self._state.export_queue()

    def import_correlation(self, snapshot: object) -> QueueImport:
        """Restore what :meth:`export_correlation` gave, before the first line; never raises.

        Bad entries are skipped and counted in the returned report.
        """
        return self._state.import_queue(snapshot)

    def _route_for(self, program: str) -> Route:
        route: Route
        if program.startswith("postfix"):
            route = self._postfix.route(program)
        elif program == "dovecot" or is_dovecot_process(program):
            route = (self._to_dovecot, None)
        elif program == "saslauthd":
            route = (self._to_saslauthd, None)
        elif program.startswith("roundcube"):
            route = (self._to_roundcube, None)
        else:
            route = (self._to_other, None)
        if len(self._routes) < _ROUTE_CACHE_LIMIT:
            self._routes[program] = route
        return route

    # Every route takes (message, context, service); only Postfix has services.

    def _to_dovecot(self, _message: str, context: LineContext, _service: str | None) -> ParseResult:
        result = self._dovecot.parse(context)
        if isinstance(result, str):
            context.message = result
            return self._auth.pam(context)
        if result.ignored is not None and is_cyrus_badlogin(context.message):
            return self._auth.cyrus(context)  # Cyrus imapd also calls itself "imap"
        return result

    def _to_saslauthd(
        self, _message: str, context: LineContext, _service: str | None
    ) -> ParseResult:
        return self._auth.saslauthd(context)

    def _to_roundcube(
        self, _message: str, context: LineContext, _service: str | None
    ) -> ParseResult:
        return self._auth.roundcube(context)

    def _to_other(self, message: str, context: LineContext, _service: str | None) -> ParseResult:
        if is_pam_message(message):
            return self._auth.pam(context)
        if is_cyrus_badlogin(message):
            return self._auth.cyrus(context)
        return ignored("other_program")


class UnreadableLine(ValueError):
    """The line is too long, or holds a line break."""


def _checked_text(text: str) -> str:
    """``text``, unless its UTF-8 form is longer than MAX_LINE_BYTES."""
    if len(text) > MAX_LINE_BYTES // 4 and len(text.encode("utf-8")) > MAX_LINE_BYTES:
        raise UnreadableLine(f"line too long ({len(text.encode('utf-8'))} bytes)")
    return text


def _one_line(text: str) -> str:
    """Drop the line ending; a carriage return inside the line becomes ``?``."""
    text = text.rstrip("\r\n")
    if "\n" in text:
        raise UnreadableLine("line break inside a line")
    return text.replace("\r", "?")
