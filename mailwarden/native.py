"""`mailwarden native`: the parsers compiled to C with mypyc, from the same source.

The parsers are the per-line hot path of `tail` and `replay`. mypyc compiles
their typed Python into a C extension per module; nothing else changes: same
source, same tests, byte-identical events (a test parses the corpora, the lab
logs, a generated log and mutated lines with both and compares the JSON).

A build is a directory to put first on ``PYTHONPATH``::

    mailwarden native build --out build/native
    PYTHONPATH=build/native mailwarden tail /var/log/mail.log

It holds ``parsers/`` (each module's ``.so`` beside its ``.py``) and the shared
mypyc runtime library, plus ``mailwarden-native.json`` recording the digest
of the sources it was built from, so that a build older than the installed
parsers is reported (``mailwarden native status``, and a warning from `tail`
and `replay`) instead of silently running old code.

Only ``parsers/`` is compiled. ``models.events`` stays interpreted on purpose:
orjson serializes dataclasses through their instance ``__dict__``, which mypyc's
native classes do not have (orjson then misreads them).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click

import mailwarden

__all__ = [
    "BUILD_RECORD",
    "NativeBuildError",
    "ParsersInUse",
    "build_native_parsers",
    "log_parsers_in_use",
    "parsers_in_use",
    "source_digest",
    "toolchain_problem",
]

BUILD_RECORD = "mailwarden-native.json"
DEFAULT_OUT = Path("build/native")
_BUILD_TIMEOUT = 900.0
# models.events is compiled against (type information), never compiled itself
_TYPE_ONLY_MODULES = ("models/__init__.py", "models/events.py")


class NativeBuildError(RuntimeError):
    """mypyc or the C compiler failed, or is missing; the message says which and why."""


@dataclass(frozen=True, slots=True)
class ParsersInUse:
    """Which parsers this process imports.

    ``stale`` is True when compiled parsers were built from other sources than
    the installed ones, None when that cannot be told (no build record).
    """

    compiled: bool
    location: Path
    stale: bool | None

    def describe(self) -> str:
        if not self.compiled:
            return f"interpreted ({self.location})"
        state = {
            True: "OUTDATED: built from other sources than the installed parsers; rebuild",
            False: "matches the installed sources",
            None: "no build record; cannot tell which sources it was built from",
        }[self.stale]
        return f"compiled with mypyc ({self.location}; {state})"


def project_root() -> Path:
    """The directory holding the installed ``mailwarden``, ``parsers`` and ``models`` source."""
    return Path(mailwarden.__file__).resolve().parent.parent


def source_digest(parsers_dir: Path) -> str:
    """SHA-256 over the names and bytes of the parser modules' source, in name order."""
    digest = hashlib.sha256()
    for path in sorted(parsers_dir.glob("*.py")):
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def parsers_in_use() -> ParsersInUse:
    """Whether ``parsers`` was imported from a mypyc build, and whether that build is current."""
    import parsers.api

    location = Path(parsers.__file__).resolve().parent
    compiled = not parsers.api.__file__.endswith(".py")
    if not compiled:
        return ParsersInUse(False, location, False)
    record = location.parent / BUILD_RECORD
    try:
        built_from = json.loads(record.read_text())["source_digest"]
    except (OSError, ValueError, KeyError, TypeError):
        return ParsersInUse(True, location, None)
    installed = project_root() / "parsers"
    if not installed.is_dir() or installed.resolve() == location:
        return ParsersInUse(True, location, None)
    return ParsersInUse(True, location, built_from != source_digest(installed))


def log_parsers_in_use(logger: logging.Logger) -> None:
    """One line at start-up: operators should see which parsers run, and an outdated build."""
    in_use = parsers_in_use()
    if in_use.compiled and in_use.stale is not False:
        logger.warning("parsers: %s", in_use.describe())
    else:
        logger.info("parsers: %s", in_use.describe())


