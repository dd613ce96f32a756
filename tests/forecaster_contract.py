"""The contract every forecaster keeps (in the spirit of river's ``checks/time_series.py``).

``check_forecaster(make)`` runs every check on fresh instances from ``make()``; the LSTM
``Forecaster`` and the naive baselines all pass it (tests/test_contract.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

from edge_lstm.errors import UnknownSensorError
from edge_lstm.model.forecaster import SensorForecaster

Make = Callable[[], SensorForecaster]


def _series(n_features: int, steps: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(10.0, 3.0, size=n_features) for _ in range(steps)]


def _feed(fc: SensorForecaster, sensor_id: str, values: list[np.ndarray]) -> None:
    for v in values:
        fc.observe(sensor_id, v)


def _close(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def check_shape_and_finite(make: Make) -> None:
    fc = make()
    _feed(fc, "s1", _series(fc.n_features, 6, 1))
    out = fc.forecast("s1", horizon=7)
    assert out.shape == (7, fc.n_features)
    assert np.isfinite(out).all()
    assert fc.forecast_batch(["s1", "s1"], horizon=3).shape == (2, 3, fc.n_features)
    assert fc.steps_seen("s1") == 6
    assert fc.steps_seen("never") == 0


def check_forecast_does_not_mutate(make: Make) -> None:
    values = _series(make().n_features, 8, 2)
    probe, plain = make(), make()
    for v in values:
        probe.observe("s", v)
        probe.forecast("s", horizon=5)
        plain.observe("s", v)
    _close(probe.forecast("s", horizon=5), plain.forecast("s", horizon=5))
    first = probe.forecast("s", horizon=4)
    _close(probe.forecast("s", horizon=4), first)


def check_batch_equals_one_by_one(make: Make) -> None:
    n = make().n_features
    series = {f"s{i}": _series(n, 5, 10 + i) for i in range(5)}
    batched, single = make(), make()
    for step in range(5):
        batched.observe_batch({s: v[step] for s, v in series.items()})
        for s, v in series.items():
            single.observe(s, v[step])
    ids = list(series)
    together = batched.forecast_batch(ids, horizon=6)
    for i, s in enumerate(ids):
        _close(together[i], single.forecast(s, horizon=6))


def check_isolation(make: Make) -> None:
    n = make().n_features
    alone, crowded = make(), make()
    mine = _series(n, 6, 3)
    noise = _series(n, 6, 4)
    for step in range(6):
        alone.observe("me", mine[step])
        crowded.observe_batch({"other": noise[step] * 100.0, "me": mine[step]})
        crowded.reset("third") if step == 3 else None
    _close(alone.forecast("me", 5), crowded.forecast("me", 5))


def check_bad_input_leaves_state(make: Make) -> None:
    fc = make()
    n = fc.n_features
    _feed(fc, "s", _series(n, 4, 5))
    before = fc.forecast("s", 4)
    bad_values = [float("nan"), float("inf"), [1.0] * (n + 1), "warm"]
    for bad in bad_values:
        with pytest.raises(ValueError, match="'s'"):
            fc.observe("s", bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="'s'"):
            fc.observe_batch({"ok": [1.0] * n, "s": bad})  # type: ignore[dict-item]
    _close(fc.forecast("s", 4), before)
    assert fc.steps_seen("s") == 4
    assert fc.steps_seen("ok") == 0, "a rejected batch must apply nothing"


def check_unknown_and_reset(make: Make) -> None:
    fc, fresh = make(), make()
    n = fc.n_features
    with pytest.raises(UnknownSensorError, match="nobody"):
        fc.forecast("nobody", 3)
    _feed(fc, "s", _series(n, 5, 6))
    fc.reset("s")
    assert fc.steps_seen("s") == 0
    after = _series(n, 3, 7)
    _feed(fc, "s", after)
    _feed(fresh, "s", after)
    _close(fc.forecast("s", 5), fresh.forecast("s", 5))


def check_step_time_is_accepted(make: Make) -> None:
    """``at`` (epoch seconds, or one per sensor) is accepted; without calendar inputs it
    changes nothing."""
    with_time, without = make(), make()
    values = _series(with_time.n_features, 5, 7)
    for k, v in enumerate(values):
        with_time.observe("s1", v, at=1_700_000_000.0 + 3600 * k)
        without.observe("s1", v)
    with_time.observe_batch({"s2": values[0]}, at={"s2": 1_700_000_000.0})
    without.observe_batch({"s2": values[0]})
    _close(with_time.forecast("s1", 4), without.forecast("s1", 4))
    _close(with_time.forecast("s2", 4), without.forecast("s2", 4))


CHECKS = [
    check_step_time_is_accepted,
    check_shape_and_finite,
    check_forecast_does_not_mutate,
    check_batch_equals_one_by_one,
    check_isolation,
    check_bad_input_leaves_state,
    check_unknown_and_reset,
]


def checks() -> Iterator[Callable[[Make], None]]:
    yield from CHECKS
