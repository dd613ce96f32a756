"""The linear seasonal companion: its closed form, its fit and share, its metadata, and its blend
on the device (a real ``.tflite`` in the real interpreter, on the shipped electricity series)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge_lstm.errors import ModelError
from edge_lstm.model.companion import Companion, choose_share, fit_companion
from edge_lstm.model.features import InputSpec
from edge_lstm.model.forecaster import Forecaster
from edge_lstm.model.metadata import ModelMeta, sidecar_path
from edge_lstm.offline.csvdata import load_csv

ROOT = Path(__file__).resolve().parents[1]
DAY = 24


def _electricity() -> np.ndarray:
    series = load_csv(ROOT / "data" / "electricity_hourly.csv")
    values = series.column("electricity")
    assert np.isfinite(values[:3000]).all()
    return values[:3000].astype(np.float32).astype(np.float64)  # as the ring keeps them


def _companion(share: tuple[float, ...] = (0.25, 0.5, 0.75)) -> Companion:
    return Companion(
        lags=(DAY, 2 * DAY, 7 * DAY),
        weights=((0.5,), (0.25,), (0.5,)),
        constant=(3.0,),
        share=share,
    )


def _chain(values: np.ndarray, companion: Companion, steps: int) -> np.ndarray:
    """The one-step definition, applied step after step on the series' own extension."""
    extended = list(values)
    for _ in range(steps):
        t = len(extended) - 1
        change = companion.constant[0] + sum(
            w[0] * (extended[t + 1 - lag] - extended[t - lag])
            for lag, w in zip(companion.lags, companion.weights, strict=True)
        )
        extended.append(extended[t] + change)
    return np.asarray(extended[len(values) :])


def test_the_closed_form_is_the_one_step_rule_applied_step_after_step() -> None:
    values = _electricity()
    companion = _companion()
    recent = values[1000 : 1000 + companion.history_len]
    got = companion.forecast(recent[None, :, None], companion.horizon)[0, :, 0]
    np.testing.assert_allclose(got, _chain(recent, companion, companion.horizon), rtol=1e-12)


def test_the_fit_beats_last_weeks_change_on_the_data_it_was_fitted_on() -> None:
    values = _electricity()
    lags = tuple(DAY * k for k in range(1, 8))
    weights, constant = fit_companion([values[:, None]], lags)
    assert weights.shape == (7, 1) and constant.shape == (1,)
    fitted = Companion(
        lags, tuple((float(w),) for w in weights[:, 0]), (float(constant[0]),), (0.0,)
    )
    weekly = Companion(
        lags, tuple((1.0 if lag == 7 * DAY else 0.0,) for lag in lags), (0.0,), (0.0,)
    )
    starts = np.arange(0, len(values) - fitted.history_len - 1, 5)
    windows = np.stack([values[s : s + fitted.history_len] for s in starts])[:, :, None]
    actual = values[starts + fitted.history_len]
    error = {
        name: np.abs(c.forecast(windows, 1)[:, 0, 0] - actual).mean()
        for name, c in (("fitted", fitted), ("weekly", weekly))
    }
    assert error["fitted"] < 0.9 * error["weekly"], error


def test_the_share_is_the_blend_with_the_least_error_per_step() -> None:
    rng = np.random.default_rng(0)
    lstm = rng.normal(0, 1, (500, 3, 1))
    lin = rng.normal(0, 1, (500, 3, 1))
    lin[:, 0] = 0.0  # the companion exact at step 1
    lstm[:, 2] = 0.0  # the LSTM exact at step 3
    share = choose_share(lstm, lin)
    assert share[0] == 0.0 and share[2] == 1.0
    assert 0.3 <= share[1] <= 0.7  # two equally good, independent forecasts: about half each


def test_metadata_round_trip_and_one_line_errors() -> None:
    companion = _companion()
    assert Companion.from_doc(companion.to_doc()) == companion
    bad = {
        "share": ([1.5], r"share needs one value in \[0, 1\]"),
        "lags": ([48, 24, 168], "ascending"),
        "weights": ([[0.5]], "one row per lag"),
        "constant": (["x"], "'x' is not a number"),
    }
    for key, (value, message) in bad.items():
        doc = {**companion.to_doc(), key: value}
        with pytest.raises(ValueError, match=message):
            Companion.from_doc(doc)
    with pytest.raises(ValueError, match="more than the shortest lag"):
        replace(companion, share=(0.5,) * (DAY + 1))
    with pytest.raises(ValueError, match="missing key 'share'"):
        Companion.from_doc({k: v for k, v in companion.to_doc().items() if k != "share"})


