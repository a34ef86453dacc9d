"""Differential fuzzing of the two parser engines with atheris (libFuzzer).

tests/unit/test_rust_parsers.py holds the Rust port (``parsers-rs/``) to the
Python reference (``parsers/``) on fixed streams; this harness looks for the
inputs those streams miss. One input is split into lines (as fuzz_parsers.py
does, with its seeds) and fed line by line to a :class:`PythonEngine` and a
:class:`RustEngine` made alike; it stops on:

- a line whose ``feed_json`` results differ (events as JSON bytes, keys,
  ignored category, error);
- statistics that differ after the last line;
- the Rust engine raising, or answering "internal parser error" (a caught
  panic, or a copy of a reference bug fuzz_parsers.py would also report).

Coverage guides the fuzzer through the Python parsers only: the Rust module is
not instrumented, so what it does differently is found where the reference's
own branches lead.

Run with the Rust build first on the path (`make native` builds build/native):

    .venv/bin/python tests/fuzz/fuzz_engines.py --write-seeds /tmp/mw-fuzz-seeds
    PYTHONPATH=build/native .venv/bin/python tests/fuzz/fuzz_engines.py /tmp/mw-fuzz-seeds \\
        -max_total_time=600 -artifact_prefix=/tmp/mw-fuzz-artifacts/
    PYTHONPATH=build/native .venv/bin/python tests/fuzz/fuzz_engines.py --replay crash-<sha1>
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mailwarden.engines import (
    JsonLine,
    LineParser,
    PythonEngine,
    RustEngine,
    rust_engine_problem,
)
from models.events import Origin
from tests.fuzz.fuzz_parsers import ORIGIN_PATH, YEAR, Violation, input_lines, run

SHOWN = 600  # characters of an input line or a result shown in a report


def shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN else f"{text[:SHOWN]}... ({len(text)} characters)"


def event_differences(python: JsonLine, rust: JsonLine) -> list[str]:
    """The fields that differ, event by event, when both lines hold as many events."""
    if len(python.events) != len(rust.events):
        return []
    found = []
    for index, (theirs, ours) in enumerate(zip(python.events, rust.events, strict=True)):
        expected, got = orjson.loads(theirs), orjson.loads(ours)
        for name in dict.fromkeys([*expected, *got]):
            if expected.get(name, "<absent>") != got.get(name, "<absent>"):
                found.append(
                    f"  event {index} {name}: python {shown(expected.get(name, '<absent>'))}"
                    f", rust {shown(got.get(name, '<absent>'))}"
                )
    return found


def report(what: str, number: int, raw: bytes, python: JsonLine, rust: JsonLine) -> Violation:
    return Violation(
        "\n".join(
            [
                f"line {number}: {what}",
                f"  input:  {shown(raw)}",
                *event_differences(python, rust),
                f"  python: {shown(python)}",
                f"  rust:   {shown(rust)}",
            ]
        )
    )


def fed(engine: LineParser, raw: bytes, number: int) -> JsonLine:
    try:
        return engine.feed_json(raw, Origin(ORIGIN_PATH, number))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a Rust panic that escapes is a BaseException
        raise Violation(
            f"line {number}: the {engine.name} engine raised {exc!r}\n  input:  {shown(raw)}"
        ) from exc


def test_one_input(data: bytes) -> None:
    python = PythonEngine(host=None, timezone="UTC", year=YEAR)
    rust = RustEngine(host=None, timezone="UTC", year=YEAR)
    for number, raw in enumerate(input_lines(data), 1):
        theirs, ours = fed(python, raw, number), fed(rust, raw, number)
        if ours != theirs:
            raise report("results differ", number, raw, theirs, ours)
        if ours.error is not None and ours.error.startswith("internal parser error"):
            raise report("the Rust engine answers an internal error", number, raw, theirs, ours)
    theirs_stats, ours_stats = orjson.dumps(asdict(python.stats)), orjson.dumps(asdict(rust.stats))
    if ours_stats != theirs_stats:
        raise Violation(
            f"statistics differ after {len(input_lines(data))} line(s)\n"
            f"  input:  {shown(data)}\n  python: {theirs_stats!r}\n  rust:   {ours_stats!r}"
        )


if __name__ == "__main__":
    sys.exit(run(sys.argv, test_one_input, missing=rust_engine_problem))
