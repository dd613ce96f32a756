"""The batch calls' shortcuts give what the general path gives, to the bit.

Over more sensors than ``forecaster.AT_ONCE`` they go in turns (bounding each call's temporary
arrays); a single sensor with one feature is observed and rolled out on Python floats. Both are
the same arithmetic on the same rows as one call over every sensor. Run on the shipped
seasonal bench model (a real ``.tflite``: lags, calendar, level, companion and a band) with
real recorded temperatures (data/tmy_hourly_temperature.csv).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edge_lstm.bench.inputs import bench_model_paths
from edge_lstm.model import forecaster as forecaster_module
from edge_lstm.model.forecaster import AT_ONCE, Forecaster
from edge_lstm.offline.csvdata import load_csv

from .conftest import ROOT

SENSORS = 2 * AT_ONCE + 76  # two full turns and a part
STEPS = 400  # past the companion's 337 values, with bands scored


def run(monkeypatch: pytest.MonkeyPatch, at_once: int) -> dict[str, Any]:
    monkeypatch.setattr(forecaster_module, "AT_ONCE", at_once)
    data = load_csv(ROOT / "data" / "tmy_hourly_temperature.csv")
    series = data.values[:, 0]
    fc = Forecaster.load(bench_model_paths()["seasonal"], max_sensors=SENSORS)
    ids = [f"s{i}" for i in range(SENSORS)]
    start = data.times[0]
    out: dict[str, Any] = {"forecasts": [], "lo": [], "hi": []}
    for t in range(STEPS):
        # each sensor its own stretch of the year, and every 7th skips a step (a gap)
        values = {s: float(series[(t + 37 * i) % len(series)]) for i, s in enumerate(ids)}
        if t % 5 == 0:
            values = {s: v for i, (s, v) in enumerate(values.items()) if i % 7}
        fc.observe_batch(values, at=start + 3600.0 * t)
        if t >= STEPS - 30:
            forecasts = fc.forecast_batch(ids)
            lo, hi = fc.interval_batch(ids, forecasts=forecasts)
            for name, array in (("forecasts", forecasts), ("lo", lo), ("hi", hi)):
                out[name].append(array)
    out["state"] = fc.store.state[fc.store.slots(ids)]
    out["coverage"] = fc.coverage()["coverage"]
    return out


def test_turns_give_what_one_call_over_every_sensor_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    in_turns = run(monkeypatch, AT_ONCE)
    at_once = run(monkeypatch, 10 * SENSORS)
    assert np.isfinite(np.asarray(in_turns["forecasts"])).all()
    assert not np.isnan(in_turns["coverage"]).any()  # bands were issued and scored
    for name in ("forecasts", "lo", "hi", "state"):
        np.testing.assert_array_equal(in_turns[name], at_once[name], err_msg=name)
    assert in_turns["coverage"] == at_once["coverage"]


def test_one_sensor_observes_as_it_would_in_a_batch() -> None:
    """From its first reading (young: lags missing, level window filling) to past the longest
    lag: the sensor's whole row (history, level, companion sums, state) and its forecasts."""
    data = load_csv(ROOT / "data" / "tmy_hourly_temperature.csv")
    alone, batched = (Forecaster.load(bench_model_paths()["seasonal"]) for _ in range(2))
    start = data.times[0]
    for t in range(STEPS):
        at = start + 3600.0 * t
        alone.observe("a", float(data.values[t, 0]), at=at)
        batched.observe_batch({"a": float(data.values[t, 0]), "b": 1.0}, at=at)
        if t in (0, 5, 30, 200, STEPS - 1):
            want, got = batched.store.row("a"), alone.store.row("a")
            assert want.keys() == got.keys()
            for name in want:
                np.testing.assert_array_equal(got[name], want[name], err_msg=f"{name} at {t}")
            np.testing.assert_array_equal(alone.forecast("a"), batched.forecast_batch(["a"])[0])
