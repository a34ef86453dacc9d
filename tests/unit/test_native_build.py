"""Building the Rust parsers (``mailwarden native build``) and telling which parsers run.

One build per session: `make test` builds ``build/native`` once and passes it
as ``MAILWARDEN_NATIVE_BUILD``; without it the session builds into a temp dir
(cargo reuses ``parsers-rs/target``), or skips when cargo cannot build here.
Which parsers a process uses depends on its ``sys.path``, so those checks run
in child processes with a chosen ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from mailwarden.native import (
    BUILD_RECORD,
    MODULE_FILE,
    NativeBuildError,
    build_native_parsers,
    project_root,
    source_digest,
    toolchain_problem,
)

STATUS = [sys.executable, "-m", "mailwarden.cli", "native", "status"]
IN_USE = (
    "import sys, orjson\n"
    "from mailwarden.native import parsers_in_use\n"
    "in_use = parsers_in_use()\n"
    "print(orjson.dumps({'compiled': in_use.compiled, 'location': str(in_use.location),\n"
    "    'stale': in_use.stale, 'describe': in_use.describe(),\n"
    "    'imported': 'mailwarden_parsers_rs' in sys.modules}).decode())\n"
)


@pytest.fixture(scope="session")
def native_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("MAILWARDEN_NATIVE_BUILD")
    if given:
        build = Path(given)
        record = json.loads((build / BUILD_RECORD).read_text())
        assert record["source_digest"] == source_digest(project_root()), (
            f"{build} was built from other sources: run `make native`"
        )
        return build
    skip_without_toolchain()
    build = tmp_path_factory.mktemp("native") / "build"
    try:
        build_native_parsers(build)
    except NativeBuildError as exc:  # a toolchain that is present but fails is a failure
        pytest.fail(str(exc))
    return build


def skip_without_toolchain() -> None:
    problem = toolchain_problem()
    if problem is not None:
        pytest.skip(f"cannot build the Rust parsers here: {problem}")


def child_env(pythonpath: Path | str | None, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return env | extra


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # cwd: `python -c` and `-m` put it first on sys.path, where a checkout would shadow a build
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def in_use_in_child(pythonpath: Path | None, cwd: Path) -> dict[str, object]:
    done = run([sys.executable, "-c", IN_USE], cwd, child_env(pythonpath))
    assert done.returncode == 0, done.stderr
    loaded: dict[str, object] = orjson.loads(done.stdout)
    return loaded


def copy_sources(root: Path, to: Path) -> Path:
    """The files a build comes from, plus some that it does not."""
    for name in ("parsers", "parsers-rs/src"):
        shutil.copytree(root / name, to / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("parsers-rs/Cargo.toml", "parsers-rs/Cargo.lock", "README.md"):
        shutil.copy2(root / name, to / name)
    return to


def test_build_writes_the_module_and_its_record_and_clears_a_mypyc_build(tmp_path: Path) -> None:
    skip_without_toolchain()
    out = tmp_path / "out"
    (out / "parsers").mkdir(parents=True)
    (out / "parsers" / "api.cpython-311-x86_64-linux-gnu.so").write_bytes(b"old")
    (out / "5799b45550ed8291bc4a__mypyc.cpython-311-x86_64-linux-gnu.so").write_bytes(b"old")
    (out / "unrelated.txt").write_text("kept")
    written = build_native_parsers(out)
    assert written == [out / MODULE_FILE]
    assert sorted(path.name for path in out.iterdir()) == [
        BUILD_RECORD,
        MODULE_FILE,
        "unrelated.txt",
    ]
    record = json.loads((out / BUILD_RECORD).read_text())
    assert record["source_digest"] == source_digest(project_root())
    assert record["python"] == sys.version.split()[0]
    loaded = in_use_in_child(out, tmp_path)
    assert loaded["compiled"] is True
    assert loaded["stale"] is False


def test_status_passes_on_a_fresh_build_and_fails_on_an_outdated_one(
    native_build: Path, tmp_path: Path
) -> None:
    fresh = run(STATUS, native_build, child_env(native_build))
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert fresh.stdout.startswith("parsers: Rust (")
    assert "matches the sources" in fresh.stdout

    outdated = tmp_path / "outdated"
    shutil.copytree(native_build, outdated)
    record = json.loads((outdated / BUILD_RECORD).read_text())
    record["source_digest"] = "0" * 64
    (outdated / BUILD_RECORD).write_text(json.dumps(record))
    done = run(STATUS, outdated, child_env(outdated))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"Rust ({outdated / MODULE_FILE})" in done.stdout
    assert "OUTDATED" in done.stdout


def test_status_cannot_tell_without_a_build_record(native_build: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy2(native_build / MODULE_FILE, bare / MODULE_FILE)
    done = run(STATUS, bare, child_env(bare))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cannot tell" in done.stdout


def test_status_without_the_module_names_the_python_parsers(tmp_path: Path) -> None:
    done = run(STATUS, tmp_path, child_env(None))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("parsers: Python (interpreted)")


def test_parsers_in_use_follows_sys_path_without_importing_the_module(
    native_build: Path, tmp_path: Path
) -> None:
    without = in_use_in_child(None, tmp_path)
    assert without["compiled"] is False
    assert without["location"] == str(project_root() / "parsers")
    assert without["stale"] is False

    with_build = in_use_in_child(native_build, tmp_path)
    assert with_build["compiled"] is True
    assert with_build["location"] == str((native_build / MODULE_FILE).resolve())
    assert with_build["stale"] is False
    assert with_build["imported"] is False


def test_an_installed_package_without_the_crate_is_checked_by_its_python_parsers(
    native_build: Path, tmp_path: Path
) -> None:
    """pip installs ``parsers/`` but not ``parsers-rs/``: the reference decides then."""
    site = tmp_path / "site"
    for package in ("mailwarden", "parsers", "models"):
        shutil.copytree(project_root() / package, site / package)
    pythonpath = os.pathsep.join((str(native_build), str(site)))
    current = run(STATUS, tmp_path, child_env(pythonpath))
    assert current.returncode == 0, current.stdout + current.stderr
    assert "matches the sources" in current.stdout
    with (site / "parsers" / "api.py").open("a") as handle:
        handle.write("\n# changed after the build\n")
    changed = run(STATUS, tmp_path, child_env(pythonpath))
    assert changed.returncode == 1, changed.stdout + changed.stderr
    assert "OUTDATED" in changed.stdout


def test_source_digest_covers_the_python_parsers_and_the_rust_crate(tmp_path: Path) -> None:
    tree = copy_sources(project_root(), tmp_path / "tree")
    original = source_digest(project_root())
    assert source_digest(tree) == original

    (tree / "README.md").write_text("not a source\n")
    (tree / "parsers-rs" / "target").mkdir()
    (tree / "parsers-rs" / "target" / "junk.rs").write_text("// build output\n")
    assert source_digest(tree) == original

    for changed in ("parsers-rs/src/lib.rs", "parsers/api.py", "parsers-rs/Cargo.lock"):
        path = tree / changed
        before = path.read_bytes()
        path.write_bytes(before + b"\n")
        assert source_digest(tree) != original, changed
        path.write_bytes(before)
    assert source_digest(tree) == original

    (tree / "parsers-rs" / "src" / "new_module.rs").write_text("// a new module\n")
    assert source_digest(tree) != original


def test_build_without_cargo_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("CARGO_HOME", str(tmp_path / "no-cargo-home"))
    problem = toolchain_problem()
    assert problem is not None
    assert "cargo not found" in problem
    assert "rustup" in problem
    out = tmp_path / "out"
    with pytest.raises(NativeBuildError, match="cargo not found"):
        build_native_parsers(out)
    assert not out.exists()

    env = child_env(None, PATH=str(empty), CARGO_HOME=str(tmp_path / "no-cargo-home"))
    done = run(
        [sys.executable, "-m", "mailwarden.cli", "native", "build", "--out", str(out)],
        tmp_path,
        env,
    )
    assert done.returncode == 1
    assert "cargo not found" in done.stderr
    assert not out.exists()


def test_a_failing_cargo_build_shows_cargos_output(tmp_path: Path) -> None:
    skip_without_toolchain()
    tree = copy_sources(project_root(), tmp_path / "tree")
    manifest = tree / "parsers-rs" / "Cargo.toml"
    manifest.write_text(manifest.read_text() + "\n[this is not toml\n")
    out = tmp_path / "out"
    with pytest.raises(NativeBuildError) as raised:
        build_native_parsers(out, tree)
    message = str(raised.value)
    assert message.startswith("cargo build failed:")
    assert "Cargo.toml" in message
    assert not (out / MODULE_FILE).exists()


def test_build_refuses_a_tree_without_the_crate(tmp_path: Path) -> None:
    (tmp_path / "parsers").mkdir()
    with pytest.raises(NativeBuildError, match="no Rust sources"):
        build_native_parsers(tmp_path / "out", tmp_path)
