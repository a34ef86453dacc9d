"""`mailwarden bench`: throughput measurements, one subcommand per thing measured.

``mailwarden bench parse`` generates a realistic mixed Postfix + Dovecot log
(``mailwarden.loggen``) and, in the same run, measures on that file:

(a) mailwarden: one ``LogParser`` for the host, every line parsed, correlated
    and each event serialized with orjson, in this process, on one core;
(b) ``fail2ban-regex FILE 'postfix[mode=auth]'``;
(c) ``fail2ban-regex FILE dovecot``;
(d) a bare-Python floor: read a line, one regex, orjson a small dict;
(e) (a) with the Rust port of the parsers (``parsers-rs``, built by
    ``mailwarden.native``), in a child process that imports it from the build
    directory: the same work, each event's JSON made in Rust;

and then the parse time of each worst-case line (``loggen.pathological_lines``)
at 6 and 60 kB, whose ratio shows whether any pattern backtracks.

Rates are lines per CPU second (user + system: the machine is shared, so wall
time would measure the neighbours); wall time is shown beside. "Both fail2ban
filters" is the rate of running them one after the other on the same file,
lines / (t_b + t_c), which is what a host with both jails pays.

``mailwarden bench all`` runs every subcommand of this group with its defaults.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from mailwarden.bench_system import broker_bench, pipeline_bench, policy_bench, replay_bench
from mailwarden.loggen import START, Truth, pathological_lines, write_log
from models.events import Origin

if TYPE_CHECKING:
    from mailwarden.engines import EngineName

DEFAULT_LINES = 260_000
FAIL2BAN_FILTERS = (
    ("fail2ban postfix[mode=auth]", "postfix[mode=auth]"),
    ("fail2ban dovecot", "dovecot"),
)
_FAIL2BAN_SUMMARY = re.compile(r"Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed")
# The floor: what any Python tool pays to look at every line once.
_BASELINE_PATTERN = re.compile(r"\[([0-9a-fA-F.:]+)\]|rip=([0-9a-fA-F.:]+)")


@dataclass(frozen=True, slots=True)
class Measurement:
    name: str
    lines: int
    cpu: float
    wall: float
    found: int | None  # matched lines / counted failures, where the tool reports them
    note: str = ""

    @property
    def rate(self) -> float:
        return self.lines / self.cpu if self.cpu > 0 else 0.0


@contextmanager
def cpu_clock(children: bool = False) -> Iterator[list[float]]:
    """Yields [cpu_seconds, wall_seconds], filled in on exit."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    before = resource.getrusage(who)
    start = time.perf_counter()
    spent = [0.0, 0.0]
    yield spent
    after = resource.getrusage(who)
    spent[0] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    spent[1] = time.perf_counter() - start


OURS = "mailwarden parse"
OURS_NATIVE = "mailwarden parse (rust)"
# the Rust engine's JSON of a failed attempt; only those are decoded, to count attempts
_FAILED_AUTH = b'"kind":"auth","outcome":"failure"'


def measure_mailwarden(path: Path, year: int, name: str = OURS) -> Measurement:
    """Parse, correlate and serialize every event, as `mailwarden parse` does, minus output."""
    from parsers.api import LogParser

    parser = LogParser(host=None, timezone="UTC", year=year)
    feed = parser.feed
    dumps = orjson.dumps
    origin_path = str(path)
    lines = 0
    outcomes: Counter[str] = Counter()
    with cpu_clock() as spent, path.open("rb") as handle:
        for lines, raw in enumerate(handle, 1):
            result = feed(raw.rstrip(b"\n"), Origin(origin_path, lines))
            for event in result.events:
                dumps(event)
                if event.kind == "auth" and event.outcome == "failure":
                    outcomes["failed_attempts"] += event.attempts or 1
            if result.error is not None:
                outcomes["errors"] += 1
            elif not result.events:
                outcomes["ignored"] += 1
    note = f"errors={outcomes['errors']} ignored={outcomes['ignored']}"
    return Measurement(name, lines, spent[0], spent[1], outcomes["failed_attempts"], note)