def _model(tmp_path: Path, companion: Companion | None) -> Path:
    pytest.importorskip("tensorflow")
    from tests.covariate_model import build_model, scaler_for

    spec = InputSpec(lags=(DAY, 7 * DAY), calendar=(), level_window=DAY)
    path = build_model(tmp_path / "m.tflite", spec, scaler_for(_electricity()[:, None], spec))
    meta = ModelMeta.load(sidecar_path(path))
    replace(meta, companion=companion).save(sidecar_path(path))
    return path


def test_metadata_with_a_companion_loads_and_one_without_inputs_is_refused(tmp_path: Path) -> None:
    path = _model(tmp_path, _companion())
    meta = ModelMeta.load(sidecar_path(path))
    assert meta.companion == _companion()
    assert meta.history_len == 7 * DAY + 1  # the ring reaches the companion's longest lag
    with pytest.raises(ValueError, match="companion needs a model with inputs"):
        replace(meta, inputs=None)
    text = meta.to_json().replace('"format_version": 2', '"format_version": 1')
    text = text.replace('"inputs"', '"no_inputs"')
    with pytest.raises(ModelError, match="companion needs format_version 2"):
        ModelMeta.from_json(text)


def test_inspect_says_what_the_companion_reads(tmp_path: Path) -> None:
    from edge_lstm.cli.inspect import describe

    meta = ModelMeta.load(sidecar_path(_model(tmp_path, _companion())))
    lines = describe(meta, 1024, ["LSTM"], "ai-edge-litert")
    assert (
        "companion  3 seasonal changes (lags 24..168 steps), LSTM share per step 0.25, 0.5, "
        "0.75; history 169 steps a sensor"
    ) in lines


def _with_and_without(tmp_path: Path, companion: Companion) -> tuple[Forecaster, Forecaster]:
    """Forecasters of one model with ``companion`` and without any."""
    return (
        Forecaster.load(_model(tmp_path / "a", companion)),
        Forecaster.load(_model(tmp_path / "b", None)),
    )


def test_the_device_blends_once_the_history_reaches_the_longest_lag(tmp_path: Path) -> None:
    companion = _companion()
    blended, alone = _with_and_without(tmp_path, companion)
    values = _electricity()
    for t in range(companion.history_len + 30):
        for fc in (blended, alone):
            fc.observe("s", float(values[t]))
        if t == companion.history_len - 2:  # one value short: the LSTM's forecast alone
            np.testing.assert_array_equal(blended.forecast("s", 6), alone.forecast("s", 6))
    seen = companion.history_len + 30
    lstm = alone.forecast("s", 6)[:, 0].astype(np.float64)
    lin = companion.forecast(values[seen - companion.history_len : seen][None, :, None], 3)[0, :, 0]
    share = np.asarray(companion.share)
    want = np.concatenate([share * lstm[:3] + (1 - share) * lin, lstm[3:]])  # steps 4..6: LSTM
    np.testing.assert_allclose(blended.forecast("s", 6)[:, 0], want, rtol=1e-6)


def test_a_batch_blends_only_its_sensors_whose_history_reaches_the_longest_lag(
    tmp_path: Path,
) -> None:
    companion = _companion()
    blended, alone = _with_and_without(tmp_path, companion)
    values = _electricity()
    for t in range(companion.history_len + 5):
        for fc in (blended, alone):
            fc.observe("old", float(values[t]))
            if t >= 10:  # "young" is 5 values short of the longest lag
                fc.observe("young", float(values[t]))
    batch = blended.forecast_batch(["old", "young"], 6)
    np.testing.assert_array_equal(batch[0], blended.forecast("old", 6))
    assert not np.array_equal(batch[0], alone.forecast("old", 6))
    np.testing.assert_array_equal(batch[1], alone.forecast("young", 6))


