"""The batch calls' shortcuts give what the general path gives, to the bit.

Over more sensors than ``forecaster.AT_ONCE`` they go in turns (bounding each call's temporary
arrays); a few sensors with one feature are observed and rolled out on Python floats. Both are
the same arithmetic on the same rows as one call over every sensor. Run on the shipped
seasonal bench model (a real ``.tflite``: lags, calendar, level, companion and a band) with
real recorded temperatures (data/tmy_hourly_temperature.csv).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edge_lstm.bench.inputs import bench_model_paths
from edge_lstm.model import covariates
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


def test_few_sensors_observe_as_they_would_on_the_batch_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Up to ``covariates.FEW`` sensors observe on Python floats, more on arrays: from the
    first reading (young: lags missing, level window filling) to past the longest lag, each
    sensor's whole row (history, level, companion sums, state) and the forecasts are the
    same to the bit, ``c`` on its own clock. ``arrays`` runs the same readings with ``FEW``
    at 0."""
    data = load_csv(ROOT / "data" / "tmy_hourly_temperature.csv")
    alone, few, arrays = (Forecaster.load(bench_model_paths()["seasonal"]) for _ in range(3))
    ids = ["a", "b", "c"]
    start = data.times[0]
    for t in range(STEPS):
        at = {"a": start + 3600.0 * t, "b": start + 3600.0 * t, "c": start + 3600.0 * (t + 5)}
        values = {s: float(data.values[t, i]) for i, s in enumerate(ids)}
        alone.observe("a", values["a"], at=at["a"])
        few.observe_batch(values, at=at)
        with monkeypatch.context() as patched:
            patched.setattr(covariates, "FEW", 0)
            arrays.observe_batch(values, at=at)
        if t in (0, 5, 30, 200, STEPS - 1):
            for sensor, fc in (("a", alone), *((s, few) for s in ids)):
                want, got = arrays.store.row(sensor), fc.store.row(sensor)
                assert want.keys() == got.keys()
                for name in want:
                    np.testing.assert_array_equal(got[name], want[name], err_msg=f"{name} at {t}")
            got_alone, got_few = alone.forecast("a"), few.forecast_batch(ids)
            with monkeypatch.context() as patched:
                patched.setattr(covariates, "FEW", 0)
                np.testing.assert_array_equal(got_alone, arrays.forecast_batch(["a"])[0])
                np.testing.assert_array_equal(got_few, arrays.forecast_batch(ids))
