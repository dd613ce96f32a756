"""A real model with lags, calendar and level inputs, run through the Forecaster.

The model is a real ``.tflite`` (tests/covariate_model.py, converted by the export package) run
in the real interpreter on real recorded data (data/electricity_hourly.csv), placed in time
across the Europe/London spring-forward change of 2024-03-31.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from edge_lstm.errors import StateFileError
from edge_lstm.model import covariates
from edge_lstm.model.features import InputSpec, output_values, step_inputs, training_inputs
from edge_lstm.model.forecaster import Forecaster
from edge_lstm.model.metadata import Scaler
from edge_lstm.model.runtime import StepModel
from edge_lstm.model.state import StateStore
from edge_lstm.offline.csvdata import load_csv
from edge_lstm.stream.resample import Reading, Resampler, apply_events

from .conftest import ROOT
from .covariate_model import build_model, scaler_for

pytestmark = pytest.mark.train

SPEC = InputSpec(
    lags=(3, 24),
    calendar=("time_of_day", "day_of_week"),
    timezone="Europe/London",
    level_window=6,
)
STEP_S = 3600.0
# 2024-03-29 00:00 UTC: the Europe/London clocks go forward two days later.
START = datetime(2024, 3, 29, tzinfo=timezone.utc).timestamp()


@pytest.fixture(scope="module")
def series() -> np.ndarray:
    data = load_csv(ROOT / "data" / "electricity_hourly.csv")
    values = data.values[:160, :1]
    assert np.isfinite(values).all()
    return values


TIMES = START + STEP_S * np.arange(160)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory, series: np.ndarray) -> Path:
    out = tmp_path_factory.mktemp("cov") / "cov.tflite"
    band = ([-30.0 - 5 * k for k in range(6)], [30.0 + 5 * k for k in range(6)])
    return build_model(out, SPEC, scaler_for(series, SPEC), horizon=8, band=band)


def fresh(model_path: Path, capacity: int = 16) -> Forecaster:
    return Forecaster(StepModel.load(model_path), max_sensors=capacity)


def run(fc: Forecaster, sensor: str, values: np.ndarray, times: np.ndarray) -> None:
    for value, at in zip(values, times, strict=True):
        fc.observe(sensor, value, at=float(at))


def test_stepping_the_forecaster_gives_the_training_rows(
    model_path: Path, series: np.ndarray
) -> None:
    """The device's x rows are training_inputs' rows: same outputs, step after step."""
    fc = fresh(model_path)
    x, _, _ = training_inputs(series, TIMES, SPEC, fc.meta.scaler)
    state = fc.model.zero_state(1)
    for t in range(len(series) - 1):
        fc.observe("s", series[t], at=TIMES[t])
        y, state = fc.model.step(x[t : t + 1], state)
        np.testing.assert_array_equal(fc.store.last_y[fc.store.slots(["s"])], y)


def reference_rollout(
    fc: Forecaster, values: np.ndarray, times: np.ndarray, steps: int
) -> np.ndarray:
    """The spec's rollout written plainly: whole windows, predictions appended as values."""
    scaler = fc.meta.scaler
    width = SPEC.history_len
    state = fc.model.zero_state(1)
    seen: list[np.ndarray] = []
    for t, value in enumerate(values):
        seen.append(value)
        x, level = _row(seen, width, times[t] + STEP_S, scaler)
        y, state = fc.model.step(x, state)
    out = [output_values(y, level, scaler)[0]]
    for k in range(1, steps):
        seen.append(out[-1])
        x, level = _row(seen, width, times[-1] + (k + 1) * STEP_S, scaler)
        y, state = fc.model.step(x, state)
        out.append(output_values(y, level, scaler)[0])
    return np.asarray(out, dtype=np.float32)


def _row(
    seen: list[np.ndarray], width: int, next_at: float, scaler: Scaler
) -> tuple[np.ndarray, np.ndarray]:
    tail = np.asarray(seen[-width:])
    window = np.zeros((1, width, tail.shape[1]))
    window[0, width - len(tail) :] = tail
    return step_inputs(window, [len(tail)], [next_at], SPEC, scaler)


@pytest.mark.parametrize("observed", [5, 30, 100])
def test_forecast_matches_the_plain_rollout(
    model_path: Path, series: np.ndarray, observed: int
) -> None:
    """Lags come from history, then from the rollout's own predictions; calendar moves on."""
    fc = fresh(model_path)
    run(fc, "s", series[:observed], TIMES[:observed])
    got = fc.forecast("s", 30)
    want = reference_rollout(fc, series[:observed], TIMES[:observed], 30)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert fc.forecast("s", 30).tolist() == got.tolist()  # forecasting changed nothing