def test_a_restored_snapshot_forecasts_as_the_uninterrupted_run(tmp_path: Path) -> None:
    companion = _companion()
    path = _model(tmp_path, companion)
    live = Forecaster.load(path)
    values = _electricity()
    for t in range(companion.history_len + 5):
        live.observe("s", float(values[t]))
    live.save_state(tmp_path / "state.snapshot")
    restored = Forecaster.load(path)
    restored.load_state(tmp_path / "state.snapshot")
    for t in range(companion.history_len + 5, companion.history_len + 9):
        for fc in (live, restored):
            fc.observe("s", float(values[t]))
        np.testing.assert_array_equal(restored.forecast("s", 4), live.forecast("s", 4))


def _sibling(path: Path, companion: Companion, folder: Path) -> Path:
    """The same model file with another companion in its sidecar."""
    folder.mkdir()
    copy = folder / path.name
    copy.write_bytes(path.read_bytes())
    meta = ModelMeta.load(sidecar_path(path))
    replace(meta, companion=companion).save(sidecar_path(copy))
    return copy


def _two_weights(tmp_path: Path) -> tuple[Forecaster, Forecaster, Path]:
    """Forecasters of one model file with the companion and with other weights, fed the same
    values past the longest lag; and the other's path."""
    companion = _companion()
    path = _model(tmp_path, companion)
    other = replace(companion, weights=((0.2,), (0.6,), (0.1,)), constant=(-2.0,))
    other_path = _sibling(path, other, tmp_path / "other")
    one, two = Forecaster.load(path), Forecaster.load(other_path)
    values = _electricity()
    for t in range(companion.history_len + 7):
        for fc in (one, two):
            fc.observe("s", float(values[t]))
    return one, two, other_path


def test_the_sums_kept_as_values_arrive_equal_the_sums_from_the_ring(tmp_path: Path) -> None:
    """Observed and filled steps, and a sensor reset on the way: the kept sums are those a
    fresh computation from the ring gives."""
    companion = _companion()
    fc = Forecaster.load(_model(tmp_path, companion))
    assert fc.inputs is not None and fc.inputs.sums is not None
    sums = fc.inputs.sums
    values = _electricity()
    for t in range(60):
        fc.observe("s", float(values[t]))
    fc.reset("s")
    for t in range(60, 60 + companion.history_len + 40):
        if t % 29 == 0:
            fc.fill(["s"])
        else:
            fc.observe("s", float(values[t]))
    slot = fc.store.slots(["s"])
    kept = sums.sums[slot].copy()
    sums.sums[slot] = np.nan
    sums.rebuild(slot)
    np.testing.assert_allclose(sums.sums[slot], kept, rtol=1e-12)


def test_a_snapshot_restores_the_sums_of_the_companion_it_is_loaded_with(tmp_path: Path) -> None:
    """Snapshots do not keep the sums: restored under the same model file with other weights,
    the forecast is that model's uninterrupted one."""
    saved, straight, other = _two_weights(tmp_path)
    saved.save_state(tmp_path / "state.snapshot")
    restored = Forecaster.load(other)
    restored.load_state(tmp_path / "state.snapshot")
    np.testing.assert_array_equal(restored.forecast("s", 4), straight.forecast("s", 4))
    assert not np.array_equal(saved.forecast("s", 4), straight.forecast("s", 4))


def test_a_reloaded_model_with_other_weights_keeps_the_rings_and_recomputes_the_sums(
    tmp_path: Path,
) -> None:
    from edge_lstm.model.runtime import StepModel

    live, straight, other = _two_weights(tmp_path)
    assert live.replace_model(StepModel.load(other))  # same layout: the sensors stay warm
    values, seen = _electricity(), _companion().history_len + 7
    for t in range(seen, seen + 3):
        for fc in (live, straight):
            fc.observe("s", float(values[t]))
        np.testing.assert_array_equal(live.forecast("s", 4), straight.forecast("s", 4))


def test_a_sensor_handed_over_gets_the_sums_of_the_receivers_companion(tmp_path: Path) -> None:
    """Between daemons (``broker_state``, shards) a sensor travels as ``row``/``put_row``: the
    sums are not sent, the receiver computes them for its own weights."""
    sender, straight, other = _two_weights(tmp_path)
    receiver = Forecaster.load(other)
    row = sender.store.row("s")
    assert "companion_sums" not in row
    receiver.store.put_row("s", row)
    np.testing.assert_array_equal(receiver.forecast("s", 4), straight.forecast("s", 4))
