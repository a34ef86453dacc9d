"""`mailwarden native`: the parsers' Rust port, built as a Python extension.

The parsers are the per-line hot path of `tail` and `replay`. ``parsers-rs/``
ports ``parsers/`` to Rust (the PyO3 module ``mailwarden_parsers_rs``, which
parses several times the lines per second). ``parsers/`` stays the
reference: its tests define the behaviour, and a differential test holds the
Rust port to it byte for byte (events, ignored categories, errors, statistics)
on generated, adversarial, mutated, corpus and lab lines. Without the module,
mailwarden runs the Python parsers.

A build is a directory to put first on ``PYTHONPATH``::

    mailwarden native build --out build/native
    PYTHONPATH=build/native mailwarden tail /var/log/mail.log

It holds ``mailwarden_parsers_rs.abi3.so`` and ``mailwarden-native.json``,
recording the digest of the sources it was built from: the Python parsers and
the Rust crate, since a change to either can make the two differ. A build
older than the installed sources is reported (``mailwarden native status``,
and a warning from `tail` and `replay`) instead of silently running old code.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import click

import mailwarden

__all__ = [
    "BUILD_RECORD",
    "DEFAULT_OUT",
    "MODULE_FILE",
    "RUST_MODULE",
    "NativeBuildError",
    "ParsersInUse",
    "build_native_parsers",
    "log_parsers_in_use",
    "parsers_in_use",
    "project_root",
    "source_digest",
    "toolchain_problem",
]

BUILD_RECORD = "mailwarden-native.json"
DEFAULT_OUT = Path("build/native")
RUST_MODULE = "mailwarden_parsers_rs"
MODULE_FILE = f"{RUST_MODULE}.abi3.so"
CRATE = "parsers-rs"
_BUILD_TIMEOUT = 900.0
_ERROR_TAIL_LINES = 30


class NativeBuildError(RuntimeError):
    """cargo is missing or failed; the message says which and why."""


@dataclass(frozen=True, slots=True)
class ParsersInUse:
    """Which parsers this process would use.

    ``location`` is the Rust module's file when ``compiled``, else the Python
    parsers' package. ``stale`` is True when the Rust module was built from other
    sources than the installed ones, None when that cannot be told.
    """

    compiled: bool
    location: Path
    stale: bool | None

    def describe(self) -> str:
        if not self.compiled:
            return f"Python (interpreted), {self.location}"
        state = {
            True: "OUTDATED: built from other sources than the installed ones; "
            "rebuild with `mailwarden native build`",
            False: "matches the sources",
            None: "cannot tell whether it matches the sources (no build record, "
            "or no sources installed to compare with)",
        }[self.stale]
        return f"Rust ({self.location}), {state}"


def project_root() -> Path:
    """Where ``mailwarden`` and ``parsers`` are installed; in a checkout, ``parsers-rs`` too."""
    return Path(mailwarden.__file__).resolve().parent.parent


def source_digest(root: Path | None = None) -> str:
    """SHA-256 over the sources a build comes from: ``parsers/*.py`` and the Rust crate.

    The crate is ``parsers-rs/Cargo.toml``, ``Cargo.lock`` and ``src/**/*.rs``;
    ``root`` defaults to :func:`project_root`.
    """
    root = root if root is not None else project_root()
    crate = root / CRATE
    rust = [crate / "Cargo.toml", crate / "Cargo.lock", *(crate / "src").rglob("*.rs")]
    return _digest(root, [*_python_parsers(root), *(path for path in rust if path.is_file())])


def _python_parsers(root: Path) -> list[Path]:
    return sorted((root / "parsers").glob("*.py"))


def _digest(root: Path, files: Iterable[Path]) -> str:
    """SHA-256 over the relative names and bytes of ``files``, in name order."""
    digest = hashlib.sha256()
    for name, path in sorted((path.relative_to(root).as_posix(), path) for path in files):
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def parsers_in_use() -> ParsersInUse:
    """Whether ``mailwarden_parsers_rs`` is importable here, and whether its build is current.

    Found, not imported: asking costs no extension load.
    """
    spec = importlib.util.find_spec(RUST_MODULE)
    if spec is None or spec.origin is None:
        python = importlib.util.find_spec("parsers")
        where = Path(python.origin).parent if python and python.origin else project_root()
        return ParsersInUse(False, where.resolve(), False)
    location = Path(spec.origin).resolve()
    return ParsersInUse(True, location, _is_stale(location.parent / BUILD_RECORD))


def _is_stale(record_path: Path) -> bool | None:
    """The build record against the installed sources.

    A checkout has the Rust crate: the whole digest decides. An installed
    package has only the Python parsers, the reference the port is held to:
    their digest decides.
    """
    try:
        record = json.loads(record_path.read_text())
        built_from, built_parsers = record["source_digest"], record["parsers_digest"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    root = project_root()
    if (root / CRATE / "Cargo.toml").is_file():
        return bool(built_from != source_digest(root))
    if _python_parsers(root):
        return bool(built_parsers != _digest(root, _python_parsers(root)))
    return None


def log_parsers_in_use(logger: logging.Logger) -> None:
    """One line at start-up: operators should see which parsers run, and an outdated build."""
    in_use = parsers_in_use()
    if in_use.compiled and in_use.stale is not False:
        logger.warning("parsers: %s", in_use.describe())
    else:
        logger.info("parsers: %s", in_use.describe())


def build_native_parsers(out: Path, source_root: Path | None = None) -> list[Path]:
    """Build ``parsers-rs`` under ``source_root`` (default: the installed source) into ``out``.

    Writes ``out/mailwarden_parsers_rs.abi3.so`` and then its build record, each
    by an atomic rename (a running process keeps the module it loaded). Returns
    the extension files written.
    """
    root = source_root if source_root is not None else project_root()
    manifest = root / CRATE / "Cargo.toml"
    if not manifest.is_file():
        raise NativeBuildError(
            f"no Rust sources at {manifest.parent}: build from a mailwarden checkout"
        )
    cargo = _toolchain()
    # taken before cargo runs: sources edited during the build make it outdated, not wrongly current
    record = {
        "source_digest": source_digest(root),
        "parsers_digest": _digest(root, _python_parsers(root)),
        "python": sys.version.split()[0],
        "cargo": _cargo_version(cargo),
        "module": MODULE_FILE,
    }
    built = _run_cargo(cargo, manifest)
    out.mkdir(parents=True, exist_ok=True)
    module = out / MODULE_FILE
    staged = _staged(module)
    shutil.copy2(built, staged)
    os.replace(staged, module)
    staged = _staged(out / BUILD_RECORD)
    staged.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(staged, out / BUILD_RECORD)
    _remove_mypyc_build(out)
    return [module]


def toolchain_problem() -> str | None:
    """Why cargo cannot build the Rust parsers here, or None when it can."""
    try:
        _toolchain()
    except NativeBuildError as exc:
        return str(exc)
    return None


def _toolchain() -> Path:
    """The cargo to build with, once it is known to run and to have a linker."""
    cargo = _cargo()
    if cargo is None:
        raise NativeBuildError(
            "cargo not found on PATH nor in ~/.cargo/bin: "
            "install Rust with rustup (https://rustup.rs)"
        )
    _cargo_version(cargo)
    if shutil.which("cc") is None:
        raise NativeBuildError("no C linker: cargo links the module with `cc`; install gcc")
    return cargo


def _cargo() -> Path | None:
    """cargo on PATH, else where rustup puts it (a service's or cron's PATH often lacks it)."""
    found = shutil.which("cargo")
    if found is not None:
        return Path(found)
    home = os.environ.get("CARGO_HOME") or str(Path.home() / ".cargo")
    rustup = Path(home) / "bin" / "cargo"
    return rustup if os.access(rustup, os.X_OK) else None


def _cargo_version(cargo: Path) -> str:
    try:
        done = subprocess.run(
            [str(cargo), "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NativeBuildError(f"{cargo} does not run: {exc}") from exc
    if done.returncode != 0:
        raise NativeBuildError(f"{cargo} does not run: {_tail(done.stderr + done.stdout)}")
    return done.stdout.strip()


def _run_cargo(cargo: Path, manifest: Path) -> Path:
    """``cargo build --release`` of the crate's library; the cdylib it wrote."""
    command = [
        str(cargo),
        "build",
        "--release",
        "--lib",
        "--locked",
        "--manifest-path",
        str(manifest),
        "--message-format=json-render-diagnostics",
    ]
    # PyO3 builds for the interpreter that will import the module
    env = dict(os.environ, PYO3_PYTHON=sys.executable)
    try:
        done = subprocess.run(
            command,
            cwd=manifest.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=_BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise NativeBuildError(f"cargo took more than {_BUILD_TIMEOUT:.0f} s") from exc
    if done.returncode != 0:
        raise NativeBuildError(f"cargo build failed:\n{_tail(done.stderr)}")
    for line in done.stdout.splitlines():
        message = json.loads(line) if line.startswith("{") else {}
        if message.get("reason") == "compiler-artifact" and "cdylib" in message["target"]["kind"]:
            for name in message["filenames"]:
                if name.endswith((".so", ".dylib")):
                    return Path(name)
    raise NativeBuildError(f"cargo built no Python extension:\n{_tail(done.stderr)}")


def _tail(output: str) -> str:
    return "\n".join(output.strip().splitlines()[-_ERROR_TAIL_LINES:])


def _staged(path: Path) -> Path:
    """Where to write ``path`` before renaming it into place."""
    return path.with_name(f".{path.name}.new")


def _remove_mypyc_build(out: Path) -> None:
    """Drop what an earlier, mypyc-compiled build left in ``out``.

    On ``PYTHONPATH`` its ``parsers/`` package would shadow the installed
    parsers with old compiled code.
    """
    compiled = out / "parsers"
    if compiled.is_dir() and any(compiled.glob("*.so")):
        shutil.rmtree(compiled)
    for runtime in out.glob("*__mypyc.*.so"):
        runtime.unlink()


@click.group("native")
def native_group() -> None:
    """The parsers' Rust port (parsers-rs): build it, or check which parsers run."""


@native_group.command("build")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="Directory to write; put it first on PYTHONPATH to use it.",
)
@click.option(
    "--source",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="mailwarden checkout holding parsers-rs/ (default: the installed source).",
)
def build_command(out: Path, source: Path | None) -> None:
    """Build the Rust parsers with cargo (needs Rust, from rustup, and a C linker)."""
    root = source if source is not None else project_root()
    click.echo(f"building {root / CRATE} with cargo ...", err=True)
    try:
        written = build_native_parsers(out, root)
    except NativeBuildError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {', '.join(str(path) for path in written)}")
    click.echo(f"use it with: PYTHONPATH={out.resolve()} mailwarden tail ...")


@native_group.command("status")
def status_command() -> None:
    """Say which parsers this environment uses; exit 1 if the Rust build is outdated."""
    in_use = parsers_in_use()
    click.echo(f"parsers: {in_use.describe()}")
    if in_use.compiled and in_use.stale:
        sys.exit(1)
