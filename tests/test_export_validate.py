"""Rollout validation and the baselines it compares against (no TensorFlow needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_lstm.export.options import parse_duration, parse_names, parse_scaler
from edge_lstm.export.validate import baseline_forecasts, rollout_forecasts, validation_report
from edge_lstm.model.runtime import StepModel

GOLDEN = Path(__file__).parent / "golden" / "golden.tflite"


def test_seasonal_naive_is_exact_on_a_periodic_series() -> None:
    t = np.arange(200, dtype=np.float64)
    series = np.sin(2 * np.pi * t / 24)[None, :, None]
    origins = list(range(30, 150))
    f = baseline_forecasts(series, origins, horizon=30, season=24)
    actual = series[:, np.asarray(origins)[:, None] + np.arange(1, 31)[None, :], :]
    np.testing.assert_allclose(f["seasonal_naive"], actual, atol=1e-12)
    assert np.max(np.abs(f["naive"] - actual)) > 0.5
    np.testing.assert_array_equal(f["naive"][0, 0, :, 0], series[0, 30, 0])


def test_rollout_matches_a_manual_step_loop() -> None:
    model = StepModel.load(GOLDEN)
    rng = np.random.default_rng(3)
    series = rng.normal(loc=(20, 50), scale=(5, 10), size=(2, 40, 2))
    origins = [10, 25]
    got = rollout_forecasts(model, series, origins, horizon=4)
    assert got.shape == (2, 2, 4, 2)
    scaled = model.meta.scaler.transform(series)
    for s in range(2):
        for j, origin in enumerate(origins):
            state = model.zero_state(1)
            for t in range(origin + 1):
                y, state = model.step(scaled[s, t][None], state)
            want = []
            for _ in range(4):
                want.append(model.meta.scaler.inverse(y)[0])
                y, state = model.step(y, state)
            np.testing.assert_allclose(got[s, j], np.stack(want), atol=1e-4)


def test_validation_report_shapes() -> None:
    model = StepModel.load(GOLDEN)
    rng = np.random.default_rng(4)
    series = rng.normal(loc=(20, 50), scale=(5, 10), size=(3, 60, 2))
    report = validation_report(model, series, first_origin=40, horizon=5, season=6)
    assert report.rows == 3 * (60 - 5 - 40)
    assert set(report.mae) == {"lstm", "naive", "seasonal_naive"}
    assert np.asarray(report.residual_q10).shape == (5, 2)
    assert np.all(np.asarray(report.residual_q10) <= np.asarray(report.residual_q90))


@pytest.mark.parametrize(
    ("text", "seconds"), [("3600", 3600.0), ("30min", 1800.0), ("1h", 3600.0), ("90s", 90.0)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-1h", "1 fortnight", "h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_parse_scaler_inline_and_file(tmp_path: Path) -> None:
    assert parse_scaler("1,2:3,4").mean == (1.0, 2.0)
    path = tmp_path / "s.json"
    path.write_text('{"mean": [5], "scale": [2]}')
    assert parse_scaler(str(path)).scale == (2.0,)
    for bad in ("1,2", "1:0", "a:1", str(tmp_path / "missing.json")):
        with pytest.raises(ValueError):
            parse_scaler(bad)
    assert parse_names("a, b") == ("a", "b")
    with pytest.raises(ValueError):
        parse_names("a,,b")
