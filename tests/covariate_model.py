"""Build a small real ``.tflite`` model with extra inputs (lags, calendar, level) for the tests.

A Keras sequence model with ``D = spec.width(F)`` inputs and ``F`` outputs, rebuilt as the
single-step model and converted by the export package's own functions (untrained weights from a
fixed seed: these tests are about the runtime's plumbing, not accuracy). Needs TensorFlow.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from pathlib import Path

import numpy as np

from edge_lstm.model.features import InputSpec
from edge_lstm.model.metadata import ModelMeta, Scaler, StateTensor, Validation, sidecar_path


def build_model(
    out: Path,
    spec: InputSpec | None,
    scaler: Scaler,
    units: int = 8,
    step_s: float = 3600.0,
    horizon: int = 12,
    band: tuple[list[float], list[float]] | None = None,
    seed: int = 0,
) -> Path:
    """Write ``out`` (``.tflite``) and its sidecar; returns ``out``."""
    import keras

    from edge_lstm.export.architecture import build_step_model, describe
    from edge_lstm.export.convert import convert

    n_features = len(scaler.mean)
    width = (spec or InputSpec()).width(n_features)
    keras.utils.set_random_seed(seed)
    sequence = keras.Sequential(
        [
            keras.Input((None, width)),
            keras.layers.LSTM(units, return_sequences=True),
            keras.layers.Dense(n_features),
        ]
    )
    arch = describe(sequence)
    with contextlib.redirect_stdout(io.StringIO()):
        converted = convert(build_step_model(arch))
    validation = None
    if band is not None:
        q10, q90 = band
        validation = Validation(
            horizon=len(q10),
            season=24,
            mae={},
            residual_q10=[[v] * n_features for v in q10],
            residual_q90=[[v] * n_features for v in q90],
        )
    meta = ModelMeta(
        name=out.stem,
        tflite_sha256=hashlib.sha256(converted.content).hexdigest(),
        features=tuple(f"f{i}" for i in range(n_features)) if n_features > 1 else ("value",),
        layers=arch.meta_layers(),
        x_input=converted.inputs["x"],
        y_output=converted.outputs["y"],
        state=tuple(
            StateTensor(name, size, converted.inputs[name], converted.outputs[f"new_{name}"])
            for name, size in arch.state_names()
        ),
        step_s=step_s,
        horizon=horizon,
        warmup=4,
        scaler=scaler,
        validation=validation,
        inputs=spec,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(converted.content)
    meta.save(sidecar_path(out))
    return out


def scaler_for(values: np.ndarray, spec: InputSpec) -> Scaler:
    """A scaler fit on the level-removed values, as train.py fits it."""
    from edge_lstm.model.features import training_inputs

    _, _, level = training_inputs(values, None, InputSpec(level_window=spec.level_window), _ID)
    residual = values.reshape(len(values), -1)[1:] - level
    return Scaler(tuple(residual.mean(axis=0)), tuple(residual.std(axis=0) + 1e-9))


_ID = Scaler((0.0,), (1.0,))
