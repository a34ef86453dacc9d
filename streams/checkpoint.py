"""Durable resume positions for followed files, advanced only past acknowledged lines.

The publisher keeps one checkpoint file per followed path under
``<state_dir>/tail/``. It is replaced atomically (write a temporary file, fsync,
rename), so a crash leaves either the old or the new position, never a torn
one. :class:`AckTracker` decides how far a checkpoint may go: to the end of the
last line whose records, and all records of the lines before it, the broker
has acknowledged. A crash therefore re-sends at most the unacknowledged tail
(at-least-once); the records carry their origin (host, path, line, offset), so
a duplicate is recognisable downstream.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import orjson

from streams.follower import FilePosition

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class CheckpointError(ValueError):
    """A checkpoint file exists but cannot be read."""


class CheckpointStore:
    """Checkpoint files in one directory, one per followed path."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def file_for(self, path: Path | str) -> Path:
        return self.directory / f"{file_stem_for(os.path.abspath(path))}.json"

    def load(self, path: Path | str) -> FilePosition | None:
        file = self.file_for(path)
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = orjson.loads(raw)
            return FilePosition(
                device=int(data["device"]),
                inode=int(data["inode"]),
                offset=int(data["offset"]),
                line=int(data["line"]),
                head=str(data["head"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"checkpoint {file} for {path} is unreadable ({exc}); "
                "remove it to follow the file afresh"
            ) from exc

    def save(self, path: Path | str, position: FilePosition) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        file = self.file_for(path)
        body = orjson.dumps({"path": os.path.abspath(path), **asdict(position)})
        write_atomically(file, body)


def file_stem_for(name: str) -> str:
    """A file name for any text: its readable tail and a digest of the whole."""
    readable = _UNSAFE.sub("_", name).strip("_")[-80:]
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{readable}-{digest}"


def write_atomically(file: Path, body: bytes) -> None:
    """Replace ``file`` with ``body``: a crash leaves the old or the new content, never a mix."""
    temporary = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(body)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, file)
    directory_fd = os.open(file.parent, os.O_RDONLY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)


class Delivery(Protocol):
    """One record sent for a line; ``delivered`` once the broker acknowledged it."""

    @property
    def delivered(self) -> bool: ...


@dataclass(slots=True)
class _PendingLine:
    position: FilePosition
    deliveries: Sequence[Delivery]
    since: float


class AckTracker:
    """Lines of one file in read order, with the records sent for each.

    :meth:`advance` moves :attr:`acknowledged` past every leading line whose
    records are all delivered; a line with a record still in flight (or being
    re-sent) holds back every line after it, even if those were delivered.
    """

    def __init__(self, acknowledged: FilePosition | None = None) -> None:
        self.acknowledged = acknowledged
        self._pending: deque[_PendingLine] = deque()

    def add(self, position: FilePosition, deliveries: Sequence[Delivery], now: float) -> None:
        self._pending.append(_PendingLine(position, deliveries, now))
        self.advance()

    def advance(self) -> FilePosition | None:
        pending = self._pending
        while pending and all(d.delivered for d in pending[0].deliveries):
            self.acknowledged = pending.popleft().position
        return self.acknowledged

    @property
    def waiting(self) -> int:
        """Lines read but not yet acknowledged."""
        return len(self._pending)

    def oldest_since(self) -> float | None:
        return self._pending[0].since if self._pending else None
