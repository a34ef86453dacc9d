"""The two implementations of the parsers behind one small interface.

``parsers/`` (Python) is the reference: readable, tested line by line against
real corpora and crafted input. ``parsers-rs/`` is the same parsers in Rust
(module ``mailwarden_parsers_rs``, built by ``mailwarden native build``), held
byte-identical to the reference by tests/unit/test_rust_parsers.py and about
three times faster. Callers pick neither directly: :func:`open_parser` gives
the Rust engine when its build is importable and current, else Python.

Both engines answer :meth:`LineParser.feed` (events as objects, for replay and
rules) and :meth:`LineParser.feed_json` (events as their JSON, with the Kafka
key: what ``mailwarden parse`` prints and the publisher sends, without building
objects the Rust engine would only have to serialize again).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson

from models.events import Event, Origin, event_key
from parsers.api import LogParser, ParserStats, QueueImport
from parsers.result import ParseResult

__all__ = [
    "ENGINES",
    "EngineName",
    "EngineUnavailable",
    "JsonLine",
    "LineParser",
    "PythonEngine",
    "RustEngine",
    "open_parser",
]

EngineName = Literal["auto", "rust", "python"]
ENGINES: tuple[EngineName, ...] = ("auto", "rust", "python")
RUST_MODULE = "mailwarden_parsers_rs"


class EngineUnavailable(RuntimeError):
    """The Rust engine was asked for and is not built, or its build is outdated."""


@dataclass(slots=True)
class JsonLine:
    """One line's result with each event as JSON bytes and its ``mail.events`` key."""

    events: list[bytes]
    keys: list[str | None]
    ignored: str | None = None
    error: str | None = None


class LineParser(Protocol):
    """What both engines offer; one instance per host stream, fed in log order."""

    name: str

    def feed(self, raw: bytes, origin: Origin) -> ParseResult: ...

    def feed_json(self, raw: bytes, origin: Origin) -> JsonLine: ...

    @property
    def stats(self) -> ParserStats: ...

    def export_correlation(self) -> Any: ...

    def import_correlation(self, snapshot: object) -> QueueImport: ...


class PythonEngine:
    """The reference parsers (:class:`parsers.api.LogParser`)."""

    name = "python"

    def __init__(
        self,
        host: str | None = None,
        timezone: str = "UTC",
        year: int | None = None,
        *,
        now: float | None = None,
    ) -> None:
        self._parser = LogParser(host=host, timezone=timezone, year=year, now=now)

    def feed(self, raw: bytes, origin: Origin) -> ParseResult:
        return self._parser.feed(raw, origin)

    def feed_json(self, raw: bytes, origin: Origin) -> JsonLine:
        result = self._parser.feed(raw, origin)
        try:
            events = [orjson.dumps(event) for event in result.events]
        except (TypeError, orjson.JSONEncodeError) as exc:
            # a number beyond 64 bits in a crafted line: the line, not the stream, is lost
            return JsonLine([], [], error=f"event not encodable ({exc})")
        keys = [event.key for event in result.events]
        return JsonLine(events, keys, result.ignored, result.error)

    @property
    def stats(self) -> ParserStats:
        return self._parser.stats

    def export_correlation(self) -> dict[str, object]:
        return self._parser.export_correlation()

    def import_correlation(self, snapshot: object) -> QueueImport:
        return self._parser.import_correlation(snapshot)


class RustEngine:
    """The Rust port (``mailwarden_parsers_rs.LogParser``); same results, as JSON."""

    name = "rust"

    def __init__(
        self,
        host: str | None = None,
        timezone: str = "UTC",
        year: int | None = None,
        *,
        now: float | None = None,
    ) -> None:
        module = importlib.import_module(RUST_MODULE)
        self._parser = module.LogParser(host=host, timezone=timezone, year=year, now=now)
        self._feed = self._parser.feed
        self._feed_keyed = self._parser.feed_keyed

    def feed(self, raw: bytes, origin: Origin) -> ParseResult:
        events, ignored, error = self._feed(
            raw, origin.path, origin.line, origin.host, origin.offset
        )
        return ParseResult([Event.from_json(event) for event in events], ignored, error)

    def feed_json(self, raw: bytes, origin: Origin) -> JsonLine:
        keyed, ignored, error = self._feed_keyed(
            raw, origin.path, origin.line, origin.host, origin.offset
        )
        events = [value for value, _, _ in keyed]
        keys = [event_key(user, client_ip) for _, user, client_ip in keyed]
        return JsonLine(events, keys, ignored, error)

    def feed_raw(
        self, raw: bytes, path: str, line: int
    ) -> tuple[list[bytes], str | None, str | None]:
        """The bare call, for the benchmark: no origin object, no keys."""
        result: tuple[list[bytes], str | None, str | None] = self._feed(raw, path, line)
        return result

    @property
    def stats(self) -> ParserStats:
        return ParserStats(**self._parser.stats())

    def export_correlation(self) -> orjson.Fragment:
        return orjson.Fragment(self._parser.export_correlation())

    def import_correlation(self, snapshot: object) -> QueueImport:
        report = self._parser.import_correlation(orjson.dumps(snapshot))
        return QueueImport(**report)


def open_parser(
    host: str | None = None,
    timezone: str = "UTC",
    year: int | None = None,
    *,
    now: float | None = None,
    engine: EngineName = "auto",
) -> PythonEngine | RustEngine:
    """A parser for one host's lines: ``engine`` "rust", "python", or "auto" (Rust when current).

    Raises ValueError for an unknown time zone and :class:`EngineUnavailable`
    when "rust" is asked for and cannot be had.
    """
    if engine == "python":
        return PythonEngine(host, timezone, year, now=now)
    problem = rust_engine_problem()
    if problem is None:
        return RustEngine(host, timezone, year, now=now)
    if engine == "rust":
        raise EngineUnavailable(problem)
    return PythonEngine(host, timezone, year, now=now)


def rust_engine_problem() -> str | None:
    """None when the Rust engine is importable and built from the installed sources, else why."""
    from mailwarden.native import parsers_in_use

    in_use = parsers_in_use()
    if not in_use.compiled:
        return "the Rust parsers are not built (mailwarden native build; PYTHONPATH=its dir)"
    if in_use.stale:
        return f"the Rust parsers are outdated: {in_use.describe()}"
    return None


def parsers_option(function: Any) -> Any:
    """``--parsers auto|rust|python`` for the commands that parse raw lines."""
    import click

    return click.option(
        "--parsers",
        "engine",
        type=click.Choice(ENGINES),
        default="auto",
        show_default=True,
        help="Parser engine: the Rust build when current (auto), or force one.",
    )(function)
