"""Forecaster properties on the committed golden model (hypothesis where inputs vary)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_lstm.errors import StateFileError
from edge_lstm.model.forecaster import Forecaster
from edge_lstm.model.runtime import StepModel

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)
vector = st.lists(finite, min_size=2, max_size=2)


@pytest.fixture(scope="module")
def step_model(golden_model: Path) -> StepModel:
    return StepModel.load(golden_model)


def test_load_reads_sidecar_and_scaler(golden_model: Path) -> None:
    fc = Forecaster.load(golden_model)
    assert fc.n_features == 2
    fc.observe("s1", [21.5, 3.0])
    out = fc.forecast("s1", horizon=12)
    assert out.shape == (12, 2) and out.dtype == np.float32
    assert fc.forecast("s1").shape == (fc.meta.horizon, 2)


def test_forecast_matches_manual_loop_in_original_units(step_model: StepModel) -> None:
    fc = Forecaster(step_model)
    scaler = step_model.meta.scaler
    values = [[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]]
    state = step_model.zero_state(1)
    for v in values:
        fc.observe("s", v)
        y, state = step_model.step(scaler.transform([v]), state)
    expected = [scaler.inverse(y)[0]]
    for _ in range(4):
        y, state = step_model.step(y, state)
        expected.append(scaler.inverse(y)[0])
    np.testing.assert_allclose(fc.forecast("s", 5), np.stack(expected), rtol=1e-6, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([f"s{i}" for i in range(20)]),
        st.lists(vector, min_size=1, max_size=6),
        min_size=1,
        max_size=20,
    ),
    st.integers(1, 8),
)
def test_batch_equals_one_by_one(
    step_model: StepModel, series: dict[str, list[list[float]]], horizon: int
) -> None:
    batched, single = Forecaster(step_model), Forecaster(step_model)
    longest = max(len(v) for v in series.values())
    for k in range(longest):
        batch = {s: v[k] for s, v in series.items() if k < len(v)}
        batched.observe_batch(batch)
        for s, value in batch.items():
            single.observe(s, value)
    ids = sorted(series)
    together = batched.forecast_batch(ids, horizon)
    scale = np.abs(together).max() + 1.0
    for i, s in enumerate(ids):
        np.testing.assert_allclose(
            together[i], single.forecast(s, horizon), rtol=1e-5, atol=1e-5 * scale
        )


@settings(max_examples=25, deadline=None)
@given(st.lists(vector, min_size=1, max_size=8), st.lists(vector, min_size=1, max_size=8))
def test_forecast_does_not_mutate_and_sensors_are_isolated(
    step_model: StepModel, mine: list[list[float]], other: list[list[float]]
) -> None:
    quiet, busy = Forecaster(step_model), Forecaster(step_model)
    for k, value in enumerate(mine):
        quiet.observe("me", value)
        batch = {"me": value}
        if k < len(other):
            batch["other"] = other[k]
        busy.observe_batch(batch)
        busy.forecast_batch(list(batch), 5)
    np.testing.assert_allclose(
        quiet.forecast("me", 6), busy.forecast("me", 6), rtol=1e-5, atol=1e-4
    )


@settings(max_examples=40, deadline=None)
@given(
    st.one_of(
        st.just(float("nan")),
        st.just(float("inf")),
        st.just(float("-inf")),
        st.lists(finite, min_size=0, max_size=5).filter(lambda v: len(v) != 2),
        st.tuples(finite, st.just(float("nan"))).map(list),
        st.text(max_size=3),
        st.none(),
    )
)
def test_bad_input_is_value_error_naming_sensor_and_leaves_state(
    step_model: StepModel, bad: object
) -> None:
    fc = Forecaster(step_model)
    fc.observe("sensor-7", [1.0, 2.0])
    before = fc.forecast("sensor-7", 3)
    with pytest.raises(ValueError, match="sensor-7"):
        fc.observe("sensor-7", bad)  # type: ignore[arg-type]
    np.testing.assert_array_equal(fc.forecast("sensor-7", 3), before)
    assert fc.steps_seen("sensor-7") == 1


def test_fill_uses_own_prediction(step_model: StepModel) -> None:
    filled, fed = Forecaster(step_model), Forecaster(step_model)
    for fc in (filled, fed):
        fc.observe("s", [1.0, 2.0])
    prediction = fed.forecast("s", 1)[0]
    filled.fill(["s"])
    fed.observe("s", prediction)
    np.testing.assert_allclose(filled.forecast("s", 4), fed.forecast("s", 4), rtol=1e-4, atol=1e-4)
    assert filled.steps_seen("s") == 1, "a filled step is not an observed one"


def test_capacity_evicts_least_recent(step_model: StepModel) -> None:
    fc = Forecaster(step_model, max_sensors=2)
    fc.observe("a", [1, 1])
    fc.observe("b", [1, 1])
    assert fc.observe_batch({"c": [2, 2], "b": [1, 1]}) == ["a"]
    assert sorted(fc.sensors()) == ["b", "c"]


def test_warmup(step_model: StepModel) -> None:
    fc = Forecaster(step_model)
    for _ in range(max(1, step_model.meta.warmup) - 1):
        fc.observe("s", [0.0, 0.0])
        assert not fc.is_warm("s")
    fc.observe("s", [0.0, 0.0])
    assert fc.is_warm("s")


def test_save_and_load_state(tmp_path: Path, step_model: StepModel) -> None:
    fc = Forecaster(step_model)
    fc.observe_batch({"a": [1, 2], "b": [3, 4]})
    fc.save_state(tmp_path / "s.bin", extra={"k": 1})
    restored = Forecaster(step_model)
    assert restored.load_state(tmp_path / "s.bin") == {"k": 1}
    np.testing.assert_array_equal(
        restored.forecast_batch(["a", "b"], 4), fc.forecast_batch(["a", "b"], 4)
    )
    (tmp_path / "s.bin").write_bytes(b"junk")
    with pytest.raises(StateFileError):
        restored.load_state(tmp_path / "s.bin")
    assert sorted(restored.sensors()) == ["a", "b"]


@pytest.mark.parametrize("horizon", [0, -1, 10**9, 2.5, True])
def test_bad_horizon(step_model: StepModel, horizon: object) -> None:
    fc = Forecaster(step_model)
    fc.observe("s", [1, 1])
    with pytest.raises(ValueError, match="horizon"):
        fc.forecast("s", horizon)  # type: ignore[arg-type]
