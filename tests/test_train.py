"""``scripts/train.py`` end to end on a slice of the shipped data (tiny model, few epochs)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.train
pytest.importorskip("tensorflow")

from edge_lstm.export.options import parse_duration  # noqa: E402
from edge_lstm.model.features import training_inputs  # noqa: E402
from edge_lstm.model.metadata import ModelMeta  # noqa: E402
from edge_lstm.model.runtime import StepModel  # noqa: E402
from edge_lstm.offline.trainset import training_windows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str) -> object:
    """``scripts/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f"{name}_script", ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[f"{name}_script"] = module
    spec.loader.exec_module(module)
    return module


def _train_module() -> object:
    return _script("train")


def _slice(tmp: Path, rows: int = 1201) -> Path:
    lines = (ROOT / "data" / "tmy_hourly_temperature.csv").read_text().splitlines()
    (tmp / "slice.csv").write_text("\n".join(lines[:rows]) + "\n")  # 50 days
    return tmp / "slice.csv"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("train")
    train = _train_module()
    train.main(  # type: ignore[attr-defined]
        [
            "--data", str(_slice(tmp)), "--columns", "greensboro,miami",
            "--feature-name", "temperature", "--step", "2h", "--units", "4",
            "--epochs", "2", "--horizon", "6", "--timezone", "America/New_York",
            "--no-peer", "--verbose", "0", "--out", str(tmp / "tiny"),
        ]
    )  # fmt: skip
    return tmp / "tiny.tflite"


def test_train_writes_keras_tflite_and_metadata(trained: Path) -> None:
    assert trained.with_suffix(".keras").is_file()
    meta = ModelMeta.load(trained.with_suffix(".json"))
    assert meta.features == ("temperature",)
    assert meta.step_s == 7200.0 and meta.horizon == 6
    assert meta.parity is not None and meta.parity.max_abs_error <= meta.parity.tolerance
    # Three seeds (the default) of LSTM(4), merged into one LSTM(12) that the export proved.
    assert meta.info["trained_with"].startswith("1x LSTM(12) = mean of 3 LSTM(4)")
    assert [layer.units for layer in meta.layers] == [12]
    # Whether a companion helps was decided on validation, and said; one kept blends the horizon.
    assert meta.info["companion"].startswith(("companion of", "no companion"))
    assert meta.companion is None or len(meta.companion.share) == meta.horizon


def test_the_shipped_model_is_refitted_and_its_band_is_out_of_sample(trained: Path) -> None:
    """The default refit is recorded; the band and the validation figure come from the models
    before it (a refitted model has seen the validation part)."""
    info = ModelMeta.load(trained.with_suffix(".json")).info
    assert "refit on training + validation for " in info["trained_with"]
    assert info["band_from"].endswith("(models before the refit)")
    assert info["validation_lstm_vs_seasonal_naive"] > 0


@pytest.mark.parametrize("refit", [True, False])
def test_refit_trains_each_seed_again_on_training_and_validation(
    tmp_path: Path, refit: bool
) -> None:
    train = _train_module()
    args = train.parse_args(  # type: ignore[attr-defined]
        [
            "--data", str(_slice(tmp_path)), "--columns", "greensboro", "--step", "2h",
            "--units", "3", "--epochs", "2", "--seeds", "2", "--out", str(tmp_path / "m"),
            "--verbose", "0", *([] if refit else ["--no-refit"]),
        ]
    )  # fmt: skip
    grid = train.grid_of(args)  # type: ignore[attr-defined]
    n = grid.values.shape[1]
    split = (int(n * 0.6), int(n * 0.75))
    spec = train.choose_inputs(args, split[0], grid.step_s)  # type: ignore[attr-defined]
    scaler = train.fit_scaler(grid, split[0], spec)  # type: ignore[attr-defined]
    windows = training_windows(spec, grid, scaler, split)
    # The refit's windows: the training stride over training and validation, never held out.
    part = grid.values[0][: split[1]], grid.times_s[: split[1]]
    y = training_inputs(*part, spec, scaler)[1]
    width = windows.x.shape[1]
    np.testing.assert_array_equal(windows.all_x[: len(windows.x)], windows.x)
    assert len(windows.all_x) > len(windows.x)
    last = windows.all_y[-1]
    end = next(e for e in range(len(y), width - 1, -1) if np.array_equal(y[e - width : e], last))
    assert split[0] - 1 < end <= split[1] - 1
    trained = train.train(args, spec, grid, scaler, split)  # type: ignore[attr-defined]
    assert len(trained.epochs) == 2 and all(1 <= e <= 2 for e in trained.epochs)
    if refit:
        assert trained.model is not trained.selected
        assert trained.refit_epochs == trained.epochs  # no deadline came: as many as chosen
    else:
        assert trained.model is trained.selected and trained.refit_epochs == []


