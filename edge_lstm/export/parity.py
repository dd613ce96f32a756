"""Prove that the exported single-step model forecasts like the original Keras model.

A model with lags, calendar or level inputs (metadata ``inputs``) is checked on its whole rollout:
the Keras side builds every input row with :func:`edge_lstm.model.features.training_inputs` on
the series extended by its own predictions, the device side is
:class:`edge_lstm.model.forecaster.Forecaster`
(``observe_batch(..., at=...)`` then ``forecast_batch``), which keeps its own history ring.

The Keras side is the loop users run (see ``shared/seeds``): reset the states, feed the known
sequence one step at a time, then feed each prediction back as the next input. Stateless models
have no state to carry, so they are re-run on the growing sequence instead, which is what their
own ``predict`` would give. The TFLite side is :class:`edge_lstm.model.runtime.StepModel`: the real
interpreter, through the same code the device runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..model.arrays import FloatArray
from ..model.features import InputSpec, output_values, training_inputs
from ..model.metadata import Scaler
from ..model.runtime import StepModel
from .architecture import Architecture, reset_states

#: Allowed max |keras - tflite| relative to the data scale, per quantize mode. float32 TFLite
#: matches Keras to ~1e-6; float16 weights cost ~1e-3; dynamic-range int8 weights ~1e-2.
TOLERANCE = {"none": 1e-4, "float16": 2e-2, "dynamic": 1e-1}


@dataclass(frozen=True)
class ParityResult:
    """Measured agreement between Keras and the exported model."""

    max_abs_error: float
    tolerance: float
    scale: float
    steps: int
    sequences: int

    @property
    def ok(self) -> bool:
        return self.max_abs_error <= self.tolerance


def keras_rollout(model: Any, arch: Architecture, known: FloatArray, horizon: int) -> FloatArray:
    """One-step predictions ``(N, T + horizon, F_out)``: teacher-forced for ``T``, then fed back."""
    n_seq, n_known, _ = known.shape
    batch = arch.batch_size if arch.stateful and arch.batch_size else n_seq
    if n_seq % batch:
        raise ValueError(f"{n_seq} sequences do not split into batches of {batch}")
    out = np.empty((n_seq, n_known + horizon, arch.n_outputs), np.float32)
    for start in range(0, n_seq, batch):
        chunk = known[start : start + batch]
        if arch.stateful:
            out[start : start + batch] = _stateful_loop(model, chunk, horizon)
        else:
            out[start : start + batch] = _stateless_loop(model, chunk, horizon)
    return out


def _last_step(value: Any) -> FloatArray:
    array = np.asarray(value, dtype=np.float32)
    return array[:, -1, :] if array.ndim == 3 else array


def _stateful_loop(model: Any, known: FloatArray, horizon: int) -> FloatArray:
    reset_states(model)
    preds = []
    for t in range(known.shape[1]):
        preds.append(_last_step(model(known[:, t : t + 1, :], training=False)))
    for _ in range(horizon):
        preds.append(_last_step(model(preds[-1][:, None, :], training=False)))
    reset_states(model)
    return np.stack(preds, axis=1)


def _stateless_loop(model: Any, known: FloatArray, horizon: int) -> FloatArray:
    seq = known
    preds = [_last_step(model(known[:, :1, :], training=False))]
    for t in range(2, known.shape[1] + 1):
        preds.append(_last_step(model(known[:, :t, :], training=False)))
    for _ in range(horizon):
        seq = np.concatenate([seq, preds[-1][:, None, :]], axis=1)
        preds.append(_last_step(model(seq, training=False)))
    return np.stack(preds, axis=1)


def step_rollout(step_model: StepModel, known: FloatArray, horizon: int) -> FloatArray:
    """The same rollout through the exported model, all sequences in one batch per step."""
    n_seq, n_known, _ = known.shape
    state = step_model.zero_state(n_seq)
    preds = []
    x = known[:, 0, :]
    for t in range(n_known + horizon):
        y, state = step_model.step(x, state)
        preds.append(y)
        x = known[:, t + 1, :] if t + 1 < n_known else y
    return np.stack(preds, axis=1)


def check_parity(
    keras_model: Any,
    arch: Architecture,
    step_model: StepModel,
    quantize: str = "none",
    sequences: int = 4,
    known_steps: int = 24,
    horizon: int = 12,
    seed: int = 0,
) -> ParityResult:
    """Roll random sequences through both models and measure the worst disagreement."""
    if arch.stateful and arch.batch_size:
        sequences = max(arch.batch_size, sequences - sequences % arch.batch_size)
    rng = np.random.default_rng(seed)
    # Model units: a trained model sees scaled data, so unit-variance inputs are its data scale.
    known = rng.normal(size=(sequences, known_steps, arch.n_features)).astype(np.float32)
    expected = keras_rollout(keras_model, arch, known, horizon)
    got = step_rollout(step_model, known, horizon)
    error = float(np.max(np.abs(expected - got))) if np.all(np.isfinite(got)) else float("inf")
    scale = max(1.0, float(np.max(np.abs(expected))))
    return ParityResult(
        max_abs_error=error,
        tolerance=TOLERANCE[quantize] * scale,
        scale=scale,
        steps=known_steps + horizon,
        sequences=sequences,
    )


#: Start of the parity series: 30 March 2024, so a week of hourly steps crosses the European
#: change to summer time (31 March) and the calendar inputs are checked across it.
PARITY_START_S = 1_711_756_800.0


def keras_covariate_rollout(
    model: Any,
    arch: Architecture,
    spec: InputSpec,
    scaler: Scaler,
    values: npt.NDArray[np.float64],
    times_s: npt.NDArray[np.float64],
    horizon: int,
) -> npt.NDArray[np.float64]:
    """Forecasts in original units ``(N, T - 1 + horizon, F)``: after each of the ``T`` known
    steps the one-step prediction (teacher-forced), then ``horizon - 1`` steps fed back.

    ``values`` ``(N, T, F)`` original units, ``times_s`` ``(T,)`` step start times.
    """
    n_seq = values.shape[0]
    batch = arch.batch_size if arch.stateful and arch.batch_size else n_seq
    if n_seq % batch:
        raise ValueError(f"{n_seq} sequences do not split into batches of {batch}")
    parts = [
        _covariate_loop(model, arch, spec, scaler, values[i : i + batch], times_s, horizon)
        for i in range(0, n_seq, batch)
    ]
    return np.concatenate(parts)


def _rows(
    spec: InputSpec, scaler: Scaler, values: npt.NDArray[np.float64], times_s: Any
) -> tuple[FloatArray, npt.NDArray[np.float64]]:
    """Input rows and levels ``(N, T, D)``, ``(N, T, F)`` after observing each of ``T`` steps."""
    step_s = float(times_s[1] - times_s[0])
    times = np.append(times_s, times_s[-1] + step_s)
    xs, levels = [], []
    for series in values:
        # training_inputs gives the rows that have a next value: a copy of the last value as a
        # stand-in next step yields the row after the last known step (its target is unused).
        x, _, level = training_inputs(np.vstack([series, series[-1:]]), times, spec, scaler)
        xs.append(x)
        levels.append(level)
    return np.stack(xs), np.stack(levels)


def _covariate_loop(
    model: Any,
    arch: Architecture,
    spec: InputSpec,
    scaler: Scaler,
    values: npt.NDArray[np.float64],
    times_s: npt.NDArray[np.float64],
    horizon: int,
) -> npt.NDArray[np.float64]:
    n_known = values.shape[1]
    step_s = float(times_s[1] - times_s[0])
    rows, levels = _rows(spec, scaler, values, times_s)
    fed = [rows[:, t] for t in range(n_known)]
    out = []
    reset_states(model)
    teacher: FloatArray | None = None
    if not arch.stateful:
        # A stateless model restarts from zero state at each call: one call on the known rows
        # gives every teacher-forced step when it returns sequences; else it is re-run per step.
        whole = np.asarray(model(rows, training=False), dtype=np.float32)
        teacher = whole if whole.ndim == 3 else None
    for t in range(n_known + horizon - 1):
        if arch.stateful:
            y = _last_step(model(fed[t][:, None, :], training=False))
        elif teacher is not None and t < n_known:
            y = teacher[:, t]
        else:
            y = _last_step(model(np.stack(fed[: t + 1], axis=1), training=False))
        level = levels[:, t] if t < n_known else levels[:, -1]
        predicted = output_values(y, level, scaler)
        out.append(predicted)
        if t + 1 >= n_known and t + 1 < n_known + horizon - 1:
            # The rollout: the prediction becomes the next value, its row is rebuilt from the
            # extended series exactly as training builds rows.
            values = np.concatenate([values, predicted[:, None, :]], axis=1)
            times = times_s[0] + step_s * np.arange(values.shape[1])
            new_rows, new_levels = _rows(spec, scaler, values, times)
            fed.append(new_rows[:, -1])
            levels = new_levels
    reset_states(model)
    return np.stack(out, axis=1)


def forecaster_rollout(
    step_model: StepModel,
    values: npt.NDArray[np.float64],
    times_s: npt.NDArray[np.float64],
    horizon: int,
) -> npt.NDArray[np.float64]:
    """The same forecasts through the device's :class:`Forecaster` (history ring, calendar)."""
    from ..model.forecaster import Forecaster

    forecaster = Forecaster(step_model)
    ids = [f"parity-{i}" for i in range(values.shape[0])]
    out = []
    for t in range(values.shape[1]):
        forecaster.observe_batch(
            {sensor: values[i, t] for i, sensor in enumerate(ids)}, at=float(times_s[t])
        )
        steps = horizon if t == values.shape[1] - 1 else 1
        out.append(np.asarray(forecaster.forecast_batch(ids, steps), dtype=np.float64))
    return np.concatenate(out, axis=1)


