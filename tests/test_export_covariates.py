"""Export of models whose input row holds lags, calendar and level: the whole rollout's parity.

The Keras side builds each row with ``features.training_inputs`` on the series extended by its own
predictions; the device side is the real ``Forecaster`` over the real ``.tflite`` file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.train
pytest.importorskip("tensorflow")

import keras  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from edge_lstm.cli.app import app  # noqa: E402
from edge_lstm.errors import ModelError  # noqa: E402
from edge_lstm.export import ExportOptions, export_model  # noqa: E402
from edge_lstm.export.architecture import describe  # noqa: E402
from edge_lstm.export.parity import (  # noqa: E402
    PARITY_START_S,
    forecaster_rollout,
    keras_covariate_rollout,
)
from edge_lstm.model.features import InputSpec  # noqa: E402
from edge_lstm.model.metadata import ModelMeta, Scaler  # noqa: E402
from edge_lstm.model.runtime import StepModel  # noqa: E402

L = keras.layers
SPEC = InputSpec(
    lags=(3, 7), calendar=("time_of_day", "day_of_week"), timezone="Europe/Berlin", level_window=4
)
SCALER = Scaler((20.0,), (4.0,))
D = SPEC.width(1)  # 1 value + 2 lags + 2 sin/cos pairs = 7


def _randomize(model: keras.Model, seed: int) -> keras.Model:
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(scale=0.4, size=w.shape) for w in model.get_weights()])
    return model


def _stateless() -> keras.Model:
    return keras.Sequential(
        [keras.Input(shape=(None, D)), L.LSTM(6, return_sequences=True), L.Dense(1)]
    )


def _stateful() -> keras.Model:
    return keras.Sequential(
        [keras.Input(batch_shape=(1, None, D)), L.LSTM(5, stateful=True), L.Dense(1)]
    )


def _skip() -> keras.Model:
    """The train.py form: the head also sees the step's inputs (a linear skip past the LSTM)."""
    inputs = keras.Input(shape=(None, D))
    joined = L.Concatenate()([L.LSTM(6, return_sequences=True)(inputs), inputs])
    return keras.Model(inputs, L.Dense(1)(joined))


def _series(n_seq: int, n_steps: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = 20.0 + np.cumsum(rng.normal(size=(n_seq, n_steps, 1)), axis=1)
    return values, PARITY_START_S + 3600.0 * np.arange(n_steps)


@pytest.mark.parametrize("build", [_stateless, _stateful, _skip])
def test_covariate_model_exports_with_rollout_parity(build: object, tmp_path: Path) -> None:
    model = _randomize(build(), seed=1)  # type: ignore[operator]
    out = tmp_path / "cov.tflite"
    result = export_model(model, out, ExportOptions(scaler=SCALER, inputs=SPEC, horizon=6))
    assert result.parity.ok and result.parity.max_abs_error <= 1e-4
    # The rollout covers the history the lags need plus the horizon (12 at least).
    assert result.parity.steps >= SPEC.history_len + 12
    meta = ModelMeta.load(out.with_suffix(".json"))
    assert meta.inputs == SPEC and meta.format_version == 2
    assert meta.input_width == D and meta.n_features == 1


def test_rollout_parity_is_sensitive_to_the_calendar(tmp_path: Path) -> None:
    """The comparison can fail: the same weights read in another time zone forecast otherwise."""
    model = _randomize(_stateless(), seed=2)
    out = tmp_path / "cov.tflite"
    export_model(model, out, ExportOptions(scaler=SCALER, inputs=SPEC))
    values, times = _series(2, 30)
    step_model = StepModel.load(out)
    arch = describe(model)
    expected = keras_covariate_rollout(model, arch, SPEC, SCALER, values, times, 12)
    got = forecaster_rollout(step_model, values, times, 12)
    assert got.shape == expected.shape == (2, 30 + 11, 1)
    np.testing.assert_allclose(got, expected, atol=1e-3)
    tokyo = InputSpec(SPEC.lags, SPEC.calendar, "Asia/Tokyo", SPEC.level_window)
    shifted = keras_covariate_rollout(model, arch, tokyo, SCALER, values, times, 12)
    assert np.max(np.abs(shifted - got)) > 1e-2


def test_the_skip_is_part_of_the_exported_model(tmp_path: Path) -> None:
    """Parity could not hold if the head's input weights were dropped: they carry the forecast."""
    model = _randomize(_skip(), seed=4)
    dense = model.layers[-1]
    kernel, bias = dense.get_weights()
    kernel[:6] = 0.0  # the LSTM's part of the head is zero: all that is left is the skip
    dense.set_weights([kernel, bias])
    out = tmp_path / "skip.tflite"
    result = export_model(model, out, ExportOptions(scaler=SCALER, inputs=SPEC))
    assert result.parity.ok
    values, times = _series(1, 30)
    got = forecaster_rollout(StepModel.load(out), values, times, 12)
    assert np.ptp(got[0, 30:, 0]) > 1e-3  # a forecast that moves with the fed-back inputs


@pytest.mark.parametrize(
    "join", [lambda h, x: [x, h], lambda h, x: [h, h]], ids=["reversed", "not-the-input"]
)
def test_other_concatenates_are_refused_by_name(join: object) -> None:
    inputs = keras.Input(shape=(None, D))
    hidden = L.LSTM(4, return_sequences=True)(inputs)
    joined = L.Concatenate(name="joined")(join(hidden, inputs))  # type: ignore[operator]
    model = keras.Model(inputs, L.Dense(1)(joined))
    with pytest.raises(ModelError, match=r"'joined' \(Concatenate\)"):
        describe(model)


def test_input_width_must_match_the_declared_inputs(tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input(shape=(None, 5)), L.LSTM(3), L.Dense(1)])
    with pytest.raises(ModelError, match=r"takes 5 inputs per step.*make 7"):
        export_model(model, tmp_path / "m.tflite", ExportOptions(inputs=SPEC))
    assert not (tmp_path / "m.tflite").exists()


