"""Event-time sliding windows per key, in the manner of weakforced's StatsDBs.

A :class:`WindowStore` keeps, for every key (an account or an IP), ``buckets``
buckets of ``seconds / buckets`` seconds each, advanced by the event time of
the events it is fed, never by the wall clock. A store declares its fields
once (:class:`WindowSpec`):

``count`` fields
    integers added per event; a total is the sum over the window.
``distinct`` fields
    how many different values were seen in the window. Each value (cut to
    ``VALUE_CHARS`` characters: values such as user names are attacker-
    controlled and may be long) is mapped to the last bucket it was seen in.
    The count is exact up to ``distinct_cap`` values in the window; beyond
    that it *saturates*: the store keeps the ``distinct_cap`` most recently
    seen values and reports ``distinct_cap``, a lower bound. Thresholds on
    distinct counts must therefore stay at or below the cap (the policy
    checks this). The values still in the window, the longest unseen first
    (a value moves to the end when it is seen in a later bucket), are the
    evidence sample of alerts. At saturation the value to drop is found by
    one scan of the packed integers (C speed; they order by bucket), and is
    nearly always the first.

    Each value also carries a *tally*, how many events brought it since it
    last entered the window (weakforced's ``countmin``, exact here). A value
    leaves the window a whole window after it was last seen, so a tally
    counts an unbroken run: events that keep coming at intervals shorter
    than the window add up, and the tally restarts after a pause of a whole
    window. The last bucket and the tally share one integer
    (``bucket << TALLY_BITS | tally``, the tally saturating at
    ``TALLY_MAX``), so tallies cost no memory and integers order by bucket.

The window "ending at the event time" is the bucket of the newest event seen
for the key and the ``buckets - 1`` before it, so a window of 60 s in 6
buckets spans between 50 and 60 s. Bounded disorder is tolerated: an event
older than the newest one goes into its own bucket as long as that bucket is
still in the window; an event older than the window's start is dropped and
counted in ``stats.late``.

Memory is bounded twice. ``max_keys`` caps the keys of a store; when it is
reached the least recently advanced keys are evicted, a small batch at a time
(dicts keep insertion order and keys move to the end when their window
advances, so the front holds the keys idle the longest; batching keeps the
cost of skipping the dict's deleted slots amortised). Eviction forgets
everything about a key, its quiet period included, so under memory pressure
a rule may fire again for a key early. Keys whose window has passed are
dropped when touched, and by a sweep that runs each time event time has
advanced by one window length; the sweep drops keys idle for one window length
plus the tolerated disorder (``disorder``, one hour by default, and at least
one window), so that an event that arrives late, but inside its key's window,
still finds the key's earlier events. The disorder is that large because a
worker reads several partitions that can be far apart in event time (a
backlog, a restart): the newest event of one partition must not sweep away
the live window of a key whose partition lags behind. The sweep never drops a
key whose ``quiet_until`` (the event time until which the owning rule stays
silent for it) lies ahead. Every key that
was changed, evicted or expired is recorded in ``touched`` so that callers
can write or delete its exported state.

The sweep trusts event time: a single event stamped far in the future makes
the store forget keys early. Parsers are expected to refuse absurd stamps.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

_Item = TypeVar("_Item")

# Distinct values are cut to this length before they are kept: they are
# attacker-controlled (user names), and two values this long that differ only
# further on are not worth telling apart.
VALUE_CHARS = 256
# Event-time lag between the partitions one worker reads that the sweep
# tolerates before it forgets an idle key (seconds).
TOLERATED_DISORDER = 3600.0
# A distinct value maps to ``last bucket << TALLY_BITS | tally``.
TALLY_BITS = 24
TALLY_MAX = (1 << TALLY_BITS) - 1
# Shared by every key of a store without count fields: empty, never written.
_NO_COUNTS: array[int] = array("I")
# The values of one distinct field: a dict, or a (value, packed) tuple for one value.
Values = dict[str, int] | tuple[str, int]
# Shared by every distinct field that has no value; replaced on the first.
_NO_VALUES: dict[str, int] = {}


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """The shape of one store: window length, bucket count and field names."""

    seconds: int
    buckets: int
    counts: tuple[str, ...] = ()
    distincts: tuple[str, ...] = ()
    distinct_cap: int = 256
    times: int = 5

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.buckets <= 0:
            raise ValueError("window seconds and buckets must be positive")
        if self.seconds % self.buckets:
            raise ValueError(
                f"window of {self.seconds} s does not divide into {self.buckets} buckets"
            )
        if self.distinct_cap <= 0 or self.times < 0:
            raise ValueError("distinct_cap must be positive and times not negative")

    @property
    def bucket_seconds(self) -> int:
        return self.seconds // self.buckets

    def bucket_of(self, epoch: float) -> int:
        return int(epoch // self.bucket_seconds)


class KeyWindow:
    """The state of one key. Small on purpose: there may be a million of them.

    ``counts`` is a ring of ``buckets`` rows of ``len(spec.counts)`` unsigned
    32-bit integers (an ``array``: half the size of a list), row
    ``b % buckets`` holding absolute bucket ``b``; ``head`` is the newest
    bucket. ``distinct[i]`` maps the values of distinct field ``i`` to their
    last bucket and tally, packed in one integer (None when the spec has no
    distinct field). Most fields of most keys hold no value or one (the one
    IP of an account, the one account of an IP), and a dict costs 184 bytes
    however small, so a field without values shares one empty dict and a
    field with one value is a ``(value, packed)`` tuple (56 bytes); it
    becomes a dict at the second value.
    ``times`` holds up to ``spec.times`` event times the rule chose to note as
    evidence (see :meth:`WindowStore.note_time`); None until the first.
    """

    __slots__ = ("counts", "distinct", "head", "quiet_until", "times")

    def __init__(self, head: int, counts: array[int], distinct: list[Values] | None) -> None:
        self.head = head
        self.counts = counts
        self.distinct = distinct
        self.times: list[float] | None = None
        self.quiet_until = 0.0


@dataclass(slots=True)
class StoreStats:
    """Counters of one store, for metrics and the replay summary."""

    events: int = 0
    late: int = 0
    evicted: int = 0
    expired: int = 0


class WindowStore:
    """All keys of one kind (accounts, IPs or prefixes) for one window shape.

    ``name`` identifies the store in exported state (``{name: key state}``).
    """

    def __init__(
        self,
        spec: WindowSpec,
        max_keys: int,
        name: str = "",
        disorder: float = TOLERATED_DISORDER,
    ) -> None:
        if max_keys <= 0:
            raise ValueError("max_keys must be positive")
        if disorder < 0:
            raise ValueError("disorder must not be negative")
        self.name = name
        # Buckets a key may stay idle beyond its window before a sweep drops it.
        self._idle_buckets = max(spec.buckets, math.ceil(disorder / spec.bucket_seconds))
        self.spec = spec
        self.max_keys = max_keys
        self.stats = StoreStats()
        self.touched: set[str] = set()
        self._keys: dict[str, KeyWindow] = {}
        self._fields = len(spec.counts)
        self._bucket_seconds = spec.bucket_seconds
        self._clock = float("-inf")
        self._next_sweep = float("-inf")
        self._evict_batch = max(1, max_keys // 100)
        self._first_sight_bucket = -1
        self._first_sight = 1
        self._zeros = array("I", bytes(4 * spec.buckets * self._fields))

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def get(self, key: str) -> KeyWindow | None:
        return self._keys.get(key)

    def observe(
        self,
        key: str,
        epoch: float,
        counts: Sequence[int] = (),
        values: Sequence[str | None] = (),
        create: bool = True,
    ) -> KeyWindow | None:
        """Add one event to ``key``; return its window, or None if the event was too late.

        ``counts`` are the increments of the count fields and ``values`` the
        values of the distinct fields (None: no value), both in spec order.
        With ``create=False`` an event for a key the store does not hold is
        ignored (None), so that common events only add to keys that matter.
        """
        spec = self.spec
        bucket = int(epoch // self._bucket_seconds)
        if epoch > self._clock:
            self._clock = epoch
            if epoch >= self._next_sweep:
                self.sweep(epoch)
        window = self._keys.get(key)
        if window is None:
            if not create:
                return None
            if len(self._keys) >= self.max_keys:
                self._evict()
            window = self._new_window(bucket)
            self._keys[key] = window
        elif bucket > window.head:
            self._advance(window, bucket)
            # Move to the end so the dict's order follows the last event time.
            del self._keys[key]
            self._keys[key] = window
        elif bucket <= window.head - spec.buckets:
            self.stats.late += 1
            return None
        self.stats.events += 1
        self.touched.add(key)
        if counts:
            row = (bucket % spec.buckets) * self._fields
            ring = window.counts
            for index, increment in enumerate(counts):
                ring[row + index] += increment
        if values:
            self._add_values(window, bucket, values)
        return window

    def note_time(self, window: KeyWindow, epoch: float) -> None:
        """Keep ``epoch`` among the key's latest ``spec.times`` evidence times.

        Rules call this only once a key nears its threshold, so that the many
        keys that never get there pay nothing for evidence they will not use.
        """
        if not self.spec.times:
            return
        times = window.times
        if times is None:
            window.times = [epoch]
            return
        if times[-1] == epoch:
            return  # two rules reading one shared store noted the same event
        times.append(epoch)
        if len(times) > self.spec.times:
            del times[0]

    def total(self, window: KeyWindow, field: int) -> int:
        """The sum of count field ``field`` over the window."""
        return sum(window.counts[field :: self._fields]) if self._fields else 0

    def distinct_count(self, window: KeyWindow, field: int) -> int:
        """How many distinct values of field ``field`` are in the window (saturates at the cap)."""
        return _size(window.distinct[field]) if window.distinct else 0

    def holds_fresh(self, key: str, epoch: float, field: int, value: str) -> bool:
        """Whether ``value`` was already seen for ``key`` in the bucket of ``epoch``, the newest.

        A store whose rules only read distinct counts gains nothing from the
        event then, and a caller may skip it (repeated logins of one account
        from one address are most of the traffic).
        """
        window = self._keys.get(key)
        if window is None or window.distinct is None:
            return False
        bucket = int(epoch // self._bucket_seconds)
        if bucket != window.head:
            return False
        packed = _lookup(window.distinct[field], value[:VALUE_CHARS])
        return packed is not None and packed >> TALLY_BITS == bucket

    def live_distinct_count(self, window: KeyWindow, field: int, epoch: float) -> int:
        """The distinct count of the window that ends at ``epoch`` (or at the key's newest event).

        Unlike :meth:`distinct_count` it leaves out values that have aged out
        of the window since the key's last event; for keys read by events of
        other keys.
        """
        distinct = window.distinct
        if distinct is None:
            return 0
        seen = distinct[field]
        bucket = self.spec.bucket_of(epoch)
        if bucket <= window.head:
            return _size(seen)
        first_live = (bucket - self.spec.buckets + 1) << TALLY_BITS
        return sum(1 for _, packed in _entries(seen) if packed >= first_live)

    def has_value(
        self, window: KeyWindow, field: int, value: str, epoch: float | None = None
    ) -> bool:
        """Whether ``value`` is among the values of distinct field ``field`` in the window.

        With ``epoch``, whether it is still in the window that ends at that
        event time (a value the window has not been advanced past yet may
        already be too old for it).
        """
        distinct = window.distinct
        if distinct is None:
            return False
        packed = _lookup(distinct[field], value[:VALUE_CHARS])
        if packed is None:
            return False
        if epoch is None:
            return True
        return packed >> TALLY_BITS > self.spec.bucket_of(epoch) - self.spec.buckets

    def tally(self, window: KeyWindow, field: int, value: str) -> int:
        """How many events brought ``value`` in its current run (0 when not in the window)."""
        distinct = window.distinct
        if distinct is None:
            return 0
        return (_lookup(distinct[field], value[:VALUE_CHARS]) or 0) & TALLY_MAX

    def top_tallies(self, window: KeyWindow, field: int, limit: int = 5) -> list[tuple[str, int]]:
        """The ``limit`` values of field ``field`` with the highest tallies, highest first."""
        if not window.distinct:
            return []
        ranked = sorted(
            _entries(window.distinct[field]), key=lambda item: (-(item[1] & TALLY_MAX), item[0])
        )
        return [(value, packed & TALLY_MAX) for value, packed in ranked[:limit]]

    def samples(self, window: KeyWindow, field: int, limit: int = 10) -> list[str]:
        """The first ``limit`` values of distinct field ``field`` still in the window."""
        if not window.distinct:
            return []
        return [value for value, _ in islice(_entries(window.distinct[field]), limit)]

    def values_without(self, window: KeyWindow, field: int, other: int) -> list[str]:
        """The values of distinct field ``field`` that are not among those of field ``other``."""
        if not window.distinct:
            return []
        excluded = window.distinct[other]
        return [
            value
            for value, _ in _entries(window.distinct[field])
            if _lookup(excluded, value) is None
        ]

    def window_start(self, window: KeyWindow) -> float:
        """Event time at which the oldest bucket of the window begins."""
        return float((window.head - self.spec.buckets + 1) * self.spec.bucket_seconds)

    def recent_times(self, window: KeyWindow) -> list[float]:
        """The noted event times of the key that are still in the window, oldest first."""
        start = self.window_start(window)
        return sorted(t for t in window.times or () if t >= start)

    def sweep(self, now: float) -> None:
        """Drop keys idle for a window plus the disorder before ``now``, unless quiet."""
        self._next_sweep = now + self.spec.seconds
        oldest_live = self.spec.bucket_of(now) - self.spec.buckets - self._idle_buckets
        self.stats.expired += expire_front(
            self._keys,
            self.touched,
            idle=lambda window: window.head <= oldest_live,
            kept=lambda window: window.quiet_until > now,
        )

    def _evict(self) -> None:
        self.stats.evicted += evict_front(self._keys, self.touched, self._evict_batch)

    def _new_window(self, head: int) -> KeyWindow:
        distincts = len(self.spec.distincts)
        distinct: list[Values] | None = None
        if distincts:
            distinct = [_NO_VALUES] * distincts
        return KeyWindow(head, self._zeros[:] if self._fields else _NO_COUNTS, distinct)

    def _advance(self, window: KeyWindow, bucket: int) -> None:
        spec = self.spec
        fields = self._fields
        ring = window.counts
        if bucket - window.head >= spec.buckets:
            ring[:] = self._zeros
        else:
            for passed in range(window.head + 1, bucket + 1):
                row = (passed % spec.buckets) * fields
                for index in range(row, row + fields):
                    ring[index] = 0
        window.head = bucket
        distinct = window.distinct
        if distinct:
            first_live = (bucket - spec.buckets + 1) << TALLY_BITS
            for field, seen in enumerate(distinct):
                if isinstance(seen, tuple):
                    if seen[1] < first_live:
                        distinct[field] = _NO_VALUES
                    continue
                stale = [value for value, packed in seen.items() if packed < first_live]
                for value in stale:
                    del seen[value]
                if stale and not seen:
                    distinct[field] = _NO_VALUES

    def _add_values(self, window: KeyWindow, bucket: int, values: Sequence[str | None]) -> None:
        distinct = window.distinct
        assert distinct is not None
        cap = self.spec.distinct_cap
        packed_bucket = bucket << TALLY_BITS
        # Every value first seen in this bucket maps to the same integer: share one object.
        if bucket != self._first_sight_bucket:
            self._first_sight_bucket = bucket
            self._first_sight = packed_bucket | 1
        first_sight = self._first_sight
        for field, value in enumerate(values):
            if value is None:
                continue
            seen = distinct[field]
            value = value[:VALUE_CHARS]
            if isinstance(seen, tuple):
                only, packed = seen
                if only == value:
                    distinct[field] = (only, _seen_again(packed, packed_bucket))
                elif cap > 1:
                    distinct[field] = {only: packed, value: first_sight}
                elif packed >> TALLY_BITS < bucket:
                    distinct[field] = (value, first_sight)  # saturated at one: the latest
                continue
            if seen is _NO_VALUES:
                distinct[field] = (value, first_sight)
                continue
            known = seen.get(value)
            if known is not None:
                if known < packed_bucket:
                    # Seen in a later bucket: to the end, where the freshest values are.
                    del seen[value]
                seen[value] = _seen_again(known, packed_bucket)
                continue
            if len(seen) >= cap and not self._make_room(seen, bucket, window.head):
                continue
            seen[value] = first_sight

    def _make_room(self, seen: dict[str, int], bucket: int, head: int) -> bool:
        """Drop the least recently seen value to make room for one seen in ``bucket``.

        False when every value kept is more recent than ``bucket`` (a late
        value does not displace fresher ones).
        """
        oldest = min(seen.values())  # packed values order by bucket: a C-speed scan
        if oldest >> TALLY_BITS >= bucket:
            return False
        for value, packed in seen.items():  # in order, the oldest is nearly always first
            if packed == oldest:
                del seen[value]
                break
        return True

    # -- export / import, for Faust tables ---------------------------------

    def export_key(self, key: str) -> dict[str, Any] | None:
        """The state of ``key`` as plain JSON-able lists, or None if the store has none."""
        window = self._keys.get(key)
        if window is None:
            return None
        spec = self.spec
        return {
            "geometry": [spec.buckets, spec.bucket_seconds, self._fields, len(spec.distincts)],
            "head": window.head,
            "counts": list(window.counts),
            "distinct": [
                [
                    [value, packed >> TALLY_BITS, packed & TALLY_MAX]
                    for value, packed in _entries(seen)
                ]
                for seen in window.distinct or []
            ],
            "times": list(window.times or ()),
            "quiet_until": window.quiet_until,
        }

    def import_key(self, key: str, data: dict[str, Any]) -> None:
        """Restore ``key`` from :meth:`export_key` output.

        State written under another window shape (the policy changed) keeps
        only its quiet period: its buckets mean something else now.
        """
        try:
            window = self._decode(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed window state for key {key!r}: {exc}") from exc
        if key not in self._keys and len(self._keys) >= self.max_keys:
            self._evict()
        self._keys.pop(key, None)
        self._keys[key] = window

    def _decode(self, data: dict[str, Any]) -> KeyWindow:
        spec = self.spec
        geometry = [int(x) for x in data["geometry"]]
        if len(geometry) != 4 or geometry[1] <= 0:
            raise ValueError("geometry must be [buckets, bucket seconds, counts, distincts]")
        head_epoch = int(data["head"]) * geometry[1]
        window = self._new_window(spec.bucket_of(head_epoch))
        window.quiet_until = float(data["quiet_until"])
        if geometry != [spec.buckets, spec.bucket_seconds, self._fields, len(spec.distincts)]:
            return window
        counts = [int(x) for x in data["counts"]]
        if len(counts) != len(window.counts):
            raise ValueError("counts do not match the geometry")
        if counts:
            try:
                window.counts = array("I", counts)
            except OverflowError as exc:
                raise ValueError(f"count out of range: {exc}") from exc
        if window.distinct is not None:
            distinct = data["distinct"]
            if len(distinct) != len(window.distinct):
                raise ValueError("distinct fields do not match the geometry")
            for field, entries in enumerate(distinct):
                seen = {
                    str(entry[0]): _pack(int(entry[1]), int(entry[2]) if len(entry) > 2 else 1)
                    for entry in entries
                }
                window.distinct[field] = _compact(seen)
        times = [float(t) for t in data["times"]][-spec.times :] if spec.times else []
        window.times = times or None
        return window


def _pack(bucket: int, tally: int) -> int:
    if bucket < 0 or not 1 <= tally <= TALLY_MAX:
        raise ValueError("distinct entry out of range")
    return bucket << TALLY_BITS | tally


def _seen_again(packed: int, packed_bucket: int) -> int:
    """``packed`` with its tally one higher and its bucket the later of the two."""
    tally = min((packed & TALLY_MAX) + 1, TALLY_MAX)
    return max(packed & ~TALLY_MAX, packed_bucket) | tally


def _entries(seen: Values) -> Iterable[tuple[str, int]]:
    return (seen,) if isinstance(seen, tuple) else seen.items()


def _lookup(seen: Values, value: str) -> int | None:
    if isinstance(seen, tuple):
        return seen[1] if seen[0] == value else None
    return seen.get(value)


def _size(seen: Values) -> int:
    return 1 if isinstance(seen, tuple) else len(seen)


def _compact(seen: dict[str, int]) -> Values:
    """The smallest form of a field's values (see :class:`KeyWindow`)."""
    if not seen:
        return _NO_VALUES
    if len(seen) == 1:
        return next(iter(seen.items()))
    return seen


def expire_front(
    keys: dict[str, _Item],
    touched: set[str],
    idle: Callable[[_Item], bool],
    kept: Callable[[_Item], bool],
) -> int:
    """Drop the idle keys at the front of ``keys`` (ordered by last activity); return how many.

    Scans from the front and stops at the first key still live, so the cost
    follows what expires. An idle key that must be ``kept`` (a quiet period)
    moves to the end, so that later sweeps do not scan it again and again.
    """
    expired: list[str] = []
    keep: list[str] = []
    for key, item in keys.items():
        if not idle(item):
            break
        (keep if kept(item) else expired).append(key)
    for key in expired:
        del keys[key]
        touched.add(key)
    for key in keep:
        keys[key] = keys.pop(key)
    return len(expired)


def evict_front(keys: dict[str, _Item], touched: set[str], count: int) -> int:
    """Drop the ``count`` least recently active keys; return how many went."""
    victims = list(islice(keys, count))
    for key in victims:
        del keys[key]
        touched.add(key)
    return len(victims)
