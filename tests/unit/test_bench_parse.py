"""`mailwarden bench parse` measures the Rust build in a child process, and only a current one."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from mailwarden.bench import (
    OURS_NATIVE,
    measure_mailwarden,
    measure_native,
    measure_native_worst_cases,
    measure_worst_cases,
    render_worst_cases,
)
from mailwarden.loggen import START, write_log
from mailwarden.native import BUILD_RECORD, MODULE_FILE


@pytest.fixture(scope="module")
def rust_build() -> Path:
    given = os.environ.get("MAILWARDEN_NATIVE_BUILD")
    if not given or not (Path(given) / MODULE_FILE).exists():
        pytest.skip("no Rust build given: `make test` passes MAILWARDEN_NATIVE_BUILD=build/native")
    return Path(given)


def test_bench_measures_the_rust_build_and_counts_the_same_attempts(
    rust_build: Path, tmp_path: Path
) -> None:
    log = tmp_path / "mixed.log"
    write_log(log, lines=2_000, seed=5)
    python = measure_mailwarden(log, START.year)
    rust = measure_native(log, START.year, rust_build)
    assert rust.name == OURS_NATIVE
    assert rust.lines == python.lines == 2_000
    assert rust.found == python.found
    assert rust.found and rust.found > 0
    assert rust.note == python.note
    assert rust.cpu > 0


def test_bench_refuses_a_missing_or_outdated_build(rust_build: Path, tmp_path: Path) -> None:
    log = tmp_path / "mixed.log"
    write_log(log, lines=200, seed=5)
    empty = tmp_path / "not-a-build"
    empty.mkdir()
    missing = measure_native(log, START.year, empty)
    assert missing.lines == 0
    assert "not built" in missing.note
    outdated = tmp_path / "outdated"
    shutil.copytree(rust_build, outdated)
    record = json.loads((outdated / BUILD_RECORD).read_text())
    record = {key: "0" * 64 if "digest" in key else value for key, value in record.items()}
    (outdated / BUILD_RECORD).write_text(json.dumps(record))
    stale = measure_native(log, START.year, outdated)
    assert stale.lines == 0
    assert "OUTDATED" in stale.note


def test_worst_case_lines_are_timed_in_both_engines(rust_build: Path) -> None:
    python = measure_worst_cases(START.year, repeats=1)
    rust = measure_native_worst_cases(START.year, rust_build)
    assert [g.name for g in rust] == [g.name for g in python]
    assert all(g.small > 0 and g.large > 0 for g in rust)
    table = render_worst_cases(python, rust)
    assert all(g.name in table for g in python)
    assert "rust" in table.splitlines()[0]
