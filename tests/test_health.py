"""Health bookkeeping: rate-limited logs, latency percentiles, running accuracy."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from edge_lstm.daemon.health import AccuracyTracker, Counters, LatencyRing, RateLimitedLog


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


def test_accuracy_scores_each_horizon_step() -> None:
    acc = AccuracyTracker(step_s=60.0, horizon=3)
    # Forecast issued after bucket 0 for buckets 60, 120, 180.
    acc.issued("s", 0.0, np.array([[1.0], [2.0], [3.0]], dtype=np.float32))
    acc.issued("s", 60.0, np.array([[10.0], [20.0], [30.0]], dtype=np.float32))
    assert acc.actual("s", 60.0, [1.5]) == 1  # step 1 of the first forecast
    assert acc.actual("s", 120.0, [2.0]) == 2  # step 2 of the first, step 1 of the second
    s = acc.summary()
    assert s["mae_by_step"] == [pytest.approx(4.25), pytest.approx(0.0), None]  # (0.5 + 8) / 2
    assert s["scored_by_step"] == [2, 1, 0]
    assert acc.sensor_summary("s") == s
    assert acc.sensor_summary("other") is None
    assert acc.take_dirty() == ["s"] and acc.take_dirty() == []


def test_accuracy_multi_feature_mean_and_forget() -> None:
    acc = AccuracyTracker(step_s=1.0, horizon=2)
    acc.issued("s", 0.0, np.array([[1.0, 10.0], [0.0, 0.0]], dtype=np.float32))
    acc.forget("s")
    assert acc.actual("s", 1.0, [0.0, 0.0]) == 0
    acc.issued("s", 0.0, np.array([[1.0, 10.0], [0.0, 0.0]], dtype=np.float32))
    assert acc.actual("s", 1.0, [2.0, 13.0]) == 1
    assert acc.summary()["mae_by_step"] == [pytest.approx(2.0), None]


def test_accuracy_memory_is_bounded() -> None:
    acc = AccuracyTracker(step_s=1.0, horizon=4, max_sensors=5)
    for t in range(100):
        for s in range(20):
            acc.actual(f"s{s}", float(t), [0.0])
            acc.issued(f"s{s}", float(t), np.zeros((4, 1), dtype=np.float32))
    assert len(acc._pending) <= 5 and len(acc._per_sensor) <= 5
    assert all(len(q) <= 4 for q in acc._pending.values())


def test_counters() -> None:
    c = Counters()
    c.reject("bad_json")
    c.reject("bad_json", 2)
    c.reject("late")
    d = c.as_dict()
    assert d["readings_rejected"] == {"bad_json": 3, "late": 1}
    assert d["readings_rejected_total"] == 4
