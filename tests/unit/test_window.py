"""The event-time sliding window: counts, distinct values, disorder, bounds, export."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.window import WindowSpec, WindowStore

T0 = 1_800_000_000.0  # a multiple of every bucket length used here


def spec(**overrides: object) -> WindowSpec:
    values: dict[str, object] = {
        "seconds": 60,
        "buckets": 6,
        "counts": ("n",),
        "distincts": ("v",),
        "distinct_cap": 256,
    }
    values.update(overrides)
    return WindowSpec(**values)  # type: ignore[arg-type]


def test_counts_sum_over_the_window_and_fall_out_of_it() -> None:
    store = WindowStore(spec(), max_keys=10)
    for offset in (0, 5, 15, 30):
        store.observe("k", T0 + offset, (1,))
    window = store.observe("k", T0 + 55, (2,))
    assert window is not None
    assert store.total(window, 0) == 6
    # At T0+65 the bucket [T0, T0+10) has left the 60 s window.
    window = store.observe("k", T0 + 65, (1,))
    assert window is not None
    assert store.total(window, 0) == 5
    # A gap longer than the window empties it.
    window = store.observe("k", T0 + 500, (1,))
    assert window is not None
    assert store.total(window, 0) == 1


def test_disorder_within_the_window_is_counted_older_is_late() -> None:
    store = WindowStore(spec(), max_keys=10)
    store.observe("k", T0 + 100, (1,))
    window = store.observe("k", T0 + 55, (1,))  # 45 s late, bucket still in the window
    assert window is not None
    assert store.total(window, 0) == 2
    assert store.observe("k", T0 + 30, (1,)) is None  # older than the window start
    assert store.stats.late == 1
    window = store.get("k")
    assert window is not None
    assert store.total(window, 0) == 2


def test_distinct_values_expire_with_their_bucket() -> None:
    store = WindowStore(spec(), max_keys=10)
    store.observe("k", T0, (), ("a",))
    store.observe("k", T0 + 20, (), ("b",))
    window = store.observe("k", T0 + 30, (), ("a",))  # refreshes "a", which moves to the end
    assert window is not None
    assert store.distinct_count(window, 0) == 2
    assert store.samples(window, 0) == ["b", "a"]
    window = store.observe("k", T0 + 85, (), (None,))  # "b" (T0+20) has left, "a" (T0+30) not
    assert window is not None
    assert store.distinct_count(window, 0) == 1
    assert store.samples(window, 0) == ["a"]


def test_distinct_saturates_at_the_cap_keeping_the_latest_values() -> None:
    store = WindowStore(spec(distinct_cap=4, seconds=600, buckets=10), max_keys=10)
    for index in range(10):
        store.observe("k", T0 + index * 60, (), (f"v{index}",))
    window = store.get("k")
    assert window is not None
    assert store.distinct_count(window, 0) == 4
    # The four kept are the latest (v6..v9): when v6 leaves the window, three remain.
    window = store.observe("k", T0 + 15 * 60, (), (None,))
    assert window is not None
    assert store.distinct_count(window, 0) == 4
    window = store.observe("k", T0 + 16 * 60, (), (None,))
    assert window is not None
    assert store.distinct_count(window, 0) == 3


def test_samples_are_bounded_and_truncated() -> None:
    store = WindowStore(spec(), max_keys=10)
    for index in range(5):
        store.observe("k", T0, (), (f"{index}" + "x" * 1000,))
    window = store.get("k")
    assert window is not None
    assert store.distinct_count(window, 0) == 5
    sample = store.samples(window, 0, limit=3)
    assert [value[0] for value in sample] == ["0", "1", "2"]
    assert all(len(value) == 256 for value in sample)


def test_key_count_stays_bounded_and_evicted_keys_are_reported() -> None:
    store = WindowStore(spec(), max_keys=1000)
    for index in range(100_000):
        store.observe(f"10.{index >> 16}.{(index >> 8) & 255}.{index & 255}", T0 + index / 1000)
        assert len(store) <= 1000
    assert store.stats.evicted == 100_000 - len(store)
    # The newest keys survive; the oldest were evicted and named for deletion.
    assert "10.1.134.159" in store  # index 99_999
    assert "10.0.0.0" not in store
    assert "10.0.0.0" in store.touched


def test_lru_follows_the_last_event_time() -> None:
    store = WindowStore(spec(), max_keys=100)
    for index in range(100):
        store.observe(f"k{index}", T0)
    store.observe("k0", T0 + 10)  # k0 advances: now the most recent
    store.observe("new", T0 + 11)  # evicts the oldest one (batch of 1)
    assert "k0" in store
    assert "k1" not in store


def test_sweep_drops_idle_keys_by_event_time_but_not_quiet_ones() -> None:
    store = WindowStore(spec(), max_keys=100, disorder=0)
    store.observe("idle", T0)
    quiet = store.observe("quiet", T0)
    assert quiet is not None
    quiet.quiet_until = T0 + 3600
    store.touched.clear()
    store.observe("other", T0 + 200)  # more than two windows later
    assert "idle" not in store
    assert "quiet" in store
    assert store.stats.expired == 1
    assert store.touched == {"idle", "other"}
    store.observe("other", T0 + 3700)
    assert "quiet" not in store


def test_a_partition_far_ahead_in_event_time_does_not_sweep_a_live_window() -> None:
    """One worker reads partitions that lag each other: a backlog, a restart."""
    store = WindowStore(spec(), max_keys=100)
    for second in range(20):
        store.observe("lagging", T0 + second, (1,))
    store.observe("ahead", T0 + 1200, (1,))  # another partition, 20 minutes further
    window = store.observe("lagging", T0 + 21, (1,))
    assert window is not None and store.total(window, 0) == 21
    store.observe("other", T0 + 1200 + 3600 + 200, (1,))  # beyond the tolerated disorder
    assert "lagging" not in store


def test_sweep_keeps_a_key_that_a_late_event_may_still_reach() -> None:
    store = WindowStore(spec(), max_keys=100)
    store.observe("a", T0, (1,))
    store.observe("b", T0 + 65, (1,))  # sweeps; "a" is one window idle only
    window = store.observe("a", T0 + 15, (1,))  # 50 s behind the clock: inside a's window
    assert window is not None
    assert store.total(window, 0) == 2


def test_export_import_round_trip_is_plain_json_and_exact() -> None:
    store = WindowStore(spec(), max_keys=10)
    for offset, value in ((0, "a"), (12, "b"), (25, "a"), (40, "c")):
        store.observe("k", T0 + offset, (1,), (value,))
    data = store.export_key("k")
    assert data is not None
    restored = WindowStore(spec(), max_keys=10)
    restored.import_key("k", orjson.loads(orjson.dumps(data)))
    assert restored.export_key("k") == data
    for copy in (store, restored):
        window = copy.observe("k", T0 + 65, (1,), ("d",))
        assert window is not None
        assert (copy.total(window, 0), copy.distinct_count(window, 0)) == (4, 4)
    assert store.export_key("missing") is None


def test_import_under_another_geometry_keeps_only_the_quiet_period() -> None:
    store = WindowStore(spec(), max_keys=10)
    window = store.observe("k", T0, (5,))
    assert window is not None
    window.quiet_until = T0 + 100
    data = store.export_key("k")
    assert data is not None
    other = WindowStore(spec(buckets=12), max_keys=10)
    other.import_key("k", data)
    restored = other.get("k")
    assert restored is not None
    assert other.total(restored, 0) == 0
    assert restored.quiet_until == T0 + 100
    assert other.window_start(restored) == T0 - 55  # head re-expressed in 5 s buckets


def test_malformed_state_is_refused_with_the_key() -> None:
    store = WindowStore(spec(), max_keys=10)
    with pytest.raises(ValueError, match="'k'"):
        store.import_key("k", {"head": "x"})


def test_bad_geometry_is_refused() -> None:
    with pytest.raises(ValueError, match="does not divide"):
        WindowSpec(seconds=60, buckets=7)


# -- property: the store agrees with a brute-force recomputation -----------------

BUCKET = 10
BUCKETS = 6
WINDOW = BUCKET * BUCKETS


def brute_force(
    accepted: list[tuple[str, float, int, str | None]], key: str, cap: int
) -> tuple[int, int]:
    """Count and distinct count for ``key`` over the window ending at its newest bucket."""
    mine = [event for event in accepted if event[0] == key]
    head = max(int(epoch // BUCKET) for _, epoch, _, _ in mine)
    live = [event for event in mine if int(event[1] // BUCKET) > head - BUCKETS]
    values = {value for *_, value in live if value is not None}
    return sum(count for _, _, count, _ in live), min(len(values), cap)


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d"]),
            st.integers(min_value=-(WINDOW - BUCKET), max_value=25),  # disorder < window
            st.integers(min_value=0, max_value=3),
            st.one_of(st.none(), st.sampled_from([f"u{i}" for i in range(12)])),
        ),
        min_size=1,
        max_size=120,
    ),
    cap=st.sampled_from([1, 2, 3, 256]),
)
def test_counts_equal_brute_force_under_bounded_disorder(
    steps: list[tuple[str, int, int, str | None]], cap: int
) -> None:
    store = WindowStore(spec(distinct_cap=cap), max_keys=1000)
    accepted: list[tuple[str, float, int, str | None]] = []
    clock = T0
    for key, delta, count, value in steps:
        epoch = clock + delta
        clock = max(clock, epoch)
        window = store.observe(key, epoch, (count,), (value,))
        assert window is not None  # disorder below one window is never late
        accepted.append((key, epoch, count, value))
        total, distinct = brute_force(accepted, key, cap)
        assert store.total(window, 0) == total
        assert store.distinct_count(window, 0) == distinct


@settings(max_examples=150, deadline=None)
@given(
    deltas=st.lists(st.integers(min_value=-200, max_value=40), min_size=1, max_size=150),
    values=st.lists(st.sampled_from([f"u{i}" for i in range(8)]), min_size=150, max_size=150),
)
def test_one_key_with_any_disorder_drops_exactly_the_late_events(
    deltas: list[int], values: list[str]
) -> None:
    store = WindowStore(spec(), max_keys=10)
    accepted: list[tuple[str, float, int, str | None]] = []
    clock, head, late = T0, None, 0
    for delta, value in zip(deltas, values, strict=False):
        epoch = clock + delta
        clock = max(clock, epoch)
        bucket = int(epoch // BUCKET)
        window = store.observe("k", epoch, (1,), (value,))
        if head is not None and bucket <= head - BUCKETS:
            assert window is None
            late += 1
            continue
        head = bucket if head is None else max(head, bucket)
        assert window is not None
        accepted.append(("k", epoch, 1, value))
        assert (store.total(window, 0), store.distinct_count(window, 0)) == brute_force(
            accepted, "k", 256
        )
    assert store.stats.late == late


# -- tallies: per-value counts of an unbroken run ---------------------------------


def test_tally_counts_a_value_until_it_pauses_for_a_whole_window() -> None:
    store = WindowStore(spec(), max_keys=10)
    for offset in (0, 5, 30, 55, 80):  # never 60 s apart: one run
        store.observe("k", T0 + offset, (), ("ip1",))
    window = store.observe("k", T0 + 85, (), ("ip2",))
    assert window is not None
    assert store.tally(window, 0, "ip1") == 5
    assert store.tally(window, 0, "ip2") == 1
    assert store.tally(window, 0, "absent") == 0
    assert store.top_tallies(window, 0) == [("ip1", 5), ("ip2", 1)]
    # After a whole window without it, "ip1" starts a new run.
    window = store.observe("k", T0 + 150, (), ("ip1",))
    assert window is not None
    assert store.tally(window, 0, "ip1") == 1


def test_tallies_survive_export_and_old_exports_still_load() -> None:
    store = WindowStore(spec(), max_keys=10)
    for _ in range(3):
        store.observe("k", T0, (1,), ("a",))
    data = store.export_key("k")
    assert data is not None
    assert data["distinct"] == [[["a", int(T0 // 10), 3]]]
    restored = WindowStore(spec(), max_keys=10)
    restored.import_key("k", orjson.loads(orjson.dumps(data)))
    window = restored.get("k")
    assert window is not None and restored.tally(window, 0, "a") == 3
    data["distinct"] = [[["a", int(T0 // 10)]]]  # written before tallies existed
    restored.import_key("k", data)
    window = restored.get("k")
    assert window is not None and restored.tally(window, 0, "a") == 1


def test_live_distinct_count_leaves_out_values_aged_out_since_the_last_event() -> None:
    store = WindowStore(spec(), max_keys=10)
    store.observe("k", T0, (), ("a",))
    window = store.observe("k", T0 + 30, (), ("b",))
    assert window is not None
    assert store.live_distinct_count(window, 0, T0 + 30) == 2
    assert store.live_distinct_count(window, 0, T0 + 65) == 1  # "a" has left that window
    assert store.live_distinct_count(window, 0, T0 + 200) == 0
    assert store.has_value(window, 0, "a")
    assert not store.has_value(window, 0, "a", epoch=T0 + 65)


def test_saturated_store_drops_the_least_recently_seen_even_after_disorder() -> None:
    store = WindowStore(spec(distinct_cap=3), max_keys=10)
    store.observe("k", T0 + 20, (), ("b",))
    store.observe("k", T0 + 30, (), ("c",))
    store.observe("k", T0 + 5, (), ("a",))  # late: inserted last, seen earliest
    window = store.observe("k", T0 + 40, (), ("d",))
    assert window is not None
    assert sorted(store.samples(window, 0)) == ["b", "c", "d"]
    # A late value never displaces fresher ones.
    window = store.observe("k", T0 + 1, (), ("e",))
    assert window is not None
    assert sorted(store.samples(window, 0)) == ["b", "c", "d"]


def test_holds_fresh_only_for_a_value_seen_in_the_newest_bucket() -> None:
    store = WindowStore(spec(), max_keys=10)
    assert not store.holds_fresh("k", T0, 0, "a")
    store.observe("k", T0 + 1, (), ("a",))
    assert store.holds_fresh("k", T0 + 9, 0, "a")
    assert not store.holds_fresh("k", T0 + 9, 0, "b")
    assert not store.holds_fresh("k", T0 + 10, 0, "a")  # the next bucket
