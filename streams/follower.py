"""Follow log files the way ``tail -F`` does, yielding complete lines as bytes.

A :class:`FileFollower` polls one path. It survives rotation by rename (the
path gets a new inode: the old file is read to its end, then the new one from
its start), copytruncate (the file shrinks: read again from 0), and paths that
do not exist yet. Every line comes with its 1-based number and byte offset, and
with the :class:`FilePosition` just after it, which is what a checkpoint stores.

Lines are never dropped silently: a last line without its newline is emitted
after ``partial_timeout``; a line longer than ``max_line`` is emitted cut to
that size with ``truncated`` set and its full ``length``, for the dead-letter
topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 1 << 20
CHUNK_BYTES = 1 << 16
# Bytes at the start of a file whose hash tells a reused inode from the file a
# checkpoint was taken on.
HEAD_BYTES = 128


@dataclass(slots=True, frozen=True)
class FilePosition:
    """A resume point in one incarnation of a file.

    ``offset`` is the byte just after the last line consumed, ``line`` that
    line's number (0 before the first line); ``head`` identifies the file's
    first bytes (see :func:`head_digest`).
    """

    device: int
    inode: int
    offset: int
    line: int
    head: str


@dataclass(slots=True, frozen=True)
class Line:
    """One line read from a file, without its newline."""

    path: str
    data: bytes
    number: int
    offset: int
    length: int
    position: FilePosition
    truncated: bool = False


def head_digest(head: bytes) -> str:
    return hashlib.sha256(head).hexdigest()[:16]


def read_head(path: Path | str, size: int) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(min(size, HEAD_BYTES))


def count_lines(path: Path, end: int) -> int:
    """Newlines in the first ``end`` bytes: the line number reached at that offset."""
    total = 0
    with open(path, "rb") as handle:
        remaining = end
        while remaining > 0:
            chunk = handle.read(min(CHUNK_BYTES * 16, remaining))
            if not chunk:
                break
            total += chunk.count(b"\n")
            remaining -= len(chunk)
    return total


def end_of_last_line(path: Path, size: int) -> int:
    """The offset just after the last newline, so an unfinished last line is read whole."""
    with open(path, "rb") as handle:
        position = size
        while position > 0:
            start = max(0, position - CHUNK_BYTES)
            handle.seek(start)
            newline = handle.read(position - start).rfind(b"\n")
            if newline >= 0:
                return start + newline + 1
            position = start
    return 0


def find_rotated(path: Path, device: int, inode: int) -> Path | None:
    """The file beside ``path`` (``mail.log.1``, ...) that still has the given inode."""
    try:
        siblings = list(path.parent.iterdir())
    except OSError:
        return None
    for candidate in sorted(siblings):
        if candidate == path or not candidate.name.startswith(path.name):
            continue
        try:
            st = candidate.stat()
        except OSError:
            continue
        if st.st_ino == inode and st.st_dev == device:
            return candidate
    return None


class _OpenFile:
    """One incarnation of a followed file: its descriptor and read state."""

    def __init__(self, name: Path, offset: int, line: int) -> None:
        self.name = name
        self.fd = os.open(name, os.O_RDONLY)
        st = os.fstat(self.fd)
        self.device = st.st_dev
        self.inode = st.st_ino
        self.read_offset = offset
        self.line = line
        # Start of the bytes in ``buffer`` (the unfinished line).
        self.buffer_offset = offset
        self.buffer = bytearray()
        # Bytes of an overlong line dropped after the first ``max_line``.
        self.dropped = 0
        self.partial_since: float | None = None
        self.last_data = 0.0
        self.head = b""
        self._digest_cache: str | None = None
        os.lseek(self.fd, offset, os.SEEK_SET)

    def close(self) -> None:
        os.close(self.fd)

    def digest(self, offset: int) -> str:
        if self._digest_cache is not None:
            return self._digest_cache
        needed = min(offset, HEAD_BYTES)
        if len(self.head) < needed:
            self.head = os.pread(self.fd, HEAD_BYTES, 0)
        value = head_digest(self.head[:needed])
        if needed == HEAD_BYTES:
            self._digest_cache = value
        return value

    def position(self, offset: int, line: int) -> FilePosition:
        return FilePosition(self.device, self.inode, offset, line, self.digest(offset))


class FileFollower:
    """Follow one path; iterate :meth:`lines` until :meth:`stop` is called.

    ``start`` is a checkpoint to resume from; without one, reading starts at
    the end of an existing file (``from_start=False``) or at its beginning.
    A file that appears later, or replaces a rotated one, is read from 0.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        start: FilePosition | None = None,
        from_start: bool = False,
        poll_interval: float = 0.1,
        partial_timeout: float = 5.0,
        rotate_grace: float = 1.0,
        max_line: int = MAX_LINE_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.name = str(path)
        self._start = start
        self._from_start = from_start
        self._poll_interval = poll_interval
        self._partial_timeout = partial_timeout
        self._rotate_grace = rotate_grace
        self._max_line = max_line
        self._clock = clock
        self._file: _OpenFile | None = None
        self._first_open = True
        self._rotated_at: float | None = None
        self._denied = False
        self._stopped = asyncio.Event()

    def stop(self) -> None:
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    @property
    def started(self) -> bool:
        """The first open was attempted, so the starting point is fixed."""
        return not self._first_open

    async def lines(self) -> AsyncIterator[Line]:
        try:
            while not self.stopped:
                current = self._file or self._open()
                if current is None:
                    await self._sleep()
                    continue
                got_data, lines = self._read_available(current)
                for line in lines:
                    yield line
                    if self.stopped:
                        return
                if got_data:
                    continue
                for line in self._at_eof(current):
                    yield line
                await self._sleep()
        finally:
            if self._file is not None:
                self._file.close()
                self._file = None

    async def _sleep(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), self._poll_interval)

    def _open(self) -> _OpenFile | None:
        first, self._first_open = self._first_open, False
        try:
            if first:
                self._file = self._open_first()
            else:
                self._file = _OpenFile(self.path, 0, 0)
                log.info("following %s from its start", self.name)
        except FileNotFoundError:
            if first:
                log.info("%s does not exist yet; waiting for it", self.name)
            self._file = None
        except PermissionError as exc:
            if not self._denied:
                log.error("cannot read %s (%s); retrying until it becomes readable", self.name, exc)
            self._denied = True
            self._first_open = first
            self._file = None
        return self._file

    def _open_first(self) -> _OpenFile:
        """Open at the checkpoint, at the rotated file it names, or per ``from_start``."""
        checkpoint = self._start
        if checkpoint is None:
            size = self.path.stat().st_size
            if self._from_start or size == 0:
                return _OpenFile(self.path, 0, 0)
            start = end_of_last_line(self.path, size)
            return _OpenFile(self.path, start, count_lines(self.path, start))
        if self._matches(self.path, checkpoint):
            return _OpenFile(self.path, checkpoint.offset, checkpoint.line)
        rotated = find_rotated(self.path, checkpoint.device, checkpoint.inode)
        if rotated is not None and self._matches(rotated, checkpoint):
            log.info(
                "%s was rotated while stopped: finishing %s from offset %d first",
                self.name,
                rotated,
                checkpoint.offset,
            )
            return _OpenFile(rotated, checkpoint.offset, checkpoint.line)
        log.warning(
            "%s: the file of the checkpoint (inode %d, offset %d) is gone or changed; "
            "lines written to it after that offset before rotation may be missing; "
            "reading the current file from its start",
            self.name,
            checkpoint.inode,
            checkpoint.offset,
        )
        return _OpenFile(self.path, 0, 0)

    @staticmethod
    def _matches(name: Path, checkpoint: FilePosition) -> bool:
        try:
            st = name.stat()
            if (st.st_dev, st.st_ino) != (checkpoint.device, checkpoint.inode):
                return False
            if st.st_size < checkpoint.offset:
                return False
            return head_digest(read_head(name, checkpoint.offset)) == checkpoint.head
        except OSError:
            return False

    def _read_available(self, current: _OpenFile) -> tuple[bool, list[Line]]:
        chunk = os.read(current.fd, CHUNK_BYTES)
        if not chunk:
            return False, []
        current.read_offset += len(chunk)
        current.last_data = self._clock()
        return True, self._split(current, chunk)

    def _split(self, current: _OpenFile, chunk: bytes) -> list[Line]:
        lines: list[Line] = []
        start = 0
        while True:
            newline = chunk.find(b"\n", start)
            if newline < 0:
                self._keep_partial(current, chunk[start:])
                break
            piece = chunk[start:newline]
            lines.append(self._finish_line(current, piece, ends_with_newline=True))
            start = newline + 1
        current.partial_since = self._clock() if current.buffer or current.dropped else None
        return lines

    def _keep_partial(self, current: _OpenFile, piece: bytes) -> None:
        room = self._max_line - len(current.buffer)
        if len(piece) <= room:
            current.buffer += piece
        else:
            current.buffer += piece[: max(room, 0)]
            current.dropped += len(piece) - max(room, 0)

    def _finish_line(self, current: _OpenFile, piece: bytes, *, ends_with_newline: bool) -> Line:
        self._keep_partial(current, piece)
        data = bytes(current.buffer)
        length = len(data) + current.dropped
        offset = current.buffer_offset
        end = offset + length + (1 if ends_with_newline else 0)
        current.line += 1
        line = Line(
            path=str(current.name),
            data=data,
            number=current.line,
            offset=offset,
            length=length,
            position=current.position(end, current.line),
            truncated=current.dropped > 0,
        )
        current.buffer.clear()
        current.dropped = 0
        current.buffer_offset = end
        current.partial_since = None
        return line

    def _flush_partial(self, current: _OpenFile) -> list[Line]:
        if not current.buffer and not current.dropped:
            return []
        return [self._finish_line(current, b"", ends_with_newline=False)]

    def _at_eof(self, current: _OpenFile) -> list[Line]:
        """Handle rotation, truncation and a waiting partial line once the file is drained."""
        now = self._clock()
        try:
            st = self.path.stat()
            identity: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            identity = None
        if identity is not None and identity == (current.device, current.inode):
            self._rotated_at = None
            if st.st_size < current.read_offset:
                return self._restart_truncated(current)
        elif identity is not None:
            # The path names a new file; the writer may still append to the old
            # one until it reopens, so drain it until it has been quiet a while.
            self._rotated_at = self._rotated_at or now
            quiet_since = max(self._rotated_at, current.last_data)
            if now - quiet_since >= self._rotate_grace:
                return self._switch_to_new(current)
        waiting = current.partial_since
        if waiting is not None and now - waiting >= self._partial_timeout:
            return self._flush_partial(current)
        return []

    def _restart_truncated(self, current: _OpenFile) -> list[Line]:
        log.warning(
            "%s was truncated (copytruncate?) below offset %d: reading it again from 0",
            self.name,
            current.read_offset,
        )
        flushed = self._flush_partial(current)
        current.close()
        self._file = _OpenFile(self.path, 0, 0)
        return flushed

    def _switch_to_new(self, current: _OpenFile) -> list[Line]:
        flushed = self._flush_partial(current)
        log.info(
            "%s was rotated: finished the old file at line %d, now following the new one",
            self.name,
            current.line,
        )
        current.close()
        self._rotated_at = None
        try:
            self._file = _OpenFile(self.path, 0, 0)
        except FileNotFoundError:
            self._file = None
        return flushed
