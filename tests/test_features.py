"""The input-vector rules shared by training and the device (edge_lstm.model.features)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_lstm.model.features import (
    InputSpec,
    as_kept,
    calendar_features,
    output_values,
    running_level,
    step_inputs,
    training_inputs,
    utc_offsets_s,
)
from edge_lstm.model.metadata import Scaler

ALL = ("time_of_day", "day_of_week", "day_of_year")


def expected_calendar(moment: datetime, zone: str) -> list[float]:
    """The spec's definition, written with datetime arithmetic (independent of the code)."""
    local = moment.astimezone(ZoneInfo(zone))
    tod = (local.hour * 3600 + local.minute * 60 + local.second) / 86400
    dow = (local.weekday() + tod) / 7
    doy = (local.timetuple().tm_yday - 1 + tod) / 365.25
    out = []
    for frac in (tod, dow, doy):
        out += [np.sin(2 * np.pi * frac), np.cos(2 * np.pi * frac)]
    return out


# (zone, a day with a DST change or none): spring forward, fall back, southern hemisphere,
# a half-hour zone without DST, UTC.
ZONE_DAYS = [
    ("Europe/London", "2024-03-31"),
    ("Europe/London", "2024-10-27"),
    ("America/New_York", "2024-03-10"),
    ("America/New_York", "2024-11-03"),
    ("Australia/Sydney", "2024-04-07"),
    ("Australia/Sydney", "2024-10-06"),
    ("Asia/Kolkata", "2024-06-01"),
    ("UTC", "2024-02-29"),
]


@pytest.mark.parametrize(("zone", "day"), ZONE_DAYS)
def test_calendar_matches_local_wall_clock_through_the_day(zone: str, day: str) -> None:
    start = datetime.fromisoformat(day).replace(tzinfo=timezone.utc) - timedelta(hours=14)
    moments = [start + timedelta(minutes=30 * k) for k in range(48 * 2)]
    got = calendar_features([m.timestamp() for m in moments], ALL, zone)
    want = np.array([expected_calendar(m, zone) for m in moments])
    np.testing.assert_allclose(got, want, atol=1e-12)


def local_hours(zone: str, day: str) -> list[float]:
    start = datetime.fromisoformat(day).replace(tzinfo=ZoneInfo(zone))
    times = [start.timestamp() + 3600 * k for k in range(24)]
    tod = calendar_features(times, ["time_of_day"], zone)
    return list(np.round(np.mod(np.arctan2(tod[:, 0], tod[:, 1]) / (2 * np.pi), 1) * 24, 6))


def test_spring_forward_skips_an_hour_of_wall_clock() -> None:
    # Europe/London, 2024-03-31: 01:00 local jumps to 02:00 BST; 24 elapsed hours reach 01:00
    # of the next day.
    hours = local_hours("Europe/London", "2024-03-31")
    assert hours[:3] == [0.0, 2.0, 3.0]
    assert hours[-1] == 0.0  # 23 h of wall clock in 23 elapsed hours, then midnight


def test_fall_back_repeats_an_hour_of_wall_clock() -> None:
    hours = local_hours("America/New_York", "2024-11-03")
    assert hours[:4] == [0.0, 1.0, 1.0, 2.0]


def test_offsets_follow_dst_and_half_hour_zones() -> None:
    summer = datetime(2024, 7, 1, tzinfo=timezone.utc).timestamp()
    winter = datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp()
    assert list(utc_offsets_s([winter, summer], "Europe/London")) == [0.0, 3600.0]
    assert list(utc_offsets_s([winter, summer], "Australia/Sydney")) == [39600.0, 36000.0]
    assert list(utc_offsets_s([winter, summer], "Asia/Kolkata")) == [19800.0, 19800.0]


def test_day_of_week_starts_on_monday_midnight_local() -> None:
    monday = datetime(2024, 6, 3, 0, 0, tzinfo=ZoneInfo("America/New_York")).timestamp()
    sin, cos = calendar_features([monday], ["day_of_week"], "America/New_York")[0]
    assert sin == pytest.approx(0.0, abs=1e-12) and cos == pytest.approx(1.0)


def test_spec_validation_names_the_problem() -> None:
    with pytest.raises(ValueError, match="unknown calendar kind 'hour'"):
        InputSpec(calendar=("hour",))
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Base'"):
        InputSpec(timezone="Mars/Base")
    with pytest.raises(ValueError, match="ascending"):
        InputSpec(lags=(168, 24))
    with pytest.raises(ValueError, match=">= 1"):
        InputSpec(lags=(0,))
    with pytest.raises(ValueError, match="level_window"):
        InputSpec(level_window=-1)


def test_width_and_history_len() -> None:
    spec = InputSpec(lags=(24, 168), calendar=("time_of_day", "day_of_week"), level_window=24)
    assert spec.width(1) == 1 + 2 + 4
    assert spec.width(2) == 2 * 3 + 4
    assert spec.history_len == 168
    assert spec.taps == (0, 23, 167)
    assert InputSpec(lags=(3,), level_window=10).history_len == 10
    assert InputSpec().is_plain and not spec.is_plain


