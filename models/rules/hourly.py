"""Per-key hourly counts over the last days: the history an account's volume is judged against.

Each key holds a ring of ``hours`` counters (two bytes each, saturating at
65535: an account's history costs ``2 * hours`` bytes, 336 for a week),
indexed by the event-time hour (``epoch // 3600``). ``head`` is the newest
hour seen; hours that pass are zeroed as the ring advances. An event up to
``hours - 1`` hours behind the head is counted in its own hour; an older one
is dropped and counted in ``stats.late``. ``first_hour`` is the first hour the
key was seen, so rules know how much history they have.

Keys idle for the whole ring (nothing left in their history) are dropped by
the store's sweep (``models/rules/keystore.py``).
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np
import numpy.typing as npt

from models.rules.keystore import KeyedEntry, KeyedStore

HOUR = 3600
COUNT_MAX = 65_535


class HourlyHistory(KeyedEntry):
    __slots__ = ("counts", "first_hour", "head", "limit", "limit_hour")

    def __init__(self, last_seen: float, hours: int) -> None:
        super().__init__(last_seen)
        hour = int(last_seen // HOUR)
        self.counts = array("H", bytes(2 * hours))
        self.head = hour
        self.first_hour = hour
        # A rule's limit for hour ``limit_hour``, worked out once per hour (not
        # exported: it follows from the counts).
        self.limit = 0.0
        self.limit_hour = -1


class HourlyCounts(KeyedStore[HourlyHistory]):
    def __init__(self, name: str, hours: int, max_keys: int) -> None:
        super().__init__(name, max_keys, idle=hours * HOUR)
        self.hours = hours

    def add(self, key: str, epoch: float) -> tuple[HourlyHistory, int] | None:
        """Count one event for ``key``; its history and the event's hour, or None if too late."""
        entry = self.entry(key, epoch)
        assert entry is not None
        hour = int(epoch // HOUR)
        if hour > entry.head:
            self._advance(entry, hour)
        elif hour <= entry.head - self.hours:
            self.stats.late += 1
            return None
        elif hour < entry.head:
            entry.limit_hour = -1  # the history behind the cached limit changed
        if hour < entry.first_hour:
            entry.first_hour = hour
        counts = entry.counts
        slot = hour % self.hours
        if counts[slot] < COUNT_MAX:
            counts[slot] += 1
        return entry, hour

    def count(self, entry: HourlyHistory, hour: int) -> int:
        return entry.counts[hour % self.hours]

    def history(self, entry: HourlyHistory, hour: int) -> npt.NDArray[np.uint16]:
        """The counts of the ring's other hours (a copy): the history ``hour`` is judged against."""
        ring = np.frombuffer(entry.counts, dtype=np.uint16)
        return np.delete(ring, hour % self.hours)

    def _advance(self, entry: HourlyHistory, hour: int) -> None:
        counts = entry.counts
        if hour - entry.head >= self.hours:
            counts[:] = array("H", bytes(2 * self.hours))
        else:
            for passed in range(entry.head + 1, hour + 1):
                counts[passed % self.hours] = 0
        entry.head = hour

    def new_entry(self, epoch: float) -> HourlyHistory:
        return HourlyHistory(epoch, self.hours)

    def encode(self, entry: HourlyHistory) -> dict[str, Any]:
        hours = self.hours
        oldest_first = [
            entry.counts[(entry.head - back) % hours] for back in range(hours - 1, -1, -1)
        ]
        return {"head": entry.head, "first_hour": entry.first_hour, "hours": oldest_first}

    def decode(self, data: dict[str, Any]) -> HourlyHistory:
        head = int(data["head"])
        counts = [min(max(int(c), 0), COUNT_MAX) for c in data["hours"]][-self.hours :]
        entry = HourlyHistory(float(head * HOUR), self.hours)
        entry.first_hour = min(int(data["first_hour"]), head)
        for back, count in enumerate(reversed(counts)):
            entry.counts[(head - back) % self.hours] = count
        return entry
