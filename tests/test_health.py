"""Health bookkeeping: rate-limited logs, latency percentiles, running accuracy."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edge_lstm.daemon.accuracy import MAX_SEASON, Accuracy
from edge_lstm.daemon.health import Counters, LatencyRing, RateLimitedLog
from edge_lstm.model.state import StateStore


def test_rate_limited_log(caplog: pytest.LogCaptureFixture) -> None:
    rl = RateLimitedLog(logging.getLogger("edge_lstm.test"), interval_s=10.0)
    with caplog.at_level(logging.WARNING):
        assert rl.log("bad_json", "one", now=0.0)
        assert not rl.log("bad_json", "two", now=5.0)
        assert not rl.log("bad_json", "three", now=9.9)
        assert rl.log("other", "other key", now=9.9)
        assert rl.log("bad_json", "four", now=10.0)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["one", "other key", "four (2 similar message(s) suppressed)"]


def test_latency_ring_percentiles_and_bound() -> None:
    ring = LatencyRing(size=100)
    assert ring.percentiles() == {"p50": None, "p99": None}
    ring.add_many(np.arange(1000, dtype=np.float64))  # only the last 100 are held
    p = ring.percentiles()
    assert p["p50"] == pytest.approx(949.5) and p["p99"] == pytest.approx(998.01)


def _accuracy(
    step_s: float, horizon: int, n_features: int = 1, season: int = 0
) -> tuple[Accuracy, StateStore]:
    store = StateStore(state_size=2, n_features=n_features, capacity=8)
    return Accuracy(store, step_s, horizon, season), store


def test_accuracy_scores_each_horizon_step() -> None:
    acc, store = _accuracy(step_s=60.0, horizon=3)
    s_slot, _ = store.acquire(["s"])
    # Forecast issued after bucket 0 for buckets 60, 120, 180.
    # The pipeline's order: a step's actual is scored before the forecast issued after it.
    acc.issued(s_slot, [0.0], np.array([[[1.0], [2.0], [3.0]]], dtype=np.float32))
    acc.actual(s_slot, [60.0], np.array([[1.5]]))  # step 1 of the first forecast
    acc.issued(s_slot, [60.0], np.array([[[10.0], [20.0], [30.0]]], dtype=np.float32))
    acc.actual(s_slot, [120.0], np.array([[2.0]]))  # step 2 of the first, step 1 of the second
    s = acc.summary()
    assert s["mae_by_step"] == [pytest.approx(4.25), pytest.approx(0.0), None]  # (0.5 + 8) / 2
    assert s["scored_by_step"] == [2, 1, 0]
    assert acc.sensor_summary("s") == s
    assert acc.sensor_summary("other") is None
    assert acc.take_dirty() == ["s"] and acc.take_dirty() == []


def test_accuracy_multi_feature_mean_and_reset() -> None:
    acc, store = _accuracy(step_s=1.0, horizon=2, n_features=2)
    slots, _ = store.acquire(["s"])
    forecast = np.array([[[1.0, 10.0], [0.0, 0.0]]], dtype=np.float32)
    acc.issued(slots, [0.0], forecast)
    store.remove("s")  # evicted: its pending forecasts go with its slot
    slots, _ = store.acquire(["s"])
    acc.actual(slots, [1.0], np.array([[0.0, 0.0]]))
    assert acc.summary()["scored_by_step"] == [0, 0]
    acc.issued(slots, [0.0], forecast)
    acc.actual(slots, [1.0], np.array([[2.0, 13.0]]))
    assert acc.summary()["mae_by_step"] == [pytest.approx(2.0), None]


def test_accuracy_memory_is_a_fixed_row_per_sensor() -> None:
    """Pending forecasts are one ring per lead (model/leads.py): nothing grows with time."""
    acc, store = _accuracy(step_s=1.0, horizon=4)
    slots, _ = store.acquire([f"s{s}" for s in range(5)])
    before = store.nbytes_per_sensor()
    for t in range(100):
        acc.actual(slots, [float(t)] * 5, np.zeros((5, 1)))
        acc.issued(slots, [float(t)] * 5, np.full((5, 4, 1), 1.0, dtype=np.float32))
    assert store.nbytes_per_sensor() == before
    # Every step of every forecast issued before t=99 has been scored: 1.0 off each time.
    assert acc.summary()["mae_by_step"] == [1.0] * 4
    assert acc.summary()["scored_by_step"] == [5 * 99, 5 * 98, 5 * 97, 5 * 96]


def test_accuracy_pairs_seasonal_naive_with_the_model_on_the_targets_it_scores() -> None:
    """Seasonal naive's error of target ``t`` is ``|v_t - v_{t-season}|`` at every lead up to a
    season; it is paired with the model's only where that actual arrived (bucket 17 never
    does: targets 17 and 20 have no pair) and only up to a season ahead (lead 4 > 3)."""
    season, horizon = 3, 4
    acc, store = _accuracy(step_s=1.0, horizon=horizon, season=season)
    slot, _ = store.acquire(["s"])
    other, _ = store.acquire(["quiet"])  # its actuals arrive, it has no forecasts
    rng = np.random.default_rng(0)
    actuals = {t: float(v) for t, v in enumerate(rng.normal(size=40)) if t != 17}
    issued: dict[int, np.ndarray] = {}
    model: list[list[float]] = [[] for _ in range(horizon)]
    naive: list[list[float]] = [[] for _ in range(horizon)]
    for t in range(40):
        if t in actuals:
            for k in range(1, season + 1):  # what the daemon should pair, by hand
                if t - k in issued and t - season in actuals:
                    model[k - 1].append(abs(issued[t - k][k - 1] - actuals[t]))
                    naive[k - 1].append(abs(actuals[t] - actuals[t - season]))
            acc.actual(slot, [float(t)], np.array([[actuals[t]]]))
            acc.actual(other, [float(t)], np.array([[0.0]]))
            if t >= 5:
                forecast = rng.normal(size=horizon).astype(np.float32)
                issued[t] = forecast.astype(np.float64)
                acc.issued(slot, [float(t)], forecast.reshape(1, horizon, 1))
    reference = acc.summary()["seasonal_naive"]
    assert isinstance(reference, dict) and reference["season"] == season
    assert reference["scored_by_step"] == [len(m) for m in model]
    assert reference["scored_by_step"][0] < acc.summary()["scored_by_step"][0]  # some unpaired
    assert reference["scored_by_step"][3] == 0  # lead 4 is more than a season ahead
    for k in range(season):
        assert reference["mae_by_step"][k] == pytest.approx(np.mean(naive[k]), abs=1e-6)
        assert reference["model_mae_by_step"][k] == pytest.approx(np.mean(model[k]), abs=1e-6)
        assert reference["skill_by_step"][k] == pytest.approx(
            sum(model[k]) / sum(naive[k]), abs=1e-4
        )
    assert acc.sensor_summary("s") == acc.summary()
    assert acc.sensor_summary("quiet") is None  # nothing of its own was scored


def test_accuracy_keeps_the_newest_actual_of_a_backlog_in_each_ring_cell() -> None:
    """Buckets 0 and 3 share a cell of a 3-step ring: in one call (a backlog) the newest
    lands, so target 6 is paired with bucket 3's actual."""
    acc, store = _accuracy(step_s=1.0, horizon=1, season=3)
    slot, _ = store.acquire(["s"])
    both = np.concatenate([slot, slot])
    acc.actual(both, [0.0, 3.0], np.array([[1.0], [5.0]]))
    acc.issued(slot, [5.0], np.array([[[2.0]]], dtype=np.float32))
    acc.actual(slot, [6.0], np.array([[4.0]]))
    reference = acc.summary()["seasonal_naive"]
    assert isinstance(reference, dict)
    assert reference["mae_by_step"] == [1.0]  # |4 - 5|, not |4 - 1|
    assert reference["model_mae_by_step"] == [2.0]
    assert reference["skill_by_step"] == [2.0]


