"""`mailwarden replay`: run historic logs through the parsers and the detector, no broker.

The same ``LogParser`` and ``Detector`` as the live pipeline, in one process:
each file is parsed into a stream of events, the streams are merged in event
time, and every alert and command is printed as one JSON line on stdout, so
a policy can be tuned by replaying weeks of logs and reading what would have
fired. A summary table goes to stderr.

Files may be plain or gzip-compressed (recognised by their magic bytes). With
``--host`` all files come from that host and share one parser, which is what
lets Postfix and Dovecot lines of one machine correlate; without it each file
gets its own parser and the host is read from the lines. ``--format events``
replays already parsed events (``mailwarden parse`` output, a dump of
``mail.events``) instead of raw log lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import heapq
import io
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click
import orjson

from mailwarden.config import Config, ConfigError, load_config
from mailwarden.engines import EngineName, parsers_option, rust_engine_problem
from mailwarden.geoip import GeoipError, open_geo
from mailwarden.native import parsers_in_use
from models.alerts import Alert
from models.commands import Command
from models.detector import Detector
from models.events import Event, Origin
from models.policy import PolicyError, load_policy

if TYPE_CHECKING:
    from mailwarden.engines import LineParser

# Used when no signing key is configured, so that replay runs anywhere. Named
# so that nobody mistakes it for a secret: adapters must never be given it.
REPLAY_UNSIGNED_KEY = b"replay-unsigned"
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(slots=True)
class ReplayCounts:
    """What was read and decided; ``unparsed_sink`` receives each unparsed line as JSON."""

    unparsed_sink: IO[bytes] | None = None
    lines: int = 0
    events: int = 0
    ignored: int = 0
    unparsed: int = 0
    unparsed_reasons: Counter[str] = field(default_factory=Counter)
    alerts: Counter[str] = field(default_factory=Counter)
    commands: Counter[str] = field(default_factory=Counter)

    def not_understood(self, origin: Origin, line: bytes, reason: str) -> None:
        self.unparsed += 1
        self.unparsed_reasons[reason] += 1
        if self.unparsed_sink is not None:
            record = {
                "origin": {"path": origin.path, "line": origin.line},
                "reason": reason,
                "raw": line.decode("utf-8", "backslashreplace"),
            }
            self.unparsed_sink.write(orjson.dumps(record) + b"\n")


def open_log(path: Path) -> io.BufferedReader | gzip.GzipFile:
    """Open a plain or gzip-compressed file for reading bytes."""
    raw = path.open("rb")
    if raw.read(2) == GZIP_MAGIC:
        raw.close()
        return gzip.open(path, "rb")
    raw.seek(0)
    return raw


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with open_log(path) as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip(b"\r\n")
            if line:
                yield number, line


def raw_events(path: Path, parser: LineParser, counts: ReplayCounts) -> Iterator[Event]:
    """Parse the log lines of ``path`` into events, counting what was ignored or not understood."""
    name = str(path)
    for number, line in _lines(path):
        counts.lines += 1
        origin = Origin(path=name, line=number)
        result = parser.feed(line, origin)
        if result.events:
            counts.events += len(result.events)
            yield from result.events
        elif result.error is not None:
            counts.not_understood(origin, line, result.error)
        else:
            counts.ignored += 1


def parsed_events(path: Path, counts: ReplayCounts) -> Iterator[Event]:
    """Read events already in JSON form, one per line."""
    for number, line in _lines(path):
        counts.lines += 1
        try:
            event = Event.from_json(line)
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            reason = f"not an event: {exc}"
            counts.not_understood(Origin(path=str(path), line=number), line, reason)
            continue
        if event.origin is None:
            event.origin = Origin(path=str(path), line=number)
        counts.events += 1
        yield event


def event_streams(
    files: tuple[Path, ...],
    input_format: str,
    host: str | None,
    timezone: str,
    year: int | None,
    counts: ReplayCounts,
    engine: EngineName = "auto",
) -> list[Iterator[Event]]:
    if input_format == "events":
        return [parsed_events(path, counts) for path in files]
    from mailwarden.engines import open_parser  # only raw logs need the parsers

    if host is not None:
        shared = open_parser(host, timezone, year, engine=engine)
        return [raw_events(path, shared, counts) for path in files]
    return [
        raw_events(path, open_parser(None, timezone, year, engine=engine), counts) for path in files
    ]


def summary_table(counts: ReplayCounts, detector: Detector, elapsed: float) -> str:
    rate = counts.lines / elapsed if elapsed > 0 else 0.0
    stats = detector.stats()
    rows = [
        ("lines", f"{counts.lines}"),
        ("events", f"{counts.events}"),
        ("ignored", f"{counts.ignored}"),
        ("unparsed", f"{counts.unparsed}"),
        ("late events", f"{sum(rule.late for rule in stats.rules.values())}"),
        ("alerts", _breakdown(counts.alerts)),
        ("commands", _breakdown(counts.commands)),
        ("elapsed", f"{elapsed:.2f} s"),
        ("throughput", f"{rate:,.0f} lines/s"),
    ]
    lines = [f"{label:<12} {value}" for label, value in rows]
    for reason, number in counts.unparsed_reasons.most_common(5):
        lines.append(f"  unparsed   {number} {reason}")
    lines.append("")
    lines.append(f"{'rule':<20} {'events':>9} {'late':>6} {'keys':>8} {'evicted':>8} {'fired':>6}")
    for name, rule in stats.rules.items():
        lines.append(
            f"{name:<20} {rule.events:>9} {rule.late:>6} {rule.keys:>8}"
            f" {rule.evicted:>8} {rule.fired:>6}"
        )
    return "\n".join(lines)


def _breakdown(counter: Counter[str]) -> str:
    total = sum(counter.values())
    if not total:
        return "0"
    detail = ", ".join(f"{name} {number}" for name, number in sorted(counter.items()))
    return f"{total} ({detail})"


@click.command("replay")
@click.argument(
    "files",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Policy file (default: the config's, else the built-in defaults).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Runtime config file, for the signing key and policy path.",
)
@click.option("--host", help="All FILES come from this host and share one parser.")
@click.option("--timezone", help="Zone of timestamps without an offset (default: config, UTC).")
@click.option("--year", type=int, help="Year of syslog timestamps that carry none.")
@click.option(
    "--format",
    "input_format",
    type=click.Choice(["raw", "events"]),
    default="raw",
    show_default=True,
    help="raw: log lines; events: normalized events as JSON lines.",
)
@click.option(
    "--unparsed",
    "unparsed_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write each line that could not be parsed, with its origin and reason, here.",
)
@click.option(
    "--to-kafka",
    is_flag=True,
    help="Publish the events to the events topic (config's broker) instead of detecting.",
)
@parsers_option
def replay(
    files: tuple[Path, ...],
    policy_path: Path | None,
    config_path: Path | None,
    host: str | None,
    timezone: str | None,
    year: int | None,
    input_format: str,
    unparsed_path: Path | None,
    to_kafka: bool,
    engine: EngineName,
) -> None:
    """Replay historic logs through the detector; print alerts and commands as JSON lines.

    With --to-kafka the parsed events go to the events topic in event-time
    order instead, for a running worker to decide on.
    """
    try:
        config = load_config(config_path)
        policy_file = policy_path or config.policy_path
        policy = load_policy(policy_file)
    except (ConfigError, PolicyError) as exc:
        raise click.ClickException(str(exc)) from exc
    if input_format == "raw":
        click.echo(f"replay: parsers: {_engine_choice(engine)}", err=True)
    if to_kafka:
        _publish(config, files, input_format, host, timezone, year, unparsed_path, engine)
        return
    click.echo(f"replay: policy {policy_file or '(built-in defaults)'}", err=True)
    key = config.signing_key
    if not key:
        key = REPLAY_UNSIGNED_KEY
        click.echo(
            "replay: no signing key configured (MAILWARDEN_SIGNING_KEY or [signing] key);"
            " commands are signed with the fixed key 'replay-unsigned', not for adapters",
            err=True,
        )
    try:
        geo = open_geo(policy.geoip)
    except GeoipError as exc:
        raise click.ClickException(str(exc)) from exc
    detector = Detector(policy, key, geo=geo)
    for notice in detector.notices:
        click.echo(f"replay: {notice}", err=True)
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(unparsed_path.open("wb")) if unparsed_path else None
        counts = ReplayCounts(unparsed_sink=sink)
        streams = event_streams(
            files, input_format, host, timezone or config.timezone, year, counts, engine
        )
        started = time.perf_counter()
        if not _run(detector, streams, counts):
            return
        elapsed = time.perf_counter() - started
    click.echo(summary_table(counts, detector, elapsed), err=True)


def _engine_choice(engine: EngineName) -> str:
    """Which parsers ``engine`` gives, and why; raises when "rust" cannot be had."""
    if engine == "python":
        return "python (--parsers python)"
    problem = rust_engine_problem()
    if problem is None:
        return f"rust ({parsers_in_use().describe()})"
    if engine == "rust":
        raise click.ClickException(f"--parsers rust: {problem}")
    return f"python ({problem})"


def _publish(
    config: Config,
    files: tuple[Path, ...],
    input_format: str,
    host: str | None,
    timezone: str | None,
    year: int | None,
    unparsed_path: Path | None,
    engine: EngineName,
) -> None:
    from aiokafka.errors import KafkaError

    from streams.replay_publisher import publish_events
    from streams.topics import TopicError

    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(unparsed_path.open("wb")) if unparsed_path else None
        counts = ReplayCounts(unparsed_sink=sink)
        streams = event_streams(
            files, input_format, host, timezone or config.timezone, year, counts, engine
        )
        merged = heapq.merge(*streams, key=_event_time)
        started = time.perf_counter()
        try:
            sent = asyncio.run(
                publish_events(
                    config.kafka.bootstrap, config.topics, config.kafka.partitions, merged
                )
            )
        except (TopicError, KafkaError) as exc:
            raise click.ClickException(
                f"cannot publish to {config.kafka.bootstrap}: {exc}"
            ) from exc
        elapsed = time.perf_counter() - started
    click.echo(
        f"replay: published {sent} events to {config.topics.events} on "
        f"{config.kafka.bootstrap} in {elapsed:.1f} s; {counts.unparsed} lines unparsed",
        err=True,
    )


def _run(detector: Detector, streams: list[Iterator[Event]], counts: ReplayCounts) -> bool:
    """Feed the merged streams to the detector and print its decisions; False if stdout closed."""
    out = sys.stdout.buffer
    try:
        for event in heapq.merge(*streams, key=_event_time):
            for decision in detector.process(event):
                if isinstance(decision, Alert):
                    counts.alerts[decision.rule] += 1
                elif isinstance(decision, Command):
                    counts.commands[decision.action] += 1
                out.write(decision.to_json())
                out.write(b"\n")
        out.flush()
    except BrokenPipeError:
        # The reader (head, less) went away: stop quietly, as Unix filters do,
        # and point stdout at /dev/null so the interpreter's final flush is silent.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return False
    return True


def _event_time(event: Event) -> float:
    return event.epoch
