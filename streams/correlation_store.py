"""The publisher's Postfix queue id -> account map, kept on disk across restarts.

One file per host next to the checkpoints,
``<state_dir>/tail/correlation-<host>-<digest>.snapshot`` (not ``.json``: the
``*.json`` files there are the checkpoints), holding the JSON
``{"version": 1, "host": ..., "queue": <LogParser.export_correlation()>}``
and replaced atomically like a checkpoint. It is written whenever checkpoints
move and at a clean shutdown, and read once at start, before the first
line. A missing file is a fresh start; a file that cannot be used (unreadable,
not JSON, another version or host) is reported with a warning and the
publisher starts afresh: the correlation is a help, never a reason to stop.
The parser checks every entry itself (see :mod:`parsers.correlation`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import orjson

from mailwarden.engines import LineParser
from streams.checkpoint import file_stem_for, write_atomically

log = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1


class CorrelationStore:
    """The correlation snapshot of one host in the publisher's state directory."""

    def __init__(self, directory: Path, host: str) -> None:
        self.host = host
        self.file = directory / f"correlation-{file_stem_for(host)}.snapshot"

    def restore_into(self, parser: LineParser) -> int:
        """Load the snapshot into ``parser``; returns how many queue ids it restored."""
        snapshot = self._read()
        if snapshot is None:
            return 0
        report = parser.import_correlation(snapshot)
        if report.unusable is not None:
            log.warning(
                "correlation snapshot %s is not usable (%s); starting without it",
                self.file,
                report.unusable,
            )
            return 0
        if report.skipped:
            log.warning(
                "correlation snapshot %s: %d malformed queue entries skipped",
                self.file,
                report.skipped,
            )
        log.info(
            "correlation snapshot %s: %d queue ids restored, %d expired or beyond the bound",
            self.file,
            report.restored,
            report.dropped,
        )
        return report.restored

    def save(self, parser: LineParser) -> None:
        body = orjson.dumps(
            {
                "version": SNAPSHOT_VERSION,
                "host": self.host,
                "queue": parser.export_correlation(),
            }
        )
        self.file.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.file, body)

    def _read(self) -> object | None:
        """The parser's part of the file, or None (with the reason logged)."""
        try:
            raw = self.file.read_bytes()
        except FileNotFoundError:
            log.info("no correlation snapshot %s yet; starting without one", self.file)
            return None
        except OSError as exc:
            log.warning(
                "correlation snapshot %s cannot be read (%s); starting without it", self.file, exc
            )
            return None
        try:
            return self._parsed(raw)
        except UnusableSnapshot as exc:
            log.warning("correlation snapshot %s %s; starting without it", self.file, exc)
            return None

    def _parsed(self, raw: bytes) -> object:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UnusableSnapshot(f"is not JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise UnusableSnapshot("is not a JSON object")
        version = data.get("version")
        if version != SNAPSHOT_VERSION or isinstance(version, bool):
            raise UnusableSnapshot(f"has version {version!r}, expected {SNAPSHOT_VERSION}")
        if data.get("host") != self.host:
            raise UnusableSnapshot(f"was made for host {data.get('host')!r}, not {self.host!r}")
        return data.get("queue")


class UnusableSnapshot(ValueError):
    """The snapshot file exists but cannot be used."""
