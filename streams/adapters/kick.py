"""End open Dovecot sessions of a suspended account or a blocked address.

Refusing new logins (the auth policy) does not touch sessions that are
already open: a thief with an IMAP IDLE session keeps reading. When the
dovecot-policy adapter applies ``suspend_login`` (account) or ``block_ip``
(address or prefix), it runs ``doveadm [-c CONFIG] kick TARGET`` -- after the
command is in force, so the kicked client cannot log straight back in.

doveadm treats ``*`` and ``?`` in a user name as wildcards and a leading
``-`` as an option, and subjects come from logs an attacker can write to; an
account name that is not one plain token is never passed to doveadm. Kicks
run one at a time from a bounded queue, each with a timeout, and a target
already waiting is not queued twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import ip_network
from pathlib import Path

from models.commands import Command
from models.enforcement import parse_address

log = logging.getLogger(__name__)

DEFAULT_DOVEADM = "doveadm"
# doveadm's exit code (EX_NOUSER) when no session matched: nothing to do.
NOTHING_KICKED = 68
QUEUE_LIMIT = 10000
OUTPUT_LIMIT = 300


@dataclass(slots=True, frozen=True)
class KickSettings:
    doveadm: str = DEFAULT_DOVEADM
    config: Path | None = None
    timeout: float = 10.0


def kick_target(command: Command) -> str | None:
    """The ``doveadm kick`` argument for a command, or None if it kicks nothing."""
    if command.action == "suspend_login" and command.subject_type == "account":
        account = command.subject.strip()
        plain = account and all("!" <= ch <= "~" and ch not in "*?" for ch in account)
        if not plain or account.startswith("-"):
            log.warning("not kicking account %r: not a plain login name", account)
            return None
        return account
    if command.action == "block_ip" and command.subject_type == "ip":
        address = parse_address(command.subject)
        return str(address) if address is not None else None
    if command.action == "block_ip" and command.subject_type == "prefix":
        try:
            return str(ip_network(command.subject.strip(), strict=False))
        except ValueError:
            return None
    return None


class SessionKicker:
    """Runs ``doveadm kick`` for commands handed to :meth:`request`."""

    def __init__(self, settings: KickSettings | None = None) -> None:
        self.settings = settings or KickSettings()
        self.kicked = 0
        self.nothing_to_kick = 0
        self.failed = 0
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._waiting: set[str] = set()

    def available(self) -> bool:
        return shutil.which(self.settings.doveadm) is not None

    def request(self, command: Command) -> None:
        """Queue a kick for ``command`` if it calls for one (never blocks)."""
        target = kick_target(command)
        if target is None or target in self._waiting:
            return
        try:
            self._queue.put_nowait(target)
        except asyncio.QueueFull:
            log.warning("kick queue full: not kicking %r", target)
            return
        self._waiting.add(target)

    def argv(self, target: str) -> Sequence[str]:
        config = ["-c", str(self.settings.config)] if self.settings.config else []
        return [self.settings.doveadm, *config, "kick", target]

    async def run(self) -> None:
        while True:
            target = await self._queue.get()
            self._waiting.discard(target)
            await self._kick(target)

    async def close(self) -> None:
        if not self._queue.empty():
            log.warning("stopping with %d kicks not run", self._queue.qsize())

    async def _kick(self, target: str) -> None:
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv(target),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            self.failed += 1
            log.warning("could not run doveadm to kick %r: %s", target, exc)
            return
        try:
            output, _ = await asyncio.wait_for(process.communicate(), self.settings.timeout)
        except TimeoutError:
            # The whole process group: a child holding the pipe must not outlive it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            self.failed += 1
            log.warning("doveadm kick %r did not finish in %.0f s", target, self.settings.timeout)
            return
        text = output.decode("utf-8", "replace").strip()[:OUTPUT_LIMIT]
        if process.returncode == 0:
            self.kicked += 1
            log.info("kicked the open sessions of %r: %s", target, text)
        elif process.returncode == NOTHING_KICKED:
            self.nothing_to_kick += 1
            log.info("no open sessions of %r to kick", target)
        else:
            self.failed += 1
            log.warning("doveadm kick %r exited %s: %s", target, process.returncode, text)
