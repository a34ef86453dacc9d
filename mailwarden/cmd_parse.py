"""``mailwarden parse``: raw log lines in, one event JSON per line out.

All files go through one parser, in the order given, as the lines of one
host (so Postfix and Dovecot lines correlate). Files ending in ``.gz`` are
decompressed; with no file, stdin is read. Events go to stdout; the summary
(lines, events, ignored by category, unparsed by reason) to stderr, and with
``--unparsed`` every line that could not be parsed, with its reason. The exit
status is 0 even with unparsed lines; 1 when a file could not be read.
"""

from __future__ import annotations

import gzip
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import click

from mailwarden.engines import (
    EngineName,
    EngineUnavailable,
    LineParser,
    open_parser,
    parsers_option,
)
from models.events import Origin
from parsers.api import ParserStats

_FLUSH_EVERY = 512


@click.command("parse")
@click.option("--host", help="Host name for the events (default: the lines' host field).")
@click.option(
    "--timezone",
    default="UTC",
    show_default=True,
    help="Zone of timestamps that carry no offset.",
)
@click.option(
    "--year",
    type=int,
    help="Year of syslog timestamps that carry none (default: from the clock).",
)
@click.option("--unparsed", is_flag=True, help="Print unparsed lines and reasons on stderr.")
@parsers_option
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
def parse(
    host: str | None,
    timezone: str,
    year: int | None,
    unparsed: bool,
    engine: EngineName,
    files: tuple[Path, ...],
) -> None:
    """Parse Postfix/Dovecot/auth log FILES (stdin when none) into event JSON lines."""
    try:
        parser = open_parser(host, timezone, year, now=None if year else time.time(), engine=engine)
    except EngineUnavailable as exc:
        raise click.BadParameter(str(exc), param_hint="--parsers") from exc
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--timezone") from exc
    out = sys.stdout.buffer
    read_errors = 0
    sources: list[Path | None] = list(files) if files else [None]
    try:
        for source in sources:
            try:
                _parse_source(parser, source, out, unparsed)
            except BrokenPipeError:
                raise
            except OSError as exc:
                read_errors += 1
                click.echo(f"mailwarden parse: cannot read {source}: {exc}", err=True)
        out.flush()
    except BrokenPipeError:
        # the reader went away (``| head``): stop quietly, like other filters
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces the closed stream
        return
    click.echo(summary(parser.stats), err=True)
    if read_errors:
        sys.exit(1)


def _parse_source(parser: LineParser, source: Path | None, out: BinaryIO, unparsed: bool) -> None:
    path = "-" if source is None else str(source)
    pending: list[bytes] = []
    for number, raw in enumerate(_lines(source), start=1):
        result = parser.feed_json(raw, Origin(path, number))
        if result.events:
            pending.extend(event + b"\n" for event in result.events)
            if len(pending) >= _FLUSH_EVERY:
                out.write(b"".join(pending))
                pending.clear()
        elif result.error is not None and unparsed:
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            click.echo(f"{path}:{number}: {result.error}: {text}", err=True)
    out.write(b"".join(pending))


def _lines(source: Path | None) -> Iterator[bytes]:
    if source is None:
        yield from sys.stdin.buffer
        return
    if source.suffix == ".gz":
        with gzip.open(source, "rb") as compressed:
            yield from compressed
    else:
        with source.open("rb") as plain:
            yield from plain


def summary(stats: ParserStats) -> str:
    """The human summary printed on stderr."""
    lines = [f"lines: {stats.lines}  events: {stats.events}"]
    if stats.invalid_utf8:
        lines.append(f"lines with invalid UTF-8 (replaced): {stats.invalid_utf8}")
    ignored = sum(stats.ignored.values())
    lines.append(f"ignored: {ignored}")
    lines.extend(f"  {count:>8}  {name}" for name, count in _by_count(stats.ignored))
    unparsed = sum(stats.errors.values())
    lines.append(f"unparsed: {unparsed}")
    lines.extend(f"  {count:>8}  {name}" for name, count in _by_count(stats.errors))
    return "\n".join(lines)


def _by_count(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))