def measure_rust(path: Path, year: int, name: str = OURS_NATIVE) -> Measurement:
    """:func:`measure_mailwarden` with the Rust engine, which gives each event as JSON."""
    from mailwarden.engines import RustEngine

    feed = RustEngine(year=year).feed_raw
    origin_path = str(path)
    lines = 0
    outcomes: Counter[str] = Counter()
    with cpu_clock() as spent, path.open("rb") as handle:
        for lines, raw in enumerate(handle, 1):
            events, _ignored, error = feed(raw.rstrip(b"\n"), origin_path, lines)
            for event in events:
                if _FAILED_AUTH in event:
                    outcomes["failed_attempts"] += orjson.loads(event)["attempts"] or 1
            if error is not None:
                outcomes["errors"] += 1
            elif not events:
                outcomes["ignored"] += 1
    note = f"errors={outcomes['errors']} ignored={outcomes['ignored']}"
    return Measurement(name, lines, spent[0], spent[1], outcomes["failed_attempts"], note)


def measure_native(path: Path, year: int, build: Path) -> Measurement:
    """:func:`measure_rust` in a child process whose Rust parsers come from ``build``."""
    command = [sys.executable, "-c", _NATIVE_CHILD, str(path), str(year)]
    # cwd: `python -c` puts it first on sys.path, where a source checkout would shadow the build
    done = subprocess.run(
        command, capture_output=True, text=True, env=_native_env(build), cwd=build, check=False
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return Measurement(OURS_NATIVE, 0, 0.0, 0.0, None, f"failed: {' / '.join(tail)}")
    values = orjson.loads(done.stdout)
    return Measurement(OURS_NATIVE, **values)


def _native_env(build: Path) -> dict[str, str]:
    # only the build: an inherited PYTHONPATH may hold another build of the module
    return dict(os.environ, PYTHONPATH=str(build.resolve()))


# The child refuses to measure a missing or outdated build.
_NATIVE_CHILD = """
import sys, orjson
from pathlib import Path
from mailwarden.engines import rust_engine_problem
from mailwarden.bench import measure_rust
problem = rust_engine_problem()
if problem is not None:
    sys.exit("parsers: " + problem)
m = measure_rust(Path(sys.argv[1]), int(sys.argv[2]))
sys.stdout.buffer.write(orjson.dumps(
    {"lines": m.lines, "cpu": m.cpu, "wall": m.wall, "found": m.found, "note": m.note}))
"""


def parse_first_lines(path: Path, year: int, limit: int, engine: str = "python") -> int:
    """The measured work of (a) or (e) on the first ``limit`` lines, without clocks."""
    origin_path = str(path)
    events = 0
    with path.open("rb") as handle:
        if engine == "rust":
            from mailwarden.engines import RustEngine

            feed_raw = RustEngine(year=year).feed_raw
            for number, raw in enumerate(handle, 1):
                if number > limit:
                    break
                events += len(feed_raw(raw.rstrip(b"\n"), origin_path, number)[0])
            return events
        from parsers.api import LogParser

        feed = LogParser(host=None, timezone="UTC", year=year).feed
        dumps = orjson.dumps
        for number, raw in enumerate(handle, 1):
            if number > limit:
                break
            for event in feed(raw.rstrip(b"\n"), Origin(origin_path, number)).events:
                dumps(event)
                events += 1
    return events


_COUNT_CHILD = """
import sys
from pathlib import Path
from mailwarden.bench import parse_first_lines
parse_first_lines(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
"""
_CALLGRIND_TOTAL = re.compile(r"Collected : (\d+)")


def count_instructions(path: Path, year: int, lines: int, build: Path | None) -> float:
    """Instructions per line to parse the first ``lines`` lines, by callgrind.

    A run over ``lines`` minus a run over none, so interpreter start-up and
    imports cancel. Hash randomisation is fixed (it moves the count by ~3 %).
    """
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise click.ClickException("valgrind not found: apt-get install valgrind")
    env = dict(os.environ, PYTHONHASHSEED="0")
    if build is not None:
        env["PYTHONPATH"] = str(build.resolve())

    def total(limit: int) -> int:
        with tempfile.TemporaryDirectory(prefix="mailwarden-callgrind-") as scratch:
            command = [
                valgrind,
                "--tool=callgrind",
                f"--callgrind-out-file={scratch}/out",
                sys.executable,
                "-c",
                _COUNT_CHILD,
                str(path),
                str(year),
                str(limit),
                "python" if build is None else "rust",
            ]
            done = subprocess.run(
                command, capture_output=True, text=True, env=env, cwd=scratch, check=False
            )
        found = _CALLGRIND_TOTAL.search(done.stderr)
        if done.returncode != 0 or found is None:
            tail = done.stderr.strip().splitlines()[-3:]
            raise click.ClickException(f"callgrind run failed: {' / '.join(tail)}")
        return int(found.group(1))

    return (total(lines) - total(0)) / lines


@dataclass(frozen=True, slots=True)
class Growth:
    """Parse time of one worst-case line at two sizes, ten times apart."""

    name: str
    small: float
    large: float

    @property
    def factor(self) -> float:
        return self.large / self.small if self.small > 0 else float("inf")


WORST_CASE_SIZES = (6_000, 60_000)  # both under the parser's 64 KiB line cap


def measure_worst_cases(year: int, repeats: int = 5, engine: EngineName = "python") -> list[Growth]:
    """Linear parsers take ~10x for 10x the size; backtracking ones, much more."""
    from mailwarden.engines import open_parser

    small_size, large_size = WORST_CASE_SIZES
    small, large = pathological_lines(small_size), pathological_lines(large_size)
    origin = Origin("worst-case", 1)

    def best_time(line: str) -> float:
        raw = line.encode()
        best = float("inf")
        for _ in range(repeats):
            parser = open_parser(year=year, engine=engine)
            start = time.perf_counter()
            parser.feed_json(raw, origin)
            best = min(best, time.perf_counter() - start)
        return best

    return [Growth(name, best_time(small[name]), best_time(large[name])) for name in small]


def measure_native_worst_cases(year: int, build: Path) -> list[Growth]:
    """:func:`measure_worst_cases` of the Rust parsers in ``build``, in a child process."""
    command = [sys.executable, "-c", _NATIVE_WORST_CHILD, str(year)]
    done = subprocess.run(
        command, capture_output=True, text=True, env=_native_env(build), cwd=build, check=False
    )
    if done.returncode != 0:
        return []
    return [Growth(name, small, large) for name, small, large in orjson.loads(done.stdout)]


_NATIVE_WORST_CHILD = """
import sys, orjson
from mailwarden.bench import measure_worst_cases
growths = measure_worst_cases(int(sys.argv[1]), engine="rust")
sys.stdout.buffer.write(orjson.dumps([[g.name, g.small, g.large] for g in growths]))
"""


def render_worst_cases(growths: list[Growth], native: list[Growth] | None = None) -> str:
    small_size, large_size = WORST_CASE_SIZES
    sizes = f"{small_size // 1000:>5} kB us {large_size // 1000:>5} kB us {'growth':>8}"
    header = f"{'worst-case line':<34} python {sizes}"
    if native:
        header += f"   rust {sizes}"
    out = [header]
    by_name = {g.name: g for g in native or []}
    for g in growths:
        row = f"{g.name:<34}        {_growth_cells(g)}"
        if g.name in by_name:
            row += f"        {_growth_cells(by_name[g.name])}"
        out.append(row)
    return "\n".join(out)


def _growth_cells(g: Growth) -> str:
    return f"{g.small * 1e6:>11.1f} {g.large * 1e6:>11.1f} {g.factor:>7.1f}x"


def measure_baseline(path: Path) -> Measurement:
    search = _BASELINE_PATTERN.search
    dumps = orjson.dumps
    found = 0
    lines = 0
    with cpu_clock() as spent, path.open("rb") as handle:
        for lines, raw in enumerate(handle, 1):
            text = raw.decode("utf-8", "replace")
            match = search(text)
            if match is not None:
                found += 1
                dumps({"line": lines, "ip": match.group(1) or match.group(2)})
    return Measurement("bare Python (1 regex + orjson)", lines, spent[0], spent[1], found)


def measure_fail2ban(label: str, filter_spec: str, path: Path, executable: str) -> Measurement:
    command = [executable, "--raw", "--print-no-missed", str(path), filter_spec]
    with cpu_clock(children=True) as spent:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    summary = _FAIL2BAN_SUMMARY.search(done.stdout)
    if done.returncode != 0 or summary is None:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise click.ClickException(f"{' '.join(command)} failed: {' / '.join(tail)}")
    lines, _, matched, _ = (int(group) for group in summary.groups())
    return Measurement(label, lines, spent[0], spent[1], matched)


def format_rate(rate: float) -> str:
    return f"{rate:>12,.0f}"


def render(measurements: list[Measurement], truth: Truth) -> str:
    out = [
        f"{'tool':<34} {'lines':>9} {'cpu s':>8} {'wall s':>8} {'lines/cpu s':>12}  found",
    ]
    for m in measurements:
        found = "" if m.found is None else f"{m.found:,}"
        out.append(
            f"{m.name:<34} {m.lines:>9,} {m.cpu:>8.2f} {m.wall:>8.2f} {format_rate(m.rate)}  "
            f"{found} {m.note}".rstrip()
        )
    out.append("")
    out.append(
        f"truth: {truth.sasl_failure_lines:,} Postfix SASL failure lines, "
        f"{truth.dovecot_failure_lines + truth.passdb_failure_lines:,} Dovecot failure lines "
        f"({truth.dovecot_failure_lines:,} login summaries + {truth.passdb_failure_lines:,} "
        f"passdb), {truth.failed_attempts:,} failed attempts in all"
    )
    by_name = {m.name: m for m in measurements}
    fail2ban = [by_name[label] for label, _ in FAIL2BAN_FILTERS if label in by_name]
    for ours in (by_name.get(OURS), by_name.get(OURS_NATIVE)):
        if ours is None or ours.lines == 0:
            continue
        out.append("")
        others = [m for m in measurements if m.rate > 0 and m.name not in (OURS, OURS_NATIVE)]
        for m in others:
            out.append(f"ratio {ours.name} / {m.name:<34} {ours.rate / m.rate:>6.2f}x")
        if len(fail2ban) == len(FAIL2BAN_FILTERS):
            both = ours.lines / sum(m.cpu for m in fail2ban)
            out.append(
                f"ratio {ours.name} / both fail2ban filters together "
                f"({format_rate(both).strip()} lines/s) {ours.rate / both:>6.2f}x"
            )
    return "\n".join(out)


@click.group("bench")
def bench_group() -> None:
    """Throughput benchmarks (generated data; nothing leaves this machine)."""


for _command in (broker_bench, pipeline_bench, policy_bench, replay_bench):
    bench_group.add_command(_command)


@bench_group.command("parse")
@click.option("--lines", type=click.IntRange(min=1), help=f"Lines to generate [{DEFAULT_LINES:,}].")
@click.option("--mb", type=click.FloatRange(min=0.001), help="Megabytes to generate instead.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the generated log here (kept) instead of a temporary file.",
)
@click.option("--keep", is_flag=True, help="Keep the temporary log file and print its path.")
@click.option("--seed", type=int, default=7, show_default=True, help="Generator seed.")
@click.option(
    "--fail2ban/--no-fail2ban",
    "with_fail2ban",
    default=True,
    show_default=True,
    help="Also time fail2ban-regex with the postfix[mode=auth] and dovecot filters.",
)
@click.option(
    "--native",
    "native_build",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Measure this Rust build (mailwarden native build) instead of building one.",
)
@click.option(
    "--no-native",
    is_flag=True,
    help="Skip the Rust parsers (e); by default they are built into a temp dir.",
)
def parse_bench(
    lines: int | None,
    mb: float | None,
    out: Path | None,
    keep: bool,
    seed: int,
    with_fail2ban: bool,
    native_build: Path | None,
    no_native: bool,
) -> None:
    """Parse throughput: mailwarden vs fail2ban-regex vs a bare-Python floor."""
    if lines is not None and mb is not None:
        raise click.UsageError("give --lines or --mb, not both")
    if lines is None and mb is None:
        lines = DEFAULT_LINES
    path = out if out is not None else _temporary_log()
    try:
        with cpu_clock() as spent:
            truth = write_log(path, lines=lines, megabytes=mb, seed=seed)
        click.echo(
            f"generated {truth.lines:,} lines, {truth.bytes / 1e6:,.1f} MB in {spent[1]:.1f} s "
            f"-> {path}",
            err=True,
        )
        with _native_build(native_build, no_native) as build:
            measurements = _run_all(path, with_fail2ban, build)
            click.echo(render(measurements, truth))
            if measurements[0].lines:
                click.echo("")
                native = None if build is None else measure_native_worst_cases(START.year, build)
                click.echo(render_worst_cases(measure_worst_cases(START.year), native))
        click.echo(
            f"\nmachine: {os.cpu_count()} cpu(s), load {os.getloadavg()[0]:.2f}; "
            "rates are per CPU second of the measured process"
        )
    finally:
        if out is None and not keep:
            path.unlink(missing_ok=True)
        elif out is None:
            click.echo(f"kept {path}", err=True)


def _temporary_log() -> Path:
    handle, name = tempfile.mkstemp(prefix="mailwarden-bench-", suffix=".log")
    os.close(handle)
    return Path(name)


@contextmanager
def _native_build(given: Path | None, skip: bool) -> Iterator[Path | None]:
    """The Rust build to measure: the one given, a fresh one in a temp dir, or none."""
    if skip:
        yield None
        return
    if given is not None:
        yield given
        return
    from mailwarden.native import NativeBuildError, build_native_parsers

    with tempfile.TemporaryDirectory(prefix="mailwarden-bench-native-") as scratch:
        build = Path(scratch) / "native"
        click.echo("building the Rust parsers for (e) ...", err=True)
        try:
            build_native_parsers(build)
        except NativeBuildError as exc:
            click.echo(f"skipping (e): {exc}", err=True)
            yield None
            return
        yield build


def _run_all(path: Path, with_fail2ban: bool, native: Path | None) -> list[Measurement]:
    steps: list[tuple[str, Callable[[], Measurement]]] = []
    steps.append(("mailwarden", lambda: measure_mailwarden(path, START.year)))
    if native is not None:
        steps.append(("mailwarden (rust)", lambda: measure_native(path, START.year, native)))
    if with_fail2ban:
        executable = shutil.which("fail2ban-regex")
        if executable is None:
            click.echo("fail2ban-regex not found: skipping (b) and (c)", err=True)
        else:
            for label, spec in FAIL2BAN_FILTERS:
                steps.append((label, _bind_fail2ban(label, spec, path, executable)))
    steps.append(("baseline", lambda: measure_baseline(path)))
    results = []
    for name, step in steps:
        click.echo(f"measuring {name} ...", err=True)
        results.append(step())
    return results


def _bind_fail2ban(label: str, spec: str, path: Path, executable: str) -> Callable[[], Measurement]:
    return lambda: measure_fail2ban(label, spec, path, executable)


@bench_group.command("instructions")
@click.option(
    "--lines",
    type=click.IntRange(min=1_000, max=DEFAULT_LINES),
    default=30_000,
    show_default=True,
    help="Count over the first this many lines of the generated log.",
)
@click.option(
    "--native",
    "native_build",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Also count this Rust build (mailwarden native build) instead of building one.",
)
@click.option("--no-native", is_flag=True, help="Count the interpreted parsers only.")
def instructions_bench(lines: int, native_build: Path | None, no_native: bool) -> None:
    """Instructions per line (valgrind callgrind): repeatable on a busy machine.

    Parse + correlation + orjson of the first LINES lines of the same
    generated log as `bench parse` (default seed), Python and Rust.
    About 30 s per build.
    """
    path = _temporary_log()
    try:
        write_log(path, lines=DEFAULT_LINES, seed=7)
        with _native_build(native_build, no_native) as build:
            rows: list[tuple[str, Path | None]] = [(OURS, None)]
            if build is not None:
                rows.append((OURS_NATIVE, build))
            for name, where in rows:
                click.echo(f"counting {name} ...", err=True)
                per_line = count_instructions(path, START.year, lines, where)
                click.echo(f"{name:<34} {per_line:>10,.0f} instructions per line")
    finally:
        path.unlink(missing_ok=True)


@bench_group.command("all")
@click.pass_context
def bench_all(ctx: click.Context) -> None:
    """Run every benchmark of this group with its defaults."""
    for name in sorted(bench_group.commands):
        if name == "all":
            continue
        click.echo(f"== mailwarden bench {name}", err=True)
        command: Any = bench_group.commands[name]
        ctx.invoke(command)