def test_batch_equals_one_by_one_with_per_sensor_times(
    model_path: Path, series: np.ndarray
) -> None:
    one = fresh(model_path)
    run(one, "a", series[:50], TIMES[:50])
    run(one, "b", series[7:40], TIMES[20:53])
    batch = fresh(model_path)
    for t in range(53):
        values, at = {}, {}
        if t < 50:
            values["a"], at["a"] = series[t], TIMES[t]
        if t >= 20:
            values["b"], at["b"] = series[t - 13], TIMES[t]
        batch.observe_batch(values, at=at)
    got = batch.forecast_batch(["a", "b"], 12)
    np.testing.assert_allclose(got[0], one.forecast("a", 12), rtol=1e-6)
    np.testing.assert_allclose(got[1], one.forecast("b", 12), rtol=1e-6)


@pytest.mark.parametrize("steps", [4, 12, 30])
def test_few_sensors_forecast_like_the_batch_path_to_the_bit(
    model_path: Path, series: np.ndarray, steps: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Up to ``covariates.FEW`` sensors roll out on Python floats (``_Loop.few``), more on
    arrays (``_Loop.arrays``): the same float64 arithmetic in the same order, so the same
    forecasts, lags read from history (4 steps) and from the rollout's predictions (12, 30)."""
    fc = fresh(model_path)
    for i, sensor in enumerate("abc"):
        run(fc, sensor, series[5 * i : 100 + 5 * i], TIMES[:100])
    few = [fc.forecast_batch(["a", "b", "c"], steps), fc.forecast_batch(["b"], steps)]
    monkeypatch.setattr(covariates, "FEW", 0)
    arrays = [fc.forecast_batch(["a", "b", "c"], steps), fc.forecast_batch(["b"], steps)]
    for got, want in zip(few, arrays, strict=True):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(few[0][0], few[0][1])  # three sensors, three forecasts


def test_fill_writes_the_predicted_value_into_the_history(
    model_path: Path, series: np.ndarray
) -> None:
    filled = fresh(model_path)
    run(filled, "s", series[:40], TIMES[:40])
    predicted = filled.forecast("s", 2)
    filled.fill(["s"])
    explicit = fresh(model_path)
    run(explicit, "s", series[:40], TIMES[:40])
    explicit.observe("s", predicted[0].astype(np.float64), at=TIMES[40])
    for fc in (filled, explicit):
        run(fc, "s", series[41:60], TIMES[41:60])
    np.testing.assert_allclose(filled.forecast("s", 12), explicit.forecast("s", 12), rtol=1e-5)
    assert filled.steps_seen("s") == 59 and explicit.steps_seen("s") == 60


def test_gaps_through_the_resampler_fill_then_continue(
    model_path: Path, series: np.ndarray
) -> None:
    """apply_events passes bucket starts as at; a 2-step gap is filled on the sensor's clock."""
    resampler = Resampler(STEP_S, 1, max_gap_steps=3)
    fc = fresh(model_path)
    keep = [t for t in range(80) if t not in (30, 31)]
    for t in keep:
        apply_events(fc, resampler.add(Reading("s", (float(series[t, 0]),), TIMES[t] + 60.0)))
    assert fc.steps_seen("s") == len(keep) - 1  # the last bucket is still open
    ring = fc.history
    assert ring is not None
    slot = fc.store.slots(["s"])
    assert ring.last_at[slot][0] == TIMES[78]
    assert ring.count[slot][0] == 77 + 2  # observed steps and the 2 filled ones


def test_snapshot_round_trip_equals_an_uninterrupted_run(
    model_path: Path, series: np.ndarray, tmp_path: Path
) -> None:
    straight = fresh(model_path)
    run(straight, "s", series[:90], TIMES[:90])
    run(straight, "t", series[10:70], TIMES[30:90])
    before = fresh(model_path)
    run(before, "s", series[:60], TIMES[:60])
    run(before, "t", series[10:40], TIMES[30:60])
    path = tmp_path / "state.snapshot"
    before.save_state(path)
    after = fresh(model_path)
    after.load_state(path)
    run(after, "s", series[60:90], TIMES[60:90])
    run(after, "t", series[40:70], TIMES[60:90])
    ids = ["s", "t"]
    np.testing.assert_array_equal(after.forecast_batch(ids), straight.forecast_batch(ids))
    np.testing.assert_array_equal(after.interval_batch(ids), straight.interval_batch(ids))


def test_snapshot_without_history_is_refused_for_a_model_that_needs_it(
    model_path: Path, tmp_path: Path
) -> None:
    fc = fresh(model_path)
    old = StateStore(fc.meta.state_size, 1, 4)  # what a format-1 snapshot holds
    old.acquire(["s"])
    path = tmp_path / "state.snapshot"
    old.save(path, fc.model.sha256)
    with pytest.raises(StateFileError, match="history"):
        fc.load_state(path)


def test_eviction_frees_the_history(model_path: Path, series: np.ndarray) -> None:
    fc = fresh(model_path, capacity=2)
    run(fc, "a", series[:50], TIMES[:50])
    run(fc, "b", series[:50], TIMES[:50])
    evicted = fc.observe_batch({"c": series[0]}, at=TIMES[0])
    assert evicted == ["a"]
    fc.observe_batch({"a": series[60]}, at=TIMES[60])  # evicts b; a starts over
    new = fresh(model_path)
    new.observe("a", series[60], at=TIMES[60])
    np.testing.assert_array_equal(fc.forecast("a", 12), new.forecast("a", 12))
    assert fc.steps_seen("a") == 1


def test_at_is_required_validated_and_nothing_changes_on_error(
    model_path: Path, series: np.ndarray
) -> None:
    fc = fresh(model_path)
    run(fc, "s", series[:10], TIMES[:10])
    before = fc.forecast("s", 6)
    with pytest.raises(ValueError, match="calendar inputs: observe needs at="):
        fc.observe("s", 1.0)
    with pytest.raises(ValueError, match="naive datetime"):
        fc.observe("s", 1.0, at=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="'u': no time in at"):
        fc.observe_batch({"s": 1.0, "u": 2.0}, at={"s": TIMES[10]})
    with pytest.raises(ValueError, match="not epoch seconds"):
        fc.observe("s", 1.0, at="2024-01-01")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not finite"):
        fc.observe("s", 1.0, at=float("nan"))
    assert fc.steps_seen("s") == 10 and "u" not in fc.sensors()
    np.testing.assert_array_equal(fc.forecast("s", 6), before)
    aware = datetime.fromtimestamp(TIMES[10], tz=timezone.utc)
    other = fresh(model_path)
    run(other, "s", series[:10], TIMES[:10])
    fc.observe("s", series[10], at=aware)
    other.observe("s", series[10], at=TIMES[10])
    np.testing.assert_array_equal(fc.forecast("s", 6), other.forecast("s", 6))


def test_the_time_zone_changes_the_forecast_across_dst(
    model_path: Path, series: np.ndarray, tmp_path: Path
) -> None:
    """Same weights, calendar read in UTC: the inputs differ after the clocks go forward."""
    import json

    doc = json.loads(model_path.with_suffix(".json").read_text())
    doc["inputs"]["timezone"] = "UTC"
    utc = tmp_path / "utc.tflite"
    utc.write_bytes(model_path.read_bytes())
    utc.with_suffix(".json").write_text(json.dumps(doc))
    london, plain = fresh(model_path), fresh(utc)
    # 2024-03-29/30 London is on GMT (= UTC); from 2024-03-31 01:00 UTC it is BST.
    run(london, "s", series[:20], TIMES[:20])
    run(plain, "s", series[:20], TIMES[:20])
    np.testing.assert_array_equal(london.forecast("s", 8), plain.forecast("s", 8))
    run(london, "s", series[20:60], TIMES[20:60])
    run(plain, "s", series[20:60], TIMES[20:60])
    assert not np.allclose(london.forecast("s", 8), plain.forecast("s", 8), rtol=1e-6)


def test_warming_up_lasts_until_the_longest_lag(model_path: Path, series: np.ndarray) -> None:
    fc = fresh(model_path)
    assert fc.meta.warmup_steps == 24
    run(fc, "s", series[:23], TIMES[:23])
    assert not fc.is_warm("s")
    fc.observe("s", series[23], at=TIMES[23])
    assert fc.is_warm("s")


def test_calendar_rows_come_from_one_block_on_the_step_grid(
    model_path: Path, series: np.ndarray
) -> None:
    """One block of rows from the first time asked serves later steps and forecasts (across
    the DST change): the values computed one at a time. Past the block a new one; sensors
    with their own clocks off its grid are computed directly."""
    from edge_lstm.model.calendar import calendar_features
    from edge_lstm.model.covariates import CALENDAR_AHEAD

    def one_at_a_time(times: np.ndarray) -> np.ndarray:
        return np.stack([calendar_features([t], SPEC.calendar, SPEC.timezone)[0] for t in times])

    fc = fresh(model_path)
    assert fc.inputs is not None
    fc.observe("s", float(series[10, 0]), at=TIMES[10])
    start, rows = fc.inputs._calendar_block
    ahead = TIMES[11] + STEP_S * np.arange(CALENDAR_AHEAD)
    assert ahead[0] < datetime(2024, 3, 31, 1, tzinfo=timezone.utc).timestamp() < ahead[-1]
    assert start == TIMES[11]  # the predicted step's time, and the steps after it
    np.testing.assert_array_equal(rows, one_at_a_time(ahead))
    for t in range(11, 30):  # later steps and forecasts read the rows already there
        fc.observe("s", float(series[t, 0]), at=TIMES[t])
        fc.forecast("s")
    assert fc.inputs._calendar_block[1] is rows
    later = ahead[-1] + STEP_S * np.arange(1, 4)  # past the block: a new one from its first
    np.testing.assert_array_equal(fc.inputs._calendar(later[:1]), one_at_a_time(later[:1]))
    assert fc.inputs._calendar_block[0] == later[0]
    kept = fc.inputs._calendar_block
    np.testing.assert_array_equal(fc.inputs._calendar(later), one_at_a_time(later))  # in it
    off_grid = later + 1800.0  # sensors half a step off the block's grid: computed directly
    np.testing.assert_array_equal(fc.inputs._calendar(off_grid), one_at_a_time(off_grid))
    assert fc.inputs._calendar_block is kept


def test_snapshot_and_journal_replay_equal_an_uninterrupted_daemon(
    model_path: Path, series: np.ndarray, tmp_path: Path
) -> None:
    """What the daemon does after a crash: restore the snapshot, replay the journaled readings."""
    import json

    from edge_lstm.daemon.config import Config
    from edge_lstm.daemon.pipeline import Pipeline
    from edge_lstm.daemon.snapshots import SnapshotKeeper
    from edge_lstm.stream.readings import Inbound

    def reading(t: int) -> Reading:
        return Reading("s", (float(series[t, 0]),), float(TIMES[t]) + 60.0)

    def message(t: int) -> Inbound:
        doc = {"value": float(series[t, 0]), "ts": float(TIMES[t]) + 60.0}
        return Inbound("sensors/s", json.dumps(doc).encode(), 1, 1, TIMES[t] + 60.0, 0.0)

    config = Config.load(overrides={})
    straight = Pipeline(fresh(model_path), config)
    for t in range(120):
        straight.handle([message(t)], TIMES[t] + 60.0)
    crashed = Pipeline(fresh(model_path), config)
    for t in range(70):
        crashed.handle([message(t)], TIMES[t] + 60.0)
    SnapshotKeeper(tmp_path).save(crashed)
    restarted = Pipeline(fresh(model_path), config)
    SnapshotKeeper(tmp_path).restore(restarted)
    assert restarted.replay((reading(t), None) for t in range(70, 120)) == 50
    ids = ["s"]
    np.testing.assert_array_equal(
        restarted.forecaster.forecast_batch(ids), straight.forecaster.forecast_batch(ids)
    )
    # Everything the live path keeps comes back: band calibration, pending bands, accuracy.
    live, replayed = straight.export_sensor("s"), restarted.export_sensor("s")
    assert live is not None and replayed is not None
    assert live["band_scored"].any() and live["acc_error_count"].any()
    for name in set(live) - {"heard_at", "announced"}:
        np.testing.assert_array_equal(replayed[name], live[name], err_msg=name)


OTHER_SPECS = {
    "level only": InputSpec(level_window=5),
    "lag 1, day of year, half-hour zone": InputSpec(
        lags=(1,), calendar=("day_of_year",), timezone="Asia/Kolkata"
    ),
    "two features": InputSpec(lags=(2, 6), calendar=("time_of_day",), level_window=3),
}


@pytest.mark.parametrize("name", list(OTHER_SPECS))
def test_other_input_specs_step_and_forecast_as_defined(name: str, tmp_path: Path) -> None:
    spec = OTHER_SPECS[name]
    data = load_csv(ROOT / "data" / "tmy_hourly_temperature.csv")
    columns = [0, 2] if name == "two features" else [0]
    values = data.values[:60][:, columns]
    scaler = Scaler(tuple(values.mean(axis=0)), tuple(values.std(axis=0)))
    fc = Forecaster(StepModel.load(build_model(tmp_path / "m.tflite", spec, scaler)))
    x, _, level = training_inputs(values, data.times[:60], spec, scaler)
    state = fc.model.zero_state(1)
    for t in range(59):
        fc.observe("s", values[t], at=data.times[t])
        y, state = fc.model.step(x[t : t + 1], state)
        np.testing.assert_array_equal(fc.store.last_y[fc.store.slots(["s"])], y)
    # the rollout, written plainly: predictions appended, whole windows, the spec's calendar
    seen = list(values[:59])
    want = [output_values(y, level[58:59], scaler)[0]]
    width = max(spec.history_len, 1)
    for k in range(1, 10):
        seen.append(want[-1])
        tail = np.asarray(seen[-width:])
        window = np.zeros((1, width, len(columns)))
        window[0, width - len(tail) :] = tail
        row, lev = step_inputs(window, [len(seen)], [data.times[58] + (k + 1) * 3600], spec, scaler)
        y, state = fc.model.step(row, state)
        want.append(output_values(y, lev, scaler)[0])
    np.testing.assert_allclose(fc.forecast("s", 10), np.asarray(want), rtol=1e-5, atol=1e-5)
