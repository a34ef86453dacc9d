"""Both parser engines behind `mailwarden.engines` give the same results through every door.

The line-by-line equality of the two implementations is
tests/unit/test_rust_parsers.py; this file checks the wrappers callers use:
events as objects (replay), events as JSON with their Kafka key (parse, tail),
statistics, and correlation snapshots that move between engines.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from mailwarden.engines import (
    JsonLine,
    PythonEngine,
    RustEngine,
    open_parser,
    rust_engine_problem,
)
from mailwarden.loggen import START, write_log
from models.events import Event, Origin

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mailwarden_parsers_rs") is None,
    reason="Rust parsers not importable: `make native` and PYTHONPATH=build/native",
)

# a user with upper case and a realm, and one that case-folds beyond ASCII
KEYED_LINES = [
    b"Nov 27 05:43:00 mx postfix/smtpd[12]: connect from unknown[203.0.113.7]",
    b"Nov 27 05:43:01 mx postfix/smtpd[12]: warning: unknown[203.0.113.7]: "
    b"SASL LOGIN authentication failed: UGFzc3dvcmQ6",
    b"Nov 27 05:43:02 mx dovecot: imap-login: Login: user=<Alice@Example.org>, method=PLAIN, "
    b"rip=198.51.100.4, lip=192.0.2.1, mpid=4242, TLS, session=<abcDEF123>",
    "Nov 27 05:43:03 mx dovecot: imap-login: Login: user=<STRASSE\u1e9e@example.org>, "
    "method=PLAIN, rip=198.51.100.5, lip=192.0.2.1, mpid=4243, TLS, session=<abcDEF124>".encode(),
    b"Nov 27 05:43:04 mx postfix/qmgr[7]: housekeeping line nobody understands",
    b"not a log line at all",
]


@pytest.fixture
def mixed_log(tmp_path: Path) -> list[bytes]:
    log = tmp_path / "mixed.log"
    write_log(log, lines=3_000, seed=21)
    return log.read_bytes().splitlines()


def both() -> tuple[PythonEngine, RustEngine]:
    return PythonEngine(year=START.year), RustEngine(year=START.year)


def test_json_lines_and_keys_agree(mixed_log: list[bytes]) -> None:
    python, rust = both()
    for number, raw in enumerate(mixed_log + KEYED_LINES, 1):
        origin = Origin("mixed.log", number, host="mx1", offset=number * 100)
        ours, reference = rust.feed_json(raw, origin), python.feed_json(raw, origin)
        assert ours == reference, f"line {number}: {raw!r}"
    assert rust.stats == python.stats
    assert rust.stats.events > 1_000


def test_keys_are_the_event_keys() -> None:
    rust = RustEngine(year=START.year)
    keys = []
    for number, raw in enumerate(KEYED_LINES, 1):
        line = rust.feed_json(raw, Origin("x", number))
        for value, key in zip(line.events, line.keys, strict=True):
            assert key == Event.from_json(value).key
            keys.append(key)
    assert "alice@example.org" in keys
    assert "strassess@example.org" in keys  # casefold, not lower(): the Python rule
    assert "203.0.113.7" in keys


def test_events_as_objects_agree(mixed_log: list[bytes]) -> None:
    python, rust = both()
    for number, raw in enumerate(mixed_log, 1):
        origin = Origin("mixed.log", number)
        ours, reference = rust.feed(raw, origin), python.feed(raw, origin)
        assert ours == reference, f"line {number}: {raw!r}"


def first_cut_with_messages_in_flight(lines: list[bytes]) -> int:
    """The first line count after which the queue map holds a message."""
    probe = PythonEngine(year=START.year)
    for number, raw in enumerate(lines, 1):
        probe.feed(raw, Origin("m", number))
        if probe.export_correlation()["entries"]:
            return number
    raise AssertionError("no message in flight in the whole log")


def test_correlation_snapshots_move_between_engines(mixed_log: list[bytes]) -> None:
    """A publisher restarted with the other engine keeps its queue id -> account map."""
    cut = first_cut_with_messages_in_flight(mixed_log)
    head, tail = mixed_log[:cut], mixed_log[cut:]
    for first, second in ((PythonEngine, RustEngine), (RustEngine, PythonEngine)):
        before = first(year=START.year)
        for number, raw in enumerate(head, 1):
            before.feed(raw, Origin("m", number))
        snapshot = orjson.loads(orjson.dumps(before.export_correlation()))
        assert snapshot["entries"]
        after, reference = second(year=START.year), first(year=START.year)
        assert after.import_correlation(snapshot) == reference.import_correlation(snapshot)
        got = [after.feed_json(raw, Origin("m", n)) for n, raw in enumerate(tail, cut + 1)]
        expected = [reference.feed_json(raw, Origin("m", n)) for n, raw in enumerate(tail, cut + 1)]
        assert got == expected
        # the restored map named the account of a message that began before the cut
        cold = second(year=START.year)
        unrestored = [cold.feed_json(raw, Origin("m", n)) for n, raw in enumerate(tail, cut + 1)]
        assert got != unrestored


def test_a_bad_snapshot_is_reported_not_raised() -> None:
    python, rust = both()
    for snapshot in ({"entries": "nope"}, [1, 2], {"as_of": 1.0, "entries": [["bad"]]}):
        assert rust.import_correlation(snapshot) == python.import_correlation(snapshot)
    assert rust.import_correlation([1, 2]).unusable == "not a JSON object"


def test_open_parser_picks_the_engine() -> None:
    assert rust_engine_problem() is None
    assert open_parser(year=2026).name == "rust"
    assert open_parser(year=2026, engine="rust").name == "rust"
    assert open_parser(year=2026, engine="python").name == "python"
    with pytest.raises(ValueError, match="time zone"):
        open_parser(timezone="Mars/Olympus_Mons")


def test_without_the_build_auto_falls_back_and_rust_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "one.log"
    log.write_bytes(KEYED_LINES[1] + b"\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = [sys.executable, "-m", "mailwarden.cli", "parse", "--year", "2026", str(log)]
    auto = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert auto.returncode == 0, auto.stderr
    assert Event.from_json(auto.stdout.splitlines()[0]).client_ip == "203.0.113.7"
    forced = subprocess.run(
        [*command, "--parsers", "rust"], env=env, capture_output=True, text=True, check=False
    )
    assert forced.returncode == 2
    assert "Rust parsers are not built" in forced.stderr


def test_json_line_of_an_unparsed_line() -> None:
    _, rust = both()
    line = rust.feed_json(b"garbage", Origin("x", 1))
    assert line == JsonLine([], [], None, line.error)
    assert line.error
