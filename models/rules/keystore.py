"""Per-key state that is not a sliding window: bounded, expired by event time, exportable.

Some state outlives a window: an account's hourly history, the countries it
logs in from, the offences of a subject. :class:`KeyedStore` holds one small
entry per key with the same bounds as :class:`models.window.WindowStore`:

- at most ``max_keys`` keys; beyond, the keys idle the longest are evicted, a
  small batch at a time (the dict's order follows the last event time, keys
  moving to the end when touched);
- a key idle for ``idle`` seconds of event time is dropped when a sweep
  (every ``idle / 4``) finds it, unless its ``keep_until`` lies ahead (then
  it moves to the end of the order, to be looked at again later);
- every key changed, evicted or expired is recorded in ``touched``.

Subclasses say how to make, encode and decode an entry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Generic, TypeVar

from models.window import StoreStats, evict_front, expire_front


class KeyedEntry:
    """The bookkeeping every entry carries: its last event time and how long to keep it."""

    __slots__ = ("keep_until", "last_seen")

    def __init__(self, last_seen: float) -> None:
        self.last_seen = last_seen
        self.keep_until = 0.0


Entry = TypeVar("Entry", bound=KeyedEntry)


class KeyedStore(ABC, Generic[Entry]):
    def __init__(self, name: str, max_keys: int, idle: float) -> None:
        if max_keys <= 0 or idle <= 0:
            raise ValueError("max_keys and idle must be positive")
        self.name = name
        self.max_keys = max_keys
        self.idle = idle
        self.stats = StoreStats()
        self.touched: set[str] = set()
        self._keys: dict[str, Entry] = {}
        self._clock = float("-inf")
        self._next_sweep = float("-inf")
        self._evict_batch = max(1, max_keys // 100)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def get(self, key: str) -> Entry | None:
        return self._keys.get(key)

    def entry(self, key: str, epoch: float, create: bool = True) -> Entry | None:
        """The entry of ``key``, made if needed (unless ``create`` is false), marked as seen."""
        if epoch > self._clock:
            self._clock = epoch
            if epoch >= self._next_sweep:
                self.sweep(epoch)
        entry = self._keys.get(key)
        if entry is None:
            if not create:
                return None
            if len(self._keys) >= self.max_keys:
                self._evict()
            entry = self.new_entry(epoch)
            self._keys[key] = entry
        elif epoch > entry.last_seen:
            entry.last_seen = epoch
            del self._keys[key]
            self._keys[key] = entry
        self.stats.events += 1
        self.touched.add(key)
        return entry

    def sweep(self, now: float) -> None:
        """Drop keys idle for ``idle`` seconds before ``now`` and not kept."""
        self._next_sweep = now + self.idle / 4
        oldest_live = now - self.idle
        self.stats.expired += expire_front(
            self._keys,
            self.touched,
            idle=lambda entry: entry.last_seen <= oldest_live,
            kept=lambda entry: entry.keep_until > now,
        )

    def _evict(self) -> None:
        self.stats.evicted += evict_front(self._keys, self.touched, self._evict_batch)

    def export_key(self, key: str) -> dict[str, Any] | None:
        entry = self._keys.get(key)
        if entry is None:
            return None
        data = self.encode(entry)
        data["last_seen"] = entry.last_seen
        data["keep_until"] = entry.keep_until
        return data

    def import_key(self, key: str, data: dict[str, Any]) -> None:
        try:
            entry = self.decode(data)
            entry.last_seen = float(data["last_seen"])
            entry.keep_until = float(data["keep_until"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"malformed {self.name} state for key {key!r}: {exc}") from exc
        if key not in self._keys and len(self._keys) >= self.max_keys:
            self._evict()
        self._keys.pop(key, None)
        self._keys[key] = entry

    @abstractmethod
    def new_entry(self, epoch: float) -> Entry:
        """A fresh entry for a key first seen at ``epoch``."""

    @abstractmethod
    def encode(self, entry: Entry) -> dict[str, Any]:
        """The entry as plain JSON-able data (bookkeeping fields are added by the store)."""

    @abstractmethod
    def decode(self, data: dict[str, Any]) -> Entry:
        """An entry from :meth:`encode` output; raise ValueError, KeyError or TypeError if bad."""


class QuietStore(KeyedStore[KeyedEntry]):
    """Only quiet periods: per key, the event time until which a rule stays silent.

    For rules that fire on single events and need no window; a key is kept
    while its quiet period runs and forgotten ``idle`` seconds after.
    """

    def is_quiet(self, key: str, epoch: float) -> bool:
        entry = self.get(key)
        return entry is not None and epoch < entry.keep_until

    def silence(self, key: str, epoch: float, until: float) -> None:
        entry = self.entry(key, epoch)
        assert entry is not None
        entry.keep_until = max(entry.keep_until, until)

    def new_entry(self, epoch: float) -> KeyedEntry:
        return KeyedEntry(epoch)

    def encode(self, entry: KeyedEntry) -> dict[str, Any]:
        return {}

    def decode(self, data: dict[str, Any]) -> KeyedEntry:
        return KeyedEntry(0.0)
