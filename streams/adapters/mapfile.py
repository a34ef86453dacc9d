"""Map-file adapter: the active blocks as files for MTAs we do not speak to directly.

Postfix ``texthash:`` and ``cidr:`` tables, Exim host lists and HAProxy ACL
files (``-f``) are plain files the daemon reads at (re)load. This adapter keeps
:class:`ActiveCommands` fed from `mail.control` like every adapter, renders
each configured output from the commands in force, replaces the file
atomically when its content changed, and then runs the configured reload
command once.

Trust boundary: subjects come from logs an attacker can write to. Every
subject is re-validated before it becomes a line (addresses and networks are
re-formatted from :mod:`ipaddress`; account names must be one plain token that
a Postfix lookup cannot read as a partial key). The text after the verdict
is the same reply the other adapters give (a generic phrase and a reference
to the command, one line of printable ASCII), never the rule's reason unless
the operator asked for it. A subject that fails is skipped, counted and
logged, never written. The reload command is an argv list from the operator's
config, run without a shell; nothing from a command ever reaches it.

Until the consumer has caught up with `mail.control` the files are left as
they are: a partial history would briefly lift blocks. While the broker is
unreachable the files keep the last known state, and entries still expire on
time (checked every ``check_interval`` seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any, Final, Literal

from prometheus_client import Counter, Gauge

from models.commands import Command
from models.enforcement import (
    DEFAULT_SMTP_RESPONSES,
    ActiveCommands,
    Address,
    Applied,
    ClientReplies,
    Network,
    Verdict,
    normalize_account,
    parse_address,
)
from streams.adapters.control import ControlConsumer
from streams.adapters.metrics import AdapterMetrics, start_metrics_server

log = logging.getLogger(__name__)

Format = Literal["postfix-texthash", "postfix-cidr", "list"]
FORMATS: Final[tuple[Format, ...]] = ("postfix-texthash", "postfix-cidr", "list")
MAP_ADDRESS_ACTIONS: Final[frozenset[str]] = frozenset({"block_ip"})
MAP_ACCOUNT_ACTIONS: Final[frozenset[str]] = frozenset({"suspend_smtp", "suspend_login"})
FILE_MODE: Final = 0o644
HEADER: Final = "# Written by mailwarden adapter mapfile from mail.control; do not edit.\n"
# Characters of an RFC 5322 dot-atom plus '@': no whitespace, quotes,
# separators or comment markers that a map file or a Postfix key could misread.
ACCOUNT_CHARS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~.@"
)
ACCOUNT_LIMIT: Final = 320
RELOAD_OUTPUT_LIMIT: Final = 300
_STRENGTH: Final[Mapping[str, int]] = {"DUNNO": 0, "HOLD": 1, "DEFER": 2, "REJECT": 3}


class InvalidSubject(ValueError):
    """A subject that must not become a line in a map file; ``reason`` is its kind."""

    def __init__(self, reason: str, subject: str) -> None:
        super().__init__(f"{reason}: {subject!r}")
        self.reason = reason


# -- settings -------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class MapOutput:
    """One file: where, in which format, and which actions it carries."""

    path: Path
    format: Format = "postfix-texthash"
    actions: frozenset[str] = MAP_ADDRESS_ACTIONS

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(
                f"unknown map format {self.format!r}; choose one of {', '.join(FORMATS)}"
            )
        unknown = self.actions - MAP_ADDRESS_ACTIONS - MAP_ACCOUNT_ACTIONS
        if not self.actions or unknown:
            known = ", ".join(sorted(MAP_ADDRESS_ACTIONS | MAP_ACCOUNT_ACTIONS))
            raise ValueError(f"{self.path}: actions must be some of {known}")
        # One file, one key type: an account named like an address must not
        # block that address in a table Postfix looks client addresses up in.
        if self.actions & MAP_ADDRESS_ACTIONS and self.actions & MAP_ACCOUNT_ACTIONS:
            raise ValueError(f"{self.path}: do not mix address and account actions in one file")
        if self.format == "postfix-cidr" and self.actions & MAP_ACCOUNT_ACTIONS:
            raise ValueError(f"{self.path}: a cidr table holds addresses only")


@dataclass(slots=True, frozen=True)
class MapfileSettings:
    """``[adapters.mapfile]``: the outputs and how the MTA is told to reread them."""

    outputs: tuple[MapOutput, ...] = ()
    reload_command: tuple[str, ...] = ()
    reload_timeout: float = 30.0
    check_interval: float = 1.0


MAPFILE_KEYS: Final = frozenset({"outputs", "reload_command", "reload_timeout", "check_interval"})
OUTPUT_KEYS: Final = frozenset({"path", "format", "actions"})


def mapfile_settings(section: Mapping[str, Any], base: Path) -> MapfileSettings:
    """Validate ``[adapters.mapfile]``; raises ValueError with the reason."""
    unknown = set(section) - MAPFILE_KEYS
    if unknown:
        raise ValueError(f"[adapters.mapfile] has unknown keys: {', '.join(sorted(unknown))}")
    raw_outputs = section.get("outputs", [])
    if not isinstance(raw_outputs, list):
        raise ValueError("[[adapters.mapfile.outputs]] must be an array of tables")
    outputs = tuple(_output(entry, base) for entry in raw_outputs)
    paths = [output.path for output in outputs]
    if len(set(paths)) != len(paths):
        raise ValueError("[adapters.mapfile] names the same output path twice")
    defaults = MapfileSettings()
    settings = MapfileSettings(
        outputs=outputs,
        reload_command=reload_argv(section.get("reload_command", [])),
        reload_timeout=float(section.get("reload_timeout", defaults.reload_timeout)),
        check_interval=float(section.get("check_interval", defaults.check_interval)),
    )
    if settings.reload_timeout <= 0 or settings.check_interval <= 0:
        raise ValueError("[adapters.mapfile] reload_timeout and check_interval must be positive")
    return settings


def mapfile_overrides(
    settings: MapfileSettings,
    output: Path | None,
    fmt: str,
    actions: Sequence[str],
    reload_command: str | None,
) -> MapfileSettings:
    """The settings with the command line's single output and reload command applied.

    ``reload_command`` is split like a shell would split words, but it is
    never run by a shell: no expansion, no redirection, no second command.
    """
    outputs = settings.outputs
    if output is not None:
        outputs = (MapOutput(output, parse_format(fmt), frozenset(actions)),)
    if not outputs:
        raise ValueError("no output: give --output or [[adapters.mapfile.outputs]] in the config")
    argv = settings.reload_command
    if reload_command is not None:
        argv = reload_argv(shlex.split(reload_command))
    return replace(settings, outputs=outputs, reload_command=argv)


def check_outputs(settings: MapfileSettings) -> None:
    """Refuse at start what would fail at every write: a missing or read-only directory."""
    for output in settings.outputs:
        directory = output.path.parent
        if not directory.is_dir():
            raise ValueError(f"{output.path}: directory {directory} does not exist")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise ValueError(f"{output.path}: cannot create files in {directory}")


def reload_argv(value: object) -> tuple[str, ...]:
    """The reload command as an argv list; a string is refused (it would need a shell)."""
    if not isinstance(value, list) or not all(isinstance(arg, str) and arg for arg in value):
        raise ValueError('reload_command must be a list of arguments, e.g. ["postfix", "reload"]')
    return tuple(value)


def _output(entry: object, base: Path) -> MapOutput:
    if not isinstance(entry, dict):
        raise ValueError("each [[adapters.mapfile.outputs]] must be a table")
    unknown = set(entry) - OUTPUT_KEYS
    if unknown:
        raise ValueError(
            f"[[adapters.mapfile.outputs]] has unknown keys: {', '.join(sorted(unknown))}"
        )
    if "path" not in entry:
        raise ValueError("[[adapters.mapfile.outputs]] needs a path")
    actions = entry.get("actions", sorted(MAP_ADDRESS_ACTIONS))
    if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
        raise ValueError("actions must be a list of action names")
    fmt = str(entry.get("format", "postfix-texthash"))
    return MapOutput(
        path=base / str(entry["path"]), format=parse_format(fmt), actions=frozenset(actions)
    )


def parse_format(text: str) -> Format:
    for fmt in FORMATS:
        if text == fmt:
            return fmt
    raise ValueError(f"unknown map format {text!r}; choose one of {', '.join(FORMATS)}")


# -- the commands in force ------------------------------------------------------

Key = tuple[str, str, str | Address | Network]


class TrackedCommands(ActiveCommands):
    """:class:`ActiveCommands` that also knows which commands hold each slot.

    ActiveCommands decides (signature, order, release, expiry); this mirror
    follows its outcomes so that the whole set can be listed for rendering,
    and says when that set changed.
    """

    def __init__(
        self,
        signing_key: bytes,
        smtp_responses: Mapping[str, Verdict] | None = None,
        replies: ClientReplies | None = None,
    ) -> None:
        super().__init__(signing_key, smtp_responses, replies)
        self.responses: dict[str, Verdict] = dict(smtp_responses or DEFAULT_SMTP_RESPONSES)
        self._held: dict[Key, Command] = {}
        self.changed = asyncio.Event()

    def apply(self, raw: bytes | str, now: float | None = None) -> Applied:
        result = super().apply(raw, now)
        command = result.command
        if command is None or result.outcome not in ("applied", "released", "expired"):
            return result
        key = _key(command)
        if result.outcome == "applied":
            self._held[key] = command
        else:
            self._held.pop(key, None)
        self.changed.set()
        return result

    def in_force(self, now: float) -> list[Command]:
        """The commands not yet expired at ``now``; expired ones are forgotten."""
        expired = [key for key, command in self._held.items() if command.expires_epoch <= now]
        for key in expired:
            del self._held[key]
        if expired:
            self.prune(now)
        return list(self._held.values())

    def next_expiry(self) -> float | None:
        return min((command.expires_epoch for command in self._held.values()), default=None)


def _key(command: Command) -> Key:
    action = (
        command.releases if command.action == "release" and command.releases else command.action
    )
    subject: str | Address | Network
    if command.subject_type == "account":
        subject = normalize_account(command.subject)
    elif command.subject_type == "ip":
        subject = parse_address(command.subject) or command.subject
    else:
        try:
            subject = ip_network(command.subject.strip(), strict=False)
        except ValueError:
            subject = command.subject
    return (action, command.subject_type, subject)


# -- rendering ------------------------------------------------------------------


@dataclass(slots=True)
class Rendered:
    """A file's content, its entry count, and the subjects left out by reason."""

    text: str
    entries: int
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class _Line:
    sort_key: tuple[Any, ...]
    key: str
    verdict: Verdict
    reply: str