def test_accuracy_without_a_season_it_can_keep() -> None:
    acc, store = _accuracy(step_s=1.0, horizon=2, season=MAX_SEASON + 1)
    assert acc.summary()["seasonal_naive"] is None and acc.reference is None
    columns = store.nbytes_per_sensor()
    small, small_store = _accuracy(step_s=1.0, horizon=2, season=MAX_SEASON)
    assert small.reference is not None and small_store.nbytes_per_sensor() > columns


def test_counters() -> None:
    c = Counters()
    c.reject("bad_json")
    c.reject("bad_json", 2)
    c.reject("late")
    d = c.as_dict()
    assert d["readings_rejected"] == {"bad_json": 3, "late": 1}
    assert d["readings_rejected_total"] == 4


def test_accuracy_loads_a_snapshot_of_the_earlier_grid_layout(tmp_path: Path) -> None:
    """The unreleased [target % H, lead] grid: its pending forecasts are dropped, the error
    sums so far are kept."""
    old = StateStore(state_size=2, n_features=1, capacity=8)
    old.add_column("acc_pending", (3, 3, 1), np.float32)[:] = 7.0
    old.add_column("acc_target", (3,), np.int32)[:] = 5
    old.add_column("acc_error_sum", (3,), np.float64)[:] = 2.5
    old.add_column("acc_error_count", (3,), np.int32)[:] = 1
    old.acquire(["s"])
    old.save(tmp_path / "snap", "sha")
    acc, store = _accuracy(step_s=1.0, horizon=3)
    store.load(tmp_path / "snap", "sha")
    (slot,) = store.slots(["s"])
    assert not acc.pending[slot].any() and not acc.issued_tag[slot].any()
    assert acc.sensor_summary("s") == {
        "scores": "ok_forecasts",
        "mae_by_step": [2.5, 2.5, 2.5],
        "scored_by_step": [1, 1, 1],
        "seasonal_naive": None,  # no season given
    }