def test_rescore_band_measures_what_the_training_report_measured(trained: Path) -> None:
    """``scripts/rescore_band.py`` replays the held-out part as train.py's report did (the split
    and span from the command in the metadata): with the same calibration it finds the same
    coverage, and the sidecar it writes back is the same file."""
    sidecar = trained.with_suffix(".json")
    before = sidecar.read_text()
    old, new = _script("rescore_band").rescore(trained)  # type: ignore[attr-defined]
    assert len(new) == 6 and all(0.0 < c <= 1.0 for c in new)
    assert new == old
    assert sidecar.read_text() == before


def test_default_inputs_follow_the_step_and_the_data(trained: Path) -> None:
    """2 h steps over 50 days: a day is 12 steps, a week 84 (the training part holds 3)."""
    spec = ModelMeta.load(trained.with_suffix(".json")).inputs
    assert spec is not None
    assert spec.lags == (12, 84) and spec.level_window == 12
    assert spec.calendar == ("time_of_day", "day_of_week")
    assert spec.timezone == "America/New_York"


def test_train_validation_report_is_complete(trained: Path) -> None:
    meta = StepModel.load(trained).meta
    v = meta.validation
    assert v is not None and v.horizon == 6 and v.season == 12 and v.rows > 0
    assert set(v.mae) == {"lstm", "naive", "seasonal_naive"}
    assert all(len(maes) == 6 and all(m > 0 for m in maes) for maes in v.mae.values())
    band = v.band(1)
    assert band is not None
    lo, hi = band
    assert lo.shape == hi.shape == (6, 1) and np.all(lo <= hi)
    coverage = meta.info["band_coverage_held_out"]
    assert len(coverage) == 6 and all(0.0 <= c <= 1.0 for c in coverage)


def test_scaler_comes_from_the_training_part(trained: Path) -> None:
    meta = StepModel.load(trained).meta
    # Next value minus the mean of the last day: centred near 0, a spread of about a degree.
    assert abs(meta.scaler.mean[0]) < 2.0
    assert 0.3 < meta.scaler.scale[0] < 10.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--columns", "greensboro", "--step", "1hour"], "'1hour' is not a duration"),
        (["--columns", "living"], "column 'living' not found"),
        (["--columns", "greensboro", "--timezone", "Mars/Olympus"], "unknown time zone"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    train = _train_module()
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--data", str(_slice(tmp_path)), "--out", str(tmp_path / "m"), *args])  # type: ignore[attr-defined]
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and err[0].startswith("error:") and message in err[0]


def test_a_word_in_a_number_column_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _slice(tmp_path)
    lines = data.read_text().splitlines()
    lines[5] = lines[5].split(",")[0] + ",living,1.0,2.0"
    data.write_text("\n".join(lines) + "\n")
    train = _train_module()
    with pytest.raises(SystemExit):
        train.main(["--data", str(data), "--out", str(tmp_path / "m")])  # type: ignore[attr-defined]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'living' is not a number" in err[0]


@pytest.mark.parametrize(
    ("step", "n_steps", "lags", "calendar"),
    [
        ("1h", 10_000, (24, 168), ("time_of_day", "day_of_week")),
        ("1h", 400, (24,), ("time_of_day", "day_of_week")),  # under 3 weeks: no weekly lag
        ("1h", 300, (24,), ("time_of_day",)),  # under 2 weeks: no weekday either
        ("30min", 2_000, (48, 336), ("time_of_day", "day_of_week")),
        ("1d", 1_000, (7,), ("day_of_week",)),  # a daily step has no daily cycle
    ],
)
def test_default_inputs_follow_the_step(
    step: str, n_steps: int, lags: tuple[int, ...], calendar: tuple[str, ...]
) -> None:
    train = _train_module()
    args = train.parse_args(["--data", "x.csv", "--out", "m", "--step", step])  # type: ignore[attr-defined]
    spec = train.choose_inputs(args, n_steps, parse_duration(step))  # type: ignore[attr-defined]
    assert spec.lags == lags and spec.calendar == calendar


@pytest.mark.parametrize("skip", [False, True])
def test_merged_seeds_compute_exactly_the_mean_of_their_models(skip: bool) -> None:
    """The block-diagonal LSTM(kU) is the k models side by side, over a whole sequence; with the
    input skip the head's input weights are averaged too."""
    import keras

    spec = importlib.util.spec_from_file_location("seeds", ROOT / "scripts" / "seed_ensemble.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    models = []
    for seed in range(3):
        keras.utils.set_random_seed(seed)
        models.append(module.forecaster_model(5, 6, 1, skip))
    x = np.random.default_rng(0).normal(size=(4, 30, 5)).astype(np.float32)
    merged = module.merge_seeds(models)
    assert [type(layer).__name__ for layer in merged.layers].count("Concatenate") == int(skip)
    assert module._parts(merged)[0].units == 18
    mean = np.mean([m.predict(x, verbose=0) for m in models], axis=0)
    np.testing.assert_allclose(merged.predict(x, verbose=0), mean, atol=1e-5)
    assert np.ptp([m.predict(x, verbose=0) for m in models], axis=0).max() > 1e-2