def account_key(subject: str) -> str:
    """The map key for an account, or InvalidSubject.

    One plain token of RFC 5322 characters, at most 320 long. Postfix looks a
    login containing ``@`` up as an address with partial keys (``domain``,
    ``user@``); so a key is either ``local@domain`` or a bare name without
    ``.``, never something that could stand for a domain or a local part.
    """
    name = normalize_account(subject)
    if not name or len(name) > ACCOUNT_LIMIT:
        raise InvalidSubject("bad account length", subject)
    if any(ch not in ACCOUNT_CHARS for ch in name):
        raise InvalidSubject("bad account characters", subject)
    if name.startswith("#"):
        raise InvalidSubject("bad account characters", subject)
    local, at, domain = name.partition("@")
    if at and (not local or not domain or "@" in domain):
        raise InvalidSubject("ambiguous account key", subject)
    if not at and "." in name:
        raise InvalidSubject("ambiguous account key", subject)
    return name


def address_key(command: Command, fmt: Format) -> tuple[tuple[Any, ...], str]:
    """Sort key and map key for an ``ip`` or ``prefix`` subject, or InvalidSubject."""
    network: IPv4Network | IPv6Network
    if command.subject_type == "ip":
        address = parse_address(command.subject)
        if address is None:
            raise InvalidSubject("bad address", command.subject)
        network = ip_network(address)
    elif command.subject_type == "prefix":
        try:
            network = ip_network(command.subject.strip(), strict=False)
        except ValueError as exc:
            raise InvalidSubject("bad prefix", command.subject) from exc
    else:
        raise InvalidSubject("not an address", command.subject)
    host = network.prefixlen == network.max_prefixlen
    # Most specific first: in a cidr table the first match wins.
    sort_key = (network.version, -network.prefixlen, int(network.network_address))
    if host:
        return sort_key, str(network.network_address)
    if fmt != "postfix-texthash":
        return sort_key, str(network)
    # texthash matches whole IPv4 octets only ("192.0.2" is 192.0.2.0/24).
    if network.version == 4 and network.prefixlen in (8, 16, 24):
        octets = str(network.network_address).split(".")
        return sort_key, ".".join(octets[: network.prefixlen // 8])
    raise InvalidSubject("prefix not expressible in texthash", command.subject)


def render(
    output: MapOutput,
    commands: Sequence[Command],
    responses: Mapping[str, Verdict],
    replies: ClientReplies,
) -> Rendered:
    """The file for ``output``: sorted, one line per key, the strongest verdict per key."""
    skipped: dict[str, int] = {}
    lines: dict[str, _Line] = {}
    for command in commands:
        if command.action not in output.actions:
            continue
        try:
            line = _line(output.format, command, responses, replies)
        except InvalidSubject as exc:
            skipped[exc.reason] = skipped.get(exc.reason, 0) + 1
            log.warning("not writing %s to %s: %s", command.action, output.path, exc)
            continue
        current = lines.get(line.key)
        if current is None or _stronger(line, current):
            lines[line.key] = line
    ordered = sorted(lines.values(), key=lambda line: line.sort_key)
    if output.format == "list":
        body = "".join(f"{line.key}\n" for line in ordered)
    else:
        body = "".join(f"{line.key} {line.verdict} {line.reply}\n" for line in ordered)
    return Rendered(HEADER + body, len(ordered), skipped)


def _line(
    fmt: Format, command: Command, responses: Mapping[str, Verdict], replies: ClientReplies
) -> _Line:
    if command.subject_type == "account":
        key = account_key(command.subject)
        sort_key: tuple[Any, ...] = (key,)
    else:
        sort_key, key = address_key(command, fmt)
    verdict = responses.get(command.action, "REJECT")
    return _Line(sort_key, key, verdict, replies.reply(command))


def _stronger(new: _Line, old: _Line) -> bool:
    if _STRENGTH[new.verdict] != _STRENGTH[old.verdict]:
        return _STRENGTH[new.verdict] > _STRENGTH[old.verdict]
    return new.reply < old.reply


# -- writing and reloading ------------------------------------------------------


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: a readers sees the old file or the new, never half."""
    directory = path.parent
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="ascii", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), FILE_MODE)
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    # The rename itself must survive a crash too.
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_existing(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None


@dataclass(slots=True, frozen=True)
class ReloadResult:
    ok: bool
    detail: str


async def run_reload(argv: Sequence[str], timeout: float) -> ReloadResult:
    """Run the reload command (no shell), killing its process group after ``timeout``."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return ReloadResult(False, f"cannot run: {exc}")
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        # The whole group: a child holding the pipe must not outlive it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        return ReloadResult(False, f"did not finish in {timeout:g} s")
    text = output.decode("utf-8", "replace").strip()[:RELOAD_OUTPUT_LIMIT]
    if process.returncode != 0:
        return ReloadResult(False, f"exited {process.returncode}: {text}")
    return ReloadResult(True, text)


class MapfileMetrics:
    """The adapter's own series, registered beside the common adapter metrics."""

    def __init__(self, metrics: AdapterMetrics) -> None:
        registry = metrics.registry
        self.entries = Gauge(
            "mailwarden_adapter_mapfile_entries",
            "Entries in each map file at its last write.",
            ["path"],
            registry=registry,
        )
        self.writes = Counter(
            "mailwarden_adapter_mapfile_writes",
            "Map files replaced because their content changed.",
            ["path"],
            registry=registry,
        )
        self.write_failures = Counter(
            "mailwarden_adapter_mapfile_write_failures",
            "Attempts to replace a map file that failed (retried every check_interval).",
            ["path"],
            registry=registry,
        )
        self.reloads = Counter(
            "mailwarden_adapter_mapfile_reloads",
            "Reload commands run, by outcome (ok, failed).",
            ["outcome"],
            registry=registry,
        )
        self.skipped = Counter(
            "mailwarden_adapter_mapfile_skipped_subjects",
            "Subjects left out of a map file, by reason (renders, not distinct subjects).",
            ["reason"],
            registry=registry,
        )


class MapfileWriter:
    """Keeps the outputs equal to the commands in force and the MTA told about it."""

    def __init__(
        self,
        active: TrackedCommands,
        settings: MapfileSettings,
        metrics: MapfileMetrics | None = None,
        *,
        clock: Callable[[], float] = time.time,
        retry_initial: float = 1.0,
        retry_max: float = 60.0,
    ) -> None:
        if not settings.outputs:
            raise ValueError("the mapfile adapter needs at least one output")
        self.active = active
        self.settings = settings
        self.metrics = metrics
        self._clock = clock
        self._written: dict[Path, str | None] = {
            o.path: read_existing(o.path) for o in settings.outputs
        }
        self._reload_due = False
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._retry_delay = retry_initial
        self._retry_at = 0.0
        self.reloads_ok = 0
        self.reloads_failed = 0
        self.writes = 0
        self.write_failures = 0
        self.skipped: dict[str, int] = {}

    async def sync(self) -> bool:
        """Rewrite what changed and reload if needed; True if any file was replaced."""
        now = self._clock()
        self.active.changed.clear()
        commands = self.active.in_force(now)
        replaced = False
        for output in self.settings.outputs:
            rendered = render(output, commands, self.active.responses, self.active.replies)
            self._count_skipped(rendered.skipped)
            if self.metrics is not None:
                self.metrics.entries.labels(str(output.path)).set(rendered.entries)
            if rendered.text == self._written[output.path]:
                continue
            try:
                write_atomically(output.path, rendered.text)
            except OSError as exc:
                # Left as it was; the next tick tries again.
                self.write_failures += 1
                if self.metrics is not None:
                    self.metrics.write_failures.labels(str(output.path)).inc()
                log.error("cannot write %s: %s", output.path, exc)
                continue
            self._written[output.path] = rendered.text
            self.writes += 1
            replaced = True
            if self.metrics is not None:
                self.metrics.writes.labels(str(output.path)).inc()
            log.info("wrote %d entries to %s", rendered.entries, output.path)
        if replaced:
            self._reload_due = True
            self._retry_delay = self._retry_initial
            self._retry_at = 0.0
        await self.reload_if_due()
        return replaced

    async def reload_if_due(self) -> None:
        """Run the reload command if a change awaits one and no backoff holds it."""
        if self._reload_due and time.monotonic() >= self._retry_at:
            await self._reload()

    async def run(self, control: ControlConsumer | None) -> None:
        """Sync after catching up, then on every change and expiry.

        Wakes every ``check_interval`` and at the next expiry; renders only
        when the set may have changed, so a skipped subject is not logged
        again every second.
        """
        if control is not None:
            await control.wait_caught_up()
        await self.sync()
        while True:
            next_expiry = self.active.next_expiry()
            wait = self.settings.check_interval
            if next_expiry is not None:
                wait = min(wait, max(0.0, next_expiry - self._clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.active.changed.wait(), wait)
            next_expiry = self.active.next_expiry()
            expired = next_expiry is not None and next_expiry <= self._clock()
            if self.active.changed.is_set() or expired:
                await self.sync()
            else:
                await self.reload_if_due()

    async def _reload(self) -> None:
        argv = self.settings.reload_command
        if not argv:
            self._reload_due = False
            return
        result = await run_reload(argv, self.settings.reload_timeout)
        if self.metrics is not None:
            self.metrics.reloads.labels("ok" if result.ok else "failed").inc()
        if result.ok:
            self.reloads_ok += 1
            self._reload_due = False
            log.info("ran %s: %s", argv[0], result.detail or "ok")
            return
        self.reloads_failed += 1
        self._retry_at = time.monotonic() + self._retry_delay
        log.warning(
            "reload command %s failed (%s); retrying in %.0f s",
            argv[0],
            result.detail,
            self._retry_delay,
        )
        self._retry_delay = min(self._retry_delay * 2, self._retry_max)

    def _count_skipped(self, skipped: Mapping[str, int]) -> None:
        for reason, count in skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + count
            if self.metrics is not None:
                self.metrics.skipped.labels(reason).inc(count)


async def run_mapfile_adapter(
    writer: MapfileWriter,
    control: ControlConsumer,
    metrics: AdapterMetrics,
    metrics_port: int | None = None,
) -> None:
    """Consume and write until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    tasks = [
        asyncio.create_task(control.run(), name="control"),
        asyncio.create_task(writer.run(control), name="mapfile"),
    ]
    metrics_runner = None
    try:
        if metrics_port is not None:
            metrics_runner = await start_metrics_server(metrics, "127.0.0.1", metrics_port)
            log.info("metrics on http://127.0.0.1:%d/metrics", metrics_port)
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        for task in done:
            if task is not waiter:
                task.result()
                raise RuntimeError(f"task {task.get_name()} stopped unexpectedly")
    finally:
        log.info("stopping mapfile adapter")
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if metrics_runner is not None:
            await metrics_runner.cleanup()