def test_plain_models_stay_format_1(tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input(batch_shape=(1, None, 1)), L.LSTM(4, stateful=True)])
    model.add(L.Dense(1))
    meta = export_model(_randomize(model, 4), tmp_path / "p.tflite", ExportOptions()).meta
    assert meta.inputs is None and meta.format_version == 1
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["format_version"] == 1 and "inputs" not in doc


def test_cli_export_declares_the_inputs(tmp_path: Path) -> None:
    keras_path = tmp_path / "cov.keras"
    _randomize(_stateless(), seed=5).save(keras_path)
    out = tmp_path / "cov.tflite"
    result = CliRunner().invoke(
        app,
        [
            "export", str(keras_path), "-o", str(out), "--scaler", "20:4",
            "--lags", "3,7", "--calendar", "time_of_day,day_of_week",
            "--timezone", "Europe/Berlin", "--level-window", "4",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["inputs"] == SPEC.to_doc()
    bad = CliRunner().invoke(
        app, ["export", str(keras_path), "-o", str(out), "--calendar", "moon_phase"]
    )
    assert bad.exit_code == 1 and "moon_phase" in bad.output
    assert "Traceback" not in bad.output


def test_export_without_the_train_extra_names_it(tmp_path: Path) -> None:
    """Keras made unimportable in a real subprocess: one line with the install command."""
    code = (
        "import sys; sys.modules['keras'] = None; sys.modules['tensorflow'] = None; "
        "from edge_lstm.cli.app import app; app()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "export", str(tmp_path / "m.keras"), "-o", "m.tflite"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "pip install 'edge-lstm[train]'" in lines[0] and "keras" in lines[0]


def test_train_script_without_the_train_extra_names_it(tmp_path: Path) -> None:
    """scripts/train.py says what to install before any work, in one line."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "train.py"
    code = (
        "import runpy, sys; sys.modules['keras'] = None; sys.modules['tensorflow'] = None; "
        f"sys.argv = ['train.py', *sys.argv[1:]]; runpy.run_path({str(script)!r}, "
        "run_name='__main__')"
    )
    data = Path(__file__).resolve().parents[1] / "data" / "tmy_hourly_temperature.csv"
    done = subprocess.run(
        [sys.executable, "-c", code, "--data", str(data), "--columns", "miami",
         "--step", "1h", "--out", str(tmp_path / "m")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: scripts/train.py needs TensorFlow and Keras")
    assert "pip install 'edge-lstm[train]'" in lines[0]
    assert not (tmp_path / "m.tflite").exists()