def check_covariate_parity(
    keras_model: Any,
    arch: Architecture,
    step_model: StepModel,
    quantize: str = "none",
    sequences: int = 4,
    known_steps: int = 48,
    horizon: int = 12,
    seed: int = 0,
) -> ParityResult:
    """Whole rollouts with lags, calendar and level: Keras + ``training_inputs`` vs Forecaster.

    Errors are measured in model units (divided by the scaler's scale), like :func:`check_parity`.
    """
    meta = step_model.meta
    spec = meta.input_spec
    if arch.stateful and arch.batch_size:
        sequences = max(arch.batch_size, sequences - sequences % arch.batch_size)
    rng = np.random.default_rng(seed)
    scale = np.asarray(meta.scaler.scale)
    # A random walk around the scaler's mean: lags and level then vary like a real series.
    walk = np.cumsum(rng.normal(size=(sequences, known_steps, meta.n_features)), axis=1) * 0.3
    values = np.asarray(np.asarray(meta.scaler.mean) + scale * walk, dtype=np.float64)
    times = np.asarray(PARITY_START_S + meta.step_s * np.arange(known_steps), dtype=np.float64)
    expected = keras_covariate_rollout(keras_model, arch, spec, meta.scaler, values, times, horizon)
    got = forecaster_rollout(step_model, values, times, horizon)
    diff = np.abs(expected - got) / scale
    error = float(np.max(diff)) if np.all(np.isfinite(got)) else float("inf")
    size = max(1.0, float(np.max(np.abs(expected - np.asarray(meta.scaler.mean)) / scale)))
    return ParityResult(
        max_abs_error=error,
        tolerance=TOLERANCE[quantize] * size,
        scale=size,
        steps=known_steps + horizon - 1,
        sequences=sequences,
    )