def test_lags_and_level_on_a_small_series() -> None:
    spec = InputSpec(lags=(2, 3), level_window=2)
    series = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    x, y, level = training_inputs(series, None, spec, Scaler.identity(1))
    # level_t: mean of the last 2 values up to v_t (of what exists at t=0)
    assert level[:, 0].tolist() == [1.0, 1.5, 3.0, 6.0]
    # lag 2 of step t+1 is v_{t-1}; lag 3 is v_{t-2}; missing ones are v_t
    v = series[:-1]
    lag2 = [1.0, 1.0, 2.0, 4.0]
    lag3 = [1.0, 2.0, 1.0, 2.0]
    want = np.stack([v, lag2, lag3], axis=1) - level
    np.testing.assert_allclose(x, want)
    np.testing.assert_allclose(y[:, 0], series[1:] - level[:, 0])


def test_scaler_applies_to_every_value_block() -> None:
    spec = InputSpec(lags=(1,), level_window=0)
    scaler = Scaler((10.0, 0.0), (2.0, 4.0))
    series = np.array([[12.0, 4.0], [14.0, 8.0], [16.0, 12.0]])
    x, y, _ = training_inputs(series, None, spec, scaler)
    np.testing.assert_allclose(x[:, :2], [[1.0, 1.0], [2.0, 2.0]])
    np.testing.assert_allclose(x[:, 2:], x[:, :2])  # lag 1 is v_t itself
    np.testing.assert_allclose(y, [[2.0, 2.0], [3.0, 3.0]])


def test_output_values_undo_scaling_and_level() -> None:
    scaler = Scaler((10.0,), (2.0,))
    assert output_values([[1.5]], [[3.0]], scaler).tolist() == [[16.0]]


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 40),
    lags=st.lists(st.integers(1, 12), max_size=3, unique=True),
    level_window=st.integers(0, 9),
    seed=st.integers(0, 2**16),
)
def test_training_rows_equal_stepwise_rows(
    n: int, lags: list[int], level_window: int, seed: int
) -> None:
    """The vectorised rows are the spec's definition, applied to each step's whole window."""
    spec = InputSpec(lags=tuple(sorted(lags)), calendar=("time_of_day",), level_window=level_window)
    rng = np.random.default_rng(seed)
    series = as_kept(rng.normal(100.0, 10.0, size=(n, 1)))  # as the device's history holds it
    times = 1_700_000_000.0 + 900.0 * np.arange(n)
    scaler = Scaler((100.0,), (10.0,))
    x, y, level = training_inputs(series, times, spec, scaler)
    width = max(spec.history_len, 1)
    for t in range(n - 1):
        seen = series[max(0, t + 1 - width) : t + 1]
        window = np.zeros((1, width, 1))
        window[0, width - len(seen) :] = seen
        row, lev = step_inputs(window, [len(seen)], [times[t + 1]], spec, scaler)
        # the running level sum agrees with the window mean within rounding
        np.testing.assert_allclose(row[0], x[t], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(lev[0], level[t], rtol=1e-12)
    assert y.shape == (n - 1, 1)


def test_training_rounds_values_as_the_device_history_keeps_them() -> None:
    """Values enter as float32 (half the ring's memory); training rounds them the same way."""
    spec = InputSpec(lags=(2,), level_window=3)
    raw = np.asarray([[100.1], [99.7], [100.3], [101.9], [98.2]])
    kept = as_kept(raw)
    assert kept.dtype == np.float64 and not np.array_equal(kept, raw)
    assert np.array_equal(kept, raw.astype(np.float32))
    for got, want in zip(
        training_inputs(raw, None, spec, Scaler.identity(1)),
        training_inputs(kept, None, spec, Scaler.identity(1)),
        strict=True,
    ):
        np.testing.assert_array_equal(got, want)


def test_calendar_spec_requires_times() -> None:
    spec = InputSpec(calendar=("time_of_day",))
    with pytest.raises(ValueError, match="times_s is required"):
        training_inputs(np.ones(5), None, spec, Scaler.identity(1))


def test_many_times_with_few_distinct_values_match_one_by_one() -> None:
    base = datetime(2024, 10, 27, 0, 30, tzinfo=timezone.utc).timestamp()
    times = np.repeat(base + 1800.0 * np.arange(4), 50)[np.random.default_rng(1).permutation(200)]
    batch = calendar_features(times, ALL, "Europe/London")
    one_by_one = np.stack([calendar_features([t], ALL, "Europe/London")[0] for t in times])
    np.testing.assert_array_equal(batch, one_by_one)
    same = calendar_features(np.full(70, base), ALL, "Europe/London")
    np.testing.assert_array_equal(same, np.repeat(batch[times == base][:1], 70, axis=0))


def test_running_level_equals_the_window_mean() -> None:
    rng = np.random.default_rng(3)
    series = rng.normal(1e4, 50.0, size=(500, 2))
    level = running_level(series, 24)
    for t in (0, 5, 23, 24, 300, 499):
        window = series[max(0, t - 23) : t + 1]
        np.testing.assert_allclose(level[t], window.mean(axis=0), rtol=1e-12)
