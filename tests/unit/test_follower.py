"""The file follower and checkpoints: real files in a temp dir, no broker."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from streams.checkpoint import AckTracker, CheckpointError, CheckpointStore
from streams.follower import FileFollower, FilePosition, Line


def fast(path: Path, **options: Any) -> FileFollower:
    """A follower with short poll and rotation grace, so tests run quickly."""
    return FileFollower(path, poll_interval=0.01, rotate_grace=0.1, **options)


@dataclass
class Collected:
    lines: list[Line] = field(default_factory=list)

    @property
    def data(self) -> list[bytes]:
        return [line.data for line in self.lines]

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.lines) < count:
                await asyncio.sleep(0.01)


@asynccontextmanager
async def following(follower: FileFollower) -> AsyncIterator[Collected]:
    collected = Collected()

    async def run() -> None:
        async for line in follower.lines():
            collected.lines.append(line)

    task = asyncio.create_task(run())
    async with asyncio.timeout(5):
        while not follower.started:
            await asyncio.sleep(0.005)
    try:
        yield collected
    finally:
        follower.stop()
        await asyncio.wait_for(task, 5)


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data)


async def test_complete_lines_carry_number_offset_and_position(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    append(log, b"one\ntwo\n")
    async with following(fast(log, from_start=True)) as got:
        await got.wait_for(2)
        append(log, b"three\n")
        await got.wait_for(3)
    assert got.data == [b"one", b"two", b"three"]
    assert [(line.number, line.offset) for line in got.lines] == [(1, 0), (2, 4), (3, 8)]
    assert got.lines[-1].position.offset == 14
    assert got.lines[-1].position.line == 3
    assert got.lines[-1].position.inode == log.stat().st_ino


async def test_partial_line_waits_for_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.touch()
    async with following(fast(log, from_start=True, partial_timeout=30)) as got:
        append(log, b"first\nsec")
        await got.wait_for(1)
        await asyncio.sleep(0.1)
        assert got.data == [b"first"]
        append(log, b"ond\n")
        await got.wait_for(2)
    assert got.data == [b"first", b"second"]


async def test_partial_line_is_flushed_after_the_timeout(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.touch()
    async with following(fast(log, from_start=True, partial_timeout=0.1)) as got:
        append(log, b"no newline")
        await got.wait_for(1)
    assert got.data == [b"no newline"]
    assert got.lines[0].position.offset == len(b"no newline")


async def test_from_end_skips_history_but_keeps_line_numbers(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    append(log, b"old 1\nold 2\n")
    async with following(fast(log, from_start=False)) as got:
        append(log, b"new\n")
        await got.wait_for(1)
    assert got.data == [b"new"]
    assert got.lines[0].number == 3
    assert got.lines[0].offset == 12


async def test_from_end_still_reads_an_unfinished_last_line_whole(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    append(log, b"old\nhal")
    async with following(fast(log, from_start=False)) as got:
        append(log, b"f\n")
        await got.wait_for(1)
    assert got.data == [b"half"]
    assert (got.lines[0].number, got.lines[0].offset) == (2, 4)


async def test_rename_rotation_reads_old_file_to_the_end_then_the_new_one(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    append(log, b"a1\na2\n")
    async with following(fast(log, from_start=True)) as got:
        await got.wait_for(2)
        log.rename(tmp_path / "mail.log.1")
        append(log, b"b1\n")
        # The writer has not reopened yet: it still appends to the renamed file.
        append(tmp_path / "mail.log.1", b"a3\n")
        append(log, b"b2\n")
        await got.wait_for(5)
    assert got.data == [b"a1", b"a2", b"a3", b"b1", b"b2"]
    assert [line.number for line in got.lines] == [1, 2, 3, 1, 2]
    assert got.lines[2].path == str(log)
    assert got.lines[3].offset == 0


async def test_copytruncate_restarts_from_zero(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    append(log, b"before 1\nbefore 2\n")
    async with following(fast(log, from_start=True)) as got:
        await got.wait_for(2)
        os.truncate(log, 0)
        await asyncio.sleep(0.05)
        append(log, b"after\n")
        await got.wait_for(3)
    assert got.data == [b"before 1", b"before 2", b"after"]
    assert (got.lines[2].number, got.lines[2].offset) == (1, 0)


async def test_a_file_that_appears_later_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    async with following(fast(log, from_start=False)) as got:
        append(log, b"x\ny\n")
        await got.wait_for(2)
    assert got.data == [b"x", b"y"]


async def test_overlong_line_is_cut_and_flagged_not_lost(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    append(log, b"short\n" + b"A" * 5000 + b"\nafter\n")
    async with following(fast(log, from_start=True, max_line=1000)) as got:
        await got.wait_for(3)
    short, long, after = got.lines
    assert not short.truncated
    assert long.truncated
    assert long.data == b"A" * 1000
    assert long.length == 5000
    assert (after.data, after.offset, after.number) == (b"after", 6 + 5001, 3)


async def test_resume_from_a_checkpoint_neither_repeats_nor_skips(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    append(log, b"1\n2\n3\n")
    async with following(fast(log, from_start=True)) as got:
        await got.wait_for(3)
    checkpoint = got.lines[1].position
    append(log, b"4\n")
    async with following(fast(log, start=checkpoint)) as again:
        await again.wait_for(2)
    assert again.data == [b"3", b"4"]
    assert [line.number for line in again.lines] == [3, 4]


async def test_resume_after_rotation_while_stopped_finishes_the_rotated_file(
    tmp_path: Path,
) -> None:
    log = tmp_path / "mail.log"
    append(log, b"1\n2\n")
    async with following(fast(log, from_start=True)) as got:
        await got.wait_for(2)
    checkpoint = got.lines[0].position
    log.rename(tmp_path / "mail.log.1")
    append(log, b"new 1\n")
    async with following(fast(log, start=checkpoint)) as again:
        await again.wait_for(2)
    assert again.data == [b"2", b"new 1"]


async def test_checkpoint_on_a_reused_inode_with_other_content_is_not_trusted(
    tmp_path: Path,
) -> None:
    log = tmp_path / "mail.log"
    append(log, b"first file line\n")
    st = log.stat()
    stale = FilePosition(st.st_dev, st.st_ino, 5, 1, head="0" * 16)
    async with following(fast(log, start=stale)) as got:
        await got.wait_for(1)
    assert got.data == [b"first file line"]


def test_checkpoint_store_round_trip_is_atomic(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "state")
    position = FilePosition(device=1, inode=2, offset=300, line=7, head="abc")
    assert store.load("/var/log/mail.log") is None
    store.save("/var/log/mail.log", position)
    store.save("/var/log/mail.log", position)
    assert store.load("/var/log/mail.log") == position
    assert store.load("/var/log/other.log") is None
    assert len(list((tmp_path / "state").iterdir())) == 1


def test_unreadable_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.file_for("/var/log/mail.log").write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable"):
        store.load("/var/log/mail.log")


@dataclass
class FakeDelivery:
    delivered: bool = False


def position(line: int) -> FilePosition:
    return FilePosition(device=1, inode=1, offset=line * 10, line=line, head="h")


def test_ack_tracker_advances_only_over_a_delivered_prefix() -> None:
    tracker = AckTracker()
    first, second, third = FakeDelivery(), FakeDelivery(), FakeDelivery()
    tracker.add(position(1), [first], now=0.0)
    tracker.add(position(2), [second, third], now=0.0)
    tracker.add(position(3), [], now=0.0)
    second.delivered = third.delivered = True
    assert tracker.advance() is None
    assert tracker.waiting == 3
    first.delivered = True
    assert tracker.advance() == position(3)
    assert tracker.waiting == 0