def build_native_parsers(out: Path, source_root: Path | None = None) -> list[Path]:
    """Compile ``parsers/`` from ``source_root`` (default: the installed source) into ``out``.

    ``out`` is replaced only when the build succeeded. Returns the extension
    files written.
    """
    root = source_root if source_root is not None else project_root()
    sources = sorted((root / "parsers").glob("*.py"))
    if not sources:
        raise NativeBuildError(f"no parser sources under {root / 'parsers'}")
    _check_toolchain()
    with tempfile.TemporaryDirectory(prefix="mailwarden-native-") as scratch:
        stage = Path(scratch) / "stage"
        (stage / "parsers").mkdir(parents=True)
        (stage / "models").mkdir()
        for path in sources:
            shutil.copy2(path, stage / "parsers" / path.name)
        for relative in _TYPE_ONLY_MODULES:
            shutil.copy2(root / relative, stage / relative)
        modules = [f"parsers/{p.name}" for p in sources if p.name != "__init__.py"]
        _run_mypyc(stage, modules)
        result = Path(scratch) / "result"
        (result / "parsers").mkdir(parents=True)
        written = []
        for path in sorted(stage.glob("parsers/*")):
            if path.suffix in (".py", ".so"):
                shutil.copy2(path, result / "parsers" / path.name)
                if path.suffix == ".so":
                    written.append(out / "parsers" / path.name)
        for path in sorted(stage.glob("*.so")):  # mypyc's shared runtime for the group
            shutil.copy2(path, result / path.name)
            written.append(out / path.name)
        record = {
            "source_digest": source_digest(root / "parsers"),
            "python": sys.version.split()[0],
            "mypy": _mypy_version(),
            "modules": modules,
        }
        (result / BUILD_RECORD).write_text(json.dumps(record, indent=2) + "\n")
        _replace_dir(result, out)
    return written


def toolchain_problem() -> str | None:
    """Why this machine cannot compile the parsers, or None when it can."""
    try:
        import mypyc  # noqa: F401
    except ImportError:
        return "mypyc is not installed: pip install 'mailwarden[native]' (it comes with mypy)"
    compiler = str(sysconfig.get_config_var("CC") or "cc")
    if shutil.which(compiler.split()[0]) is None:
        return f"no C compiler ({compiler!r} not found): install gcc"
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not include.is_file():
        return f"no Python headers ({include}): install python3-dev"
    return None


def _check_toolchain() -> None:
    problem = toolchain_problem()
    if problem is not None:
        raise NativeBuildError(problem)


def _run_mypyc(stage: Path, modules: list[str]) -> None:
    command = [sys.executable, "-m", "mypyc", *modules]
    try:
        done = subprocess.run(
            command,
            cwd=stage,
            capture_output=True,
            text=True,
            timeout=_BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise NativeBuildError(f"mypyc took more than {_BUILD_TIMEOUT:.0f} s") from exc
    if done.returncode != 0:
        lines = (done.stdout + done.stderr).strip().splitlines()
        errors = [line for line in lines if "error" in line.lower()] or lines
        raise NativeBuildError("mypyc failed:\n" + "\n".join(errors[-20:]))


def _mypy_version() -> str:
    from mypy.version import __version__

    return __version__


def _replace_dir(new: Path, out: Path) -> None:
    """Move ``new`` to ``out``; an old build is removed only once the new one is complete."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = out.with_name(out.name + ".new")
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(new, staged)
    if out.exists():
        shutil.rmtree(out)
    staged.rename(out)


@click.group("native")
def native_group() -> None:
    """The parsers compiled with mypyc (same source, about 1.4x the lines per second)."""


@native_group.command("build")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="Directory to write; put it first on PYTHONPATH to use it.",
)
def build_command(out: Path) -> None:
    """Compile the installed parsers with mypyc (needs mypy, a C compiler, Python headers)."""
    click.echo(f"compiling {project_root() / 'parsers'} with mypyc ...", err=True)
    try:
        written = build_native_parsers(out)
    except NativeBuildError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {len(written)} extension modules to {out}")
    click.echo(f"use them with: PYTHONPATH={out.resolve()} mailwarden tail ...")


@native_group.command("status")
def status_command() -> None:
    """Say which parsers this environment imports; exit 1 if a compiled build is outdated."""
    in_use = parsers_in_use()
    click.echo(f"parsers: {in_use.describe()}")
    if in_use.compiled and in_use.stale:
        sys.exit(1)
