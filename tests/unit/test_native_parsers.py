"""The mypyc-compiled parsers give byte-identical results to the interpreted ones.

One build per session (``mailwarden.native.build_native_parsers``; `make test`
builds it once into build/native and passes it as ``MAILWARDEN_NATIVE_BUILD``).
A child process imports the parsers from the build and parses the same streams
as this process: a generated mixed log, every adversarial case, worst-case
lines, randomly mutated lines (invalid UTF-8, NUL, broken separators) and,
when ../shared is present, every corpus and lab line. Events, ignored
categories, errors and the parser statistics must match byte for byte.

`make test` also runs the parser test suites against the build
(``MAILWARDEN_EXPECT_NATIVE=1``, see the Makefile); the first test here makes
sure each run imports the parsers it means to.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from mailwarden.bench import OURS_NATIVE, measure_mailwarden, measure_native
from mailwarden.loggen import START, pathological_lines, write_log
from mailwarden.native import (
    BUILD_RECORD,
    NativeBuildError,
    build_native_parsers,
    parsers_in_use,
    project_root,
    source_digest,
    toolchain_problem,
)
from tests.support.native_dump import dump_streams, encode_streams
from tests.unit.test_adversarial import INJECTIONS, SHAPES

DUMP_SCRIPT = Path(__file__).resolve().parent.parent / "support" / "native_dump.py"
EXPECT_NATIVE = os.environ.get("MAILWARDEN_EXPECT_NATIVE") == "1"


def test_parsers_in_use_are_the_expected_ones() -> None:
    in_use = parsers_in_use()
    assert in_use.compiled is EXPECT_NATIVE, in_use.describe()
    if EXPECT_NATIVE:
        assert in_use.stale is False, in_use.describe()


@pytest.fixture(scope="session")
def native_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("MAILWARDEN_NATIVE_BUILD")
    if given:
        build = Path(given)
        record = json.loads((build / BUILD_RECORD).read_text())
        assert record["source_digest"] == source_digest(project_root() / "parsers"), (
            f"{build} was built from other sources: run `make native`"
        )
        return build
    problem = toolchain_problem()
    if problem is not None:
        pytest.skip(f"cannot compile the parsers here: {problem}")
    build = tmp_path_factory.mktemp("native") / "build"
    try:
        build_native_parsers(build)
    except NativeBuildError as exc:  # a toolchain that is present but fails is a failure
        pytest.fail(str(exc))
    return build


def parse_in_native_child(build: Path, streams: dict[str, list[bytes]], work: Path) -> bytes:
    source, target = work / "streams.json", work / "results.jsonl"
    source.write_bytes(encode_streams(streams))
    env = dict(os.environ, PYTHONPATH=str(build.resolve()))
    done = subprocess.run(
        [sys.executable, str(DUMP_SCRIPT), str(source), str(target)],
        cwd=build,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return target.read_bytes()


def assert_same_results(build: Path, streams: dict[str, list[bytes]], work: Path) -> None:
    expected = dump_streams(streams).splitlines()
    got = parse_in_native_child(build, streams, work).splitlines()
    assert len(got) == len(expected)
    for index, (ours, theirs) in enumerate(zip(got, expected, strict=True)):
        assert ours == theirs, (
            f"result {index} differs:\ncompiled:    {ours!r}\ninterpreted: {theirs!r}"
        )


def mutated(lines: list[bytes], seed: int) -> list[bytes]:
    """Each line with one to four bytes replaced by separators, NUL or invalid UTF-8."""
    rng = random.Random(seed)
    alphabet = b"[]<>=:;, ()\x00\xff\xc3@.\r\n"
    out = []
    for line in lines:
        changed = bytearray(line)
        for _ in range(rng.randint(1, 4)):
            changed[rng.randrange(len(changed))] = rng.choice(alphabet)
        out.append(bytes(changed))
    return out


def test_compiled_parsers_match_on_generated_adversarial_and_mutated_lines(
    native_build: Path, tmp_path: Path
) -> None:
    log = tmp_path / "mixed.log"
    write_log(log, lines=20_000, seed=11)
    generated = log.read_bytes().splitlines()
    adversarial = [
        shape.build(value).encode("utf-8", "surrogatepass")
        for shape in SHAPES
        for value in INJECTIONS.values()
    ]
    streams = {
        "generated": generated,
        "adversarial": adversarial,
        "worst-case": [line.encode() for line in pathological_lines(6_000).values()],
        "mutated": mutated(generated[:5_000], seed=3),
    }
    assert_same_results(native_build, streams, tmp_path)


def test_compiled_parsers_match_on_the_corpora(
    native_build: Path, corpus_dir: Path, tmp_path: Path
) -> None:
    streams: dict[str, list[bytes]] = {}
    for name in ("fail2ban.jsonl", "crowdsec.jsonl"):
        records = [orjson.loads(line) for line in (corpus_dir / name).read_bytes().splitlines()]
        lines = [r["line"].encode("utf-8", "surrogateescape") for r in records if "line" in r]
        assert lines, f"no lines in {name}"
        streams[name] = lines
    for name in ("postfix.log", "dovecot.log"):
        streams[f"lab/{name}"] = (corpus_dir / "lab" / name).read_bytes().splitlines()
    assert_same_results(native_build, streams, tmp_path)


def test_status_reports_a_build_from_other_sources(native_build: Path, tmp_path: Path) -> None:
    outdated = tmp_path / "outdated"
    shutil.copytree(native_build, outdated)
    record = json.loads((native_build / BUILD_RECORD).read_text())
    record["source_digest"] = "0" * 64
    (outdated / BUILD_RECORD).write_text(json.dumps(record))
    env = dict(os.environ, PYTHONPATH=str(outdated))
    command = [sys.executable, "-m", "mailwarden.cli", "native", "status"]
    done = subprocess.run(command, cwd=outdated, env=env, capture_output=True, text=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "compiled with mypyc" in done.stdout
    assert "OUTDATED" in done.stdout
    fresh = subprocess.run(
        command,
        cwd=native_build,
        env=dict(os.environ, PYTHONPATH=str(native_build)),
        capture_output=True,
        text=True,
    )
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert "matches the installed sources" in fresh.stdout


def test_bench_measures_the_build_and_refuses_interpreted_parsers(
    native_build: Path, tmp_path: Path
) -> None:
    log = tmp_path / "mixed.log"
    write_log(log, lines=2_000, seed=5)
    interpreted = measure_mailwarden(log, START.year)
    compiled = measure_native(log, START.year, native_build)
    assert compiled.name == OURS_NATIVE
    assert compiled.lines == interpreted.lines == 2_000
    assert compiled.found == interpreted.found
    assert compiled.cpu > 0
    not_a_build = tmp_path / "not-a-build"
    not_a_build.mkdir()
    refused = measure_native(log, START.year, not_a_build)
    assert refused.lines == 0
    assert "interpreted" in refused.note
