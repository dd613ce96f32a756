"""The resampler: epoch-aligned buckets, closing rules, gaps, late and duplicate readings."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_lstm.model.baselines import NaiveForecaster
from edge_lstm.stream.resample import (
    DuplicateReading,
    LateReading,
    Reading,
    Resampler,
    StepEvent,
    apply_events,
)


def r(sensor: str, ts: float, *values: float) -> Reading:
    return Reading(sensor, tuple(values) or (1.0,), ts)


def test_mean_of_bucket_is_observed_when_a_later_bucket_starts() -> None:
    rs = Resampler(step_s=60, n_features=1)
    assert rs.add(r("a", 600.0, 1.0)) == []
    assert rs.add(r("a", 630.0, 3.0)) == []
    events = rs.add(r("a", 661.0, 10.0))
    assert events == [StepEvent("a", "observe", 600.0, (2.0,))]


def test_buckets_are_aligned_to_the_epoch() -> None:
    rs = Resampler(step_s=3600, n_features=1)
    rs.add(r("a", 3600 * 5 + 3599.5, 4.0))
    (event,) = rs.add(r("a", 3600 * 6, 5.0))
    assert event.bucket_start == 3600 * 5


def test_short_gap_is_filled_and_long_gap_resets() -> None:
    rs = Resampler(step_s=10, n_features=1, max_gap_steps=2)
    rs.add(r("a", 0.0))
    events = rs.add(r("a", 30.0))  # buckets 1 and 2 missing
    assert [e.kind for e in events] == ["observe", "fill", "fill"]
    assert [e.bucket_start for e in events] == [0.0, 10.0, 20.0]
    events = rs.add(r("a", 100.0))  # bucket 3 closes, 4..9 missing: 6 > 2
    assert [e.kind for e in events] == ["observe", "reset"]
    assert rs.add(r("a", 110.0)) == [StepEvent("a", "observe", 100.0, (1.0,))]


def test_late_and_duplicate_are_rejected_without_change() -> None:
    rs = Resampler(step_s=10, n_features=1)
    rs.add(r("a", 5.0, 1.0))
    with pytest.raises(DuplicateReading) as dup:
        rs.add(r("a", 5.0, 99.0))
    assert dup.value.reason == "duplicate"
    with pytest.raises(LateReading):
        rs.add(r("a", 4.0, 99.0))
    assert rs.add(r("a", 12.0, 1.0)) == [StepEvent("a", "observe", 0.0, (1.0,))]


def test_wall_clock_closes_with_grace_and_later_reading_for_closed_bucket_is_late() -> None:
    rs = Resampler(step_s=10, n_features=1, grace_s=2.0)
    rs.add(r("a", 3.0, 7.0))
    assert rs.close_due(now=11.9) == []
    assert rs.close_due(now=12.0) == [StepEvent("a", "observe", 0.0, (7.0,))]
    with pytest.raises(LateReading):
        rs.add(r("a", 9.0, 1.0))
    assert rs.add(r("a", 25.0)) == [StepEvent("a", "fill", 10.0, None)]


def test_wrong_length_is_a_payload_error() -> None:
    rs = Resampler(step_s=10, n_features=2)
    with pytest.raises(ValueError, match="expected 2"):
        rs.add(r("a", 1.0, 1.0))
    assert len(rs) == 0


def test_reading_rejects_non_finite() -> None:
    with pytest.raises(ValueError, match="finite"):
        Reading("a", (math.nan,), 1.0)
    with pytest.raises(ValueError, match="finite"):
        Reading("a", (1.0,), math.inf)


def test_sensor_cap_evicts_least_recently_updated() -> None:
    rs = Resampler(step_s=10, n_features=1, max_sensors=2)
    rs.add(r("a", 1.0))
    rs.add(r("b", 1.0))
    rs.add(r("a", 2.0))
    rs.add(r("c", 1.0))
    assert len(rs) == 2
    assert rs.add(r("b", 0.5)) == []  # b was forgotten, so it is new again (not late)


def test_tracks_live_in_fixed_rows_that_evictions_and_forgets_give_back() -> None:
    """Tracks are rows of preallocated arrays (no Python objects per sensor): the cap's worth
    of rows serves any number of sensors coming and going, in least-recent order."""
    rs = Resampler(step_s=10, n_features=2, max_sensors=3)
    for i in range(50):
        rs.add(r(f"s{i}", 1.0 + i, float(i), -float(i)))
        if i % 7 == 3:
            rs.forget(f"s{i}")
    assert rs.ids() == ["s47", "s48", "s49"] and len(rs) == 3
    assert rs.state_of("s49") == (5, [49.0, -49.0], 1, None, 50.0)
    assert rs.close(["s49"]) == [StepEvent("s49", "observe", 50.0, (49.0, -49.0))]
    assert rs.state_of("s49") == (None, [], 0, 5, 50.0)  # a closed track has no sums
    rs.set_state("s48", None)
    rs.set_state("new", (5, [1.0, 2.0], 2, 4, 55.0))
    assert rs.ids() == ["s47", "s49", "new"]
    assert rs.close(["new"]) == [StepEvent("new", "observe", 50.0, (0.5, 1.0))]


def test_snapshot_round_trip_continues_identically() -> None:
    one = Resampler(step_s=10, n_features=1)
    one.add(r("a", 1.0, 2.0))
    one.add(r("a", 3.0, 4.0))
    two = Resampler(step_s=10, n_features=1)
    two.restore(one.to_dict())
    assert (
        two.add(r("a", 15.0)) == one.add(r("a", 15.0)) == [StepEvent("a", "observe", 0.0, (3.0,))]
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abc"), st.floats(0, 500), st.floats(-100, 100)),
        min_size=1,
        max_size=60,
    )
)
def test_events_keep_per_sensor_order_and_apply_batched(
    rows: list[tuple[str, float, float]],
) -> None:
    rs = Resampler(step_s=10, n_features=1, max_gap_steps=3)
    events: list[StepEvent] = []
    for sensor, ts, value in sorted(rows, key=lambda row: row[1]):
        with contextlib.suppress(LateReading, DuplicateReading):
            events += rs.add(Reading(sensor, (value,), ts))
    events += rs.flush()
    for sensor in "abc":
        starts = [e.bucket_start for e in events if e.sensor_id == sensor]
        assert starts == sorted(starts), "events of one sensor come in time order"
    fc = NaiveForecaster()
    observed = apply_events(fc, events)
    for sensor, start in observed.items():
        last = [e for e in events if e.sensor_id == sensor and e.kind == "observe"][-1]
        assert start == last.bucket_start
        assert fc.forecast(sensor, 1)[0, 0] == pytest.approx(last.values[0], rel=1e-6, abs=1e-4)


class _Recorder:
    """Records what apply_events hands a forecaster (the pure protocol, nothing to run)."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, tuple[float, ...]], dict[str, float] | None]] = []

    def observe_batch(self, values: Any, at: Any = None) -> None:
        self.calls.append((dict(values), None if at is None else dict(at)))

    def fill(self, sensor_ids: Any) -> None:
        pass

    def reset(self, sensor_id: str) -> None:
        pass

    def steps_seen(self, sensor_id: str) -> int:
        return 1


def test_apply_events_passes_each_bucket_start_as_at() -> None:
    rs = Resampler(step_s=60.0, n_features=1)
    events = [e for ts in (5.0, 65.0, 130.0, 190.0) for e in rs.add(Reading("a", (ts,), ts))]
    events += [e for ts in (70.0, 125.0) for e in rs.add(Reading("b", (ts,), ts))]
    recorder = _Recorder()
    observed = apply_events(recorder, events)
    times = [at for _, at in recorder.calls if at]
    assert times == [{"a": 0.0, "b": 60.0}, {"a": 60.0}, {"a": 120.0}]
    assert observed == {"a": 120.0, "b": 60.0}
