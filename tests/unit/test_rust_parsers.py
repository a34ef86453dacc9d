"""The Rust parsers (``parsers-rs/``) give byte-identical results to the Python ones.

``parsers/`` is the reference. Each stream of raw lines goes through a Python
``LogParser`` and a Rust one made alike, line by line: the events (orjson's bytes
for the Python event against the Rust module's bytes), the ignored category and
the error must be identical, and so must the statistics at the end. The streams:
a generated mixed log, every adversarial case, the worst-case lines, randomly
mutated lines (invalid UTF-8, NUL, CR/LF, stray separators), every fixture line
(tests/fixtures/parsers), a configured host with origin hosts and offsets, a DST
time zone across both changes, the year from a clock (``now=``), the correlation
snapshot out of and back into both, and, when ../shared is present, every corpus
and lab line. Hypothesis adds random bytes and real line templates with random
fields.

The module comes from ``MAILWARDEN_NATIVE_BUILD`` (`make test` builds it once
into build/native; its record must match the sources), else from
``parsers-rs/build.sh`` into a temporary directory; without cargo the tests skip.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailwarden.loggen import MailLogGenerator, pathological_lines, write_log
from models.events import Origin
from parsers.api import LogParser
from tests.unit.test_adversarial import INJECTIONS, SHAPES

REPO = Path(__file__).resolve().parents[2]
CRATE = REPO / "parsers-rs"
FIXTURES = REPO / "tests" / "fixtures" / "parsers"
MODULE = "mailwarden_parsers_rs"
MODULE_FILE = f"{MODULE}.abi3.so"
BUILD_RECORD = "mailwarden-native.json"
YEAR = 2026
SHOWN = 600  # characters of an input line or a result shown in a failure

# (events as JSON bytes, ignored category, error)
Result = tuple[list[bytes], str | None, str | None]


# -- the module ----------------------------------------------------------------


def _checked_record(build: Path) -> None:
    """Fail when the build in ``build`` is not from the sources in this checkout."""
    import mailwarden.native as native

    digest = getattr(native, "source_digest", None)
    root = getattr(native, "project_root", None)
    if digest is None or root is None:
        return
    record = json.loads((build / BUILD_RECORD).read_text())
    assert record["source_digest"] == digest(root()), (
        f"{build} was built from other sources than this checkout's: run `make native`"
    )


def _cargo() -> str | None:
    found = shutil.which("cargo")
    home_cargo = Path.home() / ".cargo" / "bin" / "cargo"
    return found or (str(home_cargo) if home_cargo.is_file() else None)


def _build(out: Path) -> None:
    cargo = _cargo()
    if cargo is None:
        pytest.skip("cargo not found (PATH, ~/.cargo/bin): cannot build parsers-rs here")
    env = dict(os.environ, PATH=f"{Path(cargo).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run(
        [str(CRATE / "build.sh"), str(out)], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:  # a toolchain that is present but fails is a failure
        pytest.fail("parsers-rs/build.sh failed:\n" + "\n".join(done.stderr.splitlines()[-30:]))


def _load(path: Path) -> ModuleType:
    """The extension at ``path``, whatever else ``sys.path`` holds."""
    spec = importlib.util.spec_from_file_location(MODULE, path)
    assert spec is not None and spec.loader is not None, f"cannot load {path}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def rust_parsers(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    given_build = os.environ.get("MAILWARDEN_NATIVE_BUILD")
    if given_build:
        build = Path(given_build)
        _checked_record(build)
    else:
        build = tmp_path_factory.mktemp("rust") / "build"
        _build(build)
    return _load(build / MODULE_FILE)


# -- streams and the comparison --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stream:
    """Lines for one parser on each side, made with ``options`` (LogParser's keywords)."""

    name: str
    lines: list[bytes]
    options: dict[str, Any] = field(default_factory=lambda: {"year": YEAR})
    # Origin.host of every line; offsets are then the lines' byte offsets
    origin_host: str | None = None


def _origins(stream: Stream) -> Iterator[tuple[int, int | None]]:
    """(line number, byte offset or None) of each line."""
    offset = 0
    for number, raw in enumerate(stream.lines, 1):
        yield number, (offset if stream.origin_host is not None else None)
        offset += len(raw) + 1


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN else f"{text[:SHOWN]}... ({len(text)} characters)"


def _python_feed(parser: LogParser, raw: bytes, origin: Origin) -> Result:
    result = parser.feed(raw, origin)
    return [orjson.dumps(event) for event in result.events], result.ignored, result.error


def _rust_feed(parser: Any, stream: Stream, raw: bytes, number: int, offset: int | None) -> Result:
    events, ignored, error = parser.feed(raw, stream.name, number, stream.origin_host, offset)
    return list(events), ignored, error


def _stats(python: LogParser, rust: Any) -> tuple[bytes, bytes]:
    return orjson.dumps(asdict(python.stats)), orjson.dumps(rust.stats())


def _difference(theirs: Result, ours: Result) -> str:
    """Both results; for events that differ, first the fields that do."""
    shown = f"  python: {_shown(theirs)}\n  rust:   {_shown(ours)}"
    if theirs[1:] != ours[1:] or len(theirs[0]) != len(ours[0]):
        return shown
    fields = []
    for index, (python, rust) in enumerate(zip(theirs[0], ours[0], strict=True)):
        expected, got = orjson.loads(python), orjson.loads(rust)
        for name in dict.fromkeys([*expected, *got]):
            if expected.get(name, "<absent>") != got.get(name, "<absent>"):
                fields.append(
                    f"  event {index} {name}: python {_shown(expected.get(name, '<absent>'))}, "
                    f"rust {_shown(got.get(name, '<absent>'))}"
                )
    return "\n".join(fields or ["  (same values: other bytes or key order)"]) + "\n" + shown


def feed_both(python: LogParser, rust: Any, stream: Stream) -> None:
    """Feed every line to both parsers; fail at the first line whose results differ."""
    for (number, offset), raw in zip(_origins(stream), stream.lines, strict=True):
        origin = Origin(stream.name, number, stream.origin_host, offset)
        theirs = _python_feed(python, raw, origin)
        ours = _rust_feed(rust, stream, raw, number, offset)
        if ours != theirs:
            pytest.fail(
                f"{stream.name}:{number} differs\n  input:  {_shown(raw)}\n"
                + _difference(theirs, ours)
            )


def assert_same_results(module: ModuleType, stream: Stream) -> None:
    python, rust = LogParser(**stream.options), module.LogParser(**stream.options)
    feed_both(python, rust, stream)
    theirs, ours = _stats(python, rust)
    assert ours == theirs, (
        f"{stream.name}: statistics differ\n  python: {theirs!r}\n  rust: {ours!r}"
    )


# -- the lines -------------------------------------------------------------------


def generated_lines(tmp_path: Path, count: int, seed: int) -> list[bytes]:
    log = tmp_path / f"generated-{seed}.log"
    write_log(log, lines=count, seed=seed)
    return log.read_bytes().splitlines()


def adversarial_lines() -> list[bytes]:
    return [
        shape.build(value).encode("utf-8", "surrogatepass")
        for shape in SHAPES
        for value in INJECTIONS.values()
    ]


def mutated(lines: list[bytes], seed: int) -> list[bytes]:
    """Each line with one to four bytes replaced by separators, NUL, CR/LF or invalid UTF-8."""
    rng = random.Random(seed)
    alphabet = b"[]<>=:;, ()\x00\xff\xc3@.\r\n"
    out = []
    for line in lines:
        changed = bytearray(line)
        for _ in range(rng.randint(1, 4)):
            changed[rng.randrange(len(changed))] = rng.choice(alphabet)
        out.append(bytes(changed))
    return out


def fixture_logs() -> list[Path]:
    return sorted(FIXTURES.rglob("*.log"))


def fixture_messages() -> list[str]:
    """The fixture lines without their RFC 3164 stamp: ``host program[pid]: text``."""
    return [
        line[15:]
        for log in fixture_logs()
        for line in log.read_text(encoding="utf-8").splitlines()
        if re.match(r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d ", line)
    ]


def across_dst_lines() -> list[bytes]:
    """Berlin stamps through both 2026 changes (a skipped and a repeated hour) and New Year.

    RFC 3164 and ISO stamps without offset are local time; each stamp carries the
    next fixture message in turn, so the correlation state sees real sequences.
    """
    messages = fixture_messages()
    stamps: list[str] = []
    for month, day, hours in (("Mar", 29, (1, 2, 3)), ("Oct", 25, (1, 2, 2, 3))):
        for hour in hours:  # the October 02:xx hour comes twice, as a log would write it
            for minute in range(0, 60, 7):
                stamps.append(f"{month} {day} {hour:02d}:{minute:02d}:{minute % 60:02d}")
                number = {"Mar": 3, "Oct": 10}[month]
                stamps.append(f"{YEAR}-{number:02d}-{day}T{hour:02d}:{minute:02d}:30")
    stamps += ["Dec 31 23:59:58", "Dec 31 23:59:59", "Jan  1 00:00:00", "Jan  1 00:00:02"]
    stamps.append(f"{YEAR}-10-25T02:30:00+02:00")
    return [f"{stamp} {messages[at % len(messages)]}".encode() for at, stamp in enumerate(stamps)]


def queue_filling_lines(tmp_path: Path, count: int, seed: int) -> list[bytes]:
    """A generated log without qmgr's ``removed`` lines: queued messages pile up."""
    lines = generated_lines(tmp_path, count, seed)
    return [line for line in lines if not line.endswith(b": removed")]


def epoch(year: int, month: int, day: int, hour: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, 0, second, tzinfo=UTC).timestamp()


# Code points whose class Python 3.11 and Rust's newer Unicode data disagree on, or
# that the parsers treat specially: digits of other scripts, superscripts and
# fractions, Python-only whitespace, sigma and other case oddities, combining marks.
ODD_CHARACTERS = "0٣۵߃२²½⑦\t\x0b\x1c\x85\xa0\u3000Σσςßİıǅʕɤᏸﬀ\u0301\u093e\u200b\ufeff"
# ... and short texts of them that reach a different branch than one character does
ODD_FIELDS = ("½", "1²", "٣٤", "१२३", "ा", "ɤLAIN", "AʕΣ", "x\u0301Σ", "ǅ", "İ", "ᏸ", "\xa0\x1c")
SEPARATORS = re.compile(r"([ \[\]<>=:,;()/])")
# real lines cut at their separators, to put other text in any field
REAL_TEMPLATES = [
    SEPARATORS.split(line)
    for line in [
        *(f"Mar  3 11:00:00 {message}" for message in fixture_messages()),
        *(shape.build("alice@example.com") for shape in SHAPES),
    ]
]
TEMPLATES = REAL_TEMPLATES + [
    SEPARATORS.split(line) for line in islice(MailLogGenerator(seed=29).lines(), 300)
]


def odd_field_lines() -> list[bytes]:
    """Every field of every real template followed by, and replaced by, each odd text."""
    lines = []
    for parts in REAL_TEMPLATES:
        for at, part in enumerate(parts):
            if not part.strip(" []<>=:,;()/"):
                continue
            for odd in ODD_FIELDS:
                for field_text in (part + odd, odd):
                    changed = [*parts[:at], field_text, *parts[at + 1 :]]
                    lines.append("".join(changed).encode("utf-8", "surrogatepass"))
    return lines


# -- the streams -----------------------------------------------------------------


def test_generated_adversarial_worst_case_and_mutated_lines(
    rust_parsers: ModuleType, tmp_path: Path
) -> None:
    generated = generated_lines(tmp_path, 20_000, seed=11)
    assert len(generated) == 20_000
    for stream in (
        Stream("generated", generated),
        Stream("adversarial", adversarial_lines()),
        Stream("worst-case", [line.encode() for line in pathological_lines(6_000).values()]),
        Stream("mutated", mutated(generated[:5_000], seed=3)),
    ):
        assert_same_results(rust_parsers, stream)


@pytest.mark.parametrize(
    "log", fixture_logs(), ids=lambda path: path.relative_to(FIXTURES).as_posix()
)
def test_fixture_lines(rust_parsers: ModuleType, log: Path) -> None:
    lines = log.read_bytes().splitlines()
    assert lines, f"no lines in {log}"
    assert_same_results(rust_parsers, Stream(str(log), lines))


def test_fields_holding_unicode_oddities(rust_parsers: ModuleType) -> None:
    lines = odd_field_lines()
    for start in range(0, len(lines), 10_000):  # fresh state now and then, as streams end
        assert_same_results(
            rust_parsers, Stream(f"odd-fields-{start}", lines[start : start + 10_000])
        )


HUGE = "9" * 25  # beyond 64 bits: only a crafted line holds such a count
CRAFTED_NUMBER_LINES = [
    "Nov 27 09:13:08 mail postfix/qmgr[77]: 4QX1A2B3C3: from=<a@example.org>, size=1\u00b2, "
    "nrcpt=1 (queue active)",
    "Nov 27 09:14:40 mail dovecot: imap-login: Disconnected: Aborted login (auth failed, "
    "\u00b2 attempts in 2 secs): user=<alice>, method=PLAIN, rip=198.51.100.4, "
    "lip=192.0.2.1, session=<abcDEF122>",
    f"Nov 27 09:13:09 mail postfix/qmgr[77]: 4QX1A2B3C4: from=<a@example.org>, size={HUGE}, "
    "nrcpt=1 (queue active)",
    f"Nov 27 09:13:09 mail postfix/qmgr[77]: 4QX1A2B3C5: from=<a@example.org>, size=12, "
    f"nrcpt={HUGE} (queue active)",
    "Nov 27 09:13:09 mail postfix/smtpd[42]: connect from unknown[192.0.2.21]",
    f"Nov 27 09:13:10 mail postfix/smtpd[42]: disconnect from unknown[192.0.2.21] ehlo=1 "
    f"auth=1/{HUGE} quit=1 commands=3",
    "Nov 27 09:13:11 mail postfix/smtpd[43]: connect from unknown[192.0.2.22]",
    f"Nov 27 09:13:12 mail postfix/smtpd[43]: disconnect from unknown[192.0.2.22] auth={HUGE}",
    f"Nov 27 09:14:41 mail dovecot: imap-login: Disconnected: Aborted login (auth failed, "
    f"{HUGE} attempts in 2 secs): user=<alice>, method=PLAIN, rip=198.51.100.4, "
    "lip=192.0.2.1, session=<abcDEF123>",
    f"Nov 27 09:14:42 mail dovecot: imap-login: Disconnected: Aborted login (auth failed, "
    f"2 attempts in {HUGE} secs): user=<alice>, method=PLAIN, rip=198.51.100.4, "
    "lip=192.0.2.1, session=<abcDEF124>",
]


def test_crafted_counts(rust_parsers: ModuleType) -> None:
    """Beyond 64 bits, or digits int() does not read ("1²"): a clean answer, the same in both."""
    lines = [line.encode() for line in CRAFTED_NUMBER_LINES]
    assert_same_results(rust_parsers, Stream("crafted-numbers", lines))
    python = LogParser(year=YEAR)
    for number, raw in enumerate(lines, 1):
        result = python.feed(raw, Origin("crafted", number))
        assert "internal parser error" not in (result.error or "")
        for event in result.events:
            orjson.dumps(event)  # every event the reference makes can be written


def test_configured_host_origin_hosts_and_offsets(rust_parsers: ModuleType, tmp_path: Path) -> None:
    lines = generated_lines(tmp_path, 2_000, seed=5) + adversarial_lines()[:100]
    stream = Stream(
        "hosted", lines, {"host": "mx9.example", "year": YEAR}, origin_host="collector-1"
    )
    assert_same_results(rust_parsers, stream)


def test_dst_time_zone_across_both_changes(rust_parsers: ModuleType) -> None:
    stream = Stream("dst", across_dst_lines(), {"timezone": "Europe/Berlin", "year": YEAR})
    assert_same_results(rust_parsers, stream)


def test_year_from_the_clock(rust_parsers: ModuleType, tmp_path: Path) -> None:
    generated = generated_lines(tmp_path, 2_000, seed=13)  # from 2026-11-27
    new_year = [
        f"{stamp} {message}".encode()
        for stamp, message in zip(
            ["Dec 31 23:59:50", "Dec 31 23:59:59", "Jan  1 00:00:01", "Jan  1 00:00:09"] * 5,
            fixture_messages(),
            strict=False,
        )
    ]
    for name, lines, options in (
        ("now-a-day-later", generated, {"now": epoch(2026, 11, 28)}),
        ("now-in-january", generated, {"now": epoch(2027, 1, 2, 3)}),
        ("now-at-new-year", new_year, {"now": epoch(2027, 1, 1, second=5)}),
        ("now-berlin", new_year, {"now": epoch(2026, 12, 31, 23), "timezone": "Europe/Berlin"}),
    ):
        assert_same_results(rust_parsers, Stream(name, lines, options))


def test_correlation_snapshot_out_and_back(rust_parsers: ModuleType, tmp_path: Path) -> None:
    lines = queue_filling_lines(tmp_path, 6_000, seed=17)
    first, second = Stream("before", lines[:3_000]), Stream("after", lines[3_000:])
    python, rust = LogParser(year=YEAR), rust_parsers.LogParser(year=YEAR)
    feed_both(python, rust, first)
    snapshot = rust.export_correlation()
    assert snapshot == orjson.dumps(python.export_correlation())
    assert orjson.loads(snapshot)["entries"], "the first half left no queue entry to carry over"
    python, rust = LogParser(year=YEAR), rust_parsers.LogParser(year=YEAR)
    assert rust.import_correlation(snapshot) == asdict(
        python.import_correlation(orjson.loads(snapshot))
    )
    feed_both(python, rust, second)
    assert rust.export_correlation() == orjson.dumps(python.export_correlation())
    theirs, ours = _stats(python, rust)
    assert ours == theirs


def _tampered(snapshot: dict[str, Any]) -> Iterator[object]:
    """The snapshot broken in the ways import must survive."""
    entries = snapshot["entries"]
    yield []
    yield {"entries": "no list"}
    yield {"as_of": None, "entries": entries}
    yield {"as_of": "soon", "entries": entries}
    yield {"as_of": snapshot["as_of"] + 10 * 86400, "entries": entries}
    yield {"as_of": snapshot["as_of"], "entries": [*entries, [1, 2], None, ["x" * 30, 0.0]]}
    yield {
        "as_of": snapshot["as_of"],
        "entries": [[*row[:2], 5, *row[3:]] for row in entries[:3]]
        + [[row[0], float("nan"), *row[2:]] for row in entries[3:6]]
        + [[row[0].lower(), *row[1:]] for row in entries[6:9]]
        + entries[9:] * 3,
    }


def test_correlation_import_of_broken_snapshots(rust_parsers: ModuleType, tmp_path: Path) -> None:
    lines = queue_filling_lines(tmp_path, 4_000, seed=19)
    python, rust = LogParser(year=YEAR), rust_parsers.LogParser(year=YEAR)
    feed_both(python, rust, Stream("before", lines[:3_000]))
    snapshot = orjson.loads(rust.export_correlation())
    assert len(snapshot["entries"]) > 9, "too few queue entries to break them in many ways"
    for number, broken in enumerate(_tampered(snapshot)):
        data = orjson.dumps(broken)
        python, rust = LogParser(year=YEAR), rust_parsers.LogParser(year=YEAR)
        report = asdict(python.import_correlation(orjson.loads(data)))
        assert rust.import_correlation(data) == report, f"snapshot {number}: {_shown(broken)}"
        feed_both(python, rust, Stream(f"after-snapshot-{number}", lines[3_000:]))
        assert rust.export_correlation() == orjson.dumps(python.export_correlation())


def test_keyed_feed_gives_the_events_and_their_keys(
    rust_parsers: ModuleType, tmp_path: Path
) -> None:
    lines = generated_lines(tmp_path, 2_000, seed=23)
    python, rust = LogParser(year=YEAR), rust_parsers.LogParser(year=YEAR)
    for number, raw in enumerate(lines, 1):
        result = python.feed(raw, Origin("keyed", number))
        theirs = (
            [(orjson.dumps(e), e.user, e.client_ip) for e in result.events],
            result.ignored,
            result.error,
        )
        events, ignored, error = rust.feed_keyed(raw, "keyed", number)
        assert (list(events), ignored, error) == theirs, f"keyed:{number}: {_shown(raw)}"


def test_corpora_and_lab(rust_parsers: ModuleType, corpus_dir: Path, lab_dir: Path) -> None:
    for name in ("fail2ban.jsonl", "crowdsec.jsonl"):
        records = [orjson.loads(line) for line in (corpus_dir / name).read_bytes().splitlines()]
        lines = [
            record["line"].encode("utf-8", "surrogateescape")
            for record in records
            if isinstance(record.get("line"), str)
        ]
        assert lines, f"no lines in {name}"
        assert_same_results(rust_parsers, Stream(name, lines))
    for name in ("postfix.log", "dovecot.log"):
        lines = (lab_dir / name).read_bytes().splitlines()
        assert lines, f"no lines in lab/{name}"
        assert_same_results(rust_parsers, Stream(f"lab/{name}", lines))


# -- random lines ----------------------------------------------------------------

PROPERTIES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FIELD_TEXT = st.one_of(
    st.text(max_size=24),
    st.text(alphabet=ODD_CHARACTERS, min_size=1, max_size=4),
    st.text(alphabet=ODD_CHARACTERS + "0123456789abcXYZ_-+.:@[]<>=,", max_size=24),
    st.from_regex(r"[0-9]{1,30}", fullmatch=True),
    st.sampled_from(ODD_FIELDS),
    st.sampled_from(sorted(INJECTIONS.values())),
)


@st.composite
def templated_line(draw: st.DrawFn) -> bytes:
    """A real line with one to three fields replaced by, or followed by, random text."""
    parts = list(draw(st.sampled_from(TEMPLATES)))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(parts) - 1))
        kept = parts[at] if draw(st.booleans()) else ""
        parts[at] = kept + draw(FIELD_TEXT)
    return "".join(parts).encode("utf-8", "surrogatepass")


@PROPERTIES
@given(lines=st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_random_bytes(rust_parsers: ModuleType, lines: list[bytes]) -> None:
    assert_same_results(rust_parsers, Stream("random-bytes", lines))


@PROPERTIES
@given(lines=st.lists(templated_line(), min_size=1, max_size=8))
def test_real_templates_with_random_fields(rust_parsers: ModuleType, lines: list[bytes]) -> None:
    assert_same_results(rust_parsers, Stream("random-fields", lines))
