"""The shipped default model runs in the interpreter at hand and is better than naive.

Runs in both CI environments (ai-edge-litert + numpy 2, tflite-runtime + numpy<2), so it proves
the committed model works in each. Only an interpreter and the shipped data are needed.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edge_lstm.model.forecaster import Forecaster
from edge_lstm.stream.timestamps import parse_timestamp as parse_time

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "tmy_hourly_temperature.csv"


def column(name: str) -> np.ndarray:
    with DATA.open() as fh:
        return np.asarray([float(row[name]) for row in csv.DictReader(fh)])


def times() -> np.ndarray:
    with DATA.open() as fh:
        return np.asarray([parse_time(row["time"]) for row in csv.DictReader(fh)])


def test_metadata_promises_what_the_readme_says(default_model: Path) -> None:
    fc = Forecaster.load(default_model)
    meta = fc.meta
    assert meta.features == ("temperature",) and meta.step_s == 3600 and meta.horizon == 12
    assert meta.parity is not None and meta.parity.max_abs_error <= meta.parity.tolerance
    assert meta.validation is not None
    mean = {k: float(np.mean(v)) for k, v in meta.validation.mae.items()}
    assert mean["lstm"] < mean["naive"] and mean["lstm"] < mean["seasonal_naive"]
    band = meta.validation.band(1)
    assert band is not None and band[0].shape == (12, 1) and (band[0] <= band[1]).all()
    assert default_model.stat().st_size < 300_000


RETRAINED = ROOT / "models" / "default.tflite"


def test_retrained_model_has_the_seasonal_inputs_and_beats_mstl() -> None:
    """The default is trained with scripts/train.py's defaults: seasonal lags, calendar, level."""
    meta = Forecaster.load(RETRAINED).meta
    assert meta.format_version == 2 and meta.inputs is not None
    assert meta.inputs.lags == (24, 168) and meta.inputs.level_window == 24
    assert meta.inputs.calendar == ("time_of_day", "day_of_week")
    assert meta.input_width == 7 and meta.features == ("temperature",)
    assert meta.validation is not None
    mean = {k: float(np.mean(v)) for k, v in meta.validation.mae.items()}
    assert mean["lstm"] < min(mean["naive"], mean["seasonal_naive"], mean["mstl"])
    # Three seeds of LSTM(32) merged into one LSTM(96): about 160 KB of float32 weights.
    assert [layer.units for layer in meta.layers] == [96]
    assert RETRAINED.stat().st_size < 200_000
    # ... refitted on training + validation (train.py's --refit), its band from before the refit.
    assert "refit on training + validation" in meta.info["trained_with"]
    assert meta.info["band_from"].endswith("(models before the refit)")
    # The companion was weighed on validation and left out: the ring stays a week of hours.
    assert meta.companion is None and meta.info["companion"].startswith("no companion")
    assert meta.history_len == 168


def test_retrained_model_forecasts_through_the_forecaster_with_times() -> None:
    fc = Forecaster.load(RETRAINED)
    stamps = times()
    series = column("miami")[:400]
    errors_lstm, errors_naive = [], []
    for t, value in enumerate(series[:-1]):
        fc.observe("miami", value, at=float(stamps[t]))
        if t >= fc.meta.warmup_steps:
            errors_lstm.append(abs(fc.forecast("miami", 1)[0, 0] - series[t + 1]))
            errors_naive.append(abs(value - series[t + 1]))
    assert len(errors_lstm) > 200 and np.isfinite(errors_lstm).all()
    assert np.mean(errors_lstm) < np.mean(errors_naive)


def test_default_model_beats_naive_one_step_ahead_on_real_data(default_model: Path) -> None:
    fc = Forecaster.load(default_model)
    errors_lstm, errors_naive = [], []
    stamps = times()
    for site in ("greensboro", "sand_point", "miami"):
        series = column(site)[:400]
        for t, value in enumerate(series[:-1]):
            fc.observe(site, value, at=float(stamps[t]))
            if t >= fc.meta.warmup:
                errors_lstm.append(abs(fc.forecast(site, 1)[0, 0] - series[t + 1]))
                errors_naive.append(abs(value - series[t + 1]))
    assert np.isfinite(errors_lstm).all()
    assert np.mean(errors_lstm) < np.mean(errors_naive)
