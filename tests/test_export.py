"""Seed-style Keras models through ``edge-lstm export`` and the real TFLite interpreter.

Each model is built the way the Keras stateful-LSTM threads build them, saved as ``.keras``,
exported, and its exported forecast (teacher-forced, then fed back) compared with the Keras loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.train
pytest.importorskip("tensorflow")

import keras  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from edge_lstm.cli.app import app  # noqa: E402
from edge_lstm.errors import ModelError  # noqa: E402
from edge_lstm.export import ExportOptions, export_model, load_keras  # noqa: E402
from edge_lstm.model.metadata import ModelMeta, Scaler  # noqa: E402
from edge_lstm.model.runtime import StepModel  # noqa: E402

KNOWN, HORIZON = 16, 12  # 28 compared steps per sequence
L = keras.layers


def _stateful_1_lstm_f1() -> keras.Model:
    return keras.Sequential(
        [keras.Input(batch_shape=(1, None, 1)), L.LSTM(6, stateful=True), L.Dense(1)]
    )


def _stateful_2_lstm_f3_time_distributed() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(batch_shape=(1, None, 3)),
            L.LSTM(7, stateful=True, return_sequences=True),
            L.LSTM(5, stateful=True, return_sequences=True),
            L.TimeDistributed(L.Dense(3)),
        ]
    )


def _stateless_1_lstm_f3_dense() -> keras.Model:
    return keras.Sequential([keras.Input(shape=(None, 3)), L.LSTM(6), L.Dense(3)])


def _stateless_2_lstm_f1_options() -> keras.Model:
    # Non-default activations and no bias: the exported cells must honour the layer's own config.
    return keras.Sequential(
        [
            keras.Input(shape=(None, 1)),
            L.LSTM(5, return_sequences=True, activation="relu", use_bias=False),
            L.LSTM(4, return_sequences=True, recurrent_activation="hard_sigmoid"),
            L.Dense(4, activation="tanh"),
            L.Dense(1),
        ]
    )


def _stateful_fixed_lookback_batch2() -> keras.Model:
    # ``batch_input_shape=(batch_size, look_back, 1)`` from the threads: fixed batch and time.
    return keras.Sequential(
        [
            keras.Input(batch_shape=(2, 8, 1)),
            L.LSTM(4, stateful=True, return_sequences=True),
            L.Dropout(0.2),
            L.TimeDistributed(L.Dense(1)),
        ]
    )


def _stateless_window_f1() -> keras.Model:
    # The ``look_back`` window model: fixed time length, no state kept between calls.
    return keras.Sequential([keras.Input(shape=(10, 1)), L.LSTM(4), L.Dense(1)])


def _functional_gru_lstm_f3() -> keras.Model:
    inputs = keras.Input(batch_shape=(1, None, 3))
    hidden = L.GRU(5, stateful=True, return_sequences=True)(inputs)
    hidden = L.LSTM(4, stateful=True)(hidden)
    return keras.Model(inputs, L.Dense(3)(hidden))


MODELS: dict[str, Callable[[], keras.Model]] = {
    "stateful-1lstm-f1-dense": _stateful_1_lstm_f1,
    "stateful-2lstm-f3-timedistributed": _stateful_2_lstm_f3_time_distributed,
    "stateless-1lstm-f3-dense": _stateless_1_lstm_f3_dense,
    "stateless-2lstm-f1-options": _stateless_2_lstm_f1_options,
    "stateful-lookback-batch2": _stateful_fixed_lookback_batch2,
    "stateless-window-f1": _stateless_window_f1,
    "functional-gru-lstm-f3": _functional_gru_lstm_f3,
}


def _randomize(model: keras.Model, seed: int) -> keras.Model:
    # Larger than initial weights so every gate matters (an untrained LSTM is nearly linear).
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(scale=0.6, size=w.shape) for w in model.get_weights()])
    return model


def _keras_forecast(model: keras.Model, known: np.ndarray, horizon: int) -> np.ndarray:
    """The threads' loop: reset, predict the known steps one by one, then feed predictions back."""
    batch = model.inputs[0].shape[0] or 1
    stateful = any(getattr(layer, "stateful", False) for layer in model.layers)
    if model.inputs[0].shape[1] is not None:  # fixed look-back: rebuild with a free time axis
        config = model.get_config()
        config["layers"][0]["config"]["batch_shape"] = (batch, None, known.shape[-1])
        clone = keras.Sequential.from_config(config)
        clone.set_weights(model.get_weights())
        model = clone
    out = []
    for start in range(0, known.shape[0], batch):
        seq = known[start : start + batch]
        if stateful:
            for layer in model.layers:
                if getattr(layer, "stateful", False):
                    layer.reset_states()
            preds = [model.predict_on_batch(seq[:, t : t + 1]) for t in range(seq.shape[1])]
            preds = [p.reshape(seq.shape[0], -1) for p in preds]
            for _ in range(horizon):
                nxt = model.predict_on_batch(preds[-1][:, None, :])
                preds.append(nxt.reshape(seq.shape[0], -1))
        else:
            preds = []
            for t in range(1, seq.shape[1] + 1):
                preds.append(
                    np.asarray(model.predict_on_batch(seq[:, :t])).reshape(
                        len(seq), -1, seq.shape[2]
                    )[:, -1]
                )
            for _ in range(horizon):
                seq = np.concatenate([seq, preds[-1][:, None, :]], axis=1)
                preds.append(
                    np.asarray(model.predict_on_batch(seq)).reshape(len(seq), -1, seq.shape[2])[
                        :, -1
                    ]
                )
        out.append(np.stack(preds, axis=1))
    return np.concatenate(out)


def _tflite_forecast(model: StepModel, known: np.ndarray, horizon: int) -> np.ndarray:
    state = model.zero_state(known.shape[0])
    preds = []
    x = known[:, 0]
    for t in range(known.shape[1] + horizon):
        y, state = model.step(x, state)
        preds.append(y)
        x = known[:, t + 1] if t + 1 < known.shape[1] else y
    return np.stack(preds, axis=1)


@pytest.mark.parametrize("name", list(MODELS))
def test_exported_forecast_matches_keras_loop(name: str, tmp_path: Path) -> None:
    model = _randomize(MODELS[name](), seed=len(name))
    keras_path = tmp_path / "model.keras"
    model.save(keras_path)
    out = tmp_path / "model.tflite"
    result = export_model(load_keras(keras_path), out, ExportOptions(horizon=HORIZON))
    assert result.parity.max_abs_error <= 1e-4
    assert not {"WHILE", "READ_VARIABLE", "VAR_HANDLE"} & set(result.ops)
    step_model = StepModel.load(out)
    n_features = model.inputs[0].shape[-1]
    assert step_model.meta.n_features == n_features
    rng = np.random.default_rng(7)
    known = rng.normal(size=(4, KNOWN, n_features)).astype(np.float32)
    expected = _keras_forecast(model, known, HORIZON)
    got = _tflite_forecast(step_model, known, HORIZON)
    assert got.shape == expected.shape == (4, KNOWN + HORIZON, n_features)
    # The comparison must be able to fail: forecasts move step to step.
    assert np.std(expected[:, KNOWN:]) > 1e-3
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_state_tensors_follow_the_layers(tmp_path: Path) -> None:
    model = _randomize(_functional_gru_lstm_f3(), seed=3)
    meta = export_model(model, tmp_path / "m.tflite", ExportOptions()).meta
    assert [(s.name, s.size) for s in meta.state] == [("h0", 5), ("h1", 4), ("c1", 4)]
    assert [(layer.kind, layer.units) for layer in meta.layers] == [("gru", 5), ("lstm", 4)]
    assert ModelMeta.load(tmp_path / "m.json") == meta


def test_unsupported_layer_is_named(tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input(shape=(None, 2)), L.Bidirectional(L.LSTM(3)), L.Dense(2)])
    with pytest.raises(ModelError, match=r"Bidirectional.*not supported"):
        export_model(model, tmp_path / "m.tflite", ExportOptions())
    assert not (tmp_path / "m.tflite").exists()


def test_output_width_must_match_input(tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input(shape=(None, 2)), L.LSTM(3), L.Dense(1)])
    with pytest.raises(ModelError, match="predicts 1 values per step but takes 2"):
        export_model(model, tmp_path / "m.tflite", ExportOptions())


runner = CliRunner()


def test_cli_export_and_inspect(tmp_path: Path) -> None:
    keras_path = tmp_path / "seed.keras"
    _randomize(_stateful_2_lstm_f3_time_distributed(), seed=11).save(keras_path)
    out = tmp_path / "seed.tflite"
    result = runner.invoke(
        app,
        [
            "export", str(keras_path), "--output", str(out),
            "--scaler", "10,20,30:2,4,8", "--step", "30min", "--horizon", "6",
            "--warmup", "5", "--feature-names", "t,rh,p",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "parity: max abs error" in result.output
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["step_s"] == 1800.0 and doc["horizon"] == 6 and doc["warmup"] == 5
    assert doc["features"] == ["t", "rh", "p"]
    assert doc["scaler"] == {"mean": [10.0, 20.0, 30.0], "scale": [2.0, 4.0, 8.0]}
    assert doc["parity"]["max_abs_error"] <= 1e-4
    shown = runner.invoke(app, ["inspect", str(out)])
    assert shown.exit_code == 0, shown.output
    assert "LSTM(7) -> LSTM(5)" in shown.output and "FULLY_CONNECTED" in shown.output
    assert "parity" in shown.output and "ok" in shown.output
    assert "companion  none" in shown.output  # export has no data to fit a companion on


def test_cli_quantized_export_reports_error_and_size(tmp_path: Path) -> None:
    keras_path = tmp_path / "seed.keras"
    model = keras.Sequential([keras.Input(shape=(None, 1)), L.LSTM(64), L.Dense(1)])
    _randomize(model, seed=5).save(keras_path)
    sizes = {}
    for mode in ("none", "float16"):
        out = tmp_path / f"{mode}.tflite"
        result = runner.invoke(app, ["export", str(keras_path), "-o", str(out), "--quantize", mode])
        assert result.exit_code == 0, result.output
        sizes[mode] = out.stat().st_size
        parity = json.loads(out.with_suffix(".json").read_text())["parity"]
        assert parity["quantize"] == mode
    assert sizes["float16"] < 0.7 * sizes["none"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--step", "soon"], "'soon' is not a duration"),
        (["--scaler", "1,2"], "is not MEAN1"),
        (["--quantize", "int4"], "--quantize must be one of"),
    ],
)
def test_cli_bad_options_fail_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    keras_path = tmp_path / "m.keras"
    _stateless_1_lstm_f3_dense().save(keras_path)
    result = runner.invoke(
        app, ["export", str(keras_path), "-o", str(tmp_path / "m.tflite"), *args]
    )
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_unsupported_layer_and_missing_file(tmp_path: Path) -> None:
    keras_path = tmp_path / "conv.keras"
    keras.Sequential(
        [keras.Input(shape=(None, 1)), L.Conv1D(2, 3, padding="causal"), L.LSTM(2), L.Dense(1)]
    ).save(keras_path)
    result = runner.invoke(app, ["export", str(keras_path), "-o", str(tmp_path / "c.tflite")])
    assert result.exit_code == 1
    assert "Conv1D" in result.output and "not supported" in result.output
    missing = runner.invoke(app, ["export", str(tmp_path / "nope.keras"), "-o", "x.tflite"])
    assert missing.exit_code == 1 and "not found" in missing.output


def test_scaler_is_stored_not_applied_twice(tmp_path: Path) -> None:
    model = _randomize(_stateless_1_lstm_f3_dense(), seed=2)
    scaler = Scaler((1.0, 2.0, 3.0), (0.5, 2.0, 4.0))
    meta = export_model(model, tmp_path / "m.tflite", ExportOptions(scaler=scaler)).meta
    assert meta.scaler == scaler
    # Parity is in model units: the scaler belongs to the forecaster, not to the graph.
    step_model = StepModel.load(tmp_path / "m.tflite")
    x = np.ones((1, 3), np.float32)
    y, _ = step_model.step(x, step_model.zero_state(1))
    want = _keras_forecast(model, x[:, None, :], 0)[:, 0]
    np.testing.assert_allclose(y, want, atol=1e-5)


def test_cli_quantized_export_above_the_looser_bound_fails(tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input(shape=(None, 1)), L.LSTM(64), L.Dense(1)])
    rng = np.random.default_rng(0)
    weights = [rng.normal(scale=0.3, size=w.shape) for w in model.get_weights()]
    # An outlier in every output channel makes each channel's int8 grid too coarse for the rest
    # (measured: error ~9x the dynamic-range bound, float32 export ~1e-6).
    weights[0][0, :] = 100.0
    weights[1][0, :] = 100.0
    model.set_weights(weights)
    keras_path = tmp_path / "outlier.keras"
    model.save(keras_path)
    out = tmp_path / "q.tflite"
    result = runner.invoke(
        app, ["export", str(keras_path), "-o", str(out), "--quantize", "dynamic"]
    )
    assert result.exit_code == 1
    assert "parity check failed" in result.output and "quantize=dynamic" in result.output
    assert not out.exists() and not out.with_suffix(".json").exists()
    # The same model unquantized is exported fine: the failure is the quantization's.
    assert runner.invoke(app, ["export", str(keras_path), "-o", str(out)]).exit_code == 0
